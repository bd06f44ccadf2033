#!/usr/bin/python3
"""
test/bench/bench.py
    rr_router's benchmarks, run against a primary and a streaming replica
    that test/bench/run.sh has started (rr_router preloaded on both,
    CREATE EXTENSION done on the primary).

Sections (BENCH_SECTIONS, comma-separated, in this order by default):

  idle      worker CPU with nobody waiting, on the primary and the replica,
            and heartbeat WAL bytes per hour (heartbeat_interval 1s vs 0)
  ryw       read-your-writes latency: commit returns on the primary ->
            the replica confirms the token; busy-poll, 1 ms and 10 ms
            polling, rr_wait_for_lsn, rr_wait_for_lsn + the read in one message
  herd      wake latency of N parked waiters released by one commit,
            server clocks only (N = 1, 10, 100, 500), against PostgreSQL's
            own lock manager releasing the same herd
  parked    what N parked waiters cost (worker, startup, themselves) while
            replay moves past them, and the cancel path
  scaling   N sessions looping write -> wait -> read (N = 1, 10, 100, 500):
            throughput, wait latency, CPU of worker, startup process and
            backends, wake-ups per replayed batch
  mixed     90 % reads / 10 % writes, 50 sessions: "primary for 2 s after a
            write" (Rails' default) vs causality tokens vs unchecked replica
            reads: share of reads sent to the primary, stale reads
  conflict  waiters and recovery conflicts, hot_standby_feedback off vs on,
            and a deterministic reproduction of a waiter caught in a
            conflict (against the same snapshot held without a wait)
  pgbench   pgbench -S on the replica with and without rr_is_fresh()

Variants of a section are interleaved in short rounds (the order shuffled
in every round) so that the noise of a shared machine hits all alike.
Writes report.md and results.json into --out.  Every knob is an
environment variable; see test/bench/README.md.

Runs as an ordinary user with /usr/bin/python3 and psycopg 3.
"""

import argparse
import asyncio
import datetime
import json
import os
import platform
import random
import re
import statistics
import subprocess
import sys
import threading
import time

import psycopg

QUICK = os.environ.get("QUICK", "0") not in ("", "0")


def env_int(name, full, quick):
    return int(os.environ.get(name, quick if QUICK else full))


def env_float(name, full, quick):
    return float(os.environ.get(name, quick if QUICK else full))


def env_list(name, full, quick, conv=int):
    raw = os.environ.get(name, quick if QUICK else full)
    return [conv(x) for x in raw.replace(",", " ").split()]


ALL_SECTIONS = ["idle", "ryw", "herd", "parked", "scaling", "mixed", "conflict", "pgbench"]

CFG = {
    "sections": [s for s in os.environ.get("BENCH_SECTIONS", ",".join(ALL_SECTIONS))
                 .replace(" ", ",").split(",") if s],
    "seed": env_int("BENCH_SEED", 42, 42),
    # idle
    "idle_window_s": env_float("BENCH_IDLE_WINDOW_S", 12, 4),
    "idle_rounds": env_int("BENCH_IDLE_ROUNDS", 2, 1),
    # read-your-writes latency
    "ryw_rounds": env_int("BENCH_RYW_ROUNDS", 800, 80),
    "ryw_gap_ms": env_float("BENCH_RYW_GAP_MS", 2, 2),
    # recovery_min_apply_delay on the replica, one ryw run per value (0 first)
    "ryw_apply_delays": env_list("BENCH_RYW_APPLY_DELAY_MS", "0", "0"),
    # herd
    "herd_sizes": env_list("BENCH_HERD_SIZES", "1 10 100 500", "1 10 100"),
    "herd_rounds": env_int("BENCH_HERD_ROUNDS", 10, 2),
    # parked waiters (N = the largest herd size)
    "parked_rounds": env_int("BENCH_PARKED_ROUNDS", 2, 1),
    "parked_window_s": env_float("BENCH_PARKED_WINDOW_S", 8, 3),
    "parked_commit_rate": env_int("BENCH_PARKED_COMMIT_RATE", 200, 200),
    # scaling
    "scale_sessions": env_list("BENCH_SCALE_SESSIONS", "1 10 100 500", "1 10 100"),
    "scale_round_s": env_float("BENCH_SCALE_ROUND_S", 5, 2),
    "scale_rounds": env_int("BENCH_SCALE_ROUNDS", 3, 1),
    # recovery conflicts
    "conflict_sessions": env_int("BENCH_CONFLICT_SESSIONS", 30, 30),
    "conflict_rounds": env_int("BENCH_CONFLICT_ROUNDS", 2, 1),
    "conflict_round_s": env_float("BENCH_CONFLICT_ROUND_S", 8, 4),
    "conflict_timeout_ms": env_int("BENCH_CONFLICT_TIMEOUT_MS", 2000, 2000),
    "conflict_proof_timeout_ms": env_int("BENCH_CONFLICT_PROOF_TIMEOUT_MS", 5000, 3000),
    "conflict_proof_rounds": env_int("BENCH_CONFLICT_PROOF_ROUNDS", 3, 1),
    "conflict_probe_s": env_float("BENCH_CONFLICT_PROBE_S", 0.5, 0.5),
    # deadlock_timeout on the replica during the section: the threshold of
    # log_recovery_conflict_waits
    "conflict_log_ms": env_int("BENCH_CONFLICT_LOG_MS", 20, 20),
    # mixed workload
    "mixed_sessions": env_int("BENCH_MIXED_SESSIONS", 50, 50),
    # scenarios "think_ms:apply_delay_ms": mean think time between a session's
    # operations, and recovery_min_apply_delay on the replica (injected lag)
    "mixed_scenarios": env_list("BENCH_MIXED_SCENARIOS", "0:0 200:0 200:3000", "0:0", str),
    "mixed_rounds": env_int("BENCH_MIXED_ROUNDS", 2, 1),
    "mixed_warmup_s": env_float("BENCH_MIXED_WARMUP_S", 2.5, 2.5),
    "mixed_measure_s": env_float("BENCH_MIXED_MEASURE_S", 3, 2),
    "mixed_write_pct": env_float("BENCH_MIXED_WRITE_PCT", 10, 10),
    "rails_delay_s": env_float("BENCH_RAILS_DELAY_S", 2, 2),
    "wait_timeout_ms": env_int("BENCH_WAIT_TIMEOUT_MS", 1000, 1000),
    # pgbench
    "pgbench_scale": env_int("BENCH_PGBENCH_SCALE", 10, 1),
    "pgbench_clients": env_int("BENCH_PGBENCH_CLIENTS", 4, 4),
    "pgbench_threads": env_int("BENCH_PGBENCH_THREADS", 2, 2),
    "pgbench_round_s": env_int("BENCH_PGBENCH_ROUND_S", 4, 2),
    "pgbench_rounds": env_int("BENCH_PGBENCH_ROUNDS", 4, 2),
    "pgbench_mode": os.environ.get("BENCH_PGBENCH_MODE", "prepared"),
    "pgbench_mixed_s": env_int("BENCH_PGBENCH_MIXED_S", 20, 4),
    "pgbench_micro_calls": env_int("BENCH_PGBENCH_MICRO_CALLS", 2000000, 500000),
    "pgbench_micro_rounds": env_int("BENCH_PGBENCH_MICRO_ROUNDS", 7, 3),
}

# The goals of issue 4, checked at the end of the report.
GOALS = {
    "p50_vs_floor": 1.5,       # rr p50 <= 1.5 x busy-poll p50
    "p90_vs_poll1": 0.5,       # rr p90 <= 0.5 x 1 ms polling p90
    "herd_p99_ms": 5.0,        # 500 waiters: p99 wake latency < 5 ms
    "worker_busy_pct": 10.0,   # 500 waiters: worker < 10 % of a core
    "worker_idle_pct": 0.5,    # no waiters: worker < 0.5 % of a core
    "fresh_cost_pct": 3.0,     # rr_is_fresh() < 3 % of pgbench -S tps
}

CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---------------------------------------------------------------- statistics

def pct(xs, p):
    """Percentile p (0..100) of xs with linear interpolation; None if empty."""
    if not xs:
        return None
    s = sorted(xs)
    k = (len(s) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def summary(xs):
    if not xs:
        return {"n": 0}
    return {"n": len(xs), "p50": pct(xs, 50), "p90": pct(xs, 90), "p99": pct(xs, 99),
            "max": max(xs), "mean": statistics.fmean(xs)}


def fmt(x, digits=3):
    if x is None:
        return "–"
    if isinstance(x, float):
        if abs(x) >= 100:
            return f"{x:.0f}"
        if abs(x) >= 10:
            return f"{x:.1f}"
        return f"{x:.{digits}f}".rstrip("0").rstrip(".") if digits else f"{x:.0f}"
    return str(x)


def ratio(a, b):
    return None if a is None or b in (None, 0) else a / b


def md_table(header, rows):
    """A Markdown table; columns holding only numbers are right-aligned."""
    numeric = [all(isinstance(r[i], (int, float)) or r[i] is None for r in rows) if rows else False
               for i in range(len(header))]
    out = ["| " + " | ".join(header) + " |",
           "|" + "|".join("---:" if numeric[i] else "---" for i in range(len(header))) + "|"]
    for r in rows:
        out.append("| " + " | ".join(fmt(c) if not isinstance(c, str) else c for c in r) + " |")
    return "\n".join(out)


# ---------------------------------------------------------------- /proc

def proc_cpu(pid):
    """CPU used so far by a process: utime+stime (ticks), on-CPU ns, switches."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
        rest = stat[stat.rfind(")") + 2:].split()
        ticks = int(rest[11]) + int(rest[12])
        ns = None
        try:
            with open(f"/proc/{pid}/schedstat") as f:
                ns = int(f.read().split()[0])
        except OSError:
            pass
        vol = invol = 0
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("voluntary_ctxt_switches"):
                    vol = int(line.split()[1])
                elif line.startswith("nonvoluntary_ctxt_switches"):
                    invol = int(line.split()[1])
        return {"ticks": ticks, "ns": ns, "vol": vol, "invol": invol}
    except OSError:
        return None


def cpu_delta(before, after):
    """Sum of the CPU used between two snapshots {key: proc_cpu()}."""
    tot = {"ticks": 0, "ns": 0, "vol": 0, "invol": 0, "procs": 0}
    for k, a in after.items():
        b = before.get(k)
        if a is None or b is None:
            continue
        tot["procs"] += 1
        tot["ticks"] += a["ticks"] - b["ticks"]
        tot["vol"] += a["vol"] - b["vol"]
        tot["invol"] += a["invol"] - b["invol"]
        if a["ns"] is not None and b["ns"] is not None:
            tot["ns"] += a["ns"] - b["ns"]
    tot["cpu_s_ticks"] = tot["ticks"] / CLK_TCK
    tot["cpu_s"] = tot["ns"] / 1e9 if tot["ns"] else tot["cpu_s_ticks"]
    return tot


def snap(pids):
    return {p: proc_cpu(p) for p in pids if p}


def note_load(res, section):
    la = loadavg()
    res["load"].append(la)
    res.setdefault("load_by_section", []).append((section, la))


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def machine_busy():
    """(busy, total) jiffies of the whole machine from /proc/stat."""
    with open("/proc/stat") as f:
        vals = [int(x) for x in f.readline().split()[1:]]
    idle = vals[3] + vals[4]
    return sum(vals) - idle, sum(vals)


# ---------------------------------------------------------------- LSNs

LSN_RE = re.compile(r"[0-9A-F]{1,8}/[0-9A-F]{1,8}")


def lsn_literal(tok):
    """A token as an SQL literal, for the multi-statement simple queries."""
    if not tok or not LSN_RE.fullmatch(str(tok)):
        raise ValueError(f"not an LSN: {tok!r}")
    return f"'{tok}'::pg_lsn"


async def results(cur):
    """Rows of every statement of a multi-statement simple query."""
    out = [await cur.fetchall()]
    while cur.nextset():
        out.append(await cur.fetchall())
    return out

def lsn_int(s):
    hi, lo = s.split("/")
    return (int(hi, 16) << 32) | int(lo, 16)


def lsn_str(n):
    return f"{n >> 32:X}/{n & 0xFFFFFFFF:X}"


# ---------------------------------------------------------------- servers

class Servers:
    """Control connections and process ids of the primary and the replica."""

    def __init__(self, primary_dsn, replica_dsn):
        self.primary_dsn = primary_dsn
        self.replica_dsn = replica_dsn
        self.p = psycopg.connect(primary_dsn, autocommit=True)
        self.r = psycopg.connect(replica_dsn, autocommit=True)

    def pq(self, sql, args=None):
        return self.p.execute(sql, args).fetchone()

    def rq(self, sql, args=None):
        return self.r.execute(sql, args).fetchone()

    def pids(self):
        """Process ids of the servers' interesting processes, looked up anew."""
        d = {}
        d["primary_worker"] = self.pq("SELECT worker_pid FROM rr_status")[0]
        d["replica_worker"] = self.rq("SELECT worker_pid FROM rr_status")[0]
        for name, bt in (("startup", "startup"), ("walreceiver", "walreceiver")):
            row = self.rq("SELECT pid FROM pg_stat_activity WHERE backend_type = %s", (bt,))
            d[name] = row[0] if row else None
        row = self.pq("SELECT pid FROM pg_stat_activity WHERE backend_type = 'walsender'")
        d["walsender"] = row[0] if row else None
        return d

    def wait_counters(self):
        row = self.r.execute(
            "SELECT waits, waits_immediate, waits_woken, waits_timed_out, waits_cancelled,"
            " extract(epoch FROM wait_time_total) * 1e3, extract(epoch FROM wait_time_max) * 1e3"
            " FROM rr_status").fetchone()
        keys = ["waits", "immediate", "woken", "timed_out", "cancelled", "time_total_ms", "time_max_ms"]
        return dict(zip(keys, [float(x) if x is not None else 0.0 for x in row]))

    def catch_up(self, timeout_ms=120000):
        """Wait until the replica has replayed everything the primary has written.
        A wait answers false at once while replay is held up by a recovery
        conflict, so ask again until the deadline."""
        lsn = self.pq("SELECT pg_current_wal_insert_lsn()")[0]
        deadline = time.monotonic() + timeout_ms / 1000
        while True:
            left = int((deadline - time.monotonic()) * 1000)
            if left <= 0:
                raise RuntimeError(f"replica did not catch up to {lsn} in {timeout_ms} ms")
            if self.rq("SELECT rr_wait_for_lsn(%s::pg_lsn, %s)", (str(lsn), left))[0]:
                return
            time.sleep(0.02)


def counters_delta(a, b):
    d = {k: b[k] - a[k] for k in a if k != "time_max_ms"}
    d["time_max_ms"] = b["time_max_ms"]
    return d


# ---------------------------------------------------------------- sessions

class Session:
    """One application session: a connection to the primary and one to the replica."""

    def __init__(self, key, p, r):
        self.key = key
        self.p = p
        self.r = r
        self.p_pid = p.info.backend_pid
        self.r_pid = r.info.backend_pid


async def open_sessions(srv, n, first_key):
    sem = asyncio.Semaphore(16)

    async def one(i):
        async with sem:
            p = await psycopg.AsyncConnection.connect(
                srv.primary_dsn, autocommit=True,
                options="-c rr_router.report_commit_lsn=on")
            r = await psycopg.AsyncConnection.connect(srv.replica_dsn, autocommit=True)
            return Session(first_key + i, p, r)

    return await asyncio.gather(*(one(i) for i in range(n)))


async def close_sessions(sessions):
    for s in sessions:
        await s.p.close()
        await s.r.close()


async def write(s, table="bench_kv"):
    """UPDATE the session's row on the primary; returns (new value, token)."""
    cur = await s.p.execute(f"UPDATE {table} SET v = v + 1 WHERE k = %s RETURNING v", (s.key,))
    v = (await cur.fetchone())[0]
    return v, s.p.info.parameter_status("rr_router.last_commit_lsn")


# ================================================================ idle

def bench_idle(srv, res):
    W, R = CFG["idle_window_s"], CFG["idle_rounds"]
    log(f"idle: {R} round(s) x (heartbeat 1s, heartbeat 0) x {W:.0f} s")
    srv.p.execute("CHECKPOINT")
    srv.catch_up()
    time.sleep(2)
    rng = random.Random(CFG["seed"])
    data = {"1s": [], "0": []}
    for _ in range(R):
        order = ["1s", "0"]
        rng.shuffle(order)
        for hb in order:
            srv.p.execute(f"ALTER SYSTEM SET rr_router.heartbeat_interval = '{hb}'")
            srv.p.execute("SELECT pg_reload_conf()")
            time.sleep(1.5)
            pids = srv.pids()
            keys = ["primary_worker", "replica_worker", "startup", "walsender", "walreceiver"]
            before = {k: proc_cpu(pids[k]) for k in keys if pids[k]}
            lsn0 = lsn_int(str(srv.pq("SELECT pg_current_wal_insert_lsn()")[0]))
            t0 = time.monotonic()
            time.sleep(W)
            lsn1 = lsn_int(str(srv.pq("SELECT pg_current_wal_insert_lsn()")[0]))
            el = time.monotonic() - t0
            after = {k: proc_cpu(pids[k]) for k in keys if pids[k]}
            row = {"elapsed_s": el, "wal_bytes": lsn1 - lsn0}
            for k in keys:
                if k in before:
                    d = cpu_delta({k: before[k]}, {k: after[k]})
                    row[k] = {"pct": 100 * d["cpu_s"] / el,
                              "pct_ticks": 100 * d["cpu_s_ticks"] / el,
                              "wakeups_per_s": d["vol"] / el}
            data[hb].append(row)
    srv.p.execute("ALTER SYSTEM RESET rr_router.heartbeat_interval")
    srv.p.execute("SELECT pg_reload_conf()")

    out = {}
    for hb, rows in data.items():
        el = sum(r["elapsed_s"] for r in rows)
        o = {"seconds": el, "wal_bytes": sum(r["wal_bytes"] for r in rows)}
        o["wal_bytes_per_hour"] = o["wal_bytes"] / el * 3600
        for k in ["primary_worker", "replica_worker", "startup", "walsender", "walreceiver"]:
            vals = [r[k] for r in rows if k in r]
            if vals:
                o[k] = {"pct": statistics.fmean(v["pct"] for v in vals),
                        "pct_max_window": max(v["pct"] for v in vals),
                        "pct_ticks": statistics.fmean(v["pct_ticks"] for v in vals),
                        "wakeups_per_s": statistics.fmean(v["wakeups_per_s"] for v in vals)}
        out[hb] = o
    res["idle"] = {"windows": data, "summary": out}


def report_idle(res):
    d = res["idle"]["summary"]
    lines = ["## Idle cost", "",
             f"No client activity; {CFG['idle_rounds']} window(s) of {CFG['idle_window_s']:.0f} s per "
             "setting, settings interleaved. CPU from /proc/<pid>/schedstat (on-CPU ns); "
             "utime+stime from /proc/<pid>/stat in brackets (10 ms ticks). Wake-ups = voluntary "
             "context switches per second.", ""]
    rows = []
    for hb in ("1s", "0"):
        o = d[hb]
        for k, label in (("primary_worker", "primary worker"), ("replica_worker", "replica worker"),
                         ("walsender", "walsender"), ("startup", "replica startup"),
                         ("walreceiver", "walreceiver")):
            if k in o:
                rows.append([f"heartbeat_interval={hb}", label,
                             f"{o[k]['pct']:.3f} % ({o[k]['pct_ticks']:.2f} %)",
                             f"{o[k]['pct_max_window']:.3f} %", f"{o[k]['wakeups_per_s']:.1f}"])
    lines.append(md_table(["setting", "process", "CPU, % of a core (ticks)", "worst window",
                           "wake-ups/s"], rows))
    on, off = d["1s"]["wal_bytes_per_hour"], d["0"]["wal_bytes_per_hour"]
    lines += ["", md_table(["setting", "WAL bytes measured", "over s", "WAL per hour"],
                           [["heartbeat_interval=1s", str(d["1s"]["wal_bytes"]), d["1s"]["seconds"],
                             f"{on / 1024:.0f} KiB"],
                            ["heartbeat_interval=0 (baseline)", str(d["0"]["wal_bytes"]),
                             d["0"]["seconds"], f"{off / 1024:.0f} KiB"]]),
              "", f"Heartbeat cost: {(on - off) / 1024:.0f} KiB of WAL per hour "
                  f"({(on - off) / 3600:.0f} bytes per heartbeat at 1/s)."]
    return "\n".join(lines)


# ================================================================ read-your-writes

RYW_BASE_VARIANTS = ["busy_poll", "poll_1ms", "poll_10ms", "rr_wait", "rr_wait_token", "rr_wait+read"]
# PostgreSQL 19's own WAIT FOR LSN, measured beside rr_wait_for_lsn in the
# same rounds when the replica runs 19 or later.
RYW_CORE_VARIANTS = ["waitfor", "waitfor+read"]
RYW_VARIANTS = list(RYW_BASE_VARIANTS)
RYW_LABELS = {
    "busy_poll": "(a) busy-poll `pg_last_wal_replay_lsn() >= token` (floor)",
    "poll_1ms": "(b) poll every 1 ms",
    "poll_10ms": "(b) poll every 10 ms",
    "rr_wait": "(c) `SELECT rr_wait_for_lsn(token, 5000)`",
    "rr_wait_token": "(c\") `SELECT rr_wait_for_token('TLI:LSN', 5000)`",
    "rr_wait+read": "(c') rr_wait_for_lsn + the read in one message",
    "waitfor": "(d) core `WAIT FOR LSN 'token' WITH (TIMEOUT '5s', NO_THROW)` (19)",
    "waitfor+read": "(d') WAIT FOR LSN + the read in one message (19)",
}


def ryw_variants(srv):
    """The ryw variants for this replica: the base five, plus core's WAIT
    FOR LSN on 19 and later; BENCH_RYW_VARIANTS narrows the set (busy_poll,
    poll_1ms, rr_wait and rr_wait+read are always kept: the goals need them)."""
    vs = list(RYW_BASE_VARIANTS)
    if int(srv.rq("SHOW server_version_num")[0]) >= 190000:
        vs += RYW_CORE_VARIANTS
    want = os.environ.get("BENCH_RYW_VARIANTS", "").replace(",", " ").split()
    if want:
        vs = [v for v in vs if v in want or v in ("busy_poll", "poll_1ms", "rr_wait", "rr_wait+read")]
    return vs


def waitfor_sql(tok):
    """PostgreSQL 19's WAIT FOR LSN for a token, with the same 5 s budget as
    the rr_wait_for_lsn variants; NO_THROW, so a timeout is a status, not an
    error.  The LSN is a string literal in its grammar, never a parameter."""
    if not LSN_RE.fullmatch(str(tok)):
        raise ValueError(f"not an LSN: {tok!r}")
    return f"WAIT FOR LSN '{tok}' WITH (TIMEOUT '5s', NO_THROW)"


def bench_ryw(srv, res):
    """The ryw rounds once per recovery_min_apply_delay of
    BENCH_RYW_APPLY_DELAY_MS: 0 is the read-your-writes case the goals judge
    (res["ryw"]); with a delay every wait sleeps until replay applies the
    commit, so the wake-up path itself is what differs (res["ryw_delayed"])."""
    RYW_VARIANTS[:] = ryw_variants(srv)
    for delay_ms in CFG["ryw_apply_delays"]:
        srv.r.execute(f"ALTER SYSTEM SET recovery_min_apply_delay = {int(delay_ms)}")
        srv.r.execute("SELECT pg_reload_conf()")
        time.sleep(0.5)
        srv.catch_up()
        out = ryw_once(srv, delay_ms)
        if delay_ms == 0 and "ryw" not in res:
            res["ryw"] = out
        else:
            res.setdefault("ryw_delayed", {})[str(delay_ms)] = out
    srv.r.execute("ALTER SYSTEM RESET recovery_min_apply_delay")
    srv.r.execute("SELECT pg_reload_conf()")
    time.sleep(0.5)
    srv.catch_up()


def ryw_once(srv, delay_ms):
    R = CFG["ryw_rounds"]
    log(f"ryw: {R} rounds x {len(RYW_VARIANTS)} variants, recovery_min_apply_delay {delay_ms} ms")
    p = psycopg.connect(srv.primary_dsn, autocommit=True,
                        options="-c rr_router.report_commit_lsn=on")
    r = psycopg.connect(srv.replica_dsn, autocommit=True)
    poll_sql = "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn"
    wait_sql = "SELECT rr_wait_for_lsn(%s::pg_lsn, 5000)"
    token_sql = "SELECT rr_wait_for_token(%s, 5000)"
    read_sql = "SELECT v FROM bench_kv WHERE k = 0"
    rng = random.Random(CFG["seed"] + 1)
    data = {v: {"confirm_ms": [], "read_ms": [], "rt_confirm": [], "rt_total": [],
                "stale": 0, "failed": 0} for v in RYW_VARIANTS}
    sleeps = []
    gap = CFG["ryw_gap_ms"] / 1000
    c0 = srv.wait_counters()
    # warm up: prepared statements, caches
    for _ in range(10):
        p.execute("UPDATE bench_kv SET v = v + 1 WHERE k = 0 RETURNING v")
        r.execute(poll_sql, ("0/0",))
        r.execute(wait_sql, ("0/0",))
        if "waitfor" in RYW_VARIANTS:
            r.execute(waitfor_sql("0/0"))
        r.execute(read_sql)
    c0 = srv.wait_counters()
    for _ in range(R):
        order = list(RYW_VARIANTS)
        rng.shuffle(order)
        for var in order:
            time.sleep(gap)
            val = p.execute("UPDATE bench_kv SET v = v + 1 WHERE k = 0 RETURNING v").fetchone()[0]
            t0 = time.perf_counter()
            tok = p.info.parameter_status("rr_router.last_commit_lsn")
            rts = 0
            ok = True
            if var in ("rr_wait+read", "waitfor+read"):
                if var == "rr_wait+read":
                    cur = r.execute(f"SELECT rr_wait_for_lsn({lsn_literal(tok)}, 5000); {read_sql}")
                else:
                    cur = r.execute(f"{waitfor_sql(tok)}; {read_sql}")
                t1 = t2 = time.perf_counter()
                ok = cur.fetchone()[0] in (True, "success")
                cur.nextset()
                got = cur.fetchone()[0]
                rts = 1
                total = 1
            else:
                if var == "rr_wait":
                    ok = r.execute(wait_sql, (tok,)).fetchone()[0]
                    rts = 1
                elif var == "rr_wait_token":
                    ttok = p.info.parameter_status("rr_router.last_commit_token")
                    ok = r.execute(token_sql, (ttok,)).fetchone()[0]
                    rts = 1
                elif var == "waitfor":
                    ok = r.execute(waitfor_sql(tok)).fetchone()[0] == "success"
                    rts = 1
                else:
                    interval = {"busy_poll": 0, "poll_1ms": 0.001, "poll_10ms": 0.010}[var]
                    while True:
                        rts += 1
                        if r.execute(poll_sql, (tok,)).fetchone()[0]:
                            break
                        if time.perf_counter() - t0 > 5:
                            ok = False
                            break
                        if interval:
                            ts = time.perf_counter()
                            time.sleep(interval)
                            sleeps.append((interval, time.perf_counter() - ts))
                t1 = time.perf_counter()
                got = r.execute(read_sql).fetchone()[0]
                t2 = time.perf_counter()
                total = rts + 1
            d = data[var]
            if not ok:
                d["failed"] += 1
                continue
            if got < val:
                d["stale"] += 1
            d["confirm_ms"].append((t1 - t0) * 1e3)
            d["read_ms"].append((t2 - t0) * 1e3)
            d["rt_confirm"].append(rts)
            d["rt_total"].append(total)
    c1 = srv.wait_counters()
    p.close()
    r.close()
    out = {}
    for var, d in data.items():
        out[var] = {"confirm": summary(d["confirm_ms"]), "confirmed_read": summary(d["read_ms"]),
                    "rt_confirm_mean": statistics.fmean(d["rt_confirm"]) if d["rt_confirm"] else None,
                    "rt_total_mean": statistics.fmean(d["rt_total"]) if d["rt_total"] else None,
                    "rt_confirm_max": max(d["rt_confirm"]) if d["rt_confirm"] else None,
                    "stale_reads": d["stale"], "failed": d["failed"]}
    sl = {}
    for iv in (0.001, 0.010):
        xs = [a * 1e3 for i, a in sleeps if i == iv]
        if xs:
            sl[f"{iv * 1e3:.0f}ms"] = summary(xs)
    return {"variants": out, "rr_counters": counters_delta(c0, c1), "actual_sleep_ms": sl,
            "apply_delay_ms": delay_ms, "samples": {v: data[v]["confirm_ms"] for v in RYW_VARIANTS}}


def report_ryw(res):
    d = res["ryw"]["variants"]
    lines = ["## Read-your-writes latency", "",
             f"{CFG['ryw_rounds']} rounds; in each, every variant once in a random order: one "
             "UPDATE on the primary (autocommit, token from the `rr_router.last_commit_lsn` "
             "ParameterStatus, no extra round trip), then the variant on the replica. Latency from "
             "the moment the commit returns to the client until the replica confirms the token; "
             "\"confirmed read\" adds the read of the written row that follows. Every read was "
             "checked against the written value (stale column). Client: one thread, psycopg 3 "
             "(pure-Python libpq wrapper), loopback.", "",
             "Confirm latency, ms:", ""]
    rows = []
    for var in RYW_VARIANTS:
        o = d[var]
        c = o["confirm"]
        rows.append([RYW_LABELS[var], c.get("n"), c.get("p50"), c.get("p90"), c.get("p99"),
                     c.get("max"), f"{o['rt_confirm_mean']:.2f}" if o["rt_confirm_mean"] else "–",
                     f"{o['rt_total_mean']:.2f}" if o["rt_total_mean"] else "–",
                     str(o["stale_reads"]), str(o["failed"])])
    lines.append(md_table(["variant", "n", "p50", "p90", "p99", "max", "round trips to confirm",
                           "round trips per read (incl. the read)", "stale", "timed out"], rows))
    lines += ["", "Time to a confirmed read (commit returned -> read result in hand), ms:", ""]
    rows = []
    for var in RYW_VARIANTS:
        c = d[var]["confirmed_read"]
        rows.append([RYW_LABELS[var], c.get("p50"), c.get("p90"), c.get("p99"), c.get("max")])
    lines.append(md_table(["variant", "p50", "p90", "p99", "max"], rows))
    b, p1, rr = d["busy_poll"]["confirm"], d["poll_1ms"]["confirm"], d["rr_wait"]["confirm"]
    cnt = res["ryw"]["rr_counters"]
    lines += ["", "Ratios (same run):", "",
              f"- rr_wait p50 / busy-poll p50 = **{fmt(ratio(rr['p50'], b['p50']))}** "
              f"(goal <= {GOALS['p50_vs_floor']})",
              f"- rr_wait p90 / 1 ms polling p90 = **{fmt(ratio(rr['p90'], p1['p90']))}** "
              f"(goal <= {GOALS['p90_vs_poll1']})",
              f"- rr_wait p99 / busy-poll p99 = {fmt(ratio(rr['p99'], b['p99']))}",
              ]
    if "waitfor" in d:
        wf = d["waitfor"]["confirm"]
        lines += [f"- WAIT FOR LSN p50 / busy-poll p50 = **{fmt(ratio(wf['p50'], b['p50']))}**, "
                  f"p99 / busy-poll p99 = {fmt(ratio(wf['p99'], b['p99']))}",
                  f"- rr_wait / WAIT FOR LSN: p50 **{fmt(ratio(rr['p50'], wf['p50']))}**, "
                  f"p90 {fmt(ratio(rr['p90'], wf['p90']))}, p99 {fmt(ratio(rr['p99'], wf['p99']))}"]
        if "rr_wait+read" in d and "waitfor+read" in d:
            a, c = d["rr_wait+read"]["confirm"], d["waitfor+read"]["confirm"]
            lines.append(f"- one message each, wait + read: rr / WAIT FOR p50 "
                         f"{fmt(ratio(a['p50'], c['p50']))}, p99 {fmt(ratio(a['p99'], c['p99']))}")
    lines += [
              f"- rr_wait_for_lsn calls during this section (rr_status): {cnt['waits']:.0f}, of which "
              f"waited (slept or spun) and were woken {cnt['woken']:.0f}, answered at once {cnt['immediate']:.0f}, "
              f"timed out {cnt['timed_out']:.0f}; server-side mean {cnt['time_total_ms'] / max(cnt['waits'], 1):.3f} ms."]
    sl = res["ryw"]["actual_sleep_ms"]
    if sl:
        lines.append("- Client sleeps actually lasted: " + ", ".join(
            f"{k}: p50 {v['p50']:.3f} ms" for k, v in sl.items()))
    return "\n".join(lines)


def report_ryw_delayed(res):
    lines = ["## Read-your-writes with an apply delay: the wake-up path", "",
             "The same rounds with `recovery_min_apply_delay` on the replica: every wait (and "
             "every poll) is sent before replay applies the commit, so each wait sleeps and is "
             "woken by replay; the delay is in every variant alike. Confirm latency, ms:", ""]
    for dkey, run in res["ryw_delayed"].items():
        d = run["variants"]
        b = d["busy_poll"]["confirm"]
        rows = []
        for var in RYW_VARIANTS:
            if var not in d:
                continue
            c = d[var]["confirm"]
            rows.append([RYW_LABELS[var], c.get("n"), c.get("p50"), c.get("p90"), c.get("p99"),
                         c.get("max"), fmt(ratio(c["p50"], b["p50"])), fmt(ratio(c["p99"], b["p99"])),
                         str(d[var]["stale_reads"]), str(d[var]["failed"])])
        cnt = run["rr_counters"]
        lines += [f"Apply delay {dkey} ms (rr_wait_for_lsn calls slept and woken: "
                  f"{cnt['woken']:.0f} of {cnt['waits']:.0f}):", "",
                  md_table(["variant", "n", "p50", "p90", "p99", "max", "p50 / floor", "p99 / floor",
                            "stale", "timed out"], rows), ""]
        if "waitfor" in d:
            rr, wf = d["rr_wait"]["confirm"], d["waitfor"]["confirm"]
            lines += [f"- rr_wait / WAIT FOR LSN: p50 **{fmt(ratio(rr['p50'], wf['p50']))}**, "
                      f"p90 {fmt(ratio(rr['p90'], wf['p90']))}, p99 {fmt(ratio(rr['p99'], wf['p99']))}", ""]
    return "\n".join(lines)


# ================================================================ herd

HERD_LOCK_KEY = 4242


async def bench_herd(srv, sessions, res):
    sizes, R = CFG["herd_sizes"], CFG["herd_rounds"]
    sizes = [n for n in sizes if n <= len(sessions)]
    kinds = ["rr", "lock"]
    log(f"herd: {R} rounds x sizes {sizes} x {{rr_wait_for_lsn, advisory lock}}")
    rng = random.Random(CFG["seed"] + 2)
    ctl_p = await psycopg.AsyncConnection.connect(srv.primary_dsn, autocommit=True)
    ctl_r = await psycopg.AsyncConnection.connect(srv.replica_dsn, autocommit=True)
    data = {(k, n): {"lat_ms": [], "rel_ms": [], "first_ms": [], "spread_ms": [], "discarded": 0,
                     "timeouts": 0, "cpu_us_per_wake": []} for k in kinds for n in sizes}

    async def park_rr(s, target):
        # One simple-protocol message: the wait, then the clock read as soon
        # as it returns, with no client round trip in between.
        cur = await s.r.execute(f"SELECT rr_wait_for_lsn({lsn_literal(target)}, 10000); "
                                "SELECT clock_timestamp()")
        (w,), (t,) = await results(cur)
        return w[0], t[0]

    async def park_lock(s):
        cur = await s.r.execute(f"SELECT pg_advisory_lock_shared({HERD_LOCK_KEY}); "
                                "SELECT clock_timestamp(); "
                                f"SELECT pg_advisory_unlock_shared({HERD_LOCK_KEY})")
        _, (t,), _ = await results(cur)
        return True, t[0]

    async def parked(sql, n):
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            cur = await ctl_r.execute(sql)
            if (await cur.fetchone())[0] >= n:
                return True
            await asyncio.sleep(0.002)
        return False

    # warm-up: every backend plans and caches both messages once
    for s in sessions[:max(sizes)]:
        await park_rr(s, "0/0")
        await park_lock(s)
    for rnd in range(R):
        order = [(k, n) for k in kinds for n in sizes]
        rng.shuffle(order)
        for kind, n in order:
            d = data[(kind, n)]
            if kind == "rr":
                cur = await ctl_p.execute("SELECT pg_current_wal_insert_lsn()")
                target = lsn_str(lsn_int(str((await cur.fetchone())[0])) + 1200)
                tasks = [asyncio.create_task(park_rr(s, target)) for s in sessions[:n]]
                await parked("SELECT count(*) FROM rr_waiters", n)
                cpu0 = snap([s.r_pid for s in sessions[:n]])
                cur = await ctl_p.execute(
                    "INSERT INTO bench_herd (pad) VALUES (repeat('x', 1800)) RETURNING t")
                t_ref = (await cur.fetchone())[0]
            else:
                await ctl_r.execute(f"SELECT pg_advisory_lock({HERD_LOCK_KEY})")
                tasks = [asyncio.create_task(park_lock(s)) for s in sessions[:n]]
                await parked("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND "
                             f"objid = {HERD_LOCK_KEY} AND NOT granted", n)
                cpu0 = snap([s.r_pid for s in sessions[:n]])
                cur = await ctl_r.execute("SELECT clock_timestamp(); "
                                          f"SELECT pg_advisory_unlock({HERD_LOCK_KEY})")
                t_ref = (await cur.fetchone())[0]
            got = await asyncio.gather(*tasks)
            cpu = cpu_delta(cpu0, snap([s.r_pid for s in sessions[:n]]))
            d["cpu_us_per_wake"].append(cpu["cpu_s"] * 1e6 / n)
            if not all(ok for ok, _ in got):
                d["timeouts"] += 1
                continue
            lats = [(tw - t_ref).total_seconds() * 1e3 for _, tw in got]
            if min(lats) < 0:
                d["discarded"] += 1   # something else reached the target first
                continue
            first = min(lats)
            d["lat_ms"].extend(lats)
            d["rel_ms"].extend(x - first for x in lats)
            d["first_ms"].append(first)
            d["spread_ms"].append(max(lats) - first)
            await asyncio.sleep(0.05)
    await ctl_p.close()
    await ctl_r.close()
    res["herd"] = {f"{k}:{n}": {"kind": k, "n": n, "wake": summary(d["lat_ms"]),
                                "after_first": summary(d["rel_ms"]), "first": summary(d["first_ms"]),
                                "spread": summary(d["spread_ms"]), "discarded": d["discarded"],
                                "cpu_us_per_wake": statistics.median(d["cpu_us_per_wake"])
                                if d["cpu_us_per_wake"] else None,
                                "timeouts": d["timeouts"]}
                   for (k, n), d in data.items()}


def report_herd(res):
    d = res["herd"]
    lines = ["## Wake latency of parked waiters (herd)", "",
             f"{CFG['herd_rounds']} rounds; in each, every (mechanism, N) pair once in random order. "
             "**rr_wait_for_lsn**: N replica sessions each send one simple-protocol message "
             "`SELECT rr_wait_for_lsn(T, 10000); SELECT clock_timestamp()` for a target T 1200 bytes "
             "past the primary's insert position; once `rr_waiters` shows all N parked, one INSERT on "
             "the primary (a 1.8 kB row whose WAL record crosses T) stamps `clock_timestamp()` into "
             "the row. Latency = each waiter's clock_timestamp() (taken the moment its wait returned) "
             "− the primary's stamp. Both servers share one clock, and no client scheduling is in the "
             "number; it includes the commit, WAL send/receive, replay and the wake-up. "
             "**advisory lock (baseline)**: the same N backends instead block in "
             "`pg_advisory_lock_shared()` behind a lock a control session holds on the replica; "
             "latency from `clock_timestamp()` just before the control session's unlock. That is "
             "PostgreSQL's own lock manager releasing a herd (ProcLockWakeup → SetLatch): what this "
             "machine can do for N simultaneous wake-ups.", ""]
    rows = []
    for key, o in d.items():
        w, r = o["wake"], o["after_first"]
        label = "rr_wait_for_lsn" if o["kind"] == "rr" else "advisory lock (baseline)"
        rows.append([label, str(o["n"]), w.get("n"), w.get("p50"), w.get("p90"), w.get("p99"),
                     w.get("max"), o["first"].get("p50"), r.get("p50"), r.get("p99"),
                     o["cpu_us_per_wake"],
                     o["cpu_us_per_wake"] * o["n"] / os.cpu_count() / 1000 if o["cpu_us_per_wake"] else None,
                     f"{o['discarded']}/{o['timeouts']}"])
    rows.sort(key=lambda x: (int(x[1]), x[0]))
    lines.append(md_table(["mechanism", "N", "wake-ups", "p50 ms", "p90 ms", "p99 ms", "max ms",
                           "first waiter p50 ms", "after first: p50 ms", "after first: p99 ms",
                           "backend CPU per wake-up µs", "N × that / cores, ms",
                           "rounds discarded/timed out"], rows))
    lines += ["", "\"backend CPU per wake-up\": on-CPU time of the N backends from the trigger until all "
              "answered, divided by N (returning from the wait, sending its result, running "
              "`SELECT clock_timestamp()`). \"N × that / cores\" is the least time the last of them can "
              "need on this machine, whatever the wake-up mechanism."]
    return "\n".join(lines)


# ================================================================ parked waiters

async def bench_parked(srv, sessions, res):
    n = min(max(CFG["herd_sizes"]), len(sessions))
    R, W, rate = CFG["parked_rounds"], CFG["parked_window_s"], CFG["parked_commit_rate"]
    log(f"parked: {R} round(s) x {{{n} waiters parked, none}} x {W:.0f} s, "
        f"background commits at ~{rate}/s")
    rng = random.Random(CFG["seed"] + 7)
    bg = await psycopg.AsyncConnection.connect(srv.primary_dsn, autocommit=True)
    active = sessions[:n]
    agg = {v: {"seconds": 0.0, "commits": 0, "cpu": {}, "woken": 0.0, "waits": 0.0}
           for v in ("parked", "none")}

    async def background(stop_at, box):
        while time.monotonic() < stop_at:
            await bg.execute("UPDATE bench_kv SET v = v + 1 WHERE k = 0")
            box[0] += 1
            await asyncio.sleep(1.0 / rate)

    async def park(s, target):
        try:
            await s.r.execute(f"SELECT rr_wait_for_lsn({lsn_literal(target)}, 60000)")
            return "returned"
        except psycopg.errors.QueryCanceled:
            return "cancelled"

    for _ in range(R):
        order = ["parked", "none"]
        rng.shuffle(order)
        for v in order:
            A = agg[v]
            tasks = []
            if v == "parked":
                cur = srv.pq("SELECT pg_current_wal_insert_lsn()")
                target = lsn_str(lsn_int(str(cur[0])) + (1 << 40))   # never reached
                tasks = [asyncio.create_task(park(s, target)) for s in active]
                deadline = time.monotonic() + 30
                while srv.rq("SELECT count(*) FROM rr_waiters")[0] < n and time.monotonic() < deadline:
                    await asyncio.sleep(0.01)
            pids = srv.pids()
            groups = {"replica_worker": [pids["replica_worker"]], "startup": [pids["startup"]],
                      "backends": [s.r_pid for s in active]}
            before = {g: snap(p) for g, p in groups.items()}
            c0 = srv.wait_counters()
            box = [0]
            t0 = time.monotonic()
            await background(t0 + W, box)
            el = time.monotonic() - t0
            c1 = srv.wait_counters()
            after = {g: snap(p) for g, p in groups.items()}
            if tasks:
                srv.r.execute("SELECT count(pg_cancel_backend(pid)) FROM rr_waiters")
                outcome = await asyncio.gather(*tasks)
                A["not_cancelled"] = A.get("not_cancelled", 0) + sum(o != "cancelled" for o in outcome)
                A["left_in_queue"] = srv.rq("SELECT count(*) FROM rr_waiters")[0]
            A["seconds"] += el
            A["commits"] += box[0]
            A["woken"] += c1["woken"] - c0["woken"]
            for g in groups:
                d = cpu_delta(before[g], after[g])
                acc = A["cpu"].setdefault(g, {"cpu_s": 0.0, "vol": 0})
                acc["cpu_s"] += d["cpu_s"]
                acc["vol"] += d["vol"]
            await asyncio.sleep(0.3)
    await bg.close()
    out = {"waiters": n}
    for v, A in agg.items():
        el = A["seconds"]
        out[v] = {"seconds": el, "commits_per_s": A["commits"] / el,
                  "woken_during_window": A["woken"],
                  "worker_pct": 100 * A["cpu"]["replica_worker"]["cpu_s"] / el,
                  "worker_wakeups_per_s": A["cpu"]["replica_worker"]["vol"] / el,
                  "startup_pct": 100 * A["cpu"]["startup"]["cpu_s"] / el,
                  "startup_us_per_commit": 1e6 * A["cpu"]["startup"]["cpu_s"] / max(A["commits"], 1),
                  "backends_pct": 100 * A["cpu"]["backends"]["cpu_s"] / el,
                  "backend_wakeups_per_waiter_s": A["cpu"]["backends"]["vol"] / el / n,
                  "not_cancelled": A.get("not_cancelled", 0),
                  "left_in_queue": A.get("left_in_queue", 0)}
    res["parked"] = out


def report_parked(res):
    d = res["parked"]
    n = d["waiters"]
    lines = [f"## {n} parked waiters: what they cost while they wait", "",
             f"{CFG['parked_rounds']} round(s) of {CFG['parked_window_s']:.0f} s, interleaved with the same "
             f"window without waiters. {n} sessions wait on the replica for a target that is never "
             f"reached, while one client commits about {CFG['parked_commit_rate']} small UPDATEs per "
             "second on the primary so replay keeps moving. At the end of the window they are "
             "released with `pg_cancel_backend()` (the cancel path: every one must leave "
             "`rr_waiters`). CPU in % of one core; a backend wake-up is a voluntary context "
             "switch.", ""]
    rows = []
    for v, label in (("parked", f"{n} waiters parked"), ("none", "no waiters (baseline)")):
        o = d[v]
        rows.append([label, o["commits_per_s"], o["worker_pct"], o.get("worker_wakeups_per_s"),
                     o["startup_pct"],
                     o["startup_us_per_commit"], o["backends_pct"], o["backend_wakeups_per_waiter_s"],
                     f"{o['woken_during_window']:.0f}"])
    lines.append(md_table(["", "commits/s replayed", "replica worker %", "worker wake-ups/s", "startup %",
                           "startup CPU µs per commit", "the N backends %",
                           "wake-ups per waiter per s", "waits woken in the window"], rows))
    p = d["parked"]
    lines += ["", f"After the cancel: {p['left_in_queue']} entries left in `rr_waiters`, "
              f"{p['not_cancelled']} waits that did not end by the cancel."]
    return "\n".join(lines)


# ================================================================ scaling

# Second statement of the scaling loop's message: milliseconds since the
# server received the message, i.e. how long the wait before it took.
SRV_ELAPSED_SQL = ("SELECT (extract(epoch FROM clock_timestamp() - statement_timestamp())"
                   " * 1000)::float8")


async def write_wait_read(s, stop_at, a, timeout_ms, table="bench_kv"):
    """Loop until stop_at: UPDATE on the primary, then one message to the
    replica with the wait, the server-side elapsed time and the read."""
    while time.monotonic() < stop_at:
        val, tok = await write(s, table)
        t0 = time.perf_counter()
        cur = await s.r.execute(
            f"SELECT rr_wait_for_lsn({lsn_literal(tok)}, {int(timeout_ms)}); {SRV_ELAPSED_SQL}; "
            f"SELECT v FROM {table} WHERE k = {int(s.key)}")
        (w,), (e,), (g,) = await results(cur)
        t1 = time.perf_counter()
        ok, srv_ms, got = w[0], e[0], g[0]
        if not ok:
            # false before the timeout: replay held up by a recovery conflict
            # (or the kill switch); at the timeout: replay did not get there
            a["timeouts" if srv_ms >= 0.9 * timeout_ms else "false_early"] += 1
        elif got < val:
            a["stale"] += 1
        a["srv_wait_ms"].append(srv_ms)
        a["cli_ms"].append((t1 - t0) * 1e3)
        a["loops"] += 1

async def bench_scaling(srv, sessions, res):
    levels, R, D = CFG["scale_sessions"], CFG["scale_rounds"], CFG["scale_round_s"]
    levels = [n for n in levels if n <= len(sessions)]
    log(f"scaling: {R} round(s) x levels {levels} x {D:.0f} s")
    rng = random.Random(CFG["seed"] + 3)
    agg = {n: {"loops": 0, "elapsed": 0.0, "srv_wait_ms": [], "cli_ms": [], "stale": 0,
               "timeouts": 0, "false_early": 0, "cpu": {}, "counters": [], "client_cpu_s": 0.0,
               "machine_busy": []} for n in levels}

    for rnd in range(R):
        order = list(levels)
        rng.shuffle(order)
        for n in order:
            active = sessions[:n]
            pids = srv.pids()
            groups = {
                "replica_worker": [pids["replica_worker"]],
                "primary_worker": [pids["primary_worker"]],
                "startup": [pids["startup"]],
                "walreceiver": [pids["walreceiver"]],
                "walsender": [pids["walsender"]],
                "replica_backends": [s.r_pid for s in active],
                "primary_backends": [s.p_pid for s in active],
            }
            before = {g: snap(v) for g, v in groups.items()}
            c0 = srv.wait_counters()
            ct0 = os.times()
            mb0 = machine_busy()
            a = {"loops": 0, "srv_wait_ms": [], "cli_ms": [], "stale": 0, "timeouts": 0,
                 "false_early": 0}
            t0 = time.monotonic()
            await asyncio.gather(*(write_wait_read(s, t0 + D, a, 5000) for s in active))
            el = time.monotonic() - t0
            ct1 = os.times()
            mb1 = machine_busy()
            c1 = srv.wait_counters()
            after = {g: snap(v) for g, v in groups.items()}
            A = agg[n]
            A["loops"] += a["loops"]
            A["elapsed"] += el
            A["srv_wait_ms"] += a["srv_wait_ms"]
            A["cli_ms"] += a["cli_ms"]
            A["stale"] += a["stale"]
            A["timeouts"] += a["timeouts"]
            A["false_early"] += a["false_early"]
            A["client_cpu_s"] += (ct1.user - ct0.user) + (ct1.system - ct0.system)
            A["machine_busy"].append((mb1[0] - mb0[0]) / max(mb1[1] - mb0[1], 1))
            A["counters"].append(counters_delta(c0, c1))
            for g in groups:
                dlt = cpu_delta(before[g], after[g])
                acc = A["cpu"].setdefault(g, {"cpu_s": 0.0, "cpu_s_ticks": 0.0, "vol": 0, "invol": 0})
                for k in acc:
                    acc[k] += dlt[k]
            await asyncio.sleep(0.5)

    out = {}
    for n, A in agg.items():
        el = A["elapsed"]
        cnt = {k: sum(c[k] for c in A["counters"]) for k in A["counters"][0] if k != "time_max_ms"}
        cnt["time_max_ms"] = max(c["time_max_ms"] for c in A["counters"])
        cpu = {g: {"pct": 100 * v["cpu_s"] / el, "pct_ticks": 100 * v["cpu_s_ticks"] / el,
                   "vol": v["vol"], "invol": v["invol"]} for g, v in A["cpu"].items()}
        batches = A["cpu"]["startup"]["vol"]
        loops = A["loops"]
        out[str(n)] = {
            "sessions": n, "loops": loops, "seconds": el, "loops_per_s": loops / el,
            "srv_wait": summary(A["srv_wait_ms"]), "client_wait_read": summary(A["cli_ms"]),
            "stale": A["stale"], "timeouts": A["timeouts"], "false_early": A["false_early"],
            "cpu": cpu, "counters": cnt,
            "client_cpu_pct": 100 * A["client_cpu_s"] / el,
            "machine_busy_pct": 100 * statistics.fmean(A["machine_busy"]),
            "startup_sleeps": batches,
            "woken_per_batch": cnt["woken"] / batches if batches else None,
            "loops_per_batch": loops / batches if batches else None,
            "backend_cpu_us_per_loop": 1e6 * A["cpu"]["replica_backends"]["cpu_s"] / loops if loops else None,
            "backend_switches_per_loop": A["cpu"]["replica_backends"]["vol"] / loops if loops else None,
        }
    res["scaling"] = out


def report_scaling(res):
    d = res["scaling"]
    lines = ["## Scaling: N sessions looping write → wait → read", "",
             f"{CFG['scale_rounds']} round(s) of {CFG['scale_round_s']:.0f} s per level, levels in random "
             "order per round. Each session: UPDATE its own row on the primary (token from "
             "ParameterStatus), then one simple-protocol message to the replica: "
             "`SELECT rr_wait_for_lsn(token, 5000); SELECT clock_timestamp() - statement_timestamp(); "
             "SELECT v FROM bench_kv WHERE k = ...` (the read is checked against the written value; "
             "\"false early\" = the wait answered false before its timeout, which it does while replay "
             "is held up by a recovery conflict). "
             "\"server wait\" = that second statement's result: time from the server receiving the "
             "message to the wait returning, on the server's clock, without client scheduling. "
             "\"client\" = the message's round trip seen by the Python client, including the read. "
             "One Python process (asyncio, psycopg) drives all sessions and competes for the same "
             "2 cores; past ~10 sessions the machine is saturated, so latency there is queueing.", "",
             "Throughput and latency:", ""]
    rows = []
    for n, o in d.items():
        sw, cw = o["srv_wait"], o["client_wait_read"]
        rows.append([n, o["loops_per_s"], sw.get("p50"), sw.get("p90"), sw.get("p99"), sw.get("max"),
                     cw.get("p50"), cw.get("p99"),
                     f"{o['stale']}/{o['timeouts']}/{o.get('false_early', 0)}",
                     f"{o['client_cpu_pct']:.0f} %", f"{o['machine_busy_pct']:.0f} %"])
    lines.append(md_table(["sessions", "loops/s", "server wait p50 ms", "p90", "p99", "max",
                           "client wait+read p50 ms", "p99", "stale/timed out/false early",
                           "client CPU (of a core)", "machine busy (both cores)"], rows))
    lines += ["", "CPU, % of one core (on-CPU time from schedstat; utime+stime ticks in brackets):", ""]
    rows = []
    for n, o in d.items():
        c = o["cpu"]

        def cell(g):
            return f"{c[g]['pct']:.2f} ({c[g]['pct_ticks']:.1f})" if g in c else "–"
        rows.append([n, cell("replica_worker"), cell("primary_worker"), cell("startup"),
                     cell("walreceiver"), cell("replica_backends"), cell("primary_backends"),
                     f"{o['backend_cpu_us_per_loop']:.0f}" if o["backend_cpu_us_per_loop"] else "–"])
    lines.append(md_table(["sessions", "replica worker", "primary worker", "startup", "walreceiver",
                           "replica backends (all N)", "primary backends (all N)",
                           "replica backend CPU µs per loop"], rows))
    lines += ["", "Wake-ups (rr_status counters over the rounds; a replayed batch ≈ one sleep of the "
              "startup process waiting for WAL, from its voluntary context switches):", ""]
    rows = []
    for n, o in d.items():
        c = o["counters"]
        rows.append([n, f"{c['waits']:.0f}", f"{c['woken']:.0f}", f"{c['immediate']:.0f}",
                     f"{c['timed_out']:.0f}", str(o["startup_sleeps"]),
                     fmt(o["loops_per_batch"]), fmt(o["woken_per_batch"]),
                     fmt(o["backend_switches_per_loop"]),
                     fmt(c["time_total_ms"] / c["waits"]) if c["waits"] else "–"])
    lines.append(md_table(["sessions", "waits", "woken", "immediate", "timed out", "replay batches",
                           "commits per batch", "wake-ups per batch", "backend sleeps per loop",
                           "server mean wait ms (rr_status)"], rows))
    return "\n".join(lines)


# ================================================================ recovery conflicts

def set_feedback(srv, on):
    """Switch hot_standby_feedback on the replica and wait until the primary's
    slot shows it (an xmin while on, none while off)."""
    srv.r.execute(f"ALTER SYSTEM SET hot_standby_feedback = {'on' if on else 'off'}")
    srv.r.execute("SELECT pg_reload_conf()")
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        x = srv.pq("SELECT xmin IS NOT NULL FROM pg_replication_slots WHERE slot_name = 'bench_replica'")
        if x and x[0] == on:
            return True
        time.sleep(0.1)
    return False


def set_log_threshold(srv, ms):
    """deadlock_timeout on the replica: the startup process logs a recovery
    conflict wait (log_recovery_conflict_waits) once it has lasted this long,
    and how long it lasted in all when it ends.  None puts the default back."""
    if ms is None:
        srv.r.execute("ALTER SYSTEM RESET deadlock_timeout")
    else:
        srv.r.execute(f"ALTER SYSTEM SET deadlock_timeout = '{int(ms)}ms'")
    srv.r.execute("SELECT pg_reload_conf()")
    time.sleep(0.3)


LOG_WAIT_RE = re.compile(r"recovery (still|finished) waiting after ([0-9.]+) ms: "
                         r"recovery conflict on ([a-z ]+)")
LOG_PIDS_RE = re.compile(r"DETAIL:\s+Conflicting process(?:es)?: ([0-9, ]+)\.")


def read_log(path, pos):
    if not path:
        return ""
    with open(path, errors="replace") as f:
        f.seek(pos)
        return f.read()


def log_size(path):
    return os.path.getsize(path) if path else 0


def conflict_waits(text):
    """The startup process's recovery-conflict waits in a stretch of the
    replica's log: [{kind, pids, finished_ms}], one per wait that lasted
    longer than deadlock_timeout ('still waiting' with the conflicting
    processes, then 'finished waiting after' with the whole duration;
    finished_ms is None if the wait had not ended)."""
    events, lines = [], text.splitlines()
    for i, line in enumerate(lines):
        m = LOG_WAIT_RE.search(line)
        if not m:
            continue
        state, ms, kind = m.group(1), float(m.group(2)), m.group(3).strip()
        if state == "still":
            pids = []
            if i + 1 < len(lines):
                d = LOG_PIDS_RE.search(lines[i + 1])
                if d:
                    pids = [int(p) for p in d.group(1).replace(" ", "").split(",") if p]
            events.append({"kind": kind, "pids": pids, "finished_ms": None})
        else:
            for e in reversed(events):
                if e["kind"] == kind and e["finished_ms"] is None:
                    e["finished_ms"] = ms
                    break
    return events


def conflict_scenario(srv, variant, replica_log):
    """One run of the deterministic reproduction (hot_standby_feedback is off).

    Replay is paused; on the primary a row of bench_hot is updated, VACUUM
    prunes the old versions (a Heap2/PRUNE record whose latestRemovedXid is
    that update), and one more commit yields the token T, after the prune.
    W sends a statement whose argument takes 1 s, holding the statement's
    snapshot (taken before replay reached the update) for that long:
      variant "wait":    SELECT rr_wait_for_lsn((SELECT T FROM pg_sleep(1)), timeout)
      variant "control": SELECT (SELECT T FROM pg_sleep(1))   -- the same snapshot, no wait
    Replay is resumed 0.3 s into it: the startup process reaches the prune,
    finds W in conflict and waits for W's transaction to end.  In the "wait"
    variant W's transaction then lasts as long as its wait; the previous
    build (af3d51c) waited for replay, which waited for W, until the timeout.
    The "control" variant is what W's snapshot alone costs.  V, another
    session, runs a plain SELECT rr_wait_for_lsn(T, timeout) right after the
    resume: what an unrelated waiter gets.  A poller (its first snapshot 20 ms
    after the resume, when the prune is replayed, so it is not in conflict)
    sees when replay passes T.  From then on, a prober commits on the primary
    and waits for each commit on the replica for BENCH_CONFLICT_PROBE_S:
    any false there came after replay had resumed."""
    tmo = CFG["conflict_proof_timeout_ms"]
    probe_s = CFG["conflict_probe_s"]
    out = {"variant": variant}
    conns = {k: psycopg.connect(srv.replica_dsn, autocommit=True) for k in ("W", "V", "poll", "probe")}
    probe_p = psycopg.connect(srv.primary_dsn, autocommit=True,
                              options="-c rr_router.report_commit_lsn=on")
    for c in conns.values():
        c.execute("SELECT rr_wait_for_lsn('0/0'::pg_lsn, 0)").fetchone()
    w_pid, v_pid = conns["W"].info.backend_pid, conns["V"].info.backend_pid
    pos = log_size(replica_log)
    box, marks = {}, {}
    try:
        srv.r.execute("SELECT pg_wal_replay_pause()")
        deadline = time.monotonic() + 10
        while srv.rq("SELECT pg_get_wal_replay_pause_state()")[0] != "paused":
            if time.monotonic() > deadline:
                raise RuntimeError("replay did not pause")
            time.sleep(0.05)
        for _ in range(3):
            srv.p.execute("UPDATE bench_hot SET v = v + 1 WHERE k = 0")
        srv.p.execute("VACUUM bench_hot")
        srv.p.execute("UPDATE bench_kv SET v = v + 1 WHERE k = 0")
        token = str(srv.pq("SELECT rr_last_commit_lsn()")[0])
        T = lsn_literal(token)

        def run(name, sql):
            marks[name + "_start"] = time.monotonic()
            try:
                r = conns[name].execute(sql).fetchone()[0]
            except psycopg.Error as e:
                r = f"error: {e.sqlstate}"
            box[name] = (r, time.monotonic())

        def poll():
            t = marks["resume"] + 0.02
            while time.monotonic() < t:
                time.sleep(0.002)
            stop = time.monotonic() + 15
            while time.monotonic() < stop:
                if conns["poll"].execute(f"SELECT pg_last_wal_replay_lsn() >= {T}").fetchone()[0]:
                    marks["replayed"] = time.monotonic()
                    return
                time.sleep(0.002)

        w_sql = (f"SELECT rr_wait_for_lsn((SELECT {T} FROM pg_sleep(1)), {tmo})" if variant == "wait"
                 else f"SELECT (SELECT {T} FROM pg_sleep(1))")
        tw = threading.Thread(target=run, args=("W", w_sql))
        tv = threading.Thread(target=run, args=("V", f"SELECT rr_wait_for_lsn({T}, {tmo})"))
        tp = threading.Thread(target=poll)
        tw.start()
        time.sleep(0.3)
        marks["resume"] = time.monotonic()
        srv.r.execute("SELECT pg_wal_replay_resume()")
        tv.start()
        tp.start()
        tp.join()
        probes = []
        if "replayed" in marks:
            stop = marks["replayed"] + probe_s
            while time.monotonic() < stop:
                probe_p.execute("UPDATE bench_kv SET v = v + 1 WHERE k = 1")
                tok = probe_p.info.parameter_status("rr_router.last_commit_lsn")
                t0 = time.monotonic()
                ok = conns["probe"].execute(f"SELECT rr_wait_for_lsn({lsn_literal(tok)}, 1000)").fetchone()[0]
                probes.append((t0 - marks["replayed"], ok, time.monotonic() - t0))
                time.sleep(0.003)
        tw.join()
        tv.join()
        srv.catch_up()
    finally:
        if srv.rq("SELECT pg_get_wal_replay_pause_state()")[0] != "not paused":
            srv.r.execute("SELECT pg_wal_replay_resume()")
        for c in conns.values():
            c.close()
        probe_p.close()
    rs = marks["resume"]
    w_res = "T" if str(box["W"][0]) == token else str(box["W"][0])   # the control returns T
    out["W"] = {"pid": w_pid, "result": w_res, "after_resume_s": box["W"][1] - rs,
                "after_argument_s": box["W"][1] - marks["W_start"] - 1.0}
    out["V"] = {"pid": v_pid, "result": str(box["V"][0]), "seconds": box["V"][1] - marks["V_start"]}
    out["replayed_after_resume_s"] = marks["replayed"] - rs if "replayed" in marks else None
    false_after = [p for p in probes if not p[1]]
    out["probe"] = {"n": len(probes), "false": len(false_after),
                    "last_false_ms": 1000 * max(p[0] for p in false_after) if false_after else None,
                    "false_ms": [round(1000 * p[0], 1) for p in false_after]}
    events = conflict_waits(read_log(replica_log, pos))
    out["log_events"] = events
    on_w = [e for e in events if w_pid in e["pids"]]
    out["log_names_W"] = bool(on_w)
    out["log_names_V"] = any(v_pid in e["pids"] for e in events)
    out["startup_wait_ms"] = on_w[0]["finished_ms"] if on_w else None
    return out


async def bench_conflict(srv, sessions, res, replica_log):
    n = min(CFG["conflict_sessions"], len(sessions))
    active = sessions[:n]
    R, D, tmo = CFG["conflict_rounds"], CFG["conflict_round_s"], CFG["conflict_timeout_ms"]
    thr = CFG["conflict_log_ms"]
    log(f"conflict: {n} sessions, {R} round(s) x hot_standby_feedback {{off, on}} x {D:.0f} s, "
        f"wait timeout {tmo} ms, conflict waits logged after {thr} ms")
    rng = random.Random(CFG["seed"] + 6)
    session_pids = {s.r_pid for s in active}
    agg = {v: {"loops": 0, "seconds": 0.0, "timeouts": 0, "false_early": 0, "stale": 0,
               "srv_wait_ms": [], "events": [], "feedback_ok": True}
           for v in ("off", "on")}
    set_log_threshold(srv, thr)
    try:
        for _ in range(R):
            order = ["off", "on"]
            rng.shuffle(order)
            for v in order:
                A = agg[v]
                A["feedback_ok"] &= set_feedback(srv, v == "on")
                await asyncio.sleep(0.5)
                pos = log_size(replica_log)
                a = {"loops": 0, "srv_wait_ms": [], "cli_ms": [], "stale": 0, "timeouts": 0,
                     "false_early": 0}
                t0 = time.monotonic()
                await asyncio.gather(*(write_wait_read(s, t0 + D, a, tmo, "bench_hot") for s in active))
                A["seconds"] += time.monotonic() - t0
                for k in ("loops", "timeouts", "false_early", "stale"):
                    A[k] += a[k]
                A["srv_wait_ms"] += a["srv_wait_ms"]
                await asyncio.sleep(0.3)
                A["events"] += conflict_waits(read_log(replica_log, pos))
        log(f"conflict: deterministic reproduction, {CFG['conflict_proof_rounds']} round(s) x "
            f"{{wait, control}}, waits of {CFG['conflict_proof_timeout_ms']} ms")
        proof_feedback_off = set_feedback(srv, False)
        runs = []
        for _ in range(CFG["conflict_proof_rounds"]):
            order = ["wait", "control"]
            rng.shuffle(order)
            for variant in order:
                runs.append(conflict_scenario(srv, variant, replica_log))
                time.sleep(0.3)
    finally:
        set_feedback(srv, True)
        set_log_threshold(srv, None)

    def loop_summary(A):
        ev = A["events"]
        on_s = [e for e in ev if session_pids & set(e["pids"])]
        durs = [e["finished_ms"] for e in ev if e["finished_ms"] is not None]
        durs_s = [e["finished_ms"] for e in on_s if e["finished_ms"] is not None]
        kinds = {}
        for e in ev:
            kinds[e["kind"]] = kinds.get(e["kind"], 0) + 1
        return {"loops_per_s": A["loops"] / A["seconds"], "loops": A["loops"],
                "timeouts": A["timeouts"], "false_early": A["false_early"], "stale": A["stale"],
                "srv_wait": summary(A["srv_wait_ms"]),
                "conflict_waits_logged": len(ev), "conflict_kinds": kinds,
                "conflict_waits_naming_waiters": len(on_s),
                "longest_conflict_wait_ms": max(durs) if durs else None,
                "longest_naming_waiters_ms": max(durs_s) if durs_s else None,
                "unfinished": sum(e["finished_ms"] is None for e in ev),
                "feedback_switch_confirmed": A["feedback_ok"], "log_parsed": bool(replica_log)}

    out = {v: loop_summary(A) for v, A in agg.items()}
    proof = {"runs": runs, "feedback_off_confirmed": proof_feedback_off}
    for variant in ("wait", "control"):
        rv = [r for r in runs if r["variant"] == variant]

        def med(xs):
            xs = [x for x in xs if x is not None]
            return statistics.median(xs) if xs else None
        proof[variant] = {
            "rounds": len(rv),
            "replayed_after_resume_s": med([r["replayed_after_resume_s"] for r in rv]),
            "startup_wait_ms": med([r["startup_wait_ms"] for r in rv]),
            "W_after_resume_s": med([r["W"]["after_resume_s"] for r in rv]),
            "W_after_argument_s": med([r["W"]["after_argument_s"] for r in rv]),
            "W_results": sorted({r["W"]["result"] for r in rv}),
            "V_s": med([r["V"]["seconds"] for r in rv]),
            "V_results": sorted({r["V"]["result"] for r in rv}),
            "log_names_W": sum(r["log_names_W"] for r in rv),
            "probe_false": sum(r["probe"]["false"] for r in rv),
            "probe_n": sum(r["probe"]["n"] for r in rv),
            "probe_last_false_ms": max((r["probe"]["last_false_ms"] for r in rv
                                        if r["probe"]["last_false_ms"] is not None), default=None),
        }
    w, c = proof["wait"], proof["control"]
    proof["extra_hold_s"] = (w["replayed_after_resume_s"] - c["replayed_after_resume_s"]
                             if w["replayed_after_resume_s"] is not None
                             and c["replayed_after_resume_s"] is not None else None)
    out["proof"] = proof
    res["conflict"] = out


def report_conflict(res):
    d = res["conflict"]
    thr = CFG["conflict_log_ms"]
    lines = ["## Recovery conflicts: hot_standby_feedback off vs on", "",
             f"{CFG['conflict_sessions']} sessions run the scaling loop on a small hot table "
             "(`bench_hot`, all rows on one or two pages, so that page pruning on the primary removes "
             "row versions other sessions' replica snapshots may still see; UPDATE own row → "
             f"`rr_wait_for_lsn(token, {CFG['conflict_timeout_ms']})` → read, the wait first in its "
             "own implicit transaction, as the README prescribes) with the replica's "
             f"hot_standby_feedback off and on, {CFG['conflict_rounds']} interleaved round(s) of "
             f"{CFG['conflict_round_s']:.0f} s each. The rest of this benchmark runs with it on. "
             "A wait answers `false` before its timeout while the worker sees replay held up by a "
             "recovery conflict (\"false early\"), and at its timeout if replay did not get there. "
             f"For this section the replica's `deadlock_timeout` is {thr} ms, so that "
             "`log_recovery_conflict_waits` logs every conflict wait of the startup process longer "
             f"than {thr} ms, with the processes it waits for and, when it ends, its whole duration.",
             ""]
    rows = []
    for v in ("off", "on"):
        o = d[v]
        w = o["srv_wait"]
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(o["conflict_kinds"].items())) or "none"
        rows.append([f"hot_standby_feedback = {v}", o["loops_per_s"], w.get("p50"), w.get("p99"),
                     w.get("max"), f"{o['timeouts']} / {o['false_early']} of {o['loops']}",
                     f"{o['conflict_waits_logged']} ({kinds})" if o["log_parsed"] else "–",
                     fmt(o["longest_conflict_wait_ms"]),
                     f"{o['conflict_waits_naming_waiters']}, longest "
                     f"{fmt(o['longest_naming_waiters_ms'])} ms" if o["log_parsed"] else "–"])
    lines.append(md_table(["replica setting", "loops/s", "server wait p50 ms", "p99 ms", "max ms",
                           "waits timed out / false early", f"conflict waits > {thr} ms (kind)",
                           "longest ms", "of them naming a waiting session"], rows))
    p = d.get("proof")
    if p and p.get("runs"):
        tmo = CFG["conflict_proof_timeout_ms"]
        lines += ["", "**Deterministic reproduction** (feedback off; see `conflict_scenario()` in bench.py): "
                  "replay paused; on the primary an UPDATE of `bench_hot`, a VACUUM that prunes its old "
                  "row versions, one more commit whose end is the token T. Session W sends a statement "
                  "whose argument takes 1 s, holding the statement's snapshot (older than the prune) "
                  "for that long, and replay is resumed 0.3 s into it, so the startup process must "
                  "wait for W's transaction to end before it can replay the prune. **wait**: "
                  f"`SELECT rr_wait_for_lsn((SELECT T FROM pg_sleep(1)), {tmo})`; **control**: "
                  "`SELECT (SELECT T FROM pg_sleep(1))`, the same snapshot held as long, without a "
                  "wait — what W's snapshot costs by itself. V, another session, sends a plain "
                  f"`SELECT rr_wait_for_lsn(T, {tmo})` right after the resume. A poller on a third "
                  "session sees when replay passes T; from then on, for "
                  f"{CFG['conflict_probe_s']:g} s, a prober commits on the primary and waits for each "
                  "commit on the replica (1 s timeout): a `false` there came after replay had resumed. "
                  f"{CFG['conflict_proof_rounds']} round(s) of each variant, in random order; medians.",
                  ""]
        rows = []
        for variant, label in (("wait", "wait: W waits, its argument holding the snapshot 1 s"),
                               ("control", "control: W holds the same snapshot 1 s, no wait")):
            o = p[variant]
            rows.append([label, o["replayed_after_resume_s"], fmt(o["startup_wait_ms"]),
                         f"{'/'.join(o['W_results'])} at {fmt(o['W_after_resume_s'])} s "
                         f"({fmt(o['W_after_argument_s'])} s after its argument)",
                         f"{'/'.join(o['V_results'])} after {fmt(o['V_s'])} s",
                         f"{o['probe_false']} of {o['probe_n']}" +
                         (f", the last {fmt(o['probe_last_false_ms'])} ms after" if o["probe_last_false_ms"]
                          is not None else ""),
                         f"{o['log_names_W']} of {o['rounds']}"])
        lines.append(md_table(["variant", "replay reached T, s after the resume",
                               "startup's conflict wait (log), ms", "W answered (s after the resume)",
                               "V (plain waiter) answered", "waits after replay resumed: false",
                               "log names W"], rows))
        if p.get("extra_hold_s") is not None:
            x = p["extra_hold_s"]
            lines += ["", f"Replay held up by the wait beyond what W's snapshot alone costs: "
                      f"**{0.0 if abs(x) < 0.0005 else x:.3f} s** (median of wait − median of control)."]
        lines += ["", "Each round:", ""]
        rows = []
        for r in p["runs"]:
            rows.append([r["variant"], r["replayed_after_resume_s"], fmt(r["startup_wait_ms"]),
                         f"{r['W']['result']} at {fmt(r['W']['after_resume_s'])} s",
                         f"{r['V']['result']} after {fmt(r['V']['seconds'])} s",
                         f"{r['probe']['false']} of {r['probe']['n']}"
                         + (f" (at {', '.join(str(x) for x in r['probe']['false_ms'][:8])} ms)"
                            if r["probe"]["false"] else ""),
                         "; ".join(f"{e['kind']} {fmt(e['finished_ms'])} ms"
                                   + (" (W)" if r["W"]["pid"] in e["pids"] else "")
                                   + (" (V)" if r["V"]["pid"] in e["pids"] else "")
                                   for e in r["log_events"]) or "none"])
        lines.append(md_table(["variant", "T replayed, s after resume", "startup's wait for W, ms",
                               "W", "V", "waits after replay resumed: false", "conflict waits logged"],
                              rows))
    return "\n".join(lines)


# ================================================================ mixed workload

POLICIES = ["replica_unchecked", "rails_2s", "tokens"]
POLICY_LABELS = {
    "replica_unchecked": "every read to the replica, no check (control)",
    "rails_2s": "primary for 2 s after a write (Rails' default)",
    "tokens": "causality token: rr_wait_for_lsn + the read in one message to the replica",
}


async def bench_mixed(srv, sessions, res):
    n = min(CFG["mixed_sessions"], len(sessions))
    active = sessions[:n]
    R, W, M = CFG["mixed_rounds"], CFG["mixed_warmup_s"], CFG["mixed_measure_s"]
    wp = CFG["mixed_write_pct"] / 100
    log(f"mixed: {n} sessions, scenarios (think ms:apply delay ms) {CFG['mixed_scenarios']}, {R} round(s) x "
        f"{len(POLICIES)} policies x ({W} s warm-up + {M} s measured)")
    rng = random.Random(CFG["seed"] + 4)
    read_sql = "SELECT v FROM bench_kv WHERE k = %s"
    delay = CFG["rails_delay_s"]
    tmo = CFG["wait_timeout_ms"]
    out = {}

    async def run(s, policy, think, t_meas, t_end, a, srng):
        cur = await s.p.execute(read_sql, (s.key,))
        last_val = (await cur.fetchone())[0]
        last_write = None
        token = None
        while True:
            now = time.monotonic()
            if now >= t_end:
                break
            counted = now >= t_meas
            if srng.random() < wp:
                last_val, token = await write(s)
                last_write = time.monotonic()
                if counted:
                    a["writes"] += 1
            else:
                t0 = time.perf_counter()
                rts = 1
                if policy == "replica_unchecked":
                    cur = await s.r.execute(read_sql, (s.key,))
                    got, where = (await cur.fetchone())[0], "replica"
                elif policy == "rails_2s":
                    if last_write is not None and time.monotonic() - last_write < delay:
                        cur = await s.p.execute(read_sql, (s.key,))
                        got, where = (await cur.fetchone())[0], "primary"
                    else:
                        cur = await s.r.execute(read_sql, (s.key,))
                        got, where = (await cur.fetchone())[0], "replica"
                else:
                    if token is not None:
                        tw0 = time.perf_counter()
                        cur = await s.r.execute(
                            f"SELECT rr_wait_for_lsn({lsn_literal(token)}, {int(tmo)}); "
                            f"SELECT v FROM bench_kv WHERE k = {int(s.key)}")
                        (w,), (g,) = await results(cur)
                        ok, got = w[0], g[0]
                        if counted:
                            a["waits"] += 1
                        if ok:
                            token = None   # confirmed: later reads need no wait
                            where = "replica"
                        else:
                            if counted:
                                a["wait_timeouts"] += 1
                                if time.perf_counter() - tw0 < 0.9 * tmo / 1000:
                                    a["wait_false_early"] += 1
                            cur = await s.p.execute(read_sql, (s.key,))
                            got, where = (await cur.fetchone())[0], "primary"
                            rts = 2
                    else:
                        cur = await s.r.execute(read_sql, (s.key,))
                        got, where = (await cur.fetchone())[0], "replica"
                if counted:
                    a["reads"] += 1
                    a["rts"] += rts
                    a["read_ms"].append((time.perf_counter() - t0) * 1e3)
                    if where == "primary":
                        a["to_primary"] += 1
                    if got < last_val:
                        a["stale"] += 1
            if think > 0:
                await asyncio.sleep(srng.expovariate(1000.0 / think))

    for scen in CFG["mixed_scenarios"]:
        think, delay_ms = (float(x) for x in scen.split(":"))
        srv.r.execute(f"ALTER SYSTEM SET recovery_min_apply_delay = {int(delay_ms)}")
        srv.r.execute("SELECT pg_reload_conf()")
        warm = max(W, delay_ms / 1000 + 1.0)
        agg = {pol: {"reads": 0, "writes": 0, "to_primary": 0, "stale": 0, "rts": 0, "waits": 0,
                     "wait_timeouts": 0, "wait_false_early": 0, "read_ms": [], "seconds": 0.0}
               for pol in POLICIES}
        for rnd in range(R):
            order = list(POLICIES)
            rng.shuffle(order)
            for pol in order:
                a = agg[pol]
                t0 = time.monotonic()
                t_meas, t_end = t0 + warm, t0 + warm + M
                await asyncio.gather(*(run(s, pol, think, t_meas, t_end, a,
                                           random.Random(rng.random())) for s in active))
                a["seconds"] += M
                await asyncio.sleep(0.3)
        o = {}
        for pol, a in agg.items():
            o[pol] = {"reads": a["reads"], "writes": a["writes"],
                      "ops_per_s": (a["reads"] + a["writes"]) / a["seconds"],
                      "to_primary": a["to_primary"], "to_primary_pct": 100 * a["to_primary"] / max(a["reads"], 1),
                      "stale": a["stale"], "stale_pct": 100 * a["stale"] / max(a["reads"], 1),
                      "round_trips_per_read": a["rts"] / max(a["reads"], 1),
                      "waits": a["waits"], "wait_timeouts": a["wait_timeouts"],
                      "wait_false_early": a["wait_false_early"],
                      "read_ms": summary(a["read_ms"])}
        out[f"{think:g}:{delay_ms:g}"] = {"think_ms": think, "apply_delay_ms": delay_ms,
                                          "warmup_s": warm, "policies": o}
    srv.r.execute("ALTER SYSTEM RESET recovery_min_apply_delay")
    srv.r.execute("SELECT pg_reload_conf()")
    srv.catch_up()
    res["mixed"] = out


def report_mixed(res):
    lines = ["## Mixed workload: Rails' 2-second rule vs causality tokens", "",
             f"{CFG['mixed_sessions']} sessions, {CFG['mixed_write_pct']:.0f} % writes (UPDATE of the "
             "session's own row, autocommit), the rest reads of that row. A read is stale if it "
             "returns less than the session's last written value. Policies interleaved in rounds "
             f"({CFG['mixed_rounds']} per policy and scenario; each round starts with a warm-up, "
             f"max({CFG['mixed_warmup_s']} s, apply delay + 1 s), so that the 2-second window and the "
             f"lag are in steady state, then {CFG['mixed_measure_s']} s are counted). **Tokens**: the "
             "first read after a write sends `SELECT rr_wait_for_lsn(token, "
             f"{CFG['wait_timeout_ms']}); SELECT v ...` in one message (one round trip); on `false` it "
             "reads from the primary (a second round trip; in brackets the `false` answers that came "
             "before the timeout, i.e. while replay was held up by a recovery conflict); later reads "
             "go to the replica directly. "
             "Think time between a session's operations is exponential with the mean shown "
             "(0 = closed loop). Apply delay = `recovery_min_apply_delay` on the replica, to play a "
             "replica that is seconds behind.", ""]
    for key, sc in res["mixed"].items():
        lines += [f"Think time {sc['think_ms']:g} ms, apply delay {sc['apply_delay_ms']:g} ms:", ""]
        rows = []
        for pol in POLICIES:
            x = sc["policies"][pol]
            rows.append([POLICY_LABELS[pol], x["ops_per_s"], x["reads"],
                         f"{x['to_primary_pct']:.1f} %", f"{x['stale']} ({x['stale_pct']:.2f} %)",
                         f"{x['round_trips_per_read']:.3f}",
                         f"{x['waits']}/{x['wait_timeouts']} ({x.get('wait_false_early', 0)})"
                         if pol == "tokens" else "–",
                         x["read_ms"].get("p50"), x["read_ms"].get("p99")])
        lines.append(md_table(["policy", "ops/s", "reads", "reads sent to the primary", "stale reads",
                               "round trips per read", "waits/false (before the timeout)",
                               "read p50 ms", "read p99 ms"],
                              rows))
        lines.append("")
    return "\n".join(lines)


# ================================================================ pgbench

PGB_VARIANTS = {
    "select": "SELECT abalance FROM pgbench_accounts WHERE aid = :aid;\n",
    "select+fresh_inline": "SELECT abalance, rr_is_fresh() FROM pgbench_accounts WHERE aid = :aid;\n",
    "select;fresh": "SELECT abalance FROM pgbench_accounts WHERE aid = :aid;\nSELECT rr_is_fresh();\n",
    "select;select1": "SELECT abalance FROM pgbench_accounts WHERE aid = :aid;\nSELECT 1;\n",
}
PGB_LABELS = {
    "select": "`pgbench -S` script (baseline)",
    "select+fresh_inline": "same SELECT with `, rr_is_fresh()` in its target list",
    "select;fresh": "SELECT, then `SELECT rr_is_fresh();` (2 statements)",
    "select;select1": "SELECT, then `SELECT 1;` (control for the 2nd statement)",
}


def pgbench_mixed_run(args, conn_args, files, T, scale, C, J, mode):
    """One pgbench run with every script at once (equal weights): all of them
    see the same moment's noise.  Returns per-script latencies (ms) from the
    per-transaction log."""
    prefix = os.path.join(args.workdir, "pgbench_mix")
    for f in os.listdir(args.workdir):
        if f.startswith("pgbench_mix."):
            os.unlink(os.path.join(args.workdir, f))
    names = list(files)
    cmd = [args.pgbench, "-n", "-M", mode, "-c", str(C), "-j", str(J), "-T", str(T),
           "-s", str(scale), "-l", "--log-prefix", prefix]
    for v in names:
        cmd += ["-f", files[v]]
    pr = subprocess.run(cmd + conn_args, capture_output=True, text=True, cwd=args.workdir)
    if pr.returncode != 0:
        raise RuntimeError(f"pgbench failed: {pr.stdout}\n{pr.stderr}")
    lat = {v: [] for v in names}
    for f in os.listdir(args.workdir):
        if not f.startswith("pgbench_mix."):
            continue
        with open(os.path.join(args.workdir, f)) as fh:
            for line in fh:
                p = line.split()
                # client_id transaction_no time script_no time_epoch time_us
                if len(p) >= 4 and p[2].isdigit():
                    lat[names[int(p[3])]].append(int(p[2]) / 1000.0)
        os.unlink(os.path.join(args.workdir, f))
    return lat


def bench_pgbench(srv, args, res):
    scale, C, J = CFG["pgbench_scale"], CFG["pgbench_clients"], CFG["pgbench_threads"]
    T, R, mode = CFG["pgbench_round_s"], CFG["pgbench_rounds"], CFG["pgbench_mode"]
    log(f"pgbench: init scale {scale} on the primary")
    pconn = dict(x.split("=", 1) for x in srv.primary_dsn.split())
    rconn = dict(x.split("=", 1) for x in srv.replica_dsn.split())

    def conn_args(c):
        return ["-h", c["host"], "-p", c["port"], "-U", c["user"], c["dbname"]]

    subprocess.run([args.pgbench, "-i", "-q", "-I", "dtGvp", "-s", str(scale)] + conn_args(pconn),
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    srv.p.execute("CHECKPOINT")
    srv.catch_up()
    files = {}
    for v, body in PGB_VARIANTS.items():
        path = os.path.join(args.workdir, f"pgbench_{re.sub(r'[^a-z0-9]+', '_', v)}.sql")
        with open(path, "w") as f:
            f.write("\\set aid random(1, 100000 * :scale)\n" + body)
        files[v] = path
    fresh = srv.rq("SELECT rr_is_fresh(), rr_staleness()")

    # 1. separate runs, interleaved
    log(f"pgbench: {R} rounds x {len(files)} scripts x {T} s, -c {C} -j {J} -M {mode}, on the replica")
    rng = random.Random(CFG["seed"] + 5)
    tps = {v: [] for v in files}
    busy = {v: [] for v in files}
    rounds = []
    for rnd in range(R):
        order = list(files)
        rng.shuffle(order)
        row = {}
        for v in order:
            cmd = [args.pgbench, "-n", "-M", mode, "-c", str(C), "-j", str(J), "-T", str(T),
                   "-s", str(scale), "-f", files[v]] + conn_args(rconn)
            mb0 = machine_busy()
            pr = subprocess.run(cmd, capture_output=True, text=True)
            mb1 = machine_busy()
            m = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", pr.stdout)
            if pr.returncode != 0 or not m:
                raise RuntimeError(f"pgbench failed: {pr.stdout}\n{pr.stderr}")
            tps[v].append(float(m.group(1)))
            busy[v].append((mb1[0] - mb0[0]) / max(mb1[1] - mb0[1], 1))
            row[v] = float(m.group(1))
        rounds.append(row)
    med = {v: statistics.median(x) for v, x in tps.items()}
    paired = {
        "inline_vs_select": [r["select+fresh_inline"] / r["select"] for r in rounds],
        "stmt_vs_select": [r["select;fresh"] / r["select"] for r in rounds],
        "stmt_vs_select1": [r["select;fresh"] / r["select;select1"] for r in rounds],
        "select1_vs_select": [r["select;select1"] / r["select"] for r in rounds],
    }

    # 2. all scripts in one run: transaction-level interleaving
    TM = CFG["pgbench_mixed_s"]
    log(f"pgbench: one {TM} s run with all {len(files)} scripts mixed (per-transaction log)")
    lat = pgbench_mixed_run(args, conn_args(rconn), files, TM, scale, C, J, mode)
    def trimmed_mean(x, cut=0.05):
        x = sorted(x)
        k = int(len(x) * cut)
        x = x[k:len(x) - k] if len(x) > 2 * k else x
        return statistics.fmean(x) if x else None

    mixed = {v: {"n": len(x), "mean": statistics.fmean(x) if x else None,
                 "median": statistics.median(x) if x else None,
                 "trimmed": trimmed_mean(x)} for v, x in lat.items()}

    def lat_ratio(a, b, key):
        # throughput ratio a/b implied by the latency ratio (closed loop)
        return mixed[b][key] / mixed[a][key] if mixed[a][key] and mixed[b][key] else None

    mixed_ratio = {}
    for key in ("mean", "median", "trimmed"):
        mixed_ratio[key] = {
            "inline_vs_select": lat_ratio("select+fresh_inline", "select", key),
            "stmt_vs_select1": lat_ratio("select;fresh", "select;select1", key),
            "stmt_vs_select": lat_ratio("select;fresh", "select", key),
        }

    # 3. the function alone: ns per call, server-side loop
    N = CFG["pgbench_micro_calls"]
    micro_sql = {
        "loop only": f"SELECT count(*) FROM generate_series(1, {N}) g WHERE g > 0",
        "rr_is_fresh()": f"SELECT count(*) FROM generate_series(1, {N}) g WHERE g > 0 AND rr_is_fresh()",
        "rr_staleness()": f"SELECT count(*) FROM generate_series(1, {N}) g WHERE g > 0 "
                          "AND rr_staleness() IS NOT NULL",
        "pg_is_in_recovery() (builtin, for scale)": f"SELECT count(*) FROM generate_series(1, {N}) g "
                                                    "WHERE g > 0 AND pg_is_in_recovery()",
        "clock_timestamp() (builtin, for scale)": f"SELECT count(*) FROM generate_series(1, {N}) g "
                                                  "WHERE g > 0 AND clock_timestamp() IS NOT NULL",
    }
    best = {k: None for k in micro_sql}
    for _ in range(CFG["pgbench_micro_rounds"]):
        order = list(micro_sql)
        rng.shuffle(order)
        for k in order:
            t0 = time.perf_counter()
            srv.r.execute(micro_sql[k]).fetchone()
            el = time.perf_counter() - t0
            best[k] = el if best[k] is None else min(best[k], el)
    ns = {k: (best[k] - best["loop only"]) / N * 1e9 for k in micro_sql if k != "loop only"}
    ncpu = os.cpu_count()
    cpu_us_per_tx = statistics.median(
        [b * ncpu / t * 1e6 for b, t in zip(busy["select"], tps["select"])])
    res["pgbench"] = {"tps": tps, "median_tps": med, "rounds": rounds, "machine_busy": busy,
                      "paired_ratio_median": {k: statistics.median(v) for k, v in paired.items()},
                      "paired_ratios": paired, "mixed_latency_ms": mixed, "mixed_ratio": mixed_ratio,
                      "micro_ns_per_call": ns, "micro_loop_s": best,
                      "cpu_us_per_select_tx": cpu_us_per_tx,
                      "fresh_at_start": [bool(fresh[0]), str(fresh[1])]}


def report_pgbench(res):
    d = res["pgbench"]
    med, pr, mr = d["median_tps"], d["paired_ratio_median"], d["mixed_ratio"]
    ns = d["micro_ns_per_call"]
    lines = ["## Freshness check cost: pgbench -S on the replica", "",
             f"pgbench scale {CFG['pgbench_scale']}, `-M {CFG['pgbench_mode']} -c {CFG['pgbench_clients']} "
             f"-j {CFG['pgbench_threads']}`, against the replica. Four scripts (each starts with "
             "`\\set aid random(1, 100000 * :scale)`), measured three ways.", "",
             f"**1. Separate runs** ({CFG['pgbench_rounds']} rounds × {CFG['pgbench_round_s']} s, scripts in "
             "random order in each round): tps.", ""]
    rows = []
    for v in PGB_VARIANTS:
        rows.append([PGB_LABELS[v], med[v], min(d["tps"][v]), max(d["tps"][v])])
    lines.append(md_table(["script", "median tps", "min", "max"], rows))
    lines += ["", "Paired ratios (median over rounds of the ratio within a round):", "",
              f"- inline `rr_is_fresh()` / baseline = **{pr['inline_vs_select']:.3f}** "
              f"(cost {100 * (1 - pr['inline_vs_select']):.1f} %; the rounds' ratios: "
              + ", ".join(f"{x:.2f}" for x in d["paired_ratios"]["inline_vs_select"]) + ")",
              f"- `SELECT rr_is_fresh();` as 2nd statement / `SELECT 1;` as 2nd statement = "
              f"**{pr['stmt_vs_select1']:.3f}** (cost {100 * (1 - pr['stmt_vs_select1']):.1f} %)",
              f"- `SELECT rr_is_fresh();` as 2nd statement / baseline = {pr['stmt_vs_select']:.3f} "
              f"(cost {100 * (1 - pr['stmt_vs_select']):.1f} %; `SELECT 1;` in its place costs "
              f"{100 * (1 - pr['select1_vs_select']):.1f} %: the price of a second statement, "
              "not of the function)", "",
              f"**2. One mixed run** ({CFG['pgbench_mixed_s']} s, all four scripts with equal weights in the "
              "same clients, so every script sees the same noise): per-script latency from pgbench's "
              "per-transaction log; in a closed loop the throughput ratio is the inverse latency ratio.",
              ""]
    rows = []
    for v in PGB_VARIANTS:
        m = d["mixed_latency_ms"][v]
        rows.append([PGB_LABELS[v], m["n"], m["trimmed"] * 1e3 if m["trimmed"] else None,
                     m["mean"] * 1e3 if m["mean"] else None,
                     m["median"] * 1e3 if m["median"] else None])
    lines.append(md_table(["script", "transactions", "5 %-trimmed mean latency µs", "mean µs",
                           "median µs"], rows))

    def cost(r):
        return f"{100 * (1 - r):+.1f} %".replace("+", "")

    lines += ["", "Estimator: the 5 %-trimmed mean (robust to the scheduling outliers that dominate the "
              "plain mean, and not quantized like the median of pgbench's whole-microsecond latencies).",
              "",
              f"- inline `rr_is_fresh()`: throughput ratio **{mr['trimmed']['inline_vs_select']:.3f}** "
              f"(cost {cost(mr['trimmed']['inline_vs_select'])}); by plain mean "
              f"{mr['mean']['inline_vs_select']:.3f}, by median {mr['median']['inline_vs_select']:.3f}",
              f"- `SELECT rr_is_fresh();` vs `SELECT 1;` as 2nd statement: "
              f"**{mr['trimmed']['stmt_vs_select1']:.3f}** (cost {cost(mr['trimmed']['stmt_vs_select1'])}); "
              f"by mean {mr['mean']['stmt_vs_select1']:.3f}, by median {mr['median']['stmt_vs_select1']:.3f}",
              ""]
    lines += [
              f"**3. The function alone** (replica, `SELECT count(*) FROM generate_series(1, "
              f"{CFG['pgbench_micro_calls']}) g WHERE g > 0 AND f()`, best of "
              f"{CFG['pgbench_micro_rounds']}, minus the loop without f):", ""]
    rows = [[k, v if v >= 1 else "< 1"] for k, v in ns.items()]
    lines.append(md_table(["function", "ns per call"], rows))
    lines += ["", f"A `pgbench -S` transaction costs about {d['cpu_us_per_select_tx']:.0f} µs of CPU on this "
              "machine (both cores' busy time / tps, server + pgbench), so one `rr_is_fresh()` call is "
              f"**{100 * ns['rr_is_fresh()'] / 1000 / d['cpu_us_per_select_tx']:.2f} %** of a transaction."]
    return "\n".join(lines)


# ================================================================ goals

def report_goals(res):
    rows = []

    def add(goal, value, met, note=""):
        rows.append([goal, value, "met" if met else ("MISSED" if met is not None else "n/a"), note])

    if "ryw" in res:
        d = res["ryw"]["variants"]
        b, p1, rr = d["busy_poll"]["confirm"], d["poll_1ms"]["confirm"], d["rr_wait"]["confirm"]
        r1 = ratio(rr["p50"], b["p50"])
        add(f"rr p50 within {GOALS['p50_vs_floor']}x of busy-poll floor",
            f"{rr['p50']:.3f} / {b['p50']:.3f} ms = {r1:.2f}x", r1 <= GOALS["p50_vs_floor"])
        r2 = ratio(rr["p90"], p1["p90"])
        add("rr p90 at most half of 1 ms polling p90",
            f"{rr['p90']:.3f} / {p1['p90']:.3f} ms = {r2:.2f}x", r2 <= GOALS["p90_vs_poll1"])
        rt = d["rr_wait"]["rt_confirm_max"]
        add("one round trip per read (wait)", f"max {rt} round trip(s) to confirm; "
            f"{d['rr_wait+read']['rt_total_mean']:.0f} including the read when both go in one message", rt == 1)
    if "herd" in res:
        n = max(o["n"] for o in res["herd"].values() if o["kind"] == "rr")
        h = res["herd"][f"rr:{n}"]
        lk = res["herd"].get(f"lock:{n}")
        note = "commit → waiter running, server clocks"
        if lk:
            note += (f"; PostgreSQL's own advisory-lock herd of {n} on the same machine: p99 "
                     f"{lk['wake']['p99']:.1f} ms")
        add(f"500 waiters: p99 wake latency < {GOALS['herd_p99_ms']} ms",
            f"N={n}: p99 {h['wake']['p99']:.2f} ms (first waiter p50 {h['first']['p50']:.2f} ms; "
            f"p99 after the first {h['after_first']['p99']:.2f} ms)",
            h["wake"]["p99"] < GOALS["herd_p99_ms"] if n >= 500 else None, note)
    if "parked" in res:
        p = res["parked"]
        n = p["waiters"]
        w = p["parked"]["worker_pct"]
        add(f"500 waiters: worker CPU < {GOALS['worker_busy_pct']} % of a core",
            f"N={n} parked: {w:.2f} % (none parked: {p['none']['worker_pct']:.2f} %)",
            w < GOALS["worker_busy_pct"] if n >= 500 else None,
            f"the parked waiters themselves: {p['parked']['backend_wakeups_per_waiter_s']:.2f} "
            "wake-ups per waiter per second")
    if "scaling" in res:
        n = max(int(k) for k in res["scaling"])
        sc = res["scaling"][str(n)]
        w = sc["cpu"]["replica_worker"]["pct"]
        add(f"(context) worker CPU during the {n}-session loop", f"{w:.2f} %", None)
        sw = sc["srv_wait"]
        add(f"(context) {n} sessions looping: server wait p99", f"{sw['p99']:.2f} ms", None,
            "mostly CPU queueing: the machine is saturated")
    if "conflict" in res:
        c = res["conflict"]
        off, on, pr = c["off"], c["on"], c.get("proof", {})
        w, ctl, extra = pr.get("wait", {}), pr.get("control", {}), pr.get("extra_hold_s")
        if extra is not None and abs(extra) < 0.0005:
            extra = 0.0
        measured = (f"reproduction: replay reached T {fmt(w.get('replayed_after_resume_s'))} s after the "
                    f"resume with the waiter, {fmt(ctl.get('replayed_after_resume_s'))} s with the same "
                    f"snapshot and no wait (extra {fmt(extra)} s); W answered "
                    f"{'/'.join(w.get('W_results', []))} {fmt(w.get('W_after_argument_s'))} s after its "
                    f"argument, plain waiter V {'/'.join(w.get('V_results', []))} after "
                    f"{fmt(w.get('V_s'))} s. Loop, feedback off: {off['timeouts']} of {off['loops']} "
                    f"waits timed out, {off['false_early']} false early, longest conflict wait naming a "
                    f"waiter {fmt(off['longest_naming_waiters_ms'])} ms")
        note = (f"waits after replay resumed that still answered false: {w.get('probe_false')} of "
                f"{w.get('probe_n')} (wait), {ctl.get('probe_false')} of {ctl.get('probe_n')} (control); "
                f"feedback on: {on['false_early']} of {on['loops']} loop waits false early")
        add("(spec §2) a waiting session never stalls replay for others", measured,
            extra is not None and extra <= 0.2 and off["timeouts"] == 0, note)
    if "idle" in res:
        o = res["idle"]["summary"]["1s"]
        worst = max(o["primary_worker"]["pct"], o["replica_worker"]["pct"])
        add(f"idle worker < {GOALS['worker_idle_pct']} % of a core",
            f"primary {o['primary_worker']['pct']:.3f} %, replica {o['replica_worker']['pct']:.3f} %",
            worst < GOALS["worker_idle_pct"])
    if "pgbench" in res:
        d = res["pgbench"]
        pr, mr = d["paired_ratio_median"], d["mixed_ratio"]["trimmed"]
        c_sep = 100 * (1 - pr["inline_vs_select"])
        c_mix = 100 * (1 - mr["inline_vs_select"])
        c_fn = 100 * d["micro_ns_per_call"]["rr_is_fresh()"] / 1000 / d["cpu_us_per_select_tx"]
        add(f"rr_is_fresh() < {GOALS['fresh_cost_pct']} % of pgbench -S tps",
            f"inline call: {c_mix:.1f} % (mixed run, trimmed-mean latency), {c_sep:.1f} % (separate runs); "
            f"function alone {d['micro_ns_per_call']['rr_is_fresh()']:.0f} ns = {c_fn:.2f} % of a transaction",
            c_mix < GOALS["fresh_cost_pct"] and c_fn < GOALS["fresh_cost_pct"],
            "separate runs are noise-limited here; see the pgbench section")
        c3 = 100 * (1 - pr["stmt_vs_select"])
        add("(context) `SELECT rr_is_fresh();` as an extra statement vs plain -S",
            f"{c3:.1f} % (`SELECT 1;` as the extra statement: {100 * (1 - pr['select1_vs_select']):.1f} %)",
            None, "the cost of a second statement, not of the function")
    return "## Goals\n\n" + md_table(["goal", "measured", "verdict", "note"], rows)


# ================================================================ main

def cpu_model():
    """The CPU's model name from /proc/cpuinfo, or "?"."""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "?"


def environment(srv, args):
    cpu = cpu_model()
    with open("/proc/meminfo") as f:
        mem_kb = int(f.readline().split()[1])
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "command": args.command,
        "quick": QUICK,
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "psycopg": psycopg.__version__,
        "libpq": psycopg.pq.version(),
        "server": srv.pq("SELECT version()")[0],
        "settings": {k: srv.pq("SELECT current_setting(%s)", (k,))[0] for k in (
            "fsync", "synchronous_commit", "max_connections", "shared_buffers",
            "rr_router.heartbeat_interval", "rr_router.sample_interval", "autovacuum")},
        "replica_settings": {k: srv.rq("SELECT current_setting(%s)", (k,))[0] for k in (
            "hot_standby_feedback", "max_standby_streaming_delay", "log_recovery_conflict_waits")},
        "extension": srv.pq("SELECT extversion FROM pg_extension WHERE extname = 'rr_router'")[0],
        "source_version": args.source_version,
        "config": CFG,
    }


def report_env(env, res):
    s = env["settings"]
    lines = ["# rr_router benchmark report", "",
             md_table(["", ""], [
                 ["date", env["date"]],
                 ["command", f"`{env['command']}`" + (" (QUICK smoke run)" if env["quick"] else "")],
                 ["machine", f"{env['nproc']} CPUs, {env['cpu']}, {env['memory_gib']} GiB RAM, "
                             f"Linux {env['kernel']}"],
                 ["server", env["server"]],
                 ["rr_router", f"{env['extension']} (source {env['source_version']})"],
                 ["client", f"Python {env['python']}, psycopg {env['psycopg']}, libpq {env['libpq']}"],
                 ["settings (both)", ", ".join(f"{k}={v}" for k, v in s.items())],
                 ["replica", ", ".join(f"{k}={v}" for k, v in env["replica_settings"].items())],
                 ["load average", f"start {res['load'][0]}, end {res['load'][-1]}"],
                 ["1-min load after each section", ", ".join(
                     f"{name} {load.split()[0]}" for name, load in res.get("load_by_section", []))],
                 ["duration", f"{res['duration_s']:.0f} s"],
             ])]
    return "\n".join(lines)


def setup_tables(srv, nkeys):
    srv.p.execute("DROP TABLE IF EXISTS bench_kv, bench_hot, bench_herd")
    # A few rows per page, so that sessions updating their own rows do not all
    # fight over the same buffer locks; room left for HOT updates.
    srv.p.execute("CREATE TABLE bench_kv (k integer PRIMARY KEY, v bigint NOT NULL, "
                  "pad char(200) NOT NULL DEFAULT '') WITH (fillfactor = 10)")
    srv.p.execute("INSERT INTO bench_kv SELECT g, 0 FROM generate_series(0, %s) g", (nkeys,))
    # The conflict section's table: every session's row on one or two pages,
    # as in a small, hot table (counters, sessions); page pruning there removes
    # row versions that replica snapshots of other sessions may still see.
    srv.p.execute("CREATE TABLE bench_hot (k integer PRIMARY KEY, v bigint NOT NULL) "
                  "WITH (fillfactor = 50)")
    srv.p.execute("INSERT INTO bench_hot SELECT g, 0 FROM generate_series(0, %s) g", (nkeys,))
    srv.p.execute("CREATE TABLE bench_herd (id bigserial PRIMARY KEY, "
                  "t timestamptz NOT NULL DEFAULT clock_timestamp(), pad text)")
    srv.p.execute("VACUUM ANALYZE bench_kv, bench_hot")
    srv.catch_up()


async def async_sections(srv, res, sections, replica_log):
    need = 0
    if "herd" in sections or "parked" in sections:
        need = max(need, max(CFG["herd_sizes"]))
    if "scaling" in sections:
        need = max(need, max(CFG["scale_sessions"]))
    if "mixed" in sections:
        need = max(need, CFG["mixed_sessions"])
    if "conflict" in sections:
        need = max(need, CFG["conflict_sessions"])
    if not need:
        return
    log(f"opening {need} sessions ({need} connections to each server)")
    t0 = time.monotonic()
    sessions = await open_sessions(srv, need, first_key=1)
    log(f"sessions open in {time.monotonic() - t0:.1f} s")
    try:
        if "herd" in sections:
            await bench_herd(srv, sessions, res)
            note_load(res, "herd")
        if "parked" in sections:
            await bench_parked(srv, sessions, res)
            note_load(res, "parked")
        if "scaling" in sections:
            await bench_scaling(srv, sessions, res)
            note_load(res, "scaling")
        if "mixed" in sections:
            await bench_mixed(srv, sessions, res)
            note_load(res, "mixed")
        if "conflict" in sections:
            await bench_conflict(srv, sessions, res, replica_log)
            note_load(res, "conflict")
    finally:
        await close_sessions(sessions)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--primary", required=True, help="libpq connection string of the primary")
    ap.add_argument("--replica", required=True, help="libpq connection string of the replica")
    ap.add_argument("--pgbench", default="/usr/lib/postgresql/15/bin/pgbench")
    ap.add_argument("--replica-log", help="the replica's server log (for recovery-conflict messages)")
    ap.add_argument("--source-version", default="unknown", help="git describe of the tree built")
    ap.add_argument("--workdir", default=".")
    ap.add_argument("--out", default=".")
    ap.add_argument("--command", default=" ".join(sys.argv))
    args = ap.parse_args()

    unknown = set(CFG["sections"]) - set(ALL_SECTIONS)
    if unknown:
        sys.exit(f"unknown section(s) in BENCH_SECTIONS: {', '.join(sorted(unknown))}")
    sections = [s for s in ALL_SECTIONS if s in CFG["sections"]]

    t_start = time.monotonic()
    srv = Servers(args.primary, args.replica)
    env = environment(srv, args)
    res = {"load": [loadavg()]}
    log(f"sections: {', '.join(sections)}{' (QUICK)' if QUICK else ''}")
    setup_tables(srv, max(CFG["scale_sessions"] + CFG["herd_sizes"] + [CFG["mixed_sessions"]]) + 1)

    if "idle" in sections:
        bench_idle(srv, res)
        note_load(res, "idle")
    if "ryw" in sections:
        bench_ryw(srv, res)
        note_load(res, "ryw")
    asyncio.run(async_sections(srv, res, sections, args.replica_log))
    if "pgbench" in sections:
        bench_pgbench(srv, args, res)
        note_load(res, "pgbench")
    res["duration_s"] = time.monotonic() - t_start

    parts = [report_env(env, res), report_goals(res)]
    for s, fn in (("ryw", report_ryw), ("ryw_delayed", report_ryw_delayed),
                  ("herd", report_herd), ("parked", report_parked),
                  ("scaling", report_scaling),
                  ("mixed", report_mixed), ("conflict", report_conflict), ("idle", report_idle),
                  ("pgbench", report_pgbench)):
        if s in res:
            parts.append(fn(res))
    report = "\n\n".join(parts) + "\n"
    with open(os.path.join(args.out, "report.md"), "w") as f:
        f.write(report)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump({"environment": env, "results": res}, f, indent=1, default=str)
    print()
    print(report)


if __name__ == "__main__":
    main()
