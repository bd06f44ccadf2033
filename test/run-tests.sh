#!/usr/bin/env bash
#
# test/run-tests.sh
#     The full test suite, as CI runs it: installs the build and test
#     dependencies, builds and installs rr_router, then runs
#     "make installcheck" (pg_regress on a throwaway instance, then the TAP
#     tests in test/t with a real primary and replicas) as the unprivileged
#     "postgres" account, because initdb refuses to run as root.
#
# Usage (as root, from anywhere):
#     bash test/run-tests.sh [MAKE_VARIABLE=value ...]
# e.g.
#     bash test/run-tests.sh PROVE_TESTS=test/t/001_read_your_writes.pl PROVE_FLAGS=-v
#
# Environment:
#     RR_TEST_TIMEOUT   seconds before the test run is stopped (default 3000)
#     RR_KEEP_TMP=1     keep the scratch copy even when the tests pass
#     RR_SANITIZE=1     build with "make SANITIZE=1" (UndefinedBehaviorSanitizer
#                       on rr_router's code); any sanitizer report fails the run
#
# The tests run in a scratch copy of the tree owned by "postgres", so the
# checkout itself is left untouched.  The exit code is the test result.  On
# failure the script prints regression.diffs and the server and TAP logs, so
# a CI log is enough to debug.

set -euo pipefail

PG_BINDIR=/usr/lib/postgresql/15/bin
PG_CONFIG=$PG_BINDIR/pg_config
TEST_USER=postgres
TIMEOUT=${RR_TEST_TIMEOUT:-3000}

SRCDIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

say() { printf '=== %s\n' "$*"; }
die() { printf 'run-tests: %s\n' "$*" >&2; exit 2; }

[ "$(id -u)" -eq 0 ] || die "run as root: it installs packages and the extension, then runs the tests as \"$TEST_USER\""
[ -f "$SRCDIR/Makefile" ] || die "no Makefile in $SRCDIR"

say "dependencies"
bash "$SRCDIR/test/deps.sh"
id "$TEST_USER" >/dev/null 2>&1 || die "user \"$TEST_USER\" does not exist (the postgresql-15 package creates it)"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/rr_router-test.XXXXXX")
TREE=$WORK/rr_router
mkdir "$TREE"

# Stop every server and helper a test left behind under $WORK (a killed or
# timed-out test cannot run its own cleanup), then remove the scratch copy unless it
# is wanted for debugging.
# shellcheck disable=SC2317  # invoked through the EXIT trap
cleanup() {
	local rc=$? pidfile
	while IFS= read -r pidfile; do
		runuser -u "$TEST_USER" -- "$PG_BINDIR/pg_ctl" -D "$(dirname "$pidfile")" \
			stop -m immediate >/dev/null 2>&1 || true
	done < <(find "$WORK" -name postmaster.pid 2>/dev/null)
	# Helpers a killed test may leave (HAProxy, Prometheus) run with
	# configuration files under $WORK, which no other process names.
	pkill -KILL -f -- "$WORK/" 2>/dev/null || true
	if [ "$rc" -eq 0 ] && [ "${RR_KEEP_TMP:-0}" != 1 ]; then
		rm -rf "$WORK"
	else
		echo "run-tests: scratch copy kept in $TREE" >&2
	fi
}
trap cleanup EXIT

say "copying the tree to $TREE"
tar -C "$SRCDIR" --exclude=./.git -cf - . | tar -C "$TREE" -xf -

# Sanitizers: reports go to files under $WORK/sanitizer (the servers'
# stderr is their log, which tests read), checked after the run.
BUILD_ARGS=()
SAN_ENV=()
if [ "${RR_SANITIZE:-0}" = 1 ]; then
	BUILD_ARGS=(SANITIZE=1)
	mkdir -p "$WORK/sanitizer"
	SAN_ENV=(UBSAN_OPTIONS="print_stacktrace=1:log_path=$WORK/sanitizer/ubsan")
fi

say "build and install (as root)"
# Start from a clean tree: no objects or test output from earlier runs.
make --no-print-directory -C "$TREE" PG_CONFIG="$PG_CONFIG" clean >/dev/null
make --no-print-directory -C "$TREE" PG_CONFIG="$PG_CONFIG" "${BUILD_ARGS[@]}"
make --no-print-directory -C "$TREE" PG_CONFIG="$PG_CONFIG" "${BUILD_ARGS[@]}" install

chown -R "$TEST_USER:" "$WORK"

# A clean, fixed environment for the tests: Debian's python3 (with
# psycopg) ahead of any other, a UTF-8 locale that exists on every Debian
# machine, and none of the caller's PG* variables.
as_test_user() {
	runuser -u "$TEST_USER" -- env -i \
		HOME="$WORK" \
		PATH="$PG_BINDIR:/usr/bin:/bin:/usr/sbin:/sbin" \
		LANG=C.UTF-8 \
		TZ=UTC \
		${CI:+CI="$CI"} \
		"${SAN_ENV[@]}" \
		"$@"
}

# Print every sanitizer report of the run; false if there was one.
sanitizer_clean() {
	local f found=0
	[ "${RR_SANITIZE:-0}" = 1 ] || return 0
	while IFS= read -r f; do
		found=1
		print_file "$f" 200
	done < <(find "$WORK/sanitizer" -type f 2>/dev/null | sort)
	[ "$found" -eq 0 ]
}

print_file() {
	local f=$1 max=${2:-400} n
	n=$(wc -l <"$f")
	printf '\n----- %s (%s lines) -----\n' "${f#"$TREE"/}" "$n"
	if [ "$n" -gt "$max" ]; then
		printf '[... first %s lines omitted ...]\n' $((n - max))
	fi
	tail -n "$max" "$f"
}

# Everything a failed run left behind in the given directories of the
# scratch tree: pg_regress' diffs and its server log (log/), the TAP tests'
# own logs and the logs of every node they started (tmp_check/log/).
print_failure_logs() {
	local f d
	for d in "$@"; do
		d=$TREE/$d
		if [ -f "$d" ]; then
			[ -s "$d" ] && print_file "$d" 2000
		elif [ -d "$d" ]; then
			while IFS= read -r f; do
				print_file "$f" 300
			done < <(find "$d" -type f | sort)
		fi
	done
	return 0
}

tap_ran() {
	compgen -G "$TREE/tmp_check/log/regress_log_*" >/dev/null
}

say "make installcheck (as $TEST_USER)"
set +e
as_test_user timeout --kill-after=30 "$TIMEOUT" \
	make --no-print-directory -C "$TREE" PG_CONFIG="$PG_CONFIG" installcheck "$@" 2>&1
rc=$?
set -e

if [ "$rc" -eq 0 ] && ! sanitizer_clean; then
	say "FAILED: sanitizer reports above"
	exit 1
fi
if [ "$rc" -eq 0 ]; then
	# Nothing after prove's summary: it stays the last lines of the log.
	exit 0
fi

if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
	echo "run-tests: make installcheck did not finish within ${TIMEOUT}s" >&2
fi

say "FAILED (exit $rc): logs follow"
print_failure_logs regression.diffs log tmp_check/log

# pg_regress failing stops make before the TAP tests; run them anyway so
# one CI log shows every failure.  (The logs above come first: the TAP run
# clears tmp_check.)
if ! tap_ran && [ "$rc" -ne 124 ] && [ "$rc" -ne 137 ] &&
	compgen -G "$TREE/test/t/*.pl" >/dev/null; then
	say "the TAP tests did not run; running them now"
	set +e
	as_test_user timeout --kill-after=30 "$TIMEOUT" \
		make --no-print-directory -C "$TREE" PG_CONFIG="$PG_CONFIG" installcheck REGRESS= "$@" 2>&1
	tap_rc=$?
	set -e
	if [ "$tap_rc" -ne 0 ]; then
		say "TAP logs"
		print_failure_logs tmp_check/log
	fi
fi

sanitizer_clean || say "sanitizer reports above"
say "FAILED: pg_regress and/or TAP tests failed (exit $rc)"
exit 1
