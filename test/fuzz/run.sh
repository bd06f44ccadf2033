#!/usr/bin/env bash
#
# test/fuzz/run.sh
#     Build the libFuzzer target test/fuzz/fuzz_http.c (the HTTP endpoint's
#     request parsing, src/http_parse.c) with
#     -fsanitize=fuzzer,address,undefined and run it, starting from the
#     committed corpus in test/fuzz/corpus.
#
# Usage:
#     bash test/fuzz/run.sh [SECONDS]       fuzz for SECONDS (default 60)
#     bash test/fuzz/run.sh --merge         fold new inputs from
#                                           $RR_FUZZ_WORK/corpus into the
#                                           committed corpus, minimized
#     bash test/fuzz/run.sh --repro FILE    run one input (a crash reproducer)
#
# Environment:
#     RR_FUZZ_WORK   scratch directory (default: a new temporary one); the
#                    working corpus and any crash-* artifacts go there
#     PG_CONFIG      pg_config of the server headers (default: PostgreSQL 15's)
#
# Needs clang with libFuzzer (Debian: clang, libclang-rt-NN-dev) and the
# server headers (postgresql-server-dev-15).  As root on Debian it installs
# them when missing.  Only when no clang with libFuzzer can be found or
# installed does it skip, saying so loudly, with exit 0 (exit 2 instead
# with RR_FUZZ_REQUIRE=1).  The fuzzer runs under "nice -n 19".  Exit code: 0 when no input failed, 1 when one
# did (the reproducer is printed and kept).

set -euo pipefail

SRCDIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
FUZZDIR=$SRCDIR/test/fuzz
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}

say() { printf '=== fuzz: %s\n' "$*"; }
die() { printf 'fuzz: %s\n' "$*" >&2; exit 2; }

mode=run
seconds=60
case "${1:-}" in
	--merge) mode=merge ;;
	--repro) mode=repro; repro=${2:?--repro needs a file} ;;
	'') ;;
	*[!0-9]*) die "usage: run.sh [SECONDS | --merge | --repro FILE]" ;;
	*) seconds=$1 ;;
esac

# A clang whose driver can link -fsanitize=fuzzer.
find_clang() {
	local cc tmp
	tmp=$(mktemp -d)
	echo 'int LLVMFuzzerTestOneInput(const char *d, long n) { return 0; }' >"$tmp/t.c"
	for cc in clang clang-19 clang-18 clang-17 clang-16 clang-15 clang-14; do
		command -v "$cc" >/dev/null 2>&1 || continue
		if "$cc" -fsanitize=fuzzer "$tmp/t.c" -o "$tmp/t" >/dev/null 2>&1; then
			rm -rf "$tmp"
			echo "$cc"
			return 0
		fi
	done
	rm -rf "$tmp"
	return 1
}

CC=$(find_clang || true)
if [ -z "$CC" ] || [ ! -x "$PG_CONFIG" ]; then
	if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
		say "installing clang, libFuzzer and the server headers"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq >/dev/null
		# the clang package's libFuzzer is in libclang-rt-NN-dev
		ver=$(apt-cache depends clang 2>/dev/null | sed -n 's/.*Depends: clang-\([0-9]*\)$/\1/p' | head -1)
		apt-get install -y -qq clang ${ver:+libclang-rt-$ver-dev} \
			postgresql-server-dev-15 >/dev/null
		CC=$(find_clang || true)
	fi
fi
if [ -z "$CC" ]; then
	[ "${RR_FUZZ_REQUIRE:-0}" = 1 ] &&
		die "no clang with libFuzzer (install clang and libclang-rt-NN-dev)"
	echo "########################################################################" >&2
	echo "fuzz: SKIPPED: no clang with libFuzzer could be found or installed" >&2
	echo "########################################################################" >&2
	exit 0
fi
[ -x "$PG_CONFIG" ] || die "no $PG_CONFIG (install postgresql-server-dev-15)"

WORK=${RR_FUZZ_WORK:-$(mktemp -d "${TMPDIR:-/tmp}/rr_router-fuzz.XXXXXX")}
mkdir -p "$WORK/corpus"
BIN=$WORK/fuzz_http

say "building with $CC ($("$CC" --version | head -1))"
"$CC" -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	-Wall -Wextra -Wno-unused-parameter -Wno-ignored-attributes \
	-I"$SRCDIR/src" -I"$("$PG_CONFIG" --includedir-server)" \
	"$FUZZDIR/fuzz_http.c" "$SRCDIR/src/http_parse.c" -o "$BIN"

export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

case $mode in
repro)
	exec "$BIN" "$repro"
	;;
merge)
	say "merging $WORK/corpus into test/fuzz/corpus"
	mkdir -p "$WORK/merged"
	nice -n 19 "$BIN" -merge=1 -dict="$FUZZDIR/http.dict" "$WORK/merged" \
		"$FUZZDIR/corpus" "$WORK/corpus"
	rm -f "$FUZZDIR/corpus"/*
	cp "$WORK/merged"/* "$FUZZDIR/corpus/"
	say "corpus: $(find "$FUZZDIR/corpus" -type f | wc -l) files, $(du -sh "$FUZZDIR/corpus" | cut -f1)"
	exit 0
	;;
esac

say "fuzzing for ${seconds}s; work directory $WORK"
set +e
nice -n 19 "$BIN" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=1024 \
	-max_len=4200 -dict="$FUZZDIR/http.dict" -print_final_stats=1 \
	-artifact_prefix="$WORK/" "$WORK/corpus" "$FUZZDIR/corpus" 2>"$WORK/fuzz.log"
rc=$?
set -e
tail -n 25 "$WORK/fuzz.log"
if [ "$rc" -ne 0 ]; then
	say "FAILED (exit $rc): reproducers follow; repeat with: bash test/fuzz/run.sh --repro FILE"
	ls -l "$WORK"/crash-* "$WORK"/leak-* "$WORK"/timeout-* "$WORK"/oom-* 2>/dev/null || true
	exit 1
fi
say "no failure"
[ -n "${RR_FUZZ_WORK:-}" ] || rm -rf "$WORK"
