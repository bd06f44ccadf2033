#!/usr/bin/env bash
#
# test/package/test-package.sh
#     Builds the Debian package from the source tree in a build chroot
#     (dpkg-buildpackage, then lintian), installs the .deb into a CLEAN
#     chroot that has nothing but Debian's PostgreSQL packages, and runs
#     test/package/installed-check.sh there as the "postgres" account:
#     pg_regress against the installed files, then a primary and a replica.
#
# Usage (as root; mmdebstrap must be installed):
#     bash test/package/test-package.sh [--suite SUITE] [--pg MAJOR] [--mirror URL]
#                                       [--keep] [--out DIR]
# Defaults: --suite bookworm --pg 15 (Debian 12).  The packages built are
# copied to --out (default: a directory printed at the end).  --keep keeps
# the scratch directory with both chroots.
#
# Environment:
#     RR_CHROOT_CACHE  directory for tarballs of the freshly bootstrapped
#                      chroots, reused for a day (default
#                      /var/cache/rr_router/package-test; "" disables it).
#                      A cached tarball is the unmodified output of
#                      mmdebstrap, unpacked anew for every run.
#
# Exit code 0 when the package builds, lintian reports no error or warning,
# and every check of the installed package passes.  The last line is
# "N passed, N failed".

set -euo pipefail

SUITE=bookworm
PG_MAJOR=15
MIRROR=
KEEP=0
OUTDIR=
while [ $# -gt 0 ]; do
	case $1 in
		--suite) SUITE=$2; shift 2 ;;
		--pg) PG_MAJOR=$2; shift 2 ;;
		--mirror) MIRROR=$2; shift 2 ;;
		--keep) KEEP=1; shift ;;
		--out) OUTDIR=$2; shift 2 ;;
		*) echo "test-package: unknown argument $1" >&2; exit 2 ;;
	esac
done

SRCDIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CACHE=${RR_CHROOT_CACHE-/var/cache/rr_router/package-test}

say() { printf '=== %s\n' "$*"; }
die() { printf 'test-package: %s\n' "$*" >&2; exit 2; }

[ "$(id -u)" -eq 0 ] || die "run as root: it bootstraps chroots with mmdebstrap"
for tool in mmdebstrap mount umount chroot; do
	command -v "$tool" >/dev/null || die "$tool is not installed (apt-get install mmdebstrap mount)"
done

BUILD_PACKAGES=build-essential,debhelper,postgresql-server-dev-all,lintian
# Only what Debian's postgresql-NN brings (server, client programs,
# pg_regress in postgresql-client-NN, postgresql-common).
CLEAN_PACKAGES=postgresql-$PG_MAJOR

WORK=$(mktemp -d /var/tmp/rr-package-test.XXXXXX)
BUILD=$WORK/build
CLEAN=$WORK/clean
MOUNTS=()

# Every exit path: stop servers the check left in the clean chroot, unmount,
# remove the scratch directory unless asked to keep it (or the test failed).
cleanup() {
	local rc=$? pidfile pid i
	while IFS= read -r pidfile; do
		pid=$(head -n 1 "$pidfile" 2>/dev/null || true)
		[[ $pid =~ ^[0-9]+$ ]] && kill -KILL "$pid" 2>/dev/null || true
	done < <(find "$CLEAN/var/tmp" -name postmaster.pid 2>/dev/null)
	for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
		umount "${MOUNTS[$i]}" 2>/dev/null || umount -l "${MOUNTS[$i]}" 2>/dev/null || true
	done
	if [ "$rc" -eq 0 ] && [ "$KEEP" -eq 0 ]; then
		rm -rf --one-file-system "$WORK"
	else
		echo "test-package: scratch directory kept in $WORK" >&2
	fi
}
trap cleanup EXIT

# mmdebstrap SUITE TARGET_DIR PACKAGES, through the tarball cache.
bootstrap() {
	local suite=$1 target=$2 packages=$3 key tarball
	local args=(--variant=apt --include="$packages" "$suite")
	mkdir -p "$target"
	if [ -n "$CACHE" ]; then
		key=$(printf '%s\n' "${args[@]}" "$MIRROR" | sha256sum | cut -c1-16)
		tarball=$CACHE/$suite-$key.tar
		mkdir -p "$CACHE"
		if [ ! -f "$tarball" ] || [ -n "$(find "$tarball" -mmin +1440)" ]; then
			mmdebstrap -q --format=tar "${args[@]}" "$tarball.tmp" ${MIRROR:+"$MIRROR"}
			mv "$tarball.tmp" "$tarball"
		fi
		tar -C "$target" -xf "$tarball"
	else
		mmdebstrap -q "${args[@]}" "$target" ${MIRROR:+"$MIRROR"}
	fi
}

mount_in() {
	local root=$1
	mount -t proc proc "$root/proc" && MOUNTS+=("$root/proc")
	mkdir -p "$root/dev/shm"
	mount -t tmpfs -o size=256m,mode=1777 tmpfs "$root/dev/shm" && MOUNTS+=("$root/dev/shm")
}

t0=$(date +%s)
say "build chroot ($SUITE: $BUILD_PACKAGES)"
bootstrap "$SUITE" "$BUILD" "$BUILD_PACKAGES"
mount_in "$BUILD"

say "dpkg-buildpackage"
mkdir -p "$BUILD/build/rr-router"
tar -C "$SRCDIR" --exclude=./.git --exclude=./tmp_check --exclude=./results \
	--exclude=./log --exclude='*.o' --exclude='*.so' --exclude='*.bc' -cf - . |
	tar -C "$BUILD/build/rr-router" -xf -
# The set of PostgreSQL versions is the build system's: regenerate
# debian/control from control.in for it, as pg_buildext's users do.
chroot "$BUILD" sh -ec 'cd /build/rr-router && pg_buildext updatecontrol &&
	dpkg-buildpackage -us -uc' >"$WORK/build.log" 2>&1 ||
	{ tail -n 80 "$WORK/build.log"; die "dpkg-buildpackage failed (log: $WORK/build.log)"; }
tail -n 5 "$WORK/build.log"
t_build=$(date +%s)

say "lintian"
lintian_rc=0
# As an ordinary user (lintian warns when run as root); overridden tags
# are shown too, marked "O:", each with its reason in
# debian/lintian-overrides.in.
chroot "$BUILD" runuser -u nobody -- sh -c 'cd /build && lintian --info \
	--display-info --pedantic --show-overrides --fail-on error,warning \
	rr-router_*.changes' >"$WORK/lintian.log" 2>&1 || lintian_rc=$?
if [ -s "$WORK/lintian.log" ]; then sed 's/^/    /' "$WORK/lintian.log"; else echo "    (no tags)"; fi

debs=("$BUILD"/build/postgresql-"$PG_MAJOR"-rr-router_*.deb)
[ -f "${debs[0]}" ] || die "no postgresql-$PG_MAJOR-rr-router .deb was built"
if [ -n "$OUTDIR" ]; then
	mkdir -p "$OUTDIR"
	cp "$BUILD"/build/*.deb "$BUILD"/build/*.changes "$BUILD"/build/*.dsc \
		"$BUILD"/build/*.tar.* "$OUTDIR"/ 2>/dev/null || true
fi
dpkg-deb --info "${debs[0]}" | sed -n 's/^ \(Package\|Version\|Depends\):/    &/p'
dpkg-deb --contents "${debs[0]}" | awk '{print "    " $6}'

say "clean chroot ($SUITE: $CLEAN_PACKAGES) and the package"
bootstrap "$SUITE" "$CLEAN" "$CLEAN_PACKAGES"
mount_in "$CLEAN"
cp "${debs[0]}" "$CLEAN/var/tmp/"
# dpkg, not apt: a dependency the clean chroot lacks must fail the test,
# not be fetched.
chroot "$CLEAN" dpkg -i "/var/tmp/$(basename "${debs[0]}")" >"$WORK/install.log" 2>&1 ||
	{ cat "$WORK/install.log"; die "the package does not install"; }

# Test inputs only: the REGRESS list (Makefile), sql/, expected/, the
# pg_regress configuration and the check script.  No build output.
IN=$CLEAN/var/tmp/rr-inputs
mkdir -p "$IN/test/package"
cp -r "$SRCDIR/Makefile" "$SRCDIR/sql" "$SRCDIR/expected" "$IN/"
cp "$SRCDIR/test/regress.conf" "$IN/test/"
cp "$SRCDIR/test/package/installed-check.sh" "$IN/test/package/"
mkdir -p "$CLEAN/var/tmp/rr-out"
chroot "$CLEAN" chown -R postgres: /var/tmp/rr-inputs /var/tmp/rr-out

say "installed-check as postgres (PostgreSQL $PG_MAJOR)"
check_rc=0
chroot "$CLEAN" runuser -u postgres -- env -i PATH=/usr/bin:/bin LANG=C.UTF-8 TZ=UTC \
	bash /var/tmp/rr-inputs/test/package/installed-check.sh "$PG_MAJOR" \
	/var/tmp/rr-inputs /var/tmp/rr-out | tee "$WORK/check.log" || check_rc=$?
t_end=$(date +%s)

echo "# times: build chroot + package $((t_build - t0)) s, clean chroot + checks $((t_end - t_build)) s"
# One summary line for the whole script: the checks' own counts plus the
# build and lintian.
read -r pass fail < <(sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\1 \2/p' "$WORK/check.log" | tail -n 1)
pass=${pass:-0}
fail=${fail:-1}
pass=$((pass + 1))	# the build
if [ "$lintian_rc" -eq 0 ]; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "# lintian failed"; fi
[ "$check_rc" -eq 0 ] || [ "$fail" -gt 0 ] || fail=1
echo "package: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
