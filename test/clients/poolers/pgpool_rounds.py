"""Many commits in one round trip, through a pooler (test/t/402_pgpool.pl).

1. Ten transactions in one simple Query:
   "BEGIN; INSERT ...; COMMIT; ... (x10); SELECT rr_last_commit_lsn()".
2. An extended-protocol pipeline: BEGIN, INSERT, COMMIT ten times, then
   SELECT rr_last_commit_lsn(), all before one Sync.

After each: the connection still answers "SELECT 1", rr_last_commit_lsn()
as a statement of its own equals the token the round trip returned, the
token is past the last INSERT (each INSERT returns
pg_current_wal_insert_lsn(), taken before its commit record), and, with
--report, the ParameterStatus rr_router.last_commit_lsn equals it too.

Prints "RESULT {json}".
"""

import argparse
import json
import sys

import psycopg


def lsn_int(lsn):
    hi, lo = str(lsn).split("/")
    return (int(hi, 16) << 32) | int(lo, 16)


def status(conn):
    return conn.info.parameter_status("rr_router.last_commit_lsn")


def after(conn, res, token, last_insert):
    """What the connection says after the round trip."""
    res["select_1"] = conn.execute("SELECT 1").fetchone()[0]
    res["token"] = str(token)
    res["token_past_last_insert"] = lsn_int(token) > lsn_int(last_insert)
    res["last_commit_lsn_after"] = str(
        conn.execute("SELECT rr_last_commit_lsn()").fetchone()[0])
    ps = status(conn)
    res["parameter_status"] = None if ps is None else str(ps)


def multi(conn, tag):
    sql = "".join(
        f"BEGIN; INSERT INTO rr_pool_t(run, client, seq) VALUES ('{tag}', 0, {k}) "
        f"RETURNING pg_current_wal_insert_lsn(); COMMIT; "
        for k in range(10))
    cur = conn.execute(sql + "SELECT rr_last_commit_lsn()")
    rows = []
    while True:
        if cur.description is not None:
            rows.extend(cur.fetchall())
        if not cur.nextset():
            break
    res = {"results": len(rows)}
    after(conn, res, rows[-1][0], rows[-2][0])
    return res


def pipeline(conn, tag):
    inserts = []
    with conn.pipeline():
        for k in range(10):
            conn.execute("BEGIN")
            inserts.append(conn.execute(
                "INSERT INTO rr_pool_t(run, client, seq) VALUES (%s, 0, %s) "
                "RETURNING pg_current_wal_insert_lsn()", (tag, k)))
            conn.execute("COMMIT")
        last = conn.execute("SELECT rr_last_commit_lsn()")
        # Leaving the block sends the one Sync and reads every result.
    res = {"results": len(inserts) + 1}
    after(conn, res, last.fetchone()[0], inserts[-1].fetchone()[0])
    return res


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--dsn", required=True)
    p.add_argument("--tag", required=True)
    p.add_argument("--report", action="store_true",
                   help="SET rr_router.report_commit_lsn = on first")
    a = p.parse_args()
    out = {}
    conn = psycopg.connect(a.dsn, autocommit=True, prepare_threshold=None)
    if a.report:
        conn.execute("SET rr_router.report_commit_lsn = on")
    for name, fn in (("multi", multi), ("pipeline", pipeline)):
        try:
            out[name] = fn(conn, f"{a.tag}-{name}")
        except Exception as e:
            out[name] = {"error": f"{type(e).__name__}: {e}"}
            conn.close()
            conn = psycopg.connect(a.dsn, autocommit=True, prepare_threshold=None)
            if a.report:
                conn.execute("SET rr_router.report_commit_lsn = on")
    conn.close()
    print("RESULT " + json.dumps(out, sort_keys=True), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
