#!/usr/bin/env bash
#
# test/deps.sh
#     Install the Debian packages needed to build rr_router against one
#     PostgreSQL version, run its tests and run the demo.  Idempotent: when
#     every package is already installed it returns at once without
#     touching apt.
#
# Usage (as root):
#     bash test/deps.sh [--pg VERSION] [--list]
#
#     --pg VERSION   the PostgreSQL major version (default: $RR_PG_VERSION,
#                    else 15); this machine's apt sources must ship it, as
#                    Debian 12 does 15 and the chroots of test/chroot.sh do
#                    the others
#     --list         print the packages, one a line (as apt-get install
#                    takes them), and install nothing
#
# Non-interactive: safe for CI and for scripts.

set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/pg-versions.sh"

PG_VERSION=${RR_PG_VERSION:-15}
LIST=0
while [ $# -gt 0 ]; do
	case "$1" in
	--pg) PG_VERSION=${2:?--pg needs a version}; shift 2 ;;
	--pg=*) PG_VERSION=${1#--pg=}; shift ;;
	--list) LIST=1; shift ;;
	*) echo "deps: unknown argument: $1" >&2; exit 2 ;;
	esac
done
rr_pg_known "$PG_VERSION" || { echo "deps: PostgreSQL $PG_VERSION is not a tested version ($RR_PG_ALL_VERSIONS)" >&2; exit 2; }

# "pkg/release" where the server packages must come from a release apt does
# not pick by itself (experimental), else "pkg".
rel=$(rr_pg_release "$PG_VERSION")
pinned() { printf '%s\n' "$1${rel:+/$rel}"; }

mapfile -t PG_PACKAGES < <(
	# server, client programs and PGXS (pg_config, pg_regress, the TAP
	# test modules PostgreSQL::Test::*)
	pinned "postgresql-$PG_VERSION"
	pinned "postgresql-client-$PG_VERSION"
	pinned "postgresql-server-dev-$PG_VERSION"
	# a server from another release needs that release's libpq
	if [ -n "$rel" ]; then
		pinned libpq5
		pinned libpq-dev
	fi
)

PACKAGES=(
	"${PG_PACKAGES[@]}"
	# compiler and make
	build-essential
	gcc
	make
	# TAP tests: prove, Test::More (perl), IPC::Run
	perl
	libipc-run-perl
	# client-library tests, the Python client and the demo (psycopg 3)
	python3
	python3-psycopg
	python3-psycopg-pool
	# HTTP status endpoint tests: curl as operators call it, a real
	# HAProxy in front of the replicas, promtool to check /metrics
	curl
	haproxy
	prometheus
	# the clock-step test runs a replica under libfaketime
	libfaketime
	# util-linux ships runuser; procps ships ps/pgrep used in diagnostics
	util-linux
	procps
)

# On this machine's own version (Debian 12's 15) also the tests that need
# Debian 12's packages: the connection poolers (PgBouncer 1.18, pgpool-II
# 4.3; their tests skip where these are absent, as in the other versions'
# chroots), and the Debian package test (test/package), which builds the
# package and bootstraps clean chroots with mmdebstrap.
if rr_pg_native "$PG_VERSION"; then
	PACKAGES+=(
		pgbouncer
		pgpool2
		debhelper
		postgresql-server-dev-all
		lintian
		mmdebstrap
		mount
	)
fi

if [ "$LIST" = 1 ]; then
	printf '%s\n' "${PACKAGES[@]}"
	exit 0
fi

missing=()
for p in "${PACKAGES[@]}"; do
	status=$(dpkg-query -W -f='${Status}' "${p%%/*}" 2>/dev/null || true)
	if [ "$status" != "install ok installed" ]; then
		missing+=("$p")
	fi
done

if [ ${#missing[@]} -eq 0 ]; then
	echo "deps: all ${#PACKAGES[@]} packages already installed"
	exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
	echo "deps: missing packages: ${missing[*]}" >&2
	echo "deps: run as root (or install them with apt-get) and retry" >&2
	exit 1
fi

echo "deps: installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt_opts=(-y -q -o Dpkg::Use-Pty=0 -o DPkg::Lock::Timeout=300)

# Retry once: a fresh machine's first "apt-get update" can hit a mirror
# that is being synced.
# RR_DEPS_LOG=FILE sends apt's output to FILE instead of the terminal (the
# demo does this); its end is shown if apt fails.
apt_install() {
	apt-get "${apt_opts[@]}" update &&
		apt-get "${apt_opts[@]}" install --no-install-recommends "${PACKAGES[@]}"
}
for attempt in 1 2; do
	if [ -n "${RR_DEPS_LOG:-}" ]; then
		echo "deps: apt-get output goes to $RR_DEPS_LOG"
		if apt_install >>"$RR_DEPS_LOG" 2>&1; then
			echo "deps: done"
			exit 0
		fi
		tail -n 30 "$RR_DEPS_LOG" >&2
	elif apt_install; then
		echo "deps: done"
		exit 0
	fi
	echo "deps: apt-get failed (attempt $attempt)" >&2
	sleep 5
done
exit 1
