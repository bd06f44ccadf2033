#!/usr/bin/env bash
#
# test/asan/build-pg.sh
#     Builds PostgreSQL 15 from source with AddressSanitizer and
#     UndefinedBehaviorSanitizer and installs it under $RR_ASAN_DIR/pg15,
#     for "RR_SANITIZE=address bash test/run-tests.sh".  Debian's own server
#     cannot be used: ASan's runtime must be the first library a program
#     loads, and preloading it into Debian 12's postgres deadlocks at startup
#     (in bindtextdomain()).  An instrumented server also lets ASan see
#     rr_router's use of memory the server allocated, not only its own.
#
#     The flags follow the sanitizer tasks of PostgreSQL's own CI
#     (.cirrus.tasks.yml, 16 and later): gcc, -fsanitize=address and
#     -fsanitize=undefined, --enable-cassert --enable-debug
#     --enable-tap-tests.  The run-time options those programs need
#     (detect_leaks=0: the postmaster frees nothing at exit, by design;
#     detect_stack_use_after_return=0: its fake stacks defeat the server's
#     stack depth check) are set by test/run-tests.sh.
#
#     A later run with the same PostgreSQL version, compiler and flags
#     reuses the installation (a build takes about 7 minutes on 2 cores);
#     RR_ASAN_REBUILD=1 builds it again.  Prints the path of the
#     installation's pg_config on stdout; everything else goes to stderr.
#
# Usage (as root): bash test/asan/build-pg.sh
#
# Environment:
#     RR_ASAN_DIR        cache directory (default /var/cache/rr_router/asan):
#                        build/ holds the build tree, pg15/ the installation
#     RR_ASAN_PG_SOURCE  an unpacked PostgreSQL 15 source tree to build
#                        (copied, never modified); by default Debian's
#                        postgresql-15 source package, fetched with
#                        "apt-get source" (a deb-src entry for the archive
#                        apt already uses is added when apt has none)
#     RR_ASAN_JOBS       make -j (default 2; the build runs under nice)

set -euo pipefail

DIR=${RR_ASAN_DIR:-/var/cache/rr_router/asan}
PREFIX=$DIR/pg15
BUILD=$DIR/build
JOBS=${RR_ASAN_JOBS:-2}

CC=gcc
CFLAGS="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined"
CONFIGURE_ARGS=(--prefix="$PREFIX" --enable-tap-tests --enable-cassert --enable-debug)

say() { printf '=== asan: %s\n' "$*" >&2; }
die() { printf 'asan: %s\n' "$*" >&2; exit 2; }

[ "$(id -u)" -eq 0 ] || die "run as root: it installs packages and writes $DIR"

# Build dependencies; a release tarball needs neither bison nor flex, but
# a tree from git does.
deps=(gcc make bison flex perl libipc-run-perl libreadline-dev zlib1g-dev
	pkg-config bzip2 xz-utils)
missing=()
for p in "${deps[@]}"; do
	[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)" = "install ok installed" ] ||
		missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
	say "installing ${missing[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >&2 ||
		{ apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >&2; }
fi

# Print the directory of an unpacked PostgreSQL 15 source tree: the one
# given, or Debian's source package, downloaded once into $DIR/src.
pg_source()
{
	local tarball uris
	if [ -n "${RR_ASAN_PG_SOURCE:-}" ]; then
		[ -f "$RR_ASAN_PG_SOURCE/configure" ] || die "RR_ASAN_PG_SOURCE=$RR_ASAN_PG_SOURCE is not a PostgreSQL source tree"
		echo "$RR_ASAN_PG_SOURCE"
		return
	fi
	mkdir -p "$DIR/src"
	tarball=$(find "$DIR/src" -maxdepth 1 -name 'postgresql-15_*.orig.tar.*' | sort | tail -n 1)
	if [ -z "$tarball" ]; then
		if ! grep -rqs '^[^#]*deb-src' /etc/apt/sources.list /etc/apt/sources.list.d/; then
			uris=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n 1)
			say "adding a deb-src entry for ${uris:=http://deb.debian.org/debian} (bookworm)"
			printf 'Types: deb-src\nURIs: %s\nSuites: bookworm\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
				"$uris" >/etc/apt/sources.list.d/rr_router-deb-src.sources
			apt-get update >&2
		fi
		say "downloading Debian's postgresql-15 source package"
		(cd "$DIR/src" && apt-get source --download-only postgresql-15 >&2) ||
			die "apt-get source postgresql-15 failed; set RR_ASAN_PG_SOURCE to an unpacked source tree"
		tarball=$(find "$DIR/src" -maxdepth 1 -name 'postgresql-15_*.orig.tar.*' | sort | tail -n 1)
		[ -n "$tarball" ] || die "no postgresql-15 upstream tarball in $DIR/src"
	fi
	# The upstream tarball unpacks to postgresql-15.N; Debian's patches are
	# packaging, not needed here.
	if [ ! -f "$DIR/src/unpacked/configure" ]; then
		rm -rf "$DIR/src/unpacked"
		mkdir -p "$DIR/src/unpacked"
		tar -C "$DIR/src/unpacked" --strip-components=1 -xf "$tarball"
	fi
	echo "$DIR/src/unpacked"
}

SRC=$(pg_source)
VERSION=$(sed -n "s/^PACKAGE_VERSION='\(.*\)'$/\1/p" "$SRC/configure")
case $VERSION in 15.*) ;; *) die "$SRC is PostgreSQL ${VERSION:-?}, not 15" ;; esac

# What the installation is made of: a change of any part rebuilds it.
KEY="PostgreSQL $VERSION; $($CC --version | head -n 1); CFLAGS=$CFLAGS; ${CONFIGURE_ARGS[*]}"

if [ "${RR_ASAN_REBUILD:-0}" != 1 ] && [ -x "$PREFIX/bin/postgres" ] &&
	[ "$(cat "$PREFIX/.rr_router-build" 2>/dev/null)" = "$KEY" ]; then
	say "reusing $PREFIX ($KEY)"
	echo "$PREFIX/bin/pg_config"
	exit 0
fi

# The build's own programs (configure's probes, zic at install) are
# instrumented too.
export ASAN_OPTIONS=detect_leaks=0

start=$(date +%s)
if [ "${RR_ASAN_REBUILD:-0}" = 1 ] || [ "$(cat "$BUILD/.rr_router-configure" 2>/dev/null)" != "$KEY" ]; then
	say "configuring PostgreSQL $VERSION in $BUILD"
	rm -rf "$BUILD"
	mkdir -p "$BUILD"
	tar -C "$SRC" -cf - . | tar -C "$BUILD" -xf -
	(cd "$BUILD" && ./configure "${CONFIGURE_ARGS[@]}" CC="$CC" CFLAGS="$CFLAGS" >configure.log 2>&1) ||
		{ tail -n 40 "$BUILD/configure.log" >&2; die "configure failed (see $BUILD/configure.log)"; }
	echo "$KEY" >"$BUILD/.rr_router-configure"
fi

say "building PostgreSQL $VERSION with ASan and UBSan (make -j$JOBS; about 7 minutes on 2 cores)"
rm -f "$PREFIX/.rr_router-build"
(cd "$BUILD" && nice -n 10 make -s -j"$JOBS" >build.log 2>&1 && make -s install >>build.log 2>&1) ||
	{ tail -n 40 "$BUILD/build.log" >&2; die "the build failed (see $BUILD/build.log)"; }
echo "$KEY" >"$PREFIX/.rr_router-build"
say "built and installed in $PREFIX in $(($(date +%s) - start)) s"
echo "$PREFIX/bin/pg_config"
