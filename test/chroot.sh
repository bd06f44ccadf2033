#!/usr/bin/env bash
#
# test/chroot.sh
#     A Debian chroot per PostgreSQL version, with Debian's own packages of
#     that version and everything test/deps.sh lists, so that rr_router is
#     built and tested on 17, 18 and 19 from a Debian 12 machine.
#
# Usage (as root):
#     bash test/chroot.sh build VERSION      create the chroot, or reuse it
#     bash test/chroot.sh run VERSION CMD... run CMD as root inside it
#     bash test/chroot.sh path VERSION       print where it is
#     bash test/chroot.sh remove VERSION     delete it
#
# "build" makes the chroot with mmdebstrap from the suites
# test/pg-versions.sh names (trixie for 17, sid for 18, sid plus experimental
# for 19) and keeps it under $RR_CHROOT_DIR (default
# /var/cache/rr_router/chroots/pgVERSION); later calls reuse it (about a
# minute saved per version).  RR_CHROOT_REFRESH=1 builds it anew, e.g. to
# pick up newer packages.  Exit codes: 0 ready, 3 the Debian archive cannot
# satisfy it (a package is missing, uninstallable or cannot be fetched: the
# last line on stderr is "SKIP: <apt's reason>"), anything else a failure.
#
# "run" gives CMD its own mount and PID namespaces: /proc and a tmpfs
# /dev/shm (PostgreSQL's dynamic shared memory) are mounted for it alone and
# unmounted however it ends, and every process it leaves behind (a server a
# killed test did not stop) is killed when it returns.  The chroot shares
# the machine's network, so servers inside listen on its loopback.
#
# Environment: RR_CHROOT_DIR, RR_CHROOT_REFRESH, RR_DEBIAN_MIRROR (default
# http://deb.debian.org/debian).

set -euo pipefail

TESTDIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$TESTDIR/pg-versions.sh"

CHROOT_DIR=${RR_CHROOT_DIR:-/var/cache/rr_router/chroots}
MIRROR=${RR_DEBIAN_MIRROR:-http://deb.debian.org/debian}
# Marks a chroot whose build finished; a chroot without it is rebuilt.
STAMP=.rr_router-chroot

say() { printf 'chroot: %s\n' "$*" >&2; }
die() { printf 'chroot: %s\n' "$*" >&2; exit 1; }

usage() { sed -n '3,25p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }

# Install mmdebstrap on this machine if it is missing.  Another apt may be
# running: wait for its lock rather than fail.
need_mmdebstrap()
{
	command -v mmdebstrap >/dev/null && return 0
	say "installing mmdebstrap"
	local attempt
	for attempt in 1 2 3; do
		if DEBIAN_FRONTEND=noninteractive apt-get -y -q -o DPkg::Lock::Timeout=600 \
			update >/dev/null &&
			DEBIAN_FRONTEND=noninteractive apt-get -y -q -o DPkg::Lock::Timeout=600 \
				install --no-install-recommends mmdebstrap >/dev/null; then
			return 0
		fi
		say "apt-get install mmdebstrap failed (attempt $attempt)"
		sleep 10
	done
	return 1
}

build()
{
	local v=$1 root=$CHROOT_DIR/pg$1 log suites rel packages start rc reason
	suites=$(rr_pg_suites "$v")
	rel=$(rr_pg_release "$v")

	mkdir -p "$CHROOT_DIR"
	# One build at a time per version, also across concurrent test runs.
	exec 9>"$CHROOT_DIR/pg$v.lock"
	flock 9

	if [ -f "$root/$STAMP" ] && [ "${RR_CHROOT_REFRESH:-0}" != 1 ]; then
		say "reusing $root ($(sed -n 1p "$root/$STAMP"))"
		echo "$root"
		return 0
	fi

	need_mmdebstrap || die "cannot install mmdebstrap"

	packages=$(bash "$TESTDIR/deps.sh" --pg "$v" --list | paste -sd, -)
	local mirrors=() s
	for s in $suites; do
		mirrors+=("deb $MIRROR $s main")
	done
	log=$CHROOT_DIR/pg$v.build.log
	rm -rf "$root.new"
	say "building pg$v from ${suites// /+} into $root (log: $log)"
	start=$(date +%s)
	set +e
	# sid and experimental are often past their Release file's Valid-Until
	# on mirrors that lag: accept them (Debian's signatures still apply).
	# postgresql-common is told not to create a "main" cluster: the tests
	# make their own, and nothing in the chroot ever starts services.
	mmdebstrap --variant=apt --mode=root \
		--aptopt='Acquire::Check-Valid-Until "false"' \
		--aptopt='Acquire::Retries "3"' \
		--include="$packages" \
		--setup-hook='mkdir -p "$1/etc/postgresql-common/createcluster.d" && echo "create_main_cluster = false" >"$1/etc/postgresql-common/createcluster.d/rr_router.conf"' \
		"${suites%% *}" "$root.new" "${mirrors[@]}" >"$log" 2>&1
	rc=$?
	set -e
	if [ "$rc" -ne 0 ]; then
		reason=$(rr_apt_reason "$log")
		tail -n 25 "$log" | sed 's/^/    /' >&2
		rm -rf "$root.new"
		if [ -n "$reason" ]; then
			say "the Debian archive cannot satisfy pg$v (${suites// /+}${rel:+, server from $rel})"
			printf 'SKIP: %s\n' "$reason" >&2
			exit 3
		fi
		die "mmdebstrap failed for pg$v (exit $rc), see $log"
	fi
	{
		echo "built $(date -u +%Y-%m-%dT%H:%MZ) from ${suites// /+}"
		chroot "$root.new" dpkg-query -W -f='${Package} ${Version}\n' \
			"postgresql-$v" "postgresql-server-dev-$v"
	} >"$root.new/$STAMP"
	rm -rf "$root"
	mv "$root.new" "$root"
	say "built pg$v in $(($(date +%s) - start)) s: $(sed -n 2p "$root/$STAMP")"
	echo "$root"
}

run()
{
	local v=$1 root=$CHROOT_DIR/pg$1
	shift
	[ $# -gt 0 ] || usage
	[ -f "$root/$STAMP" ] || die "no chroot for pg$v: run \"bash test/chroot.sh build $v\" first"

	# New mount and PID namespaces: the mounts below exist for this command
	# only, and when its shell (PID 1 there) exits, the kernel kills every
	# process left in the namespace.  The trap unmounts on every exit path
	# all the same.
	unshare --mount --propagation private --pid --fork --kill-child \
		--mount-proc="$root/proc" -- \
		/bin/bash -c '
			root=$1
			shift
			trap "umount \"$root/dev/shm\" 2>/dev/null; umount \"$root/proc\" 2>/dev/null" EXIT
			trap "exit 143" TERM INT HUP
			mkdir -p "$root/dev/shm"
			mount -t tmpfs -o mode=1777,nosuid,nodev rr_router_shm "$root/dev/shm" || exit 1
			chroot "$root" /usr/bin/env -i \
				PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
				HOME=/root LANG=C.UTF-8 TERM="${TERM:-dumb}" "$@"
		' rr_chroot "$root" "$@"
}

[ $# -ge 2 ] || usage
cmd=$1 v=$2
shift 2
rr_pg_known "$v" || die "PostgreSQL $v is not a tested version ($RR_PG_ALL_VERSIONS)"
[ "$(id -u)" -eq 0 ] || die "run as root: chroots need it"

case "$cmd" in
build) build "$v" ;;
run) run "$v" "$@" ;;
path) echo "$CHROOT_DIR/pg$v" ;;
remove)
	exec 9>"$CHROOT_DIR/pg$v.lock"
	flock 9
	rm -rf "$CHROOT_DIR/pg$v" "$CHROOT_DIR/pg$v.new"
	;;
*) usage ;;
esac
