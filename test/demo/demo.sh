#!/usr/bin/env bash
#
# test/demo/demo.sh
#     rr_router in two minutes: builds and installs the extension, starts a
#     primary and two streaming replicas on loopback (replica 2 applies WAL
#     two seconds late), and runs a short scenario that shows a stale
#     replica read, the same read made safe with rr_wait_for_lsn, and the
#     rr_status and rr_waiters views.  The servers keep running afterwards
#     so you can try things yourself.
#
# Usage (as root on Debian 12, from anywhere):
#     bash test/demo/demo.sh              build, install, start, run the scenario
#     bash test/demo/demo.sh --teardown   the same, then stop and remove everything
#     bash test/demo/demo.sh --no-build   skip dependencies, build and install
#     bash test/demo/demo.sh stop         stop the servers and remove their data
#
# Environment:
#     RR_PG_VERSION          PostgreSQL major version to use (default 15);
#                            Debian's postgresql-VERSION must be installable
#                            here (17-19: inside "test/chroot.sh run VERSION")
#     RR_DEMO_PRIMARY_PORT   (default 54320)
#     RR_DEMO_REPLICA1_PORT  (default 54321)
#     RR_DEMO_REPLICA2_PORT  (default 54322)
#
# As root the servers run as the "postgres" account.  Run as another user
# (with rr_router already installed) they run as that user.
#
# The servers trust every connection from 127.0.0.1: a demo, not a
# deployment.

set -euo pipefail

PG_VERSION=${RR_PG_VERSION:-15}
PG_BINDIR=/usr/lib/postgresql/$PG_VERSION/bin
PG_CONFIG=$PG_BINDIR/pg_config
PRIMARY_PORT=${RR_DEMO_PRIMARY_PORT:-54320}
REPLICA1_PORT=${RR_DEMO_REPLICA1_PORT:-54321}
REPLICA2_PORT=${RR_DEMO_REPLICA2_PORT:-54322}
APPLY_DELAY=2s

SRCDIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# Where the data directory of the running demo is recorded, so that
# "demo.sh stop" finds it.
STATE_FILE=${TMPDIR:-/tmp}/rr_router_demo.$PRIMARY_PORT.state
NODES=(primary replica1 replica2)

if [ -t 1 ]; then
	B=$'\e[1m' D=$'\e[2m' R=$'\e[0m'
else
	B='' D='' R=''
fi

say() { printf '\n%s%s%s\n' "$B" "$*" "$R"; }
note() { printf '%s\n' "$*"; }
die() { printf 'demo: %s\n' "$*" >&2; exit 1; }

if [ "$(id -u)" -eq 0 ]; then
	RUN_AS=postgres
	# from /, which postgres can enter: a checkout under /root is not
	as_owner() { (cd / && runuser -u postgres -- "$@"); }
else
	RUN_AS=$(id -un)
	as_owner() { "$@"; }
fi

port_of() {
	case $1 in
	primary) echo "$PRIMARY_PORT" ;;
	replica1) echo "$REPLICA1_PORT" ;;
	replica2) echo "$REPLICA2_PORT" ;;
	esac
}

# psql against one node, quiet and unaligned: for the script's own checks.
q() {
	local node=$1
	shift
	psql -X -q -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$(port_of "$node")" \
		-U postgres -d postgres "$@"
}

# psql against one node showing the statements and their real output, as
# a person at a psql prompt would see them.
show() {
	local node=$1
	shift
	printf '%s-- %s (port %s)%s\n' "$D" "$node" "$(port_of "$node")" "$R"
	psql -X -e -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$(port_of "$node")" \
		-U postgres -d postgres "$@"
}

port_in_use() {
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Poll a boolean query on a node until it returns true.
wait_until() {
	local node=$1 sql=$2 what=$3 tries=${4:-300}
	local i
	for ((i = 0; i < tries; i++)); do
		if [ "$(q "$node" -c "$sql" 2>/dev/null || true)" = t ]; then
			return 0
		fi
		sleep 0.2
	done
	die "timed out waiting for $what (see the logs in $DEMO_DIR)"
}

stop_demo() {
	local dir node
	if [ ! -f "$STATE_FILE" ]; then
		note "demo: no demo is running (no $STATE_FILE)"
		return 0
	fi
	dir=$(cat "$STATE_FILE")
	case $dir in
	*/rr_router_demo.*) ;;
	*) die "unexpected directory in $STATE_FILE: \"$dir\"; remove it by hand" ;;
	esac
	for node in "${NODES[@]}"; do
		if [ -f "$dir/$node/postmaster.pid" ]; then
			note "stopping $node"
			as_owner "$PG_BINDIR/pg_ctl" -D "$dir/$node" -m fast -w stop >/dev/null ||
				note "demo: could not stop $node cleanly"
		fi
	done
	rm -rf "$dir"
	rm -f "$STATE_FILE"
	note "removed $dir"
}

# On a failed start: show the end of each server log, stop what runs.
on_error() {
	local rc=$? node
	trap - EXIT
	if [ "$rc" -ne 0 ] && [ -n "${DEMO_DIR:-}" ]; then
		for node in "${NODES[@]}"; do
			if [ -f "$DEMO_DIR/$node.log" ]; then
				printf '\n----- last lines of %s -----\n' "$DEMO_DIR/$node.log" >&2
				tail -n 20 "$DEMO_DIR/$node.log" >&2
			fi
		done
		printf '\ndemo: failed; stopping the servers\n' >&2
		stop_demo >&2 || true
	fi
	exit "$rc"
}

build_and_install() {
	local build=$DEMO_DIR/build
	[ "$(id -u)" -eq 0 ] || die "run as root to build and install (or pass --no-build)"
	RR_DEPS_LOG=$DEMO_DIR/deps.log bash "$SRCDIR/test/deps.sh" --pg "$PG_VERSION"
	note "building rr_router (log: $DEMO_DIR/build.log)"
	mkdir "$build"
	tar -C "$SRCDIR" --exclude=./.git -cf - . | tar -C "$build" -xf -
	if ! { make -C "$build" PG_CONFIG="$PG_CONFIG" clean &&
		make -C "$build" PG_CONFIG="$PG_CONFIG" &&
		make -C "$build" PG_CONFIG="$PG_CONFIG" install; } >"$DEMO_DIR/build.log" 2>&1; then
		tail -n 40 "$DEMO_DIR/build.log" >&2
		die "build failed"
	fi
	rm -rf "$build"
	note "installed into $("$PG_CONFIG" --pkglibdir)"
}

# Start one server.  The demo ports lie in Linux's ephemeral port range, so
# a client connection elsewhere on the machine can hold one for a moment:
# retry a few times when that is why the start failed.
start_node() {
	local node=$1 attempt
	for attempt in 1 2 3 4 5; do
		if as_owner "$PG_BINDIR/pg_ctl" -D "$DEMO_DIR/$node" -l "$DEMO_DIR/$node.log" \
			-w -t 60 start >/dev/null 2>&1; then
			return 0
		fi
		grep -q 'Address already in use' "$DEMO_DIR/$node.log" || break
		note "port $(port_of "$node") is busy for a moment; retrying ($attempt)"
		sleep 2
	done
	if grep -q 'Address already in use' "$DEMO_DIR/$node.log"; then
		die "port $(port_of "$node") stays in use (a client connection can hold it as its local port); choose another with RR_DEMO_${node^^}_PORT"
	fi
	die "could not start $node (see $DEMO_DIR/$node.log)"
}

setup_clusters() {
	local node port lsn
	say "Starting a primary and two replicas on 127.0.0.1 (data in $DEMO_DIR)"

	as_owner "$PG_BINDIR/initdb" -D "$DEMO_DIR/primary" -U postgres -A trust \
		-E UTF8 --locale=C.UTF-8 >"$DEMO_DIR/initdb.log" 2>&1 ||
		{ cat "$DEMO_DIR/initdb.log" >&2; die "initdb failed"; }
	as_owner tee -a "$DEMO_DIR/primary/postgresql.conf" >/dev/null <<-EOF

		# rr_router demo
		listen_addresses = '127.0.0.1'
		unix_socket_directories = '$DEMO_DIR'
		shared_preload_libraries = 'rr_router'
		port = $PRIMARY_PORT
		cluster_name = 'primary'
	EOF
	start_node primary
	note "primary    port $PRIMARY_PORT"

	for node in replica1 replica2; do
		port=$(port_of "$node")
		as_owner "$PG_BINDIR/pg_basebackup" -h 127.0.0.1 -p "$PRIMARY_PORT" -U postgres \
			-D "$DEMO_DIR/$node" -R -X stream -C -S "$node" -c fast
		{
			echo "port = $port"
			echo "cluster_name = '$node'"
			if [ "$node" = replica2 ]; then
				echo "recovery_min_apply_delay = '$APPLY_DELAY'"
			fi
		} | as_owner tee -a "$DEMO_DIR/$node/postgresql.conf" >/dev/null
		start_node "$node"
		if [ "$node" = replica2 ]; then
			note "$node   port $port   recovery_min_apply_delay = '$APPLY_DELAY'"
		else
			note "$node   port $port"
		fi
	done

	wait_until primary \
		"SELECT count(*) = 2 FROM pg_stat_replication WHERE state = 'streaming'" \
		"both replicas to stream from the primary"
	note "both replicas are streaming"

	q primary <<-'SQL'
		CREATE EXTENSION rr_router;
		CREATE TABLE orders (
		    id        integer PRIMARY KEY,
		    item      text NOT NULL,
		    placed_at timestamptz NOT NULL DEFAULT now()
		);
	SQL
	lsn=$(q primary -c "SELECT pg_current_wal_lsn()")
	for node in replica1 replica2; do
		wait_until "$node" "SELECT pg_last_wal_replay_lsn() >= '$lsn'" \
			"CREATE EXTENSION to reach $node"
	done
	note "CREATE EXTENSION rr_router ran on the primary and reached both replicas"
}

# Write one order on the primary, showing the statements, and print the
# session's causality token (rr_last_commit_lsn) into the variable TOKEN.
write_order() {
	local id=$1 item=$2 out
	out=$(show primary -c "INSERT INTO orders (id, item) VALUES ($id, '$item')" \
		-c "SELECT rr_last_commit_lsn() AS token" 2>&1) || { printf '%s\n' "$out"; return 1; }
	printf '%s\n\n' "$out"
	TOKEN=$(printf '%s\n' "$out" | grep -Eo '^ *[0-9A-F]+/[0-9A-F]+ *$' | tail -n 1 | tr -d ' ')
	[ -n "$TOKEN" ] || die "no token in the output above"
}

# The ParameterStatus token, read by a real client library.
python_step() {
	local py=$DEMO_DIR/parameter_status.py
	if ! /usr/bin/python3 -c 'import psycopg' 2>/dev/null; then
		note "   (skipped: python3-psycopg is not installed)"
		return 0
	fi
	cat >"$py" <<-EOF
		import time
		import psycopg

		primary = psycopg.connect("host=127.0.0.1 port=$PRIMARY_PORT user=postgres dbname=postgres"
		                          " options='-c rr_router.report_commit_lsn=on'", autocommit=True)
		replica = psycopg.connect("host=127.0.0.1 port=$REPLICA2_PORT user=postgres dbname=postgres",
		                          autocommit=True)

		primary.execute("INSERT INTO orders (id, item) VALUES (3, 'scale')")
		token = primary.info.parameter_status("rr_router.last_commit_lsn")
		print("token from ParameterStatus:", token)

		start = time.monotonic()
		if replica.execute("SELECT rr_wait_for_lsn(%s, 5000)", (token,)).fetchone()[0]:
		    print(f"replica 2 caught up after {time.monotonic() - start:.2f} s; read:", replica.execute("SELECT id, item FROM orders WHERE id = 3").fetchone())
		else:
		    print("replica 2 is behind: read from the primary")
	EOF
	printf '%s\n' "$D$(sed 's/^/   | /' "$py")$R"
	/usr/bin/python3 "$py"
}

scenario() {
	local bg_out waiter_pid i

	say "1. The application writes on the primary and asks for its causality token"
	note "   rr_last_commit_lsn() is the end of this session's last commit record."
	write_order 1 'espresso beans'
	local token1=$TOKEN

	say "2. Its next read goes to replica 2. A naive read misses the new row"
	show replica2 -c "SELECT * FROM orders WHERE id = 1" \
		-c "SELECT pg_last_wal_replay_lsn() AS replayed_up_to, '$token1'::pg_lsn AS token"
	note "   Replica 2 has not replayed the commit yet: the order seems lost."

	say "3. The same read, made safe: wait for the token first, as its own statement"
	note "   rr_wait_for_lsn sleeps until replay passes the token (timeout 5000 ms),"
	note "   then returns true; the read that follows sees the write."
	show replica2 -c '\timing on' -c "SELECT rr_wait_for_lsn('$token1', 5000)" \
		-c "SELECT * FROM orders WHERE id = 1"

	say "4. When the replica cannot catch up in time, the wait says so"
	write_order 2 'milk frother'
	show replica2 -c '\timing on' -c "SELECT rr_wait_for_lsn('$TOKEN', 200)"
	note "   false after 200 ms: the application sends this read to the primary instead."

	say "5. A token that survives failover names the timeline too"
	note "   rr_last_commit_token() is 'TLI:LSN'. rr_wait_for_token() waits like"
	note "   rr_wait_for_lsn(), and raises RR001 instead of answering true when a"
	note "   failover lost the write (rr_wait_for_lsn cannot tell)."
	local out ttoken
	out=$(show primary -c "INSERT INTO orders (id, item) VALUES (10, 'grinder')" \
		-c "SELECT rr_last_commit_token() AS token" 2>&1) || { printf '%s\n' "$out"; return 1; }
	printf '%s\n\n' "$out"
	ttoken=$(printf '%s\n' "$out" | grep -Eo '^ *[0-9]+:[0-9A-F]+/[0-9A-F]+ *$' | tail -n 1 | tr -d ' ')
	[ -n "$ttoken" ] || die "no token in the output above"
	show replica2 -c '\timing on' -c "SELECT rr_wait_for_token('$ttoken', 5000)" \
		-c "SELECT * FROM orders WHERE id = 10"

	say "6. The token with no extra query: rr_router.report_commit_lsn = on"
	note "   The server then reports the token after each commit as the ParameterStatus"
	note "   rr_router.last_commit_lsn. The same pattern from Python (psycopg 3):"
	python_step

	say "7. rr_waiters lists the sessions waiting right now"
	write_order 4 'grinder'
	bg_out=$DEMO_DIR/background_waiter.out
	note "   A background session on replica 2 waits for token $TOKEN (timeout 5000 ms):"
	q replica2 -c "SELECT rr_wait_for_lsn('$TOKEN', 5000)" >"$bg_out" 2>&1 &
	waiter_pid=$!
	for ((i = 0; i < 100; i++)); do
		[ "$(q replica2 -c "SELECT count(*) > 0 FROM rr_waiters")" = t ] && break
		if ! kill -0 "$waiter_pid" 2>/dev/null; then
			note "   (the machine is busy: the session finished before it could be seen waiting)"
			break
		fi
		sleep 0.05
	done
	show replica2 -c '\x on' -c "SELECT * FROM rr_waiters"
	wait "$waiter_pid" || true
	note "   The background session's answer once replay passed its token: $(cat "$bg_out")"

	say "8. rr_status on replica 2 (psql \\x): replication state and the wait counters"
	show replica2 -c '\x on' -c "SELECT * FROM rr_status"
	note "   Of the waits: waits_immediate answered without sleeping, waits_woken slept"
	note "   until replay reached their token, waits_timed_out returned false after their"
	note "   timeout, waits_cancelled were ended by cancel, termination or an error."

	say "9. How old may each server's data be? rr_staleness() and rr_is_fresh()"
	note "   An upper bound, proven by replayed WAL (commit records and the primary's"
	note "   heartbeat), so it stays honest when the primary is idle or a replica is cut off."
	note "   One more order is written on the primary; a second later:"
	q primary -c "INSERT INTO orders (id, item) VALUES (5, 'filter papers')"
	sleep 1
	for node in replica2 replica1 primary; do
		show "$node" -c "SELECT role, rr_staleness() AS staleness, rr_is_fresh('1s') AS fresh_within_1s, lag_bytes FROM rr_status"
	done
	note "   Replica 2 applies commits 2 s late: until it replays the new order its bound"
	note "   grows past 1 s, and a read that must be at most 1 s old goes elsewhere."
}

print_howto() {
	say "The demo servers keep running"
	note "  primary    psql -h 127.0.0.1 -p $PRIMARY_PORT -U postgres"
	note "  replica 1  psql -h 127.0.0.1 -p $REPLICA1_PORT -U postgres"
	note "  replica 2  psql -h 127.0.0.1 -p $REPLICA2_PORT -U postgres    (applies WAL $APPLY_DELAY late)"
	note "Data and server logs: $DEMO_DIR (servers run as \"$RUN_AS\")"
	note "Stop them and remove their data:  bash $SRCDIR/test/demo/demo.sh stop"
}

main() {
	local do_build=1 teardown=0 arg node
	for arg in "$@"; do
		case $arg in
		stop | --stop | teardown) stop_demo; return 0 ;;
		--teardown) teardown=1 ;;
		--no-build) do_build=0 ;;
		start) ;;
		-h | --help) sed -n '2,/^$/s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; return 0 ;;
		*) die "unknown argument \"$arg\" (try --help)" ;;
		esac
	done

	if [ -f "$STATE_FILE" ]; then
		note "demo: a previous demo is still registered; removing it first"
		stop_demo
	fi
	for node in "${NODES[@]}"; do
		if port_in_use "$(port_of "$node")"; then
			die "port $(port_of "$node") ($node) is in use; choose others with RR_DEMO_${node^^}_PORT"
		fi
	done

	DEMO_DIR=$(mktemp -d "${TMPDIR:-/tmp}/rr_router_demo.XXXXXX")
	chmod 755 "$DEMO_DIR"
	echo "$DEMO_DIR" >"$STATE_FILE"
	trap on_error EXIT

	say "rr_router demo"
	if [ "$do_build" -eq 1 ]; then
		build_and_install
	elif [ ! -f "$("$PG_CONFIG" --pkglibdir)/rr_router.so" ]; then
		die "rr_router is not installed; run without --no-build as root"
	fi
	[ "$(id -u)" -ne 0 ] || chown postgres: "$DEMO_DIR"

	setup_clusters
	scenario
	trap - EXIT

	if [ "$teardown" -eq 1 ]; then
		say "Tearing down (--teardown)"
		stop_demo
	else
		print_howto
	fi
}

main "$@"
