#!/usr/bin/env bash
#
# test/chaos/run.sh
#     The seeded chaos run (test/chaos/chaos.py): installs what it needs,
#     builds and installs rr_router, then runs the driver as the
#     unprivileged "postgres" account against a primary, two replicas and a
#     cascading replica on 127.0.0.1.
#
# Usage (as root, from anywhere):
#     bash test/chaos/run.sh --short             about 3 minutes (CI)
#     bash test/chaos/run.sh --long              30 minutes
#     bash test/chaos/run.sh --seed N [--short|--long|--duration S] [chaos.py options]
#
# The seed is printed first; the same seed gives the same fault schedule
# and the same client choices (timing still varies).  Options after these
# go to chaos.py (e.g. --fault-rate, --promote-every, --token, --ryw-clients,
# -v).
#
# Environment:
#     RR_CHAOS_SEED     seed when --seed is not given (default: random)
#     RR_CHAOS_PORT     first of the ports used (default 25700, below the ephemeral ports; the HTTP
#                       endpoints use +100)
#     RR_CHAOS_NO_BUILD=1  use the rr_router already installed
#     RR_KEEP_TMP=1     keep the work directory (data, logs, chaos.log,
#                       schedule.txt, summary.json) even when the run passes
#
# Exit code: 0 when no violation was found, 1 with violations (listed at
# the end, and in the work directory's summary.json), 2 when it could not
# run.

set -euo pipefail

PG_BINDIR=/usr/lib/postgresql/15/bin
PG_CONFIG=$PG_BINDIR/pg_config
TEST_USER=postgres
SRCDIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

say() { printf '=== %s\n' "$*"; }
die() { printf 'chaos: %s\n' "$*" >&2; exit 2; }

duration=180
seed=${RR_CHAOS_SEED:-}
extra=()
while [ $# -gt 0 ]; do
	case $1 in
		--short) duration=180 ;;
		--long) duration=1800 ;;
		--duration) duration=$2; shift ;;
		--seed) seed=$2; shift ;;
		*) extra+=("$1") ;;
	esac
	shift
done
[ -n "$seed" ] || seed=$(( (RANDOM << 15 | RANDOM) + 1 ))
say "chaos seed $seed"

[ "$(id -u)" -eq 0 ] || die "run as root: it installs packages and the extension, then runs as \"$TEST_USER\""

if [ "${RR_CHAOS_NO_BUILD:-0}" != 1 ]; then
	say "dependencies"
	bash "$SRCDIR/test/deps.sh" >/dev/null
	say "build and install"
	BUILD=$(mktemp -d "${TMPDIR:-/tmp}/rr_router-chaos-build.XXXXXX")
	tar -C "$SRCDIR" --exclude=./.git -cf - . | tar -C "$BUILD" -xf -
	make --no-print-directory -s -C "$BUILD" PG_CONFIG="$PG_CONFIG" clean >/dev/null
	make --no-print-directory -s -C "$BUILD" PG_CONFIG="$PG_CONFIG" >/dev/null
	make --no-print-directory -s -C "$BUILD" PG_CONFIG="$PG_CONFIG" install >/dev/null
	rm -rf "$BUILD"
fi
id "$TEST_USER" >/dev/null 2>&1 || die "user \"$TEST_USER\" does not exist"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/rr_router-chaos.XXXXXX")
chown "$TEST_USER:" "$WORK"
cp "$SRCDIR/test/chaos/chaos.py" "$WORK/chaos.py"

# Stop every server the run left behind (a killed driver cannot).
# shellcheck disable=SC2317  # invoked through the EXIT trap
cleanup() {
	local rc=$? pidfile
	while IFS= read -r pidfile; do
		runuser -u "$TEST_USER" -- "$PG_BINDIR/pg_ctl" -D "$(dirname "$pidfile")" \
			stop -m immediate >/dev/null 2>&1 || true
	done < <(find "$WORK/run" -maxdepth 2 -name postmaster.pid 2>/dev/null)
	if [ "$rc" -eq 0 ] && [ "${RR_KEEP_TMP:-0}" != 1 ]; then
		rm -rf "$WORK"
	else
		echo "chaos: work directory kept in $WORK/run" >&2
	fi
}
trap cleanup EXIT

set +e
runuser -u "$TEST_USER" -- env -i HOME="$WORK" PATH="$PG_BINDIR:/usr/bin:/bin" \
	LANG=C.UTF-8 TZ=UTC \
	timeout --kill-after=30 $(( duration * 2 + 600 )) \
	python3 "$WORK/chaos.py" --seed "$seed" --duration "$duration" \
	--workdir "$WORK/run" --pg-bin "$PG_BINDIR" \
	--base-port "${RR_CHAOS_PORT:-25700}" "${extra[@]}"
rc=$?
set -e
if [ "$rc" -ne 0 ]; then
	say "FAILED (exit $rc); the driver's log follows"
	tail -n 200 "$WORK/run/chaos.log" 2>/dev/null || true
fi
exit "$rc"
