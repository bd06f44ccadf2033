#!/usr/bin/env bash
#
# test/deps.sh
#     Install the Debian 12 packages needed to build rr_router, run its
#     tests and run the demo.  Idempotent: when every package is already
#     installed it returns at once without touching apt.
#
# Run as root.  Non-interactive: safe for CI and for scripts.

set -euo pipefail

PACKAGES=(
	# server, client programs and PGXS (pg_config, pg_regress, the TAP
	# test modules PostgreSQL::Test::*)
	postgresql-15
	postgresql-client-15
	postgresql-server-dev-15
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
	# connection-pooler tests: a real PgBouncer and a real pgpool-II
	pgbouncer
	pgpool2
	# Debian package test (test/package/test-package.sh): the tools to
	# build and check the package, and mmdebstrap for the clean chroots it
	# builds and installs it in
	debhelper
	postgresql-server-dev-all
	lintian
	mmdebstrap
	mount
	# util-linux ships runuser; procps ships ps/pgrep used in diagnostics
	util-linux
	procps
)

missing=()
for p in "${PACKAGES[@]}"; do
	status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
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
