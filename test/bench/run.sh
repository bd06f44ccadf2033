#!/usr/bin/env bash
#
# test/bench/run.sh
#     rr_router's benchmark suite: builds and installs the extension, starts
#     a primary and a streaming replica on loopback with rr_router preloaded,
#     runs every benchmark in test/bench/bench.py against them (interleaved
#     rounds, so machine noise hits every variant alike), prints a report,
#     and tears the servers down.
#
# Usage (as root, from anywhere):
#     bash test/bench/run.sh            full run, about 9 minutes
#     QUICK=1 bash test/bench/run.sh    smoke run, about 2 minutes
#     bash test/bench/run.sh start      only start the servers and leave them
#                                       running (for bench.py by hand)
#     bash test/bench/run.sh stop       stop servers left by "start"
#     bash test/bench/run.sh replay     what rr_router costs WAL replay
#                                       (test/bench/replay.py, issue 13),
#                                       about 25 minutes; QUICK=1 about 6
#
# Environment (see test/bench/README.md for the benchmark's own knobs, all
# passed through to bench.py):
#     BENCH_PRIMARY_PORT   (default 56432)
#     BENCH_REPLICA_PORT   (default 56433)
#     BENCH_MAX_CONN       max_connections on both servers (default 1100:
#                          the scaling run opens 500 sessions, each with a
#                          connection to the primary and one to the replica)
#     BENCH_FSYNC          fsync on both servers (default off, see README)
#     BENCH_SOURCE         a git revision (e.g. HEAD): build that commit,
#                          exported with git archive, instead of the working
#                          tree (whose uncommitted changes are then ignored)
#     BENCH_NO_BUILD=1     skip dependencies, build and install
#     BENCH_KEEP=1         keep the servers and the scratch directory
#     BENCH_OUT            where to copy the report (default test/bench/out)
#     BENCH_PG_VERSION     the PostgreSQL major version (default 15); other
#                          versions run inside their chroot, from a copy of
#                          the tree (see test/bench/README.md)
#     BENCH_SOURCE_VERSION what the report names as the build (default: git
#                          describe of the tree; a copy has no .git)
#
# As root the servers and the clients run as the "postgres" account.

set -euo pipefail

PG_VERSION=${BENCH_PG_VERSION:-15}
PG_BINDIR=/usr/lib/postgresql/$PG_VERSION/bin
PG_CONFIG=$PG_BINDIR/pg_config
PYTHON=/usr/bin/python3
PRIMARY_PORT=${BENCH_PRIMARY_PORT:-56432}
REPLICA_PORT=${BENCH_REPLICA_PORT:-56433}
MAX_CONN=${BENCH_MAX_CONN:-1100}
FSYNC=${BENCH_FSYNC:-off}
RUN_USER=postgres

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRCDIR=$(cd "$BENCH_DIR/../.." && pwd)
OUT=${BENCH_OUT:-$BENCH_DIR/out}
STATE_FILE=${TMPDIR:-/tmp}/rr_router_bench.$PRIMARY_PORT.state

say() { printf '=== %s\n' "$*"; }
die() { printf 'bench: %s\n' "$*" >&2; exit 2; }

if [ "$(id -u)" -eq 0 ]; then
	as_user() { runuser -u "$RUN_USER" -- env -i HOME=/tmp LANG=C.UTF-8 TZ=UTC \
		PATH="$PG_BINDIR:/usr/bin:/bin" "$@"; }
else
	RUN_USER=$(id -un)
	as_user() { env -i HOME="${HOME:-/tmp}" LANG=C.UTF-8 TZ=UTC PATH="$PG_BINDIR:/usr/bin:/bin" "$@"; }
fi

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# The benchmark's knobs (QUICK, BENCH_*) in KNOBS, to pass through the
# clean environment the benchmark runs in.
bench_knobs() {
	KNOBS=()
	local name
	while IFS='=' read -r name _; do
		case $name in
		QUICK | BENCH_*) KNOBS+=("$name=${!name}") ;;
		esac
	done < <(env)
}

q() {
	local port=$1
	shift
	as_user psql -X -q -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres -d postgres "$@"
}

wait_until() {
	local port=$1 sql=$2 what=$3 i
	for ((i = 0; i < 600; i++)); do
		[ "$(q "$port" -c "$sql" 2>/dev/null || true)" = t ] && return 0
		sleep 0.2
	done
	die "timed out waiting for $what"
}

stop_servers() {
	local dir=$1 node
	for node in replica primary copy_rr copy_plain; do
		if [ -f "$dir/$node/postmaster.pid" ]; then
			as_user pg_ctl -D "$dir/$node" -m immediate -w stop >/dev/null 2>&1 ||
				echo "bench: could not stop $node in $dir" >&2
		fi
	done
}

stop_registered() {
	local dir
	[ -f "$STATE_FILE" ] || { echo "bench: nothing registered in $STATE_FILE"; return 0; }
	dir=$(cat "$STATE_FILE")
	case $dir in
	*/rr_router_bench.*) ;;
	*) die "unexpected directory in $STATE_FILE: \"$dir\"" ;;
	esac
	stop_servers "$dir"
	rm -rf "$dir" "$STATE_FILE"
	echo "bench: stopped and removed $dir"
}

build_and_install() {
	local build=$WORK/build
	[ "$(id -u)" -eq 0 ] || die "run as root to build and install (or set BENCH_NO_BUILD=1)"
	if [ -f "$SRCDIR/test/deps.sh" ]; then
		RR_PG_VERSION=$PG_VERSION bash "$SRCDIR/test/deps.sh"
	fi
	say "build and install rr_router (log: $WORK/build.log)"
	mkdir "$build"
	# Build in a scratch copy: the checkout stays free of objects.
	if [ -n "$SOURCE_REV" ]; then
		git -C "$SRCDIR" archive "$SOURCE_REV" | tar -C "$build" -xf -
	else
		tar -C "$SRCDIR" --exclude=./.git --exclude=./test/bench/out -cf - . | tar -C "$build" -xf -
	fi
	if ! { make -C "$build" PG_CONFIG="$PG_CONFIG" clean &&
		make -C "$build" PG_CONFIG="$PG_CONFIG" &&
		make -C "$build" PG_CONFIG="$PG_CONFIG" install; } >"$WORK/build.log" 2>&1; then
		tail -n 40 "$WORK/build.log" >&2
		die "build failed"
	fi
	if [ "$MODE" = replay ]; then
		# The measuring build goes into a copy of the server's bin and lib
		# directories: PostgreSQL finds $libdir next to its own binary, so
		# servers started from $WORK/pgm/15/bin load it and nothing else
		# changes.  (A path not ending in lib/postgresql/15/bin keeps the
		# share directory where it is.)
		mkdir -p "$WORK/pgm/15"
		cp -a "$PG_BINDIR" "$("$PG_CONFIG" --pkglibdir)" "$WORK/pgm/15/"
		if ! { make -C "$build" PG_CONFIG="$PG_CONFIG" clean &&
			make -C "$build" PG_CONFIG="$PG_CONFIG" RR_MEASURE_REDO=1; } >>"$WORK/build.log" 2>&1; then
			tail -n 40 "$WORK/build.log" >&2
			die "measuring build failed"
		fi
		cp "$build/rr_router.so" "$WORK/pgm/15/lib/rr_router.so"
	fi
	rm -rf "$build"
}

run_replay() {
	local measure=()
	[ -x "$WORK/pgm/15/bin/postgres" ] && measure=(--measure-bindir "$WORK/pgm/15/bin")
	say "replay benchmark (as $RUN_USER; data in $WORK)"
	mkdir "$WORK/out"
	[ "$(id -u)" -ne 0 ] || chown -R "$RUN_USER:" "$WORK"
	bench_knobs
	(cd "$WORK" && as_user "${KNOBS[@]}" "$PYTHON" "$BENCH_DIR/replay.py" \
		--bindir "$PG_BINDIR" "${measure[@]}" --port "${BENCH_REPLAY_PORT:-25432}" \
		--source-version "$SOURCE_VERSION" --workdir "$WORK" --out "$WORK/out")
	mkdir -p "$OUT"
	cp "$WORK"/out/* "$OUT"/
	say "report: $OUT/replay-report.md (raw numbers: $OUT/replay-results.json)"
}

start_servers() {
	say "primary on 127.0.0.1:$PRIMARY_PORT, replica on 127.0.0.1:$REPLICA_PORT (data in $WORK)"
	as_user initdb -D "$WORK/primary" -U postgres -A trust -E UTF8 --locale=C.UTF-8 \
		>"$WORK/initdb.log" 2>&1 || { cat "$WORK/initdb.log" >&2; die "initdb failed"; }
	as_user tee -a "$WORK/primary/postgresql.conf" >/dev/null <<-EOF

		# rr_router benchmark
		listen_addresses = '127.0.0.1'
		unix_socket_directories = '$WORK'
		port = $PRIMARY_PORT
		shared_preload_libraries = 'rr_router'
		max_connections = $MAX_CONN
		shared_buffers = 256MB
		wal_level = replica
		max_wal_senders = 4
		max_wal_size = 4GB
		checkpoint_timeout = 30min
		fsync = $FSYNC
		synchronous_commit = on
		# No background vacuum: it would write WAL during the idle-cost
		# windows and add noise elsewhere.
		autovacuum = off
		log_min_messages = warning
		log_line_prefix = '%m [%p] '
		cluster_name = 'bench_primary'
	EOF
	as_user pg_ctl -D "$WORK/primary" -l "$WORK/primary.log" -w -t 120 start >/dev/null
	as_user pg_basebackup -h 127.0.0.1 -p "$PRIMARY_PORT" -U postgres -D "$WORK/replica" \
		-R -X stream -C -S bench_replica -c fast
	as_user tee -a "$WORK/replica/postgresql.conf" >/dev/null <<-EOF
		port = $REPLICA_PORT
		cluster_name = 'bench_replica'
		hot_standby = on
		# Keep the primary from pruning rows that replica snapshots can
		# still see: no snapshot recovery conflicts, so the numbers measure
		# the wake-up path. bench.py's "conflict" section turns it off for
		# a while to show what happens without it.
		hot_standby_feedback = on
		log_recovery_conflict_waits = on
	EOF
	as_user pg_ctl -D "$WORK/replica" -l "$WORK/replica.log" -w -t 120 start >/dev/null
	wait_until "$PRIMARY_PORT" \
		"SELECT count(*) = 1 FROM pg_stat_replication WHERE state = 'streaming'" \
		"the replica to stream"
	q "$PRIMARY_PORT" -c "CREATE EXTENSION rr_router"
}

main() {
	case ${1:-run} in
	stop) stop_registered; return 0 ;;
	start | run | replay) ;;
	-h | --help) sed -n '2,/^$/s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; return 0 ;;
	*) die "unknown argument \"$1\" (try --help)" ;;
	esac
	MODE=${1:-run}

	[ -x "$PYTHON" ] || die "$PYTHON not found"
	# What is built: a commit (BENCH_SOURCE), or the working tree as it is.
	SOURCE_REV=
	if [ -n "${BENCH_SOURCE:-}" ]; then
		SOURCE_REV=$(git -C "$SRCDIR" rev-parse --verify "${BENCH_SOURCE}^{commit}") ||
			die "BENCH_SOURCE=$BENCH_SOURCE is not a commit of $SRCDIR"
		SOURCE_VERSION="$(git -C "$SRCDIR" rev-parse --short "$SOURCE_REV") (git archive; working tree not built)"
	else
		SOURCE_VERSION=${BENCH_SOURCE_VERSION:-$(git -C "$SRCDIR" describe --always --dirty 2>/dev/null || echo unknown)}
	fi
	for p in "$PRIMARY_PORT" "$REPLICA_PORT"; do
		port_in_use "$p" && die "port $p is in use (BENCH_PRIMARY_PORT / BENCH_REPLICA_PORT)"
	done

	WORK=$(mktemp -d "${TMPDIR:-/tmp}/rr_router_bench.XXXXXX")
	chmod 755 "$WORK"
	# shellcheck disable=SC2317  # invoked through the EXIT trap
	cleanup() {
		local rc=$?
		if [ "${BENCH_KEEP:-0}" = 1 ] || [ "$MODE" = start ]; then
			echo "$WORK" >"$STATE_FILE"
			[ "$rc" -eq 0 ] || echo "bench: failed (exit $rc); servers and logs kept in $WORK" >&2
			echo "bench: servers left running; stop them with: bash $BENCH_DIR/run.sh stop"
		else
			stop_servers "$WORK"
			if [ "$rc" -eq 0 ]; then
				rm -rf "$WORK"
			else
				for f in "$WORK"/primary.log "$WORK"/replica.log; do
					[ -f "$f" ] && { echo "----- last lines of $f" >&2; tail -n 30 "$f" >&2; }
				done
				echo "bench: failed (exit $rc); scratch directory kept: $WORK" >&2
			fi
		fi
		exit "$rc"
	}
	trap cleanup EXIT

	if [ "${BENCH_NO_BUILD:-0}" != 1 ]; then
		build_and_install
	fi
	[ -f "$("$PG_CONFIG" --pkglibdir)/rr_router.so" ] || die "rr_router is not installed"
	[ "$(id -u)" -ne 0 ] || chown "$RUN_USER:" "$WORK"

	if [ "$MODE" = replay ]; then
		run_replay
		return 0
	fi
	start_servers
	if [ "$MODE" = start ]; then
		echo "bench: primary 127.0.0.1:$PRIMARY_PORT, replica 127.0.0.1:$REPLICA_PORT, data in $WORK"
		return 0
	fi

	say "benchmark (as $RUN_USER)"
	mkdir "$WORK/out"
	[ "$(id -u)" -ne 0 ] || chown "$RUN_USER:" "$WORK/out"
	bench_knobs
	(cd "$WORK" && as_user "${KNOBS[@]}" "$PYTHON" "$BENCH_DIR/bench.py" \
		--primary "host=127.0.0.1 port=$PRIMARY_PORT user=postgres dbname=postgres" \
		--replica "host=127.0.0.1 port=$REPLICA_PORT user=postgres dbname=postgres" \
		--pgbench "$PG_BINDIR/pgbench" \
		--replica-log "$WORK/replica.log" \
		--source-version "$SOURCE_VERSION" \
		--workdir "$WORK" --out "$WORK/out" \
		--command "${KNOBS[*]:+${KNOBS[*]} }bash test/bench/run.sh")

	mkdir -p "$OUT"
	cp "$WORK"/out/* "$OUT"/
	say "report: $OUT/report.md (raw numbers: $OUT/results.json)"
}

main "$@"
