"""Write -> token -> wait -> read cycles through a connection pooler.

Used by test/t/401_pgbouncer.pl.  Each of --clients threads runs --cycles
cycles of:

  1. write one row on the primary (through the pooler) and take a causality
     token by the recipe under test;
  2. on the replica (through the pooler) "SELECT rr_wait_for_lsn(token, T)"
     as a statement of its own;
  3. read the row back on the replica.

A read that finds no row after the wait answered true is a missed write:
the token did not cover the client's own commit.  Every write also returns
pg_current_wal_insert_lsn() taken before its commit record was written: a
token below it is certainly older than the client's own write (another
session's commit), and the backend pid, so the report shows how many
clients' commits went through each server connection.

Recipes (--recipe):

  same_trip   "BEGIN; INSERT ...; COMMIT; SELECT rr_last_commit_lsn()" as one
              simple Query: a pooler hands out a server connection per
              round trip at most, so the token is read on the connection
              that committed.
  wal_lsn     the INSERT, then "SELECT pg_current_wal_lsn()" on any
              connection to the primary: the primary's WAL write position is
              at or past every commit already acknowledged.
  naive       the INSERT, then "SELECT rr_last_commit_lsn()" as a second
              round trip.  Under transaction pooling that may run on another
              client's server connection.
  parameter_status
              the INSERT on a session that reports rr_router.last_commit_lsn
              (the server sends it with the ReadyForQuery that ends the
              round trip); the token is
              conn.info.parameter_status("rr_router.last_commit_lsn").

Prints one line "RESULT {json}" with the counts.
"""

import argparse
import faulthandler
import json
import sys
import threading
import time

import psycopg


def lsn_int(lsn):
    hi, lo = str(lsn).split("/")
    return (int(hi, 16) << 32) | int(lo, 16)


def results(cur):
    """Every row of every result set of a multi-statement simple Query."""
    rows = []
    while True:
        if cur.pgresult is not None and cur.description is not None:
            rows.extend(cur.fetchall())
        if not cur.nextset():
            return rows


def connect(dsn):
    """An autocommit connection that never prepares statements on the
    server: under transaction pooling (PgBouncer before 1.21) a statement
    prepared on one server connection is missing on the next."""
    return psycopg.connect(dsn, autocommit=True, prepare_threshold=None)


class Client(threading.Thread):
    def __init__(self, n, args, stats, lock):
        super().__init__(daemon=True)
        self.n = n
        self.args = args
        self.stats = stats
        self.lock = lock
        self.error = None

    def connect_writer(self):
        return connect(self.args.write)

    def run(self):
        try:
            self.loop()
        except Exception as e:  # reported, and the run fails
            self.error = f"client {self.n}: {type(e).__name__}: {e}"

    def loop(self):
        a = self.args
        c = self.n
        local = dict(cycles=0, stale_tokens=0, wait_false=0, missed=0,
                     no_token=0, waits_over_5ms=0)
        pids = {}
        writer = None
        reader = connect(a.read)
        for i in range(a.cycles):
            if writer is None:
                writer = self.connect_writer()
            insert = (f"INSERT INTO rr_pool_t(run, client, seq) "
                      f"VALUES ('{a.run}', {c}, {i}) "
                      f"RETURNING pg_current_wal_insert_lsn(), pg_backend_pid()")
            if a.recipe == "same_trip":
                rows = results(writer.execute(
                    f"BEGIN; {insert}; COMMIT; SELECT rr_last_commit_lsn()"))
                (before, pid), (token,) = rows
            else:
                before, pid = writer.execute(insert).fetchone()
                if a.recipe == "naive":
                    token = writer.execute(
                        "SELECT rr_last_commit_lsn()").fetchone()[0]
                elif a.recipe == "wal_lsn":
                    token = writer.execute(
                        "SELECT pg_current_wal_lsn()").fetchone()[0]
                elif a.recipe == "parameter_status":
                    token = writer.info.parameter_status(
                        "rr_router.last_commit_lsn")
                else:
                    raise ValueError(a.recipe)
            if a.close_writer:
                # A short session per write, as a web request has: the
                # server connection goes back to the pool before the wait.
                writer.close()
                writer = None
            pids[pid] = pids.get(pid, 0) + 1
            local["cycles"] += 1
            if token is None or str(token) in ("", "0/0"):
                local["no_token"] += 1
                continue
            if lsn_int(token) < lsn_int(before):
                local["stale_tokens"] += 1
            t0 = time.monotonic()
            ok = reader.execute(
                f"SELECT rr_wait_for_lsn('{token}'::pg_lsn, {a.wait_timeout_ms})"
            ).fetchone()[0]
            if time.monotonic() - t0 > 0.005:
                local["waits_over_5ms"] += 1
            if not ok:
                local["wait_false"] += 1
                continue
            n = reader.execute(
                f"SELECT count(*) FROM rr_pool_t "
                f"WHERE run = '{a.run}' AND client = {c} AND seq = {i}"
            ).fetchone()[0]
            if n != 1:
                local["missed"] += 1
        if writer is not None:
            writer.close()
        reader.close()
        with self.lock:
            for k, v in local.items():
                self.stats[k] = self.stats.get(k, 0) + v
            for pid, k in pids.items():
                self.stats["pids"].setdefault(str(pid), set()).add(c)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--write", required=True, help="DSN of the primary, through the pooler")
    p.add_argument("--read", required=True, help="DSN of the replica, through the pooler")
    p.add_argument("--recipe", required=True,
                   choices=["same_trip", "wal_lsn", "naive", "parameter_status"])
    p.add_argument("--run", required=True, help="label stored with the rows")
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--cycles", type=int, default=1000)
    p.add_argument("--close-writer", action="store_true",
                   help="close the writer's connection after each token "
                        "(a new session per write)")
    p.add_argument("--wait-timeout-ms", type=int, default=10000)
    p.add_argument("--deadline", type=int, default=600,
                   help="seconds before every thread's stack is printed "
                        "and the run is abandoned")
    a = p.parse_args()
    faulthandler.dump_traceback_later(a.deadline, exit=True)

    stats = {"pids": {}}
    lock = threading.Lock()
    t0 = time.monotonic()
    clients = [Client(n, a, stats, lock) for n in range(a.clients)]
    for cl in clients:
        cl.start()
    for cl in clients:
        cl.join()
    errors = [cl.error for cl in clients if cl.error]
    pids = stats.pop("pids")
    stats.update(
        run=a.run, recipe=a.recipe, clients=a.clients,
        seconds=round(time.monotonic() - t0, 1),
        errors=errors,
        server_connections=len(pids),
        # clients whose commits went through the busiest server connection
        max_clients_per_connection=max((len(v) for v in pids.values()), default=0),
    )
    print("RESULT " + json.dumps(stats, sort_keys=True), flush=True)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
