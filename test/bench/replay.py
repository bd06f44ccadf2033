#!/usr/bin/python3
"""
test/bench/replay.py
    What rr_router costs WAL replay (issue 13, SPEC section 5): the same WAL
    replayed by a hot standby that preloads rr_router and by one that does
    not, interleaved, in three states, plus the hook's own cost per record,
    a stress test of short waits during heavy replay, and (in the same run)
    bench.py's read-your-writes and herd sections.  Started by
    test/bench/run.sh replay; runs as the servers' owner.

Setup (once): a primary (rr_router preloaded, archive_mode on) is
initialised with pgbench -i; a base backup is taken; pgbench -N then writes
BENCH_REPLAY_WAL_MB of WAL, which is archived (full_page_writes off while it
does: all small records, the worst case for a cost per record;
vacuum_defer_cleanup_age 50000 stands in for hot_standby_feedback, so that
no cleanup record conflicts with the sessions' brief snapshots).  Every replay starts from a
fresh copy of that base backup, so both variants replay byte-identical WAL
from an identical starting state.

Replays ("variants": rr = shared_preload_libraries = 'rr_router',
plain = nothing preloaded):

  none     nobody waiting.  Archive recovery of the copy with all the WAL in
           pg_wal: CPU (user + system) and elapsed from the server's own
           "redo done ... system usage" line.
  together (optional) as none, but the two variants replay at the same
           time, one per core, so that the machine's noise falls on both
           alike within a round.
  idle     (optional) nobody waiting, measured like parked and woken below
           (gated hot standby, /proc).
  parked   100 sessions parked in rr_wait_for_lsn() on a target replay never
           reaches (plain: the same sessions connected and idle; a session
           sleeping in a statement would hold a snapshot).
  woken    16 sessions loop "target = replay position + 32 kB; wait for it"
           in one message each, one every 3 ms per session (plain: the same
           messages, waiting by polling the replay position with
           pg_sleep(0.0003), which sleeps 1 ms), and a sampler session traces
           pg_last_wal_replay_lsn() every ~1 ms on the server's clock.  The
           rr side doubles as the stress test: how late each wait returned
           after replay passed its target.

  idle, parked and woken use a gated hot standby: the copy is started in
  standby mode with only the base backup's WAL, sessions connect and park,
  then the generated segments are renamed into pg_wal (the gate) and the
  startup process's on-CPU time (/proc/<pid>/schedstat; utime+stime beside
  it) and the wall time are taken from the gate until
  pg_last_wal_replay_lsn() reaches the end.

Within a round every state runs once with both variants, states and
variants in random order; the figure of a state is the median over rounds
of the paired ratio rr / plain, with its interquartile range and a
distribution-free 95 % confidence interval of the median.

A second build (make RR_MEASURE_REDO=1, installed in a copy of the server's
directory, --measure-bindir) logs the clock ticks spent in the hook per
record: BENCH_REPLAY_MEASURE_ROUNDS replays of each state with it.

Knobs (environment; QUICK=1 gives the second value):
  BENCH_REPLAY_WAL_MB        200 / 80    WAL written by pgbench -N
  BENCH_REPLAY_ROUNDS        16 / 3      interleaved rounds
  BENCH_REPLAY_STATES        none parked woken (together, idle: optional)
  BENCH_REPLAY_STRESS_REPLAYS 4 / 1      extra rr replays in the woken state,
                                         for the stress test's count only
  BENCH_REPLAY_PARKED        100         sessions parked
  BENCH_REPLAY_WOKEN         16          sessions looping in the woken state
  BENCH_REPLAY_DELTA         32768       their target: replay position + this
  BENCH_REPLAY_WOKEN_PERIOD_MS 3         each session starts a wait every this
                                         many ms (0: as soon as the last ended)
  BENCH_REPLAY_MEASURE_ROUNDS 2 / 1      replays per state with the measuring build
  BENCH_REPLAY_SCALE         1           pgbench scale (small: few full-page
                                         images, so many small records per MB)
  BENCH_REPLAY_CALLGRIND_MB  40 / 20     WAL replayed under valgrind's callgrind,
                                         once per variant (0: skip; needs valgrind)
  BENCH_REPLAY_EXTRA         ryw,herd    bench.py sections run on a streaming
                                         pair afterwards (empty: none)
"""

import argparse
import asyncio
import json
import math
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import time

import psycopg

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  the shared helpers: statistics, /proc, tables, sections
from bench import QUICK, env_int, env_list, fmt, log, lsn_int, lsn_str, md_table, pct, proc_cpu  # noqa: E402

CFG = {
    "wal_mb": env_int("BENCH_REPLAY_WAL_MB", 200, 80),
    "rounds": env_int("BENCH_REPLAY_ROUNDS", 16, 3),
    "states": env_list("BENCH_REPLAY_STATES", "none parked woken", "none parked woken", str),
    "stress_replays": env_int("BENCH_REPLAY_STRESS_REPLAYS", 4, 1),
    "parked": env_int("BENCH_REPLAY_PARKED", 100, 100),
    "woken": env_int("BENCH_REPLAY_WOKEN", 16, 16),
    "delta": env_int("BENCH_REPLAY_DELTA", 32768, 32768),
    "plain_sleep_s": float(os.environ.get("BENCH_REPLAY_PLAIN_SLEEP_S", "0.0003")),
    "woken_period_ms": float(os.environ.get("BENCH_REPLAY_WOKEN_PERIOD_MS", "3")),
    "measure_rounds": env_int("BENCH_REPLAY_MEASURE_ROUNDS", 2, 1),
    "scale": env_int("BENCH_REPLAY_SCALE", 1, 1),
    "callgrind_mb": env_int("BENCH_REPLAY_CALLGRIND_MB", 40, 20),
    "extra": [s for s in os.environ.get("BENCH_REPLAY_EXTRA", "ryw,herd").replace(" ", ",").split(",") if s],
    "seed": env_int("BENCH_SEED", 42, 42),
}

STATE_LABELS = {
    "none": "nobody waiting (archive recovery, `redo done` line)",
    "together": "nobody waiting, both variants replaying at the same time (`redo done` line)",
    "idle": "nobody waiting (gated standby, /proc)",
    "parked": "waiters parked on a target never reached",
    "woken": "waiters constantly arriving and woken",
}

WAL_SEG = 16 * 1024 * 1024
REDO_DONE_RE = re.compile(r"redo done at \S+ system usage: CPU: user: ([0-9.]+) s, "
                          r"system: ([0-9.]+) s, elapsed: ([0-9.]+) s")
MEASURE_RE = re.compile(r"rr_router redo measure: records=(\d+) skipped=(\d+) noted=(\d+) hook_ticks=(\d+) "
                        r"orig_ticks=(\d+) empty_ticks=(\d+) read_pair_ticks=([0-9.]+) "
                        r"ticks_per_ns=([0-9.]+)(?: handovers=(\d+) deferred=(\d+))?")

# Samples pg_last_wal_replay_lsn() on the server's clock about every
# millisecond (pg_sleep() rounds up to 1 ms: the sampler sleeps rather than
# take a core from replay), keeping a sample whenever it changed, until
# replay reaches %(upto)s; the samples come back in one NOTICE.  A DO block,
# committing every millisecond, so that it holds no snapshot long enough
# to conflict with replay.
TRACE_DO = """
DO $$
DECLARE
    last pg_lsn := '0/0';
    cur pg_lsn;
    ts timestamptz;
    stop timestamptz := clock_timestamp() + interval '600 s';
    next_commit timestamptz := clock_timestamp();
    buf text[] := '{}';
BEGIN
    LOOP
        ts := clock_timestamp();
        cur := pg_last_wal_replay_lsn();
        IF cur <> last THEN
            buf := buf || (extract(epoch FROM ts)::text || ' ' || cur::text);
            last := cur;
        END IF;
        EXIT WHEN cur >= '%(upto)s'::pg_lsn OR ts > stop;
        IF ts > next_commit THEN
            COMMIT;
            next_commit := clock_timestamp() + interval '1 ms';
        END IF;
        PERFORM pg_sleep(0.0002);
    END LOOP;
    RAISE NOTICE 'trace %%', array_to_string(buf, ',');
END $$"""


def seg_name(tli, segno):
    return f"{tli:08X}{segno >> 8:08X}{segno & 0xFF:08X}"


def normalize(lsn):
    """A target just past a page header moved back onto the page boundary."""
    if lsn % WAL_SEG == 40:
        return lsn - 40
    if lsn % 8192 == 24:
        return lsn - 24
    return lsn


def median_ci(xs):
    """Median, (p25, p75) and a distribution-free 95 % confidence interval
    of the median (order statistics of the binomial(n, 1/2))."""
    s = sorted(xs)
    n = len(s)
    if n == 0:
        return None, (None, None), (None, None)
    k = 0
    cum = 0.0
    for i in range(n + 1):
        cum += math.comb(n, i) / 2 ** n
        if cum > 0.025:
            k = i
            break
    lo, hi = (s[k], s[n - 1 - k]) if k < n - 1 - k else (s[0], s[-1])
    return statistics.median(s), (pct(s, 25), pct(s, 75)), (lo, hi)


class Cluster:
    """Runs pg_ctl and friends as the current user."""

    def __init__(self, bindir, workdir):
        self.bindir = bindir
        self.work = workdir

    def run(self, prog, *args, bindir=None, check=True, **kw):
        return subprocess.run([os.path.join(bindir or self.bindir, prog), *args], check=check,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)

    def start(self, datadir, logfile, bindir=None, wait=True):
        self.run("pg_ctl", "-D", datadir, "-l", logfile, "-t", "300",
                 "-w" if wait else "-W", "start", bindir=bindir)

    def stop(self, datadir, mode="immediate", bindir=None):
        if os.path.exists(os.path.join(datadir, "postmaster.pid")):
            self.run("pg_ctl", "-D", datadir, "-m", mode, "-t", "300", "-w", "stop",
                     bindir=bindir, check=False)


def dsn(port, db="postgres"):
    return f"host=127.0.0.1 port={port} user=postgres dbname={db}"


# ================================================================ setup

def setup(cl, args):
    """Primary, base backup, archived WAL; returns a dict describing them."""
    w = args.workdir
    pdir, base, arch = f"{w}/primary", f"{w}/base", f"{w}/archive"
    for d in (base, arch):
        shutil.rmtree(d, ignore_errors=True)
    os.mkdir(arch)
    cl.run("initdb", "-D", pdir, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C.UTF-8")
    with open(f"{pdir}/postgresql.conf", "a") as f:
        f.write(f"""
# rr_router replay benchmark
listen_addresses = '127.0.0.1'
unix_socket_directories = '{w}'
port = {args.port}
shared_preload_libraries = 'rr_router'
max_connections = 600
shared_buffers = 256MB
wal_level = replica
max_wal_senders = 4
max_wal_size = 20GB
checkpoint_timeout = 1h
fsync = off
synchronous_commit = off
autovacuum = off
# What hot_standby_feedback would do for these archive-fed standbys: no
# cleanup record conflicts with a snapshot younger than 50000 xids, so
# that the sessions of the waiter states never stall replay (every
# statement holds a snapshot for a moment).
vacuum_defer_cleanup_age = 50000
archive_mode = on
archive_command = 'cp %p {arch}/%f'
log_line_prefix = '%m [%p] '
cluster_name = 'replay_primary'
""")
    cl.start(pdir, f"{w}/primary.log")
    p = psycopg.connect(dsn(args.port), autocommit=True)
    p.execute("CREATE EXTENSION rr_router")
    log(f"replay: pgbench -i -s {CFG['scale']}")
    cl.run("pgbench", "-i", "-q", "-s", str(CFG["scale"]), "-h", "127.0.0.1", "-p", str(args.port),
           "-U", "postgres", "postgres")
    p.execute("CHECKPOINT")
    cl.run("pg_basebackup", "-h", "127.0.0.1", "-p", str(args.port), "-U", "postgres", "-D", base,
           "-X", "stream", "-c", "fast")
    # No full-page images in the generated WAL: all small records, the
    # worst case for a cost per record (and no burst of images after the
    # backup's checkpoint to dominate the start of the WAL).
    p.execute("ALTER SYSTEM SET full_page_writes = off")
    p.execute("SELECT pg_reload_conf()")
    time.sleep(0.5)
    # The generated WAL starts in a segment of its own: the gate moves
    # whole segments.
    p.execute("SELECT pg_switch_wal()")
    start = lsn_int(str(p.execute("SELECT pg_current_wal_insert_lsn()").fetchone()[0]))
    tli = p.execute("SELECT timeline_id FROM pg_control_checkpoint()").fetchone()[0]
    base_segs = sorted(f for f in os.listdir(f"{base}/pg_wal") if re.fullmatch(r"[0-9A-F]{24}", f))
    target = CFG["wal_mb"] * 1024 * 1024
    log(f"replay: pgbench -N until {CFG['wal_mb']} MB of WAL")
    txs = 0
    t0 = time.monotonic()
    while lsn_int(str(p.execute("SELECT pg_current_wal_insert_lsn()").fetchone()[0])) - start < target:
        out = cl.run("pgbench", "-N", "-c", "4", "-j", "2", "-T", "2", "-h", "127.0.0.1", "-p",
                     str(args.port), "-U", "postgres", "postgres").stdout
        m = re.search(r"number of transactions actually processed: (\d+)", out)
        txs += int(m.group(1)) if m else 0
    end = lsn_int(str(p.execute("SELECT pg_current_wal_insert_lsn()").fetchone()[0]))
    p.execute("SELECT pg_switch_wal()")
    last_seg = seg_name(tli, (end - 1) // WAL_SEG)
    deadline = time.monotonic() + 300
    while (p.execute("SELECT last_archived_wal FROM pg_stat_archiver").fetchone()[0] or "") < last_seg:
        if time.monotonic() > deadline:
            raise RuntimeError("archiving did not finish")
        time.sleep(0.2)
    gen_s = time.monotonic() - t0
    first_gen = start // WAL_SEG
    gated = [seg_name(tli, s) for s in range(first_gen, (end - 1) // WAL_SEG + 1)]
    pre = [f for f in base_segs if f < gated[0]]
    # the base backup's last segment is partial: take the archived one
    for f in os.listdir(arch):
        if f < gated[0] and f not in pre and re.fullmatch(r"[0-9A-F]{24}", f) and f >= base_segs[0]:
            pre.append(f)
    p.close()
    info = {"primary": pdir, "base": base, "archive": arch, "start_lsn": lsn_str(start),
            "end_lsn": lsn_str(normalize(end)), "wal_bytes": end - start, "transactions": txs,
            "gen_s": gen_s, "pre_segments": sorted(set(pre)), "gated_segments": gated,
            "server": None}
    with psycopg.connect(dsn(args.port)) as c:
        info["server"] = c.execute("SELECT version()").fetchone()[0]
    log(f"replay: {info['wal_bytes'] / 2**20:.0f} MB of WAL ({txs} transactions, "
        f"{len(gated)} segments) from {info['start_lsn']} to {info['end_lsn']}")
    return info


def make_copy(info, datadir, variant, port, mode, workdir):
    """A fresh copy of the base backup: mode "archive" (all WAL in pg_wal,
    archive recovery to the end) or "standby" (only the base backup's WAL;
    the generated segments wait in <datadir>.gate for open_gate())."""
    shutil.rmtree(datadir, ignore_errors=True)
    shutil.rmtree(datadir + ".gate", ignore_errors=True)
    shutil.copytree(info["base"], datadir, symlinks=True)
    os.chmod(datadir, 0o700)
    for f in info["pre_segments"]:
        shutil.copyfile(f"{info['archive']}/{f}", f"{datadir}/pg_wal/{f}")
    if mode == "archive":
        for f in info["gated_segments"]:
            shutil.copyfile(f"{info['archive']}/{f}", f"{datadir}/pg_wal/{f}")
        open(f"{datadir}/recovery.signal", "w").close()
    else:
        os.mkdir(datadir + ".gate")
        for f in info["gated_segments"]:
            shutil.copyfile(f"{info['archive']}/{f}", f"{datadir}.gate/{f}")
        open(f"{datadir}/standby.signal", "w").close()
    with open(f"{datadir}/postgresql.auto.conf", "a") as f:
        f.write(f"""
port = {port}
unix_socket_directories = '{workdir}'
shared_preload_libraries = '{"rr_router" if variant != "plain" else ""}'
archive_mode = off
hot_standby = {"off" if mode == "archive" else "on"}
wal_retrieve_retry_interval = '1ms'
restore_command = '{"/bin/false" if mode == "archive" else ""}'
primary_conninfo = ''
cluster_name = 'replay_{variant}'
""")


def open_gate(datadir, info):
    for f in info["gated_segments"]:
        os.rename(f"{datadir}.gate/{f}", f"{datadir}/pg_wal/{f}")


# ================================================================ one replay

def replay_archive(cl, info, args, variant, bindir=None):
    """Archive recovery of the whole WAL; figures from the server log."""
    d = f"{args.workdir}/copy_{variant}"
    make_copy(info, d, variant, args.port + 1, "archive", args.workdir)
    logf = d + ".log"
    if os.path.exists(logf):
        os.unlink(logf)
    cl.start(d, logf, bindir=bindir)      # -w, hot_standby off: up once recovery has ended
    for _ in range(3000):
        text = open(logf).read()
        m = REDO_DONE_RE.search(text)
        if m and "database system is ready to accept connections" in text:
            break
        time.sleep(0.01)
    else:
        raise RuntimeError(f"no 'redo done' line in {logf}")
    cl.stop(d, "fast", bindir=bindir)     # fast: the measuring build logs at exit
    text = open(logf).read()
    out = {"cpu_s": float(m.group(1)) + float(m.group(2)), "user_s": float(m.group(1)),
           "sys_s": float(m.group(2)), "elapsed_s": float(m.group(3))}
    mm = MEASURE_RE.search(text)
    if mm:
        out["measure"] = measure_dict(mm)
    shutil.rmtree(d, ignore_errors=True)
    return out


def replay_archive_pair(cl, info, args):
    """Both variants' archive recoveries at the same time, one per core, so
    that whatever else the machine does falls on both alike; figures from
    each server's log."""
    runs = {"rr": (f"{args.workdir}/copy_rr", args.port + 1),
            "plain": (f"{args.workdir}/copy_plain", args.port + 3)}
    for v, (d, port) in runs.items():
        make_copy(info, d, v, port, "archive", args.workdir)
        if os.path.exists(d + ".log"):
            os.unlink(d + ".log")
    for v, (d, _) in runs.items():
        cl.start(d, d + ".log", wait=False)
    out = {}
    try:
        for _ in range(30000):
            for v, (d, _) in runs.items():
                if v in out:
                    continue
                text = open(d + ".log").read()
                m = REDO_DONE_RE.search(text)
                if m and "database system is ready to accept connections" in text:
                    out[v] = {"cpu_s": float(m.group(1)) + float(m.group(2)),
                              "user_s": float(m.group(1)), "sys_s": float(m.group(2)),
                              "elapsed_s": float(m.group(3))}
            if len(out) == len(runs):
                break
            time.sleep(0.01)
        else:
            raise RuntimeError("no 'redo done' line from both replays")
    finally:
        for v, (d, _) in runs.items():
            cl.stop(d, "fast")
            shutil.rmtree(d, ignore_errors=True)
    return out["rr"], out["plain"]


def callgrind_replay(cl, info, args, variant, bindir=None):
    """Archive recovery of the first BENCH_REPLAY_CALLGRIND_MB of the WAL
    under callgrind: instructions executed by the startup process, in the
    redo loop (PerformWalRecovery, inclusive) and in rr_router's functions."""
    d = f"{args.workdir}/copy_{variant}"
    make_copy(info, d, variant, args.port + 1, "archive", args.workdir)
    stop_at = lsn_int(info["start_lsn"]) + CFG["callgrind_mb"] * 2**20
    with open(f"{d}/postgresql.auto.conf", "a") as f:
        f.write(f"recovery_target_lsn = '{lsn_str(stop_at)}'\nrecovery_target_action = 'promote'\n")
    cgdir = f"{args.workdir}/cg_{variant}"
    shutil.rmtree(cgdir, ignore_errors=True)
    os.mkdir(cgdir)
    logf = d + ".log"
    with open(logf, "w") as lf:
        proc = subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={cgdir}/cg.%p",
                                 os.path.join(bindir or args.bindir, "postgres"), "-D", d],
                                stdout=lf, stderr=subprocess.STDOUT)
    try:
        for _ in range(60000):
            text = open(logf).read()
            if "database system is ready to accept connections" in text:
                break
            if proc.poll() is not None:
                raise RuntimeError(f"postgres under valgrind exited; see {logf}")
            time.sleep(0.05)
        else:
            raise RuntimeError("recovery under callgrind did not finish")
    finally:
        cl.stop(d, "fast")
        proc.wait()
    m = re.search(r"\[(\d+)\] LOG:  redo done at", open(logf).read())
    out = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100",
                          f"{cgdir}/cg.{m.group(1)}"], capture_output=True, text=True).stdout
    res = {"total": None, "redo_loop": None, "funcs": {}}
    for line in out.splitlines():
        mm = re.match(r"\s*([0-9,]+) \(\s*[0-9.]+%\)\s+(.*)$", line) or \
            re.match(r"\s*([0-9,]+)\s+(.*)$", line)
        if not mm:
            continue
        n = int(mm.group(1).replace(",", ""))
        what = mm.group(2)
        if "PROGRAM TOTALS" in what:
            res["total"] = n
        elif what.endswith(":PerformWalRecovery [/usr/lib/postgresql/15/bin/postgres]") or \
                "PerformWalRecovery" in what and res["redo_loop"] is None:
            res["redo_loop"] = n
        elif "rr_router.so" in what:
            res["funcs"][what.split(":")[-1].split(" ")[0]] = n
    self_out = subprocess.run(["callgrind_annotate", "--threshold=100", f"{cgdir}/cg.{m.group(1)}"],
                              capture_output=True, text=True).stdout
    res["self"] = {}
    for line in self_out.splitlines():
        mm = re.match(r"\s*([0-9,]+) \(\s*[0-9.]+%\)\s+(.*)$", line)
        if mm and "rr_router.so" in mm.group(2):
            res["self"][mm.group(2).split(":")[-1].split(" ")[0]] = int(mm.group(1).replace(",", ""))
    rm = re.findall(r"redo done at (\S+)", open(logf).read())
    res["redo_done_at"] = rm[-1] if rm else None
    if not os.environ.get("BENCH_REPLAY_KEEP_CALLGRIND"):
        shutil.rmtree(cgdir, ignore_errors=True)
    shutil.rmtree(d, ignore_errors=True)
    return res


def measure_dict(m):
    rec, skipped, noted, hook, orig, empty, pair, tpn, hand, defer = (
        float(x) if x is not None else None for x in m.groups())
    return {"records": rec - skipped, "all_records": rec, "skipped": skipped, "noted": noted, "hook_ticks": hook, "orig_ticks": orig,
            "empty_ticks": empty, "pair_ticks": pair, "ticks_per_ns": tpn,
            "handovers": hand, "deferred": defer}


async def replay_gated(cl, info, args, variant, state, bindir=None):
    """Gated hot standby: park the state's sessions, open the gate, measure
    the startup process until replay reaches the end."""
    d = f"{args.workdir}/copy_{variant}"
    port = args.port + 1
    make_copy(info, d, variant, port, "standby", args.workdir)
    logf = d + ".log"
    if os.path.exists(logf):
        os.unlink(logf)
    cl.start(d, logf, bindir=bindir)
    conns = []
    tasks = []
    out = {}
    try:
        ctl = await psycopg.AsyncConnection.connect(dsn(port), autocommit=True)
        conns.append(ctl)
        pre_end = None
        for _ in range(500):      # replay of the base backup's WAL settles
            cur = await ctl.execute("SELECT pg_last_wal_replay_lsn()")
            lsn = (await cur.fetchone())[0]
            if lsn is not None and lsn == pre_end:
                break
            pre_end = lsn
            await asyncio.sleep(0.02)
        cur = await ctl.execute("SELECT pid FROM pg_stat_activity WHERE backend_type = 'startup'")
        startup = (await cur.fetchone())[0]
        end = info["end_lsn"]
        stop = asyncio.Event()
        loops = {"rr": [], "plain": 0, "errors": 0}

        if state == "parked":
            n = CFG["parked"]
            sess = await asyncio.gather(*(psycopg.AsyncConnection.connect(dsn(port), autocommit=True)
                                          for _ in range(n)))
            conns += sess
            # plain: the same sessions idle (a session sleeping in a
            # statement would hold a snapshot that replay conflicts with;
            # a waiter drops its own, see wait.c)
            if variant != "plain":
                async def park(c):
                    try:
                        await c.execute("SELECT rr_wait_for_lsn('FFFFFFFF/FFFFFF00'::pg_lsn, 600000)")
                    except psycopg.Error:
                        pass
                tasks = [asyncio.create_task(park(c)) for c in sess]
                for _ in range(1000):
                    cur = await ctl.execute("SELECT count(*) FROM rr_waiters")
                    if (await cur.fetchone())[0] >= n:
                        break
                    await asyncio.sleep(0.01)
                else:
                    raise RuntimeError(f"{n} sessions did not park")
            await asyncio.sleep(0.1)
        elif state == "woken":
            n = CFG["woken"]
            sess = await asyncio.gather(*(psycopg.AsyncConnection.connect(dsn(port), autocommit=True)
                                          for _ in range(n + 1)))
            conns += sess
            tracer, sess = sess[0], sess[1:]
            settarget = (f"SELECT set_config('bench.t', least(pg_last_wal_replay_lsn() + "
                         f"{CFG['delta']}, '{end}'::pg_lsn)::text, false); ")
            if variant != "plain":
                msg = (settarget + "SELECT rr_wait_for_lsn(current_setting('bench.t')::pg_lsn, 5000); "
                       "SELECT clock_timestamp(), current_setting('bench.t')")
            else:
                # the same read-your-writes loop without rr_router: poll
                # the replay position, sleeping in between
                msg = (settarget + "DO $$BEGIN WHILE pg_last_wal_replay_lsn() < "
                       "current_setting('bench.t')::pg_lsn LOOP "
                       f"PERFORM pg_sleep({CFG['plain_sleep_s']}); END LOOP; END$$; "
                       "SELECT clock_timestamp(), current_setting('bench.t')")

            period = CFG["woken_period_ms"] / 1000

            async def loop(c):
                # paced: both variants start the same number of waits per
                # second, so their sessions load the machine alike
                nxt = time.monotonic() + random.random() * period
                while not stop.is_set():
                    if period:
                        now = time.monotonic()
                        if nxt > now:
                            await asyncio.sleep(nxt - now)
                        nxt = max(nxt + period, now)
                    try:
                        cur = await c.execute(msg)
                        if variant != "plain":
                            r = await bench.results(cur)
                    except psycopg.Error:
                        loops["errors"] += 1
                        return
                    if variant != "plain":
                        loops["rr"].append((r[1][0][0], r[2][0][0], r[2][0][1]))
                    else:
                        loops["plain"] += 1
            # warm-up: plans and caches
            for c in sess:
                await c.execute("SELECT rr_wait_for_lsn('0/0'::pg_lsn, 0)" if variant != "plain"
                                else "SELECT pg_sleep(0)")
            notices = []
            tracer.add_notice_handler(lambda d: notices.append(d.message_primary))
            trace_task = asyncio.create_task(tracer.execute(TRACE_DO % {"upto": end}))
            await asyncio.sleep(0.05)
            tasks = [asyncio.create_task(loop(c)) for c in sess]
            await asyncio.sleep(0.1)

        wc0 = None
        if variant != "plain":
            cur = await ctl.execute("SELECT waits, waits_woken FROM rr_status")
            wc0 = await cur.fetchone()
        cpu0 = proc_cpu(startup)
        t0 = time.monotonic()
        open_gate(d, info)
        # the end of replay, seen by a 2 ms poll (the same in both variants)
        while True:
            cur = await ctl.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (end,))
            if (await cur.fetchone())[0]:
                break
            await asyncio.sleep(0.002)
        t1 = time.monotonic()
        cpu1 = proc_cpu(startup)
        stop.set()
        out = {"cpu_s": (cpu1["ns"] - cpu0["ns"]) / 1e9,
               "cpu_ticks_s": (cpu1["ticks"] - cpu0["ticks"]) / bench.CLK_TCK,
               "elapsed_s": t1 - t0, "invol": cpu1["invol"] - cpu0["invol"],
               "vol": cpu1["vol"] - cpu0["vol"]}
        if state == "woken":
            await asyncio.gather(*tasks)
            tasks = []
            await trace_task
            trace = parse_trace(notices)
            out["waits"] = len(loops["rr"]) if variant != "plain" else loops["plain"]
            out["errors"] = loops["errors"]
            if variant != "plain":
                out["lateness"] = lateness(loops["rr"], trace, end)
                out["trace_gap_us"] = bench.summary(
                    [(b[0] - a[0]) * 1e6 for a, b in zip(trace, trace[1:])])
        if wc0 is not None:
            cur = await ctl.execute("SELECT waits, waits_woken FROM rr_status")
            wc1 = await cur.fetchone()
            out["rr_waits"] = wc1[0] - wc0[0]
            out["rr_woken"] = wc1[1] - wc0[1]
    finally:
        for t in tasks:
            t.cancel()
        cl.stop(d, "fast", bindir=bindir)
        for c in conns:
            try:
                await c.close()
            except Exception:
                pass
    text = open(logf).read()
    mm = MEASURE_RE.search(text)
    if mm:
        out["measure"] = measure_dict(mm)
    shutil.rmtree(d, ignore_errors=True)
    shutil.rmtree(d + ".gate", ignore_errors=True)
    return out


def parse_trace(notices):
    """[(epoch seconds, LSN as int)] from the tracer's NOTICE."""
    text = [n for n in notices if n.startswith("trace ")][-1][len("trace "):]
    out = []
    for item in text.split(","):
        if item:
            t, lsn = item.split(" ")
            out.append((float(t), lsn_int(lsn)))
    return out


def lateness(waits, trace, end):
    """For each wait (ok, return time, target): how long after replay
    passed its target it returned.  Replay passed T between the last trace
    sample below T (t_b) and the first at or above it (t_a): 'upper' =
    return - t_b (a bound: at most this late), 'lower' = return - t_a.
    A target clamped to the end of the WAL is left out ('at_end'): such a
    wait may have begun after replay had finished, and would count the
    time since then as lateness."""
    import bisect
    lsns = [lsn for _, lsn in trace]
    times = [t for t, _ in trace]
    up, lo, failed, unmatched, at_end = [], [], 0, 0, 0
    end_lsn = lsn_int(end)
    for ok, t_ret, target in waits:
        if not ok:
            failed += 1
            continue
        T = lsn_int(target)
        if T >= end_lsn:
            at_end += 1
            continue
        i = bisect.bisect_left(lsns, T)
        if i == 0 or i >= len(lsns):
            unmatched += 1     # passed before the trace began, or never seen by it
            continue
        t = t_ret.timestamp()
        up.append((t - times[i - 1]) * 1e3)
        lo.append((t - times[i]) * 1e3)
    return {"upper_ms": up, "lower_ms": lo, "failed": failed, "unmatched": unmatched,
            "at_end": at_end}


# ================================================================ the benchmark

async def run_rounds(cl, info, args, res):
    rng = random.Random(CFG["seed"])
    states = [s for s in ("none", "together", "idle", "parked", "woken") if s in CFG["states"]]
    data = {s: {"rr": [], "plain": []} for s in states}
    R = CFG["rounds"]
    log(f"replay: {R} rounds x states {states} x (rr, plain)")
    for rnd in range(R):
        order = list(states)
        rng.shuffle(order)
        for state in order:
            vs = ["rr", "plain"]
            rng.shuffle(vs)
            if state == "together":
                a, b = replay_archive_pair(cl, info, args)
                a["round"] = b["round"] = rnd
                data[state]["rr"].append(a)
                data[state]["plain"].append(b)
                vs = []
            for v in vs:
                if state == "none":
                    r = replay_archive(cl, info, args, v)
                else:
                    r = await replay_gated(cl, info, args, v, state)
                r["round"] = rnd
                r["order"] = vs.index(v)
                data[state][v].append(r)
            a, b = data[state]["rr"][-1], data[state]["plain"][-1]
            log(f"  round {rnd + 1}/{R} {state:6s} cpu rr {a['cpu_s']:.3f} plain {b['cpu_s']:.3f} "
                f"({a['cpu_s'] / b['cpu_s']:.4f}), elapsed {a['elapsed_s']:.3f} / "
                f"{b['elapsed_s']:.3f} ({a['elapsed_s'] / b['elapsed_s']:.4f})"
                + (f", waits {a.get('waits')}/{b.get('waits')}" if state == "woken" else ""))
    res["replay_rounds"] = data

    if "woken" in states and CFG["stress_replays"]:
        log(f"replay: {CFG['stress_replays']} more rr replay(s) in the woken state (stress count)")
        res["stress_extra"] = []
        for _ in range(CFG["stress_replays"]):
            r = await replay_gated(cl, info, args, "rr", "woken")
            res["stress_extra"].append(r)
            log(f"  stress replay: {r.get('waits')} waits in {r['elapsed_s']:.1f} s")

    if args.measure_bindir and CFG["measure_rounds"]:
        mstates = [x for x in states if x != "together"] or ["none", "parked"]
        meas = {s: [] for s in mstates}
        log(f"replay: {CFG['measure_rounds']} replay(s) per state with the measuring build")
        for _ in range(CFG["measure_rounds"]):
            for state in mstates:
                if state == "none":
                    r = replay_archive(cl, info, args, "rr", bindir=args.measure_bindir)
                else:
                    r = await replay_gated(cl, info, args, "rr", state, bindir=args.measure_bindir)
                meas[state].append(r)
                m = r.get("measure")
                if m:
                    log(f"  measure {state:6s} {m['records']:.0f} records, "
                        f"{m['hook_ticks'] / m['records']:.1f} ticks/record in the hook "
                        f"(empty interval {m['empty_ticks'] / m['records']:.1f})")
        res["replay_measure"] = meas

    if CFG["callgrind_mb"] and shutil.which("valgrind"):
        log(f"replay: {CFG['callgrind_mb']} MB of WAL under callgrind, each variant")
        res["callgrind"] = {v: callgrind_replay(cl, info, args, v) for v in ("plain", "rr")}
        alt = os.environ.get("BENCH_REPLAY_CALLGRIND_ALT")    # label=bindir of another build
        if alt:
            label, bindir = alt.split("=", 1)
            res["callgrind"]["alt"] = callgrind_replay(cl, info, args, "rr", bindir=bindir)
            res["callgrind"]["alt"]["label"] = label
        log(f"  callgrind: {res['callgrind']}")


def summarize(res):
    out = {}
    for state, d in res["replay_rounds"].items():
        pairs = list(zip(d["rr"], d["plain"]))
        if not pairs:
            continue
        o = {"rounds": len(pairs)}
        for key in ("cpu_s", "elapsed_s", "cpu_ticks_s"):
            if key not in pairs[0][0]:
                continue
            rs = [a[key] / b[key] for a, b in pairs if b[key]]
            med, iqr, ci = median_ci(rs)
            o[key] = {"ratio_median": med, "iqr": iqr, "ci95": ci, "ratios": rs,
                      "rr_median": statistics.median(a[key] for a, _ in pairs),
                      "plain_median": statistics.median(b[key] for _, b in pairs),
                      "slower_rounds": sum(1 for r in rs if r > 1),
                      "mean": statistics.fmean(rs),
                      "sem": statistics.stdev(rs) / math.sqrt(len(rs)) if len(rs) > 1 else None}
        if state == "woken":
            o["waits_rr"] = sum(a.get("waits", 0) for a, _ in pairs)
            o["waits_plain"] = sum(b.get("waits", 0) for _, b in pairs)
            o["rr_woken"] = sum(a.get("rr_woken", 0) for a, _ in pairs)
            o["rr_elapsed"] = sum(a["elapsed_s"] for a, _ in pairs)
        out[state] = o
    res["replay_summary"] = out

    meas = {}
    for state, rows in res.get("replay_measure", {}).items():
        ms = [r["measure"] for r in rows if "measure" in r]
        if not ms:
            continue
        rec = sum(m["records"] for m in ms)            # counted (not preempted)
        rec_all = sum(m.get("all_records", m["records"]) for m in ms)
        hook = sum(m["hook_ticks"] for m in ms)
        orig = sum(m["orig_ticks"] for m in ms)
        pair = sum(m["empty_ticks"] for m in ms) / rec
        tpn = statistics.median(m["ticks_per_ns"] for m in ms)
        cpu = sum(r["cpu_s"] for r in rows)
        net = hook / rec - 2 * pair
        meas[state] = {"records": rec_all / len(ms), "skipped_share": 1 - rec / rec_all,
                       "noted_share": sum(m["noted"] for m in ms) / rec_all,
                       "ticks_raw": hook / rec, "pair_ticks": pair, "ticks_net": net,
                       "ns_net": net / tpn, "ns_raw": hook / rec / tpn, "ticks_per_ns": tpn,
                       "orig_ns": orig / rec_all / tpn,
                       "startup_cpu_ns_per_record": cpu * 1e9 / rec_all,
                       "share_raw_pct": 100 * hook / rec * rec_all / tpn / 1e9 / cpu,
                       "share_net_pct": 100 * net * rec_all / tpn / 1e9 / cpu}
        if all(m.get("handovers") is not None for m in ms):
            meas[state]["handovers"] = sum(m["handovers"] for m in ms) / len(ms)
            meas[state]["deferred"] = sum(m["deferred"] for m in ms) / len(ms)
            meas[state]["waits"] = sum(r.get("rr_waits", 0) for r in rows) / len(ms)
    res["replay_measure_summary"] = meas

    late = {"upper_ms": [], "lower_ms": [], "failed": 0, "unmatched": 0, "at_end": 0, "gaps_p99": []}
    for a in res["replay_rounds"].get("woken", {}).get("rr", []) + res.get("stress_extra", []):
        lt = a.get("lateness")
        if not lt:
            continue
        late["upper_ms"] += lt["upper_ms"]
        late["lower_ms"] += lt["lower_ms"]
        late["failed"] += lt["failed"]
        late["unmatched"] += lt["unmatched"]
        late["at_end"] += lt.get("at_end", 0)
        late["gaps_p99"].append(a["trace_gap_us"].get("p99"))
    res["stress"] = {"n": len(late["upper_ms"]), "failed": late["failed"],
                     "unmatched": late["unmatched"], "at_end": late["at_end"],
                     "upper": bench.summary(late["upper_ms"]), "lower": bench.summary(late["lower_ms"]),
                     "over_2ms": sum(1 for x in late["upper_ms"] if x > 2),
                     "over_5ms": sum(1 for x in late["upper_ms"] if x > 5),
                     "p999_upper": pct(late["upper_ms"], 99.9),
                     "trace_gap_p99_us": statistics.median(g for g in late["gaps_p99"] if g)
                     if late["gaps_p99"] else None}


def pct_s(r):
    return "–" if r is None else f"{(r - 1) * 100:+.2f} %"


def report(res, info, env):
    s = res["replay_summary"]
    lines = ["# rr_router replay benchmark", "",
             md_table(["", ""], [[k, str(v)] for k, v in env.items()]), "",
             f"WAL: {info['wal_bytes'] / 2**20:.0f} MB written by `pgbench -N -c 4 -j 2` "
             f"(scale {CFG['scale']}, {info['transactions']} transactions) on a primary with "
             "rr_router preloaded (its heartbeats are in the WAL), replayed from a fresh copy of one "
             "base backup every time. rr = `shared_preload_libraries = 'rr_router'`, plain = nothing "
             "preloaded.", "",
             "## Replay cost: paired ratios rr / plain", "",
             f"{CFG['rounds']} interleaved rounds; in each, every state once with both variants, "
             "states and variants in random order. Ratio = rr / plain within a round; median over "
             "rounds, interquartile range, and the distribution-free 95 % confidence interval of the "
             "median. CPU: the startup process's on-CPU time (`/proc/<pid>/schedstat`) from the gate "
             "until replay reached the end, or user + system from the `redo done` line (state "
             "*none*). Elapsed: gate → `pg_last_wal_replay_lsn()` at the end (2 ms poll), or the "
             "`redo done` line.", ""]
    rows = []
    for state, o in s.items():
        for key, label in (("cpu_s", "startup CPU"), ("elapsed_s", "elapsed"),
                           ("cpu_ticks_s", "startup utime+stime")):
            if key not in o:
                continue
            k = o[key]
            rows.append([STATE_LABELS[state], label, str(o["rounds"]), k["plain_median"],
                         k["rr_median"], f"**{pct_s(k['ratio_median'])}**",
                         f"{pct_s(k['iqr'][0])} … {pct_s(k['iqr'][1])}",
                         f"{pct_s(k['ci95'][0])} … {pct_s(k['ci95'][1])}",
                         f"{k['slower_rounds']}/{o['rounds']}"])
    lines.append(md_table(["state", "measure", "rounds", "plain median s", "rr median s",
                           "median paired cost", "IQR", "95 % CI of the median",
                           "rounds rr slower"], rows))
    w = s.get("woken")
    if w:
        lines += ["", f"Woken state: {w['waits_rr']} waits by {CFG['woken']} sessions during the rr "
                      f"replays ({w['waits_rr'] / w['rr_elapsed']:.0f}/s of replay; {w['rr_woken']:.0f} "
                      f"of them counted woken: they slept or spun), {w['waits_plain']} "
                      f"waits polling with `pg_sleep({CFG['plain_sleep_s']})` in their place during "
                      f"the plain replays; each session starts one every {CFG['woken_period_ms']:g} ms "
                      "(or as soon as its last ended)."]
    m = res.get("replay_measure_summary")
    if m:
        lines += ["", "## The hook's own cost per record", "",
                  f"Build `make RR_MEASURE_REDO=1`, {CFG['measure_rounds']} replay(s) per state: the "
                  "TSC is read on entry to the wrapper, around the original redo routine and on "
                  "exit; ticks outside the original routine are the hook's. \"net\" subtracts twice "
                  "the empty interval (two clock reads back to back, timed after every record in "
                  "the same conditions): each of the two counted intervals contains one clock read. "
                  "The clock counts wall time: a record whose intervals took over 20 000 ticks "
                  "(interrupted or preempted) is left out of the per-record figures. The wrapper's "
                  "own call and return are not in the count.", ""]
        rows = []
        for state, o in m.items():
            rows.append([STATE_LABELS[state], f"{o['records']:.0f}",
                         f"{100 * o.get('skipped_share', 0):.2f} %", f"{100 * o['noted_share']:.1f} %",
                         o["ticks_raw"], o["pair_ticks"], o["ticks_net"], o["ns_net"], o["orig_ns"],
                         o["startup_cpu_ns_per_record"], f"{o['share_net_pct']:.2f} %",
                         f"{o['share_raw_pct']:.2f} %"])
        lines.append(md_table(["state", "records per replay", "left out (preempted)",
                               "commit/abort/heartbeat records",
                               "hook ticks/record (raw)", "empty interval ticks", "hook ticks/record (net)",
                               "hook ns/record (net)", "redo routine ns/record",
                               "startup CPU ns/record", "hook share of startup CPU (net)",
                               "(raw, an upper bound)"], rows))
        hand = [(state, o) for state, o in m.items() if o.get("handovers") is not None and o.get("waits")]
        if hand:
            lines += ["", "Hand-overs by the startup process (latches it set) in the same replays: " +
                      "; ".join(f"{STATE_LABELS[state]}: {o['handovers']:.0f} per replay for "
                                f"{o['waits']:.0f} waits ({o['waits'] / max(o['handovers'], 1):.1f} "
                                f"waits per hand-over), {o['deferred']:.0f} records whose hand-over "
                                "waited" for state, o in hand) + "."]
    cg = res.get("callgrind")
    if cg and cg["rr"].get("redo_loop") and cg["plain"].get("redo_loop"):
        rr, pl = cg["rr"], cg["plain"]
        hook_self = sum(v for k, v in rr["self"].items())
        lines += ["", "## Instructions executed by the startup process (callgrind)", "",
                  f"The first {CFG['callgrind_mb']} MB of the same WAL (archive recovery to "
                  f"`recovery_target_lsn`, redo done at {rr['redo_done_at']} in both), each variant "
                  "once under valgrind's callgrind: instructions are counted, not timed, so this "
                  "figure has no noise. Redo loop = `PerformWalRecovery` inclusive.", "",
                  md_table(["", "plain", "rr", "rr − plain", "cost"],
                           [["startup process, all (with what the postmaster ran before forking it)", pl["total"], rr["total"],
                             rr["total"] - pl["total"], f"{100 * (rr['total'] / pl['total'] - 1):+.3f} %"],
                            ["redo loop", pl["redo_loop"], rr["redo_loop"],
                             rr["redo_loop"] - pl["redo_loop"],
                             f"{100 * (rr['redo_loop'] / pl['redo_loop'] - 1):+.3f} %"]]), "",
                  ] + ([
                  f"Another build, {cg['alt']['label']}, on the same WAL: redo loop "
                  f"{cg['alt']['redo_loop']} instructions, "
                  f"{100 * (cg['alt']['redo_loop'] / pl['redo_loop'] - 1):+.3f} % against plain; "
                  "its rr_router functions: " + ", ".join(
                      f"`{k}` {v}" for k, v in sorted(cg["alt"]["self"].items(), key=lambda x: -x[1])
                      if v > 1000) + ".", ""] if cg.get("alt") else []) + [
                  "rr_router's functions in the rr run (self instructions): " + ", ".join(
                      f"`{k}` {v}" for k, v in sorted(rr["self"].items(), key=lambda x: -x[1])) +
                  f"; together {hook_self} = {100 * hook_self / rr['redo_loop']:.3f} % of the redo loop."]
    st = res.get("stress")
    if st and st["n"]:
        u, l = st["upper"], st["lower"]
        lines += ["", "## Stress: short waits during heavy replay", "",
                  f"The rr replays of the woken state (the rounds' and {CFG['stress_replays']} more): "
                  f"{st['n']} waits that returned true "
                  f"({st['failed']} returned false, {st['unmatched']} not placed by the trace, "
                  f"{st.get('at_end', 0)} left out because their target was the end of the WAL: "
                  "such a wait may begin after replay has finished). "
                  "Each wait's target is the replay position + "
                  f"{CFG['delta']} bytes when it starts. A server-side sampler records "
                  "`pg_last_wal_replay_lsn()` with `clock_timestamp()` about every millisecond (it "
                  f"sleeps in between; median over replays of the p99 gap between samples {fmt(st['trace_gap_p99_us'])} µs); the wait's "
                  "`clock_timestamp()` is read in the same message right after it returns. Replay "
                  "passed the target between the last sample below it and the first at or above it; "
                  "lateness \"at most\" counts from the former, \"at least\" from the latter "
                  "(negative: the wait returned before the sampler saw the position, the hook "
                  "publishes it before the core does).", "",
                  md_table(["lateness, ms", "p50", "p90", "p99", "p99.9", "max"],
                           [["at most (return − last sample below target)", u["p50"], u["p90"],
                             u["p99"], st["p999_upper"], u["max"]],
                            ["at least (return − first sample at/above)", l["p50"], l["p90"],
                             l["p99"], None, l["max"]]]), "",
                  f"Waits returning more than 2 ms after replay passed the target (at most): "
                  f"{st['over_2ms']}; more than 5 ms: {st['over_5ms']}."]
    return "\n".join(lines)


def start_streaming_pair(cl, info, args):
    """The primary again, and a streaming replica of it with rr_router, for
    bench.py's ryw and herd sections."""
    w = args.workdir
    rdir = f"{w}/replica"
    shutil.rmtree(rdir, ignore_errors=True)
    cl.run("pg_basebackup", "-h", "127.0.0.1", "-p", str(args.port), "-U", "postgres", "-D", rdir,
           "-R", "-X", "stream", "-c", "fast")
    # as test/bench/run.sh sets the primary up for bench.py
    with psycopg.connect(dsn(args.port), autocommit=True) as c:
        c.execute("ALTER SYSTEM SET synchronous_commit = on")
        c.execute("ALTER SYSTEM SET full_page_writes = on")
        c.execute("SELECT pg_reload_conf()")
    with open(f"{rdir}/postgresql.auto.conf", "a") as f:
        f.write(f"\nport = {args.port + 2}\ncluster_name = 'replay_replica'\nhot_standby = on\n"
                "hot_standby_feedback = on\narchive_mode = off\n")
    cl.start(rdir, f"{w}/replica.log")
    for _ in range(600):
        with psycopg.connect(dsn(args.port), autocommit=True) as c:
            if c.execute("SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'").fetchone()[0]:
                break
        time.sleep(0.2)
    return rdir


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bindir", default="/usr/lib/postgresql/15/bin")
    ap.add_argument("--measure-bindir", help="bindir of a copy of the server with the RR_MEASURE_REDO build")
    ap.add_argument("--workdir", required=True, help="scratch directory (a tmpfs is best)")
    ap.add_argument("--port", type=int, default=25432, help="primary; replays use port+1, replica port+2")
    ap.add_argument("--source-version", default="unknown")
    ap.add_argument("--out", default=".")
    args = ap.parse_args()

    cl = Cluster(args.bindir, args.workdir)
    t_start = time.monotonic()
    res = {"load": [bench.loadavg()]}
    info = None
    rdir = None
    try:
        info = setup(cl, args)
        res["setup"] = info
        asyncio.run(run_rounds(cl, info, args, res))
        res["load"].append(bench.loadavg())
        summarize(res)
        extra = [x for x in CFG["extra"] if x in ("ryw", "herd")]
        if extra:
            rdir = start_streaming_pair(cl, info, args)
            srv = bench.Servers(dsn(args.port), dsn(args.port + 2))
            bench.CFG["herd_sizes"] = env_list("BENCH_HERD_SIZES", "500", "500")
            bench.setup_tables(srv, max(bench.CFG["herd_sizes"]) + 1)
            if "ryw" in extra:
                bench.bench_ryw(srv, res)
            if "herd" in extra:
                async def herd():
                    n = max(bench.CFG["herd_sizes"])
                    sessions = await bench.open_sessions(srv, n, first_key=1)
                    try:
                        await bench.bench_herd(srv, sessions, res)
                    finally:
                        await bench.close_sessions(sessions)
                asyncio.run(herd())
            res["load"].append(bench.loadavg())
    finally:
        if rdir:
            cl.stop(rdir)
        cl.stop(f"{args.workdir}/primary")
        for v in ("rr", "plain"):
            cl.stop(f"{args.workdir}/copy_{v}")
    res["duration_s"] = time.monotonic() - t_start

    cpu = bench.cpu_model()
    env = {"date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
           "machine": f"{os.cpu_count()} CPUs, {cpu}, Linux {os.uname().release}",
           "server": info["server"], "rr_router": args.source_version,
           "config": ", ".join(f"{k}={v}" for k, v in CFG.items()) + (" (QUICK)" if QUICK else ""),
           "load average": f"start {res['load'][0]}, end {res['load'][-1]}",
           "duration": f"{res['duration_s']:.0f} s"}
    parts = [report(res, info, env)]
    if "ryw" in res:
        r = res["ryw"]["variants"]
        b, rr = r["busy_poll"]["confirm"], r["rr_wait"]["confirm"]
        parts.append(bench.report_ryw(res) + "\n\n"
                     f"Issue 13 goals: rr_wait p50 / busy-poll p50 = **{fmt(bench.ratio(rr['p50'], b['p50']))}** "
                     f"(≤ 1.1), p99 / p99 = **{fmt(bench.ratio(rr['p99'], b['p99']))}** (≤ 1.2).")
    if "herd" in res:
        parts.append(bench.report_herd(res))
    text = "\n\n".join(parts) + "\n"
    with open(os.path.join(args.out, "replay-report.md"), "w") as f:
        f.write(text)
    with open(os.path.join(args.out, "replay-results.json"), "w") as f:
        json.dump({"environment": env, "config": CFG, "results": res}, f, indent=1, default=str)
    print()
    print(text)


if __name__ == "__main__":
    main()
