#!/usr/bin/env bash
#
# test/run-tests.sh
#     The full test suite, as CI runs it, on every PostgreSQL version
#     rr_router supports: for each version, installs the build and test
#     dependencies, builds rr_router with warnings as errors (WERROR=1)
#     and installs it, then runs "make installcheck" (pg_regress on a
#     throwaway instance, then the TAP tests in test/t with a real primary
#     and replicas) as the unprivileged "postgres" account, because initdb
#     refuses to run as root.
#
#     15 runs on this machine (Debian 12).  17, 18 and 19 run in a Debian
#     chroot of the suite that ships them (test/chroot.sh builds it on first
#     use and keeps it for the next run).  One version runs at a time.
#
# Usage (as root, from anywhere):
#     bash test/run-tests.sh [--pg VERSION[,VERSION...]] [MAKE_VARIABLE=value ...]
# e.g.
#     bash test/run-tests.sh                        all versions: 15 17 18 19
#     bash test/run-tests.sh --pg 17                PostgreSQL 17 only
#     RR_PG_VERSIONS="15 19" bash test/run-tests.sh
#     bash test/run-tests.sh --pg 15 PROVE_TESTS=test/t/001_read_your_writes.pl PROVE_FLAGS=-v
#
# Environment:
#     RR_PG_VERSIONS    versions to run, space-separated (--pg overrides it)
#     RR_TEST_TIMEOUT   seconds before one version's test run is stopped
#                       (default 1200)
#     RR_KEEP_TMP=1     keep the scratch copy even when the tests pass
#     RR_CHROOT_DIR, RR_CHROOT_REFRESH, RR_DEBIAN_MIRROR: see test/chroot.sh
#     RR_PACKAGE_TEST=0 skip the Debian package test (test/package), which
#                       otherwise runs once, before the versions: it builds
#                       the .deb in a fresh Debian 12 chroot and tests it
#                       installed in another
#     RR_CHAOS=0        skip the short seeded chaos run (test/chaos/run.sh
#                       --short, seed RR_CHAOS_SEED, default 20261130) that
#                       runs once, on this machine's version, after the versions
#     RR_FUZZ=0         skip the short fuzz run of the HTTP parser
#                       (test/fuzz/run.sh, RR_FUZZ_SECONDS, default 45)
#     RR_SANITIZE=1     build with "make SANITIZE=1" (UndefinedBehaviorSanitizer
#                       on rr_router's code); any sanitizer report fails the run
#     RR_SANITIZE=address
#                       AddressSanitizer and UndefinedBehaviorSanitizer on the
#                       server and rr_router alike: test/asan/build-pg.sh
#                       builds PostgreSQL 15 from source with both (cached in
#                       /var/cache/rr_router/asan for later runs), rr_router
#                       is built with its flags and the suite runs on it.
#                       15 only; the package, chaos and fuzz runs, which test
#                       Debian's server, are off unless asked for.  Any
#                       sanitizer report fails the run.
#
# The tests run in a scratch copy of the tree owned by "postgres", so the
# checkout itself is left untouched.  On failure the script prints
# regression.diffs and the server and TAP logs, so a CI log is enough to
# debug.  A version whose packages the Debian archive cannot provide is
# reported "SKIPPED pgN: <apt's reason>" and the others run on.  The last
# lines summarise each version; the exit code is 0 only if every version
# that ran passed and at least one ran.

set -euo pipefail

SRCDIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$SRCDIR/test/pg-versions.sh"

TEST_USER=postgres
SANITIZE=${RR_SANITIZE:-0}
case $SANITIZE in 0 | 1 | address) ;; *) echo "run-tests: RR_SANITIZE must be 0, 1 or address" >&2; exit 2 ;; esac
# Instrumented, the server and its tools run about twice as slowly.
if [ "$SANITIZE" = address ]; then
	TIMEOUT=${RR_TEST_TIMEOUT:-3600}
else
	TIMEOUT=${RR_TEST_TIMEOUT:-1200}
fi

say() { printf '=== %s\n' "$*"; }
die() { printf 'run-tests: %s\n' "$*" >&2; exit 2; }

HERE=0
VERSIONS=${RR_PG_VERSIONS:-}
pg_opt=
MAKE_ARGS=()
while [ $# -gt 0 ]; do
	case "$1" in
	--pg) pg_opt="$pg_opt ${2:?--pg needs a version}"; shift 2 ;;
	--pg=*) pg_opt="$pg_opt ${1#--pg=}"; shift ;;
	# internal: run one version right here (on this machine, or inside
	# its chroot), as this script did before it ran several
	--here) HERE=1; shift ;;
	*) MAKE_ARGS+=("$1"); shift ;;
	esac
done
[ -n "$pg_opt" ] && VERSIONS=$pg_opt
if [ "$SANITIZE" = address ]; then
	# One instrumented server, built here: 15, this machine's version.
	VERSIONS=$(echo "${VERSIONS:-15}" | tr ',' ' ' | xargs)
	[ "$VERSIONS" = 15 ] || die "RR_SANITIZE=address runs PostgreSQL 15 only (it builds that server from source)"
	RR_PACKAGE_TEST=${RR_PACKAGE_TEST:-0}
	RR_CHAOS=${RR_CHAOS:-0}
	RR_FUZZ=${RR_FUZZ:-0}
fi
VERSIONS=$(echo "${VERSIONS:-$RR_PG_ALL_VERSIONS}" | tr ',' ' ' | xargs)
for v in $VERSIONS; do
	rr_pg_known "$v" || die "PostgreSQL $v is not tested (tested: $RR_PG_ALL_VERSIONS; 16 has no Debian package)"
done

[ "$(id -u)" -eq 0 ] || die "run as root: it installs packages and the extension, then runs the tests as \"$TEST_USER\""
[ -f "$SRCDIR/Makefile" ] || die "no Makefile in $SRCDIR"

# ---------------------------------------------------------------------------
# One version, right here
# ---------------------------------------------------------------------------

# Exit codes: 0 passed, 1 tests failed, 2 usage or setup error, 3 the
# packages could not be installed (apt's reason on a line "SKIP: ...").
run_here()
{
	local deps_log

	PG_VERSION=$1
	PG_CONFIG=/usr/lib/postgresql/$PG_VERSION/bin/pg_config

	say "dependencies (PostgreSQL $PG_VERSION)"
	deps_log=$(mktemp "${TMPDIR:-/tmp}/rr_router-deps.XXXXXX")
	if ! RR_DEPS_LOG=$deps_log bash "$SRCDIR/test/deps.sh" --pg "$PG_VERSION"; then
		printf 'SKIP: %s\n' "$(rr_apt_reason "$deps_log")"
		rm -f "$deps_log"
		exit 3
	fi
	rm -f "$deps_log"
	id "$TEST_USER" >/dev/null 2>&1 || die "user \"$TEST_USER\" does not exist (the postgresql-$PG_VERSION package creates it)"
	if [ "$SANITIZE" = address ]; then
		PG_CONFIG=$(bash "$SRCDIR/test/asan/build-pg.sh") || die "could not build PostgreSQL with AddressSanitizer"
	fi
	[ -x "$PG_CONFIG" ] || die "$PG_CONFIG is missing"

	WORK=$(mktemp -d "${TMPDIR:-/tmp}/rr_router-test.XXXXXX")
	TREE=$WORK/rr_router
	mkdir "$TREE"
	# Commands run as $TEST_USER inherit the working directory: make it
	# one that user can enter (the checkout may be under /root).
	cd "$WORK"

	trap cleanup EXIT

	say "copying the tree to $TREE"
	tar -C "$SRCDIR" --exclude=./.git -cf - . | tar -C "$TREE" -xf -

	# Sanitizers: reports go to files under $WORK/sanitizer (the servers'
	# stderr is their log, which tests read), checked after the run; with
	# RR_SANITIZE=address the servers' logs are searched for reports too.
	BUILD_ARGS=(WERROR=1)
	SAN_ENV=()
	if [ "$SANITIZE" = 1 ]; then
		BUILD_ARGS+=(SANITIZE=1)
		mkdir -p "$WORK/sanitizer"
		SAN_ENV=(UBSAN_OPTIONS="print_stacktrace=1:log_path=$WORK/sanitizer/ubsan")
	elif [ "$SANITIZE" = address ]; then
		# The sanitizer flags come with the server's CFLAGS (pg_config).
		# As PostgreSQL's CI: no leak check (the postmaster frees nothing at
		# exit, by design) and no fake stacks for use-after-return (they
		# defeat the server's stack depth check).  libfaketime
		# (014_clock_step) is preloaded ahead of ASan's runtime, which
		# is harmless but refused by default.  An ASan report ends the
		# process; a UBSan one is logged and the process goes on, so one
		# run shows them all.
		mkdir -p "$WORK/sanitizer"
		SAN_ENV=(
			ASAN_OPTIONS="detect_leaks=0:detect_stack_use_after_return=0:verify_asan_link_order=0:print_stacktrace=1:log_path=$WORK/sanitizer/asan"
			UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=0:log_path=$WORK/sanitizer/ubsan"
			PG_TEST_TIMEOUT_DEFAULT=360
		)
		# The build runs the instrumented pg_config, as root.
		export "${SAN_ENV[@]}"
	fi

	say "build and install (as root): $("$PG_CONFIG" --version)"
	# Start from a clean tree: no objects or test output from earlier runs.
	# Warnings are errors here (WERROR=1): every version must build clean.
	make --no-print-directory -C "$TREE" PG_CONFIG="$PG_CONFIG" clean >/dev/null
	make --no-print-directory -C "$TREE" PG_CONFIG="$PG_CONFIG" "${BUILD_ARGS[@]}"
	make --no-print-directory -C "$TREE" PG_CONFIG="$PG_CONFIG" "${BUILD_ARGS[@]}" install

	chown -R "$TEST_USER:" "$WORK"

	say "make installcheck (as $TEST_USER)"
	set +e
	as_test_user timeout --kill-after=30 "$TIMEOUT" \
		make --no-print-directory -C "$TREE" PG_CONFIG="$PG_CONFIG" installcheck "${MAKE_ARGS[@]}" 2>&1 |
		tee "$WORK/installcheck.out"
	rc=${PIPESTATUS[0]}
	set -e

	# PostgreSQL 19's test framework ends a script that dies before its
	# first check with an empty plan, which prove reports as "skipped" (our
	# own skips always give a reason): that is a failure.
	if [ "$rc" -eq 0 ] && grep -q 'skipped: (no reason given)' "$WORK/installcheck.out"; then
		echo "run-tests: a TAP test died before its first check (reported as skipped above)" >&2
		rc=1
	fi

	if [ "$rc" -eq 0 ] && ! sanitizer_clean; then
		say "FAILED: sanitizer reports or server-log alarms above"
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
			make --no-print-directory -C "$TREE" PG_CONFIG="$PG_CONFIG" installcheck REGRESS= "${MAKE_ARGS[@]}" 2>&1
		tap_rc=$?
		set -e
		if [ "$tap_rc" -ne 0 ]; then
			say "TAP logs"
			print_failure_logs tmp_check/log
		fi
	fi

	# A sanitizer report often explains the failure: show them here too.
	sanitizer_clean || say "sanitizer reports or server-log alarms above"
	say "FAILED: pg_regress and/or TAP tests failed (exit $rc)"
	exit 1
}

# Stop every server and helper a test left behind under $WORK (a killed or
# timed-out test cannot run its own cleanup), then remove the scratch copy
# unless it is wanted for debugging.
# shellcheck disable=SC2317  # invoked through the EXIT trap
cleanup()
{
	local rc=$? pidfile
	cd /
	while IFS= read -r pidfile; do
		runuser -u "$TEST_USER" -- "$(dirname "$PG_CONFIG")/pg_ctl" -D "$(dirname "$pidfile")" \
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

# A clean, fixed environment for the tests: Debian's python3 (with
# psycopg) ahead of any other, a UTF-8 locale that exists on every Debian
# machine, and none of the caller's PG* variables.
as_test_user()
{
	runuser -u "$TEST_USER" -- env -i \
		HOME="$WORK" \
		PATH="$(dirname "$PG_CONFIG"):/usr/bin:/bin:/usr/sbin:/sbin" \
		LANG=C.UTF-8 \
		TZ=UTC \
		${CI:+CI="$CI"} \
		"${SAN_ENV[@]}" \
		"$@"
}

# What the instrumented server writes to its log when an extension breaks
# its rules: a sanitizer report (a server process writes its reports to
# stderr, its log, whatever log_path says: seen with Debian 12's gcc 12),
# a failed Assert, a write past the end of a palloc'd chunk (ASan does not
# see those: palloc carves chunks out of large malloc'd blocks; the
# memory-context checks of --enable-cassert do) or a leaked resource.
SERVER_LOG_ALARMS='ERROR: AddressSanitizer|ERROR: LeakSanitizer|Sanitizer:DEADLYSIGNAL|: runtime error: |TRAP: |write past chunk end|problem in alloc set|reference leak|refcount leak'

# Print every sanitizer report of the run and, on the instrumented server,
# every alarm in the servers' logs; false if there was one.
sanitizer_clean()
{
	local f found=0
	[ "$SANITIZE" != 0 ] || return 0
	while IFS= read -r f; do
		found=1
		print_file "$f" 200
	done < <(find "$WORK/sanitizer" -type f 2>/dev/null | sort)
	if [ "$SANITIZE" = address ]; then
		while IFS= read -r f; do
			found=1
			printf '\n----- %s (alarms) -----\n' "${f#"$TREE"/}"
			grep -n -E "$SERVER_LOG_ALARMS" "$f" | head -n 50
		done < <(grep -l -r -E "$SERVER_LOG_ALARMS" "$TREE/log" "$TREE/tmp_check/log" 2>/dev/null | sort)
	fi
	[ "$found" -eq 0 ]
}

print_file()
{
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
print_failure_logs()
{
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

tap_ran()
{
	compgen -G "$TREE/tmp_check/log/regress_log_*" >/dev/null
}

if [ "$HERE" = 1 ]; then
	# shellcheck disable=SC2086  # a list of words
	set -- $VERSIONS
	[ $# -eq 1 ] || die "--here runs exactly one version"
	run_here "$1"
fi

# ---------------------------------------------------------------------------
# Every requested version, one after the other
# ---------------------------------------------------------------------------

RESULTS=$(mktemp -d "${TMPDIR:-/tmp}/rr_router-results.XXXXXX")
declare -A STATUS NOTE

secs() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }

# "pg_regress 7 tests, TAP 20 files 812 tests" from a version's log.
counts()
{
	local log=$1 reg tap
	reg=$(grep -oE 'All [0-9]+ tests passed|[0-9]+ of [0-9]+ tests failed' "$log" | tail -n 1 || true)
	tap=$(grep -oE 'Files=[0-9]+, Tests=[0-9]+' "$log" | tail -n 1 || true)
	grep -q 'regress/pg_regress --inputdir' "$log" || reg=${reg:-not run}
	grep -q 'prove ' "$log" || tap=${tap:-not run}
	case $tap in Files=*) tap="$tap, $(grep -cE '^test/t/[^ ]+\.pl \.+ skipped:' "$log" || true) files skipped" ;; esac
	printf 'pg_regress: %s; TAP: %s' "${reg:-did not finish}" "${tap:-did not finish}"
}

# Version $1 was skipped: its reason is the last "SKIP: " line of log $2.
mark_skipped()
{
	local v=$1 reason
	reason=$(sed -n 's/^SKIP: //p' "$2" | tail -n 1)
	STATUS[$v]=SKIPPED
	NOTE[$v]=${reason:-the Debian archive cannot provide its packages}
	printf '\n!!!!!!!! SKIPPED pg%s: %s\n\n' "$v" "${NOTE[$v]}"
}

# Run version $1, streaming its output and keeping a copy of it.
run_version()
{
	local v=$1 root src start rc=0 build_secs=0 reason pkg
	local log=$RESULTS/pg$v.log
	start=$(date +%s)

	if rr_pg_native "$v"; then
		say "PostgreSQL $v: on this machine ($(. /etc/os-release && echo "$PRETTY_NAME"))"
		set +e
		(cd / && RR_TEST_TIMEOUT=$TIMEOUT bash "$SRCDIR/test/run-tests.sh" --here --pg "$v" "${MAKE_ARGS[@]}") 2>&1 | tee "$log"
		rc=${PIPESTATUS[0]}
		set -e
		pkg=$(dpkg-query -W -f='${Version}' "postgresql-$v" 2>/dev/null || true)
		[ "$rc" -eq 3 ] && rc=1		# the host's own packages: a failure, not a skip
		NOTE[$v]="postgresql-$v ${pkg:-?} (this machine)"
		if [ "$SANITIZE" = address ]; then
			pkg=$(sed -n 's/^PostgreSQL \([^;]*\);.*/\1/p' "${RR_ASAN_DIR:-/var/cache/rr_router/asan}/pg15/.rr_router-build" 2>/dev/null || true)
			NOTE[$v]="PostgreSQL ${pkg:-?} built with ASan and UBSan (this machine)"
		fi
	else
		say "PostgreSQL $v: in a Debian $(rr_pg_suites "$v" | sed 's/ /+/') chroot"
		set +e
		root=$(bash "$SRCDIR/test/chroot.sh" build "$v" 2>"$RESULTS/pg$v.chroot.log")
		rc=$?
		set -e
		cat "$RESULTS/pg$v.chroot.log"
		build_secs=$(($(date +%s) - start))
		if [ "$rc" -eq 3 ]; then
			mark_skipped "$v" "$RESULTS/pg$v.chroot.log"
			return 0
		elif [ "$rc" -ne 0 ]; then
			STATUS[$v]=FAILED
			NOTE[$v]="could not build its chroot (see above)"
			return 0
		fi
		start=$(date +%s)
		src=$(mktemp -d "$root/var/tmp/rr_router-src.XXXXXX")
		tar -C "$SRCDIR" --exclude=./.git -cf - . | tar -C "$src" -xf -
		set +e
		bash "$SRCDIR/test/chroot.sh" run "$v" env \
			${CI:+CI="$CI"} RR_TEST_TIMEOUT="$TIMEOUT" RR_KEEP_TMP="${RR_KEEP_TMP:-0}" \
			RR_SANITIZE="${RR_SANITIZE:-0}" \
			bash "${src#"$root"}/test/run-tests.sh" --here --pg "$v" "${MAKE_ARGS[@]}" 2>&1 | tee "$log"
		rc=${PIPESTATUS[0]}
		set -e
		rm -rf "$src"
		pkg=$(sed -n "s/^postgresql-$v //p" "$root/.rr_router-chroot")
		NOTE[$v]="postgresql-$v ${pkg:-?} (chroot ready in $(secs "$build_secs"))"
		if [ "$rc" -eq 3 ]; then
			mark_skipped "$v" "$log"
			return 0
		fi
		[ "$rc" -eq 0 ] || echo "run-tests: paths above are inside the chroot $root"
	fi

	if [ "$rc" -eq 0 ]; then
		STATUS[$v]=PASSED
	else
		STATUS[$v]=FAILED
	fi
	NOTE[$v]="${NOTE[$v]}; suite $(secs $(($(date +%s) - start))); $(counts "$log")"
	say "PostgreSQL $v: ${STATUS[$v]}"
}

total_start=$(date +%s)

# Checks that run once, on this machine, beside the versions: the Debian
# package test (it bootstraps chroots, for the package Debian 12 builds),
# the short chaos run and the short fuzz run.  Each is a line of the
# summary; a failure fails the run.
declare -A ONCE
run_once()
{
	local name=$1 start
	shift
	say "$name: $*"
	start=$(date +%s)
	if (cd / && "$@"); then
		ONCE[$name]="PASSED"
	else
		ONCE[$name]="FAILED"
	fi
	ONCE[$name]="${ONCE[$name]} ($(secs $(($(date +%s) - start))))"
}

# Only with this machine's own version among those asked for: "--pg 17"
# runs 17 alone.
native=0
for v in $VERSIONS; do
	rr_pg_native "$v" && native=1
done

[ "$native" = 0 ] || [ "${RR_PACKAGE_TEST:-1}" = 0 ] ||
	run_once package bash "$SRCDIR/test/package/test-package.sh"

for v in $VERSIONS; do
	run_version "$v"
done

[ "$native" = 0 ] || [ "${RR_CHAOS:-1}" = 0 ] ||
	run_once chaos bash "$SRCDIR/test/chaos/run.sh" --short --seed "${RR_CHAOS_SEED:-20261130}"
[ "$native" = 0 ] || [ "${RR_FUZZ:-1}" = 0 ] ||
	run_once fuzz bash "$SRCDIR/test/fuzz/run.sh" "${RR_FUZZ_SECONDS:-45}"

passed=0 failed=0 skipped=0
say "summary ($(secs $(($(date +%s) - total_start))) in all)"
for v in $VERSIONS; do
	printf '  pg%-3s %-8s %s\n' "$v" "${STATUS[$v]}" "${NOTE[$v]}"
	case "${STATUS[$v]}" in
	PASSED) passed=$((passed + 1)) ;;
	SKIPPED) skipped=$((skipped + 1)) ;;
	*) failed=$((failed + 1)) ;;
	esac
done
[ "$skipped" -eq 0 ] || printf '  SKIPPED versions were not tested: the Debian archive could not provide them.\n'
for name in package chaos fuzz; do
	[ -n "${ONCE[$name]:-}" ] || continue
	printf '  %-8s %s\n' "$name" "${ONCE[$name]}"
	case ${ONCE[$name]} in PASSED*) ;; *) failed=$((failed + 1)) ;; esac
done
[ "$failed" -eq 0 ] && rm -rf "$RESULTS"
echo "versions: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
