#!/usr/bin/env bash
#
# test/bench/hotpaths.sh
#     Before/after cost of rr_router's per-call paths on a replica, for two
#     builds, interleaved: the throughput of a wait that is already
#     satisfied (rr_wait_for_lsn(..., 0): state check and counters), of
#     rr_is_fresh(), and the CPU the idle worker burns (samples, queue
#     check, HTTP on).  Same data directories, the builds swapped between
#     runs, in a fresh random order every round.
#
# Usage (as root, on a Debian 12 machine with test/deps.sh's packages):
#     bash test/bench/hotpaths.sh OLD_REV NEW_REV [ROUNDS]
# e.g.
#     bash test/bench/hotpaths.sh 823935d HEAD 5
#
# Environment: HOTPATHS_SECONDS (pgbench run length, default 10),
# HOTPATHS_CLIENTS (default 4), HOTPATHS_PORT (primary; replica +1,
# default 56532).  Prints one line per run and the medians; ratios are
# new / old.

set -euo pipefail

OLD=${1:?usage: hotpaths.sh OLD_REV NEW_REV [ROUNDS]}
NEW=${2:?usage: hotpaths.sh OLD_REV NEW_REV [ROUNDS]}
ROUNDS=${3:-5}
SECS=${HOTPATHS_SECONDS:-10}
CLIENTS=${HOTPATHS_CLIENTS:-4}
PPORT=${HOTPATHS_PORT:-56532}
RPORT=$((PPORT + 1))
HTTP_PORT=$((PPORT + 2))

PG_BINDIR=/usr/lib/postgresql/15/bin
PG_CONFIG=$PG_BINDIR/pg_config
SRCDIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
LIBDIR=$($PG_CONFIG --pkglibdir)

[ "$(id -u)" -eq 0 ] || { echo "hotpaths: run as root" >&2; exit 2; }

WORK=$(mktemp -d /tmp/rr_hotpaths.XXXXXX)
chown postgres: "$WORK"
as_pg() { (cd / && runuser -u postgres -- env -i HOME=/tmp LANG=C.UTF-8 TZ=UTC PATH="$PG_BINDIR:/usr/bin:/bin" "$@"); }
q() { as_pg psql -X -q -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$1" -U postgres -d postgres -c "$2"; }

cleanup() {
	for n in replica primary; do
		[ -f "$WORK/$n/postmaster.pid" ] && as_pg pg_ctl -D "$WORK/$n" -m immediate stop >/dev/null 2>&1
	done
	cp "$WORK/installed.so" "$LIBDIR/rr_router.so" 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT
cp "$LIBDIR/rr_router.so" "$WORK/installed.so" 2>/dev/null || true

# Build each revision into $WORK/build-<rev>; install the newer one's SQL.
for rev in "$OLD" "$NEW"; do
	mkdir -p "$WORK/build-$rev"
	git -C "$SRCDIR" archive "$rev" | tar -C "$WORK/build-$rev" -xf -
	make -s -C "$WORK/build-$rev" PG_CONFIG=$PG_CONFIG >/dev/null
done
make -s -C "$WORK/build-$NEW" PG_CONFIG=$PG_CONFIG install >/dev/null

install_so() { install -m 755 "$WORK/build-$1/rr_router.so" "$LIBDIR/rr_router.so"; }

restart() {
	for n in primary replica; do
		as_pg pg_ctl -D "$WORK/$n" -l "$WORK/$n.log" -w restart >/dev/null
	done
	until [ "$(q $RPORT 'SELECT rr_staleness() IS NOT NULL' 2>/dev/null)" = t ]; do sleep 0.2; done
}

as_pg initdb -D "$WORK/primary" -U postgres -A trust >/dev/null
cat >>"$WORK/primary/postgresql.conf" <<EOF
port = $PPORT
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
shared_preload_libraries = 'rr_router'
max_connections = 50
fsync = off
EOF
as_pg pg_ctl -D "$WORK/primary" -l "$WORK/primary.log" -w start >/dev/null
q $PPORT 'CREATE EXTENSION rr_router' >/dev/null
as_pg pg_basebackup -h 127.0.0.1 -p $PPORT -U postgres -D "$WORK/replica" -R >/dev/null
cat >>"$WORK/replica/postgresql.conf" <<EOF
port = $RPORT
rr_router.http_port = $HTTP_PORT
EOF
as_pg pg_ctl -D "$WORK/replica" -l "$WORK/replica.log" -w start >/dev/null

echo 'SELECT rr_wait_for_lsn('"'"'0/1'"'"', 0);' >"$WORK/wait.sql"
echo 'SELECT rr_is_fresh();' >"$WORK/fresh.sql"
chown postgres: "$WORK"/*.sql

tps() {
	as_pg pgbench -n -h 127.0.0.1 -p $RPORT -U postgres -c "$CLIENTS" -j 2 -T "$SECS" \
		-f "$WORK/$1.sql" postgres 2>/dev/null | sed -n 's/^tps = \([0-9.]*\).*/\1/p'
}

# CPU (ms) the replica's worker uses over $SECS idle seconds.
worker_cpu() {
	local pid t0 t1 tick
	pid=$(q $RPORT 'SELECT worker_pid FROM rr_status')
	tick=$(getconf CLK_TCK)
	t0=$(awk '{print $14 + $15}' "/proc/$pid/stat")
	sleep "$SECS"
	t1=$(awk '{print $14 + $15}' "/proc/$pid/stat")
	echo $(((t1 - t0) * 1000 / tick))
}

printf '%-6s %-8s %12s %12s %14s\n' round build wait_tps fresh_tps worker_cpu_ms
for ((r = 1; r <= ROUNDS; r++)); do
	for b in $(printf '%s\n' old new | shuf); do
		rev=$OLD
		[ "$b" = new ] && rev=$NEW
		install_so "$rev"
		restart
		w=$(tps wait)
		f=$(tps fresh)
		c=$(worker_cpu)
		printf '%-6s %-8s %12s %12s %14s\n' "$r" "$b" "$w" "$f" "$c" | tee -a "$WORK/results"
	done
done

python3 - "$WORK/results" <<'EOF'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
def med(build, col):
    return statistics.median(float(r[col]) for r in rows if r[1] == build)
for name, col in (("wait_tps", 2), ("fresh_tps", 3), ("worker_cpu_ms", 4)):
    o, n = med("old", col), med("new", col)
    ratio = n / o if o else float("nan")
    print(f"{name:14s} old {o:10.1f}  new {n:10.1f}  new/old {ratio:.3f}")
EOF
