#!/usr/bin/env python3
#
# test/chaos/chaos.py
#     A seeded, reproducible chaos run against rr_router's promises.
#
# It starts a primary, two replicas and a cascading replica (of replica 1)
# on 127.0.0.1, all preloading rr_router with the HTTP endpoint on, then
# runs a workload while faults are injected at random, overlapping times,
# and checks every answer against ground truth:
#
#   ryw clients     write on the primary (one row, and their row of the
#                   'progress' table, in one transaction), take the token
#                   rr_last_commit_lsn(), wait for it on a random replica
#                   with a random timeout (some waits cancelled), and when
#                   the wait says true read the row there: it must be
#                   visible.  A true while the kill switch has been off
#                   all along is a violation too.
#   stale readers   ask a random replica rr_staleness() and
#                   rr_is_fresh(bound), then read the 'progress' table
#                   there: every commit acknowledged before
#                   (send time - staleness), and before (send time - bound)
#                   when fresh, must be visible.
#   http checkers   GET /replica?max_staleness=B on a random replica; a 200
#                   is checked against ground truth the same way, and its
#                   role and replica_reads against SQL.
#   faults          replay pause/resume, recovery_min_apply_delay changes,
#                   SIGSTOP/SIGCONT of a walreceiver or walsender, SIGTERM
#                   and SIGKILL of a walreceiver, SIGKILL of the rr_router
#                   worker and of random backends, pg_terminate_backend and
#                   pg_cancel_backend of waiting sessions, kill-switch
#                   flips, replica restarts (fast and immediate), pgbench
#                   write bursts on the primary.
#
# At quiescent checkpoints (every --checkpoint seconds and at the end) the
# clients pause and the checker requires: rr_waiters empty everywhere; the
# rr_status counters consistent (waits = immediate + woken + timed_out +
# cancelled) and, on a node that did not restart since the last
# checkpoint, the growth of 'waits' between the number of wait calls the
# clients saw answered and that number plus the calls that failed.  At the
# end the server logs must show no PANIC, no assertion failure and no
# process ended by a signal other than an injected SIGKILL.
#
# The fault schedule and every client's choices come from the seed: the
# same seed gives the same schedule (printed, with its hash, first).
# Timing on a real machine still differs from run to run.
#
# Tokens: a client takes a token with Token.take() and waits with
# Token.wait_sql; --token=lsn (rr_last_commit_lsn / rr_wait_for_lsn) is the
# only kind so far; rr_last_commit_token / rr_wait_for_token slot in as
# another entry of TOKEN_KINDS.
#
# Run as an ordinary user (initdb refuses root) with PostgreSQL's bin
# directory in --pg-bin and rr_router installed there; test/chaos/run.sh
# does all of that.  Exit code: 0 no violation, 1 violations, 2 setup
# failure.

import argparse
import bisect
import hashlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
import urllib.error
import urllib.request

import psycopg
from psycopg import errors as pgerr

TOKEN_KINDS = {
    'lsn': ('SELECT rr_last_commit_lsn()::text',
            'SELECT rr_wait_for_lsn(%s::pg_lsn, %s)'),
    # 'token': ('SELECT rr_last_commit_token()',
    #           'SELECT rr_wait_for_token(%s, %s)'),
}

FAULT_WEIGHTS = [
    ('pause_replay', 10),
    ('apply_delay', 8),
    ('stop_walreceiver', 8),
    ('stop_walsender', 6),
    ('term_walreceiver', 5),
    ('kill9_walreceiver', 3),
    ('kill9_worker', 5),
    ('kill9_backend', 3),
    ('terminate_backend', 10),
    ('cancel_backend', 10),
    ('kill_switch', 6),
    ('restart_replica', 3),
    ('pgbench_burst', 5),
]

# Signals the driver sends on purpose appear in the logs as these.
INJECTED_SIGNAL = 9


def now():
    return time.time()


class Violation(Exception):
    pass


class Stats:
    """Counters shared by all threads, and the list of violations."""

    def __init__(self):
        self.lock = threading.Lock()
        self.c = {}
        self.violations = []
        self.notes = []

    def inc(self, key, n=1):
        with self.lock:
            self.c[key] = self.c.get(key, 0) + n

    def violation(self, kind, detail):
        with self.lock:
            self.violations.append({'t': round(now(), 3), 'kind': kind,
                                    'detail': detail})
            self.c['violations'] = self.c.get('violations', 0) + 1
        log('VIOLATION %s: %s' % (kind, detail))

    def note(self, text):
        with self.lock:
            self.notes.append(text)
        log('note: ' + text)


LOG_LOCK = threading.Lock()
T0 = now()
LOG_FILE = None


def log(msg):
    line = '[%8.2f] %s' % (now() - T0, msg)
    with LOG_LOCK:
        if LOG_FILE:
            LOG_FILE.write(line + '\n')
            LOG_FILE.flush()
        if VERBOSE or msg.startswith(('VIOLATION', '===')):
            print(line, flush=True)


VERBOSE = False


# --- the cluster ------------------------------------------------------------

class Node:
    def __init__(self, name, port, hport, datadir, sockdir, pgbin, upstream=None):
        self.name = name
        self.port = port
        self.hport = hport
        self.datadir = datadir
        self.sockdir = sockdir
        self.pgbin = pgbin
        self.upstream = upstream
        self.logfile = datadir + '.log'
        self.lock = threading.Lock()      # restarts and crashes, one at a time
        self.killswitch_off = []          # [from, to] intervals; to None = open
        self.killswitch_holders = 0       # overlapping kill-switch faults
        self.ks_lock = threading.Lock()
        self.down_until = 0

    @property
    def is_replica(self):
        return self.upstream is not None

    def conninfo(self, app='rr-chaos-driver'):
        return ('host=127.0.0.1 port=%d dbname=postgres user=postgres '
                'application_name=%s connect_timeout=5 '
                "options='-c statement_timeout=60000'" % (self.port, app))

    def connect(self, app='rr-chaos-driver'):
        return psycopg.connect(self.conninfo(app), autocommit=True)

    def sql(self, query, params=None, retries=0):
        """One statement on a new connection; rows."""
        last = None
        for _ in range(retries + 1):
            try:
                with self.connect() as c:
                    cur = c.execute(query, params)
                    return cur.fetchall() if cur.description else []
            except psycopg.Error as e:
                last = e
                time.sleep(0.5)
        raise last

    def pg_ctl(self, *args):
        return subprocess.run([os.path.join(self.pgbin, 'pg_ctl'), '-D', self.datadir,
                               '-l', self.logfile, '-w', '-t', '120'] + list(args),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, timeout=180)

    def killswitch_stably_off(self, t_from, t_to, margin=1.0):
        for a, b in list(self.killswitch_off):
            if a + margin <= t_from and (b is None or t_to <= b):
                return True
        return False


def common_conf(node):
    return """
listen_addresses = '127.0.0.1'
port = %d
unix_socket_directories = '%s'
shared_preload_libraries = 'rr_router'
max_connections = 120
max_wal_senders = 10
wal_keep_size = '2GB'
hot_standby = on
hot_standby_feedback = on
fsync = off
wal_receiver_status_interval = 1s
wal_retrieve_retry_interval = 1s
log_line_prefix = '%%m [%%p] %%b '
restart_after_crash = on
rr_router.http_port = %d
rr_router.http_listen_addresses = '127.0.0.1'
""" % (node.port, node.sockdir, node.hport)


def run(cmd, **kw):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=kw.pop('timeout', 300), **kw)
    if r.returncode != 0:
        raise RuntimeError('%s failed:\n%s' % (' '.join(cmd), r.stdout))
    return r.stdout


def port_free(port):
    import socket
    with socket.socket() as s:
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(('127.0.0.1', port))
            return True
        except OSError:
            return False


def free_base_port(start):
    """The first base port from 'start' on, in steps of 10, whose eight
    ports (4 servers, 4 HTTP endpoints) are free now."""
    for bp in range(start, start + 2000, 10):
        if all(port_free(bp + i) and port_free(bp + 100 + i) for i in range(4)):
            return bp
    raise RuntimeError('no free ports from %d on' % start)


def build_cluster(args):
    work = args.workdir
    os.makedirs(work, exist_ok=True)
    sockdir = os.path.join(work, 'sock')
    os.makedirs(sockdir, exist_ok=True)
    bp = free_base_port(args.base_port)
    p = Node('primary', bp, bp + 100, os.path.join(work, 'primary'), sockdir, args.pg_bin)
    r1 = Node('replica1', bp + 1, bp + 101, os.path.join(work, 'replica1'), sockdir, args.pg_bin, p)
    r2 = Node('replica2', bp + 2, bp + 102, os.path.join(work, 'replica2'), sockdir, args.pg_bin, p)
    c1 = Node('cascade', bp + 3, bp + 103, os.path.join(work, 'cascade'), sockdir, args.pg_bin, r1)

    run([os.path.join(args.pg_bin, 'initdb'), '-D', p.datadir, '-A', 'trust',
         '-U', 'postgres', '--no-sync', '-E', 'UTF8', '--locale=C'])
    with open(os.path.join(p.datadir, 'postgresql.conf'), 'a') as f:
        f.write(common_conf(p))
    with open(os.path.join(p.datadir, 'pg_hba.conf'), 'a') as f:
        f.write('host replication postgres 127.0.0.1/32 trust\n')
    r = p.pg_ctl('start')
    if r.returncode != 0:
        raise RuntimeError('primary did not start: ' + r.stdout)
    p.sql('CREATE EXTENSION rr_router')
    p.sql('CREATE TABLE ryw(w int, seq bigint, at timestamptz DEFAULT clock_timestamp(), '
          'PRIMARY KEY (w, seq))')
    p.sql('CREATE TABLE progress(w int PRIMARY KEY, seq bigint NOT NULL)')
    p.sql('INSERT INTO progress SELECT i, 0 FROM generate_series(0, %d) i'
          % (args.ryw_clients - 1))
    run([os.path.join(args.pg_bin, 'pgbench'), '-i', '-q', '-s', '1', '-h', '127.0.0.1',
         '-p', str(p.port), '-U', 'postgres', 'postgres'])

    for node in (r1, r2, c1):
        up = node.upstream
        run([os.path.join(args.pg_bin, 'pg_basebackup'), '-D', node.datadir, '-R',
             '-X', 'stream', '-c', 'fast', '-h', '127.0.0.1', '-p', str(up.port),
             '-U', 'postgres', '--no-sync'])
        with open(os.path.join(node.datadir, 'postgresql.conf'), 'a') as f:
            f.write(common_conf(node))
        r = node.pg_ctl('start')
        if r.returncode != 0:
            raise RuntimeError('%s did not start: %s' % (node.name, r.stdout))
    # every replica caught up
    lsn = p.sql('SELECT pg_current_wal_lsn()::text')[0][0]
    for node in (r1, r2, c1):
        for _ in range(600):
            if node.sql('SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn', (lsn,))[0][0]:
                break
            time.sleep(0.1)
        else:
            raise RuntimeError('%s did not catch up' % node.name)
    return p, [r1, r2, c1]


def stop_cluster(nodes):
    for n in nodes:
        try:
            n.pg_ctl('stop', '-m', 'immediate')
        except Exception:
            pass


# --- ground truth -------------------------------------------------------------

class GroundTruth:
    """Per writer: the sequence numbers it committed and when the commit was
    acknowledged (client clock; same host as the servers)."""

    def __init__(self, nwriters):
        self.seqs = [[] for _ in range(nwriters)]
        self.acked = [[] for _ in range(nwriters)]

    def record(self, w, seq, t_ack):
        # one writer per list; appends in time order
        self.acked[w].append(t_ack)
        self.seqs[w].append(seq)

    def required(self, t_bound):
        """For each writer, the newest seq acknowledged before t_bound (0)."""
        req = []
        for w in range(len(self.seqs)):
            n = len(self.acked[w])
            k = bisect.bisect_left(self.acked[w], t_bound, 0, n)
            req.append(self.seqs[w][k - 1] if k > 0 else 0)
        return req


# --- clients ------------------------------------------------------------------

class Client(threading.Thread):
    def __init__(self, ctx, name, seed):
        super().__init__(name=name, daemon=True)
        self.ctx = ctx
        self.rng = random.Random(seed)
        self.conns = {}
        self.paused = threading.Event()

    def conn(self, node):
        c = self.conns.get(node.name)
        if c is None or c.closed or c.broken:
            self.conns[node.name] = None
            c = node.connect('chaos-' + self.name)
            self.conns[node.name] = c
        return c

    def drop(self, node):
        c = self.conns.pop(node.name, None)
        if c is not None:
            try:
                c.close()
            except Exception:
                pass

    def run(self):
        ctx = self.ctx
        while not ctx.stop.is_set():
            if ctx.quiesce.is_set():
                self.paused.set()
                time.sleep(0.05)
                continue
            self.paused.clear()
            try:
                self.step()
            except Exception as e:       # a bug in the driver: say it loudly
                ctx.stats.inc('driver_errors')
                log('driver error in %s: %s\n%s' % (self.name, e, traceback.format_exc()))
                time.sleep(0.5)
        self.paused.set()
        for n in list(self.conns):
            c = self.conns.pop(n)
            if c is not None:
                try:
                    c.close()
                except Exception:
                    pass

    def check_progress(self, node, c, t_bound, what):
        """Read 'progress' on node; every commit acknowledged before t_bound
        must be there."""
        gt = self.ctx.gt
        req = gt.required(t_bound)
        if not any(req):
            return False
        seen = dict(c.execute('SELECT w, seq FROM progress').fetchall())
        for w, r in enumerate(req):
            if seen.get(w, 0) < r:
                k = gt.seqs[w].index(r)
                self.ctx.stats.violation(
                    what, '%s: writer %d seq %d acknowledged %.3fs before the bound '
                    '(%.3fs before the check), replica shows seq %d'
                    % (node.name, w, r, t_bound - gt.acked[w][k], now() - gt.acked[w][k],
                       seen.get(w, 0)))
                return True
        return True


class RywClient(Client):
    """write -> token -> wait on a random replica -> read."""

    def __init__(self, ctx, w, seed):
        super().__init__(ctx, 'ryw%d' % w, seed)
        self.w = w
        self.seq = 0

    def step(self):
        ctx = self.ctx
        rng = self.rng
        replica = rng.choice(ctx.replicas)
        timeout_ms = rng.choice([0, 20, 100, 500, 1000, 1000, 3000])
        cancel_after = rng.uniform(0.005, 0.4) if rng.random() < 0.05 else None

        # write, and take the token in the same session
        self.seq += 1
        try:
            pc = self.conn(ctx.primary)
            with pc.transaction():
                pc.execute('INSERT INTO ryw(w, seq) VALUES (%s, %s)', (self.w, self.seq))
                pc.execute('UPDATE progress SET seq = %s WHERE w = %s', (self.seq, self.w))
            t_ack = now()
            token = pc.execute(ctx.token_take).fetchone()[0]
        except psycopg.Error as e:
            ctx.stats.inc('write_errors')
            log('%s: write failed: %s' % (self.name, str(e).strip().splitlines()[0]
                                          if str(e).strip() else type(e).__name__))
            self.drop(ctx.primary)
            time.sleep(0.2)
            return
        ctx.gt.record(self.w, self.seq, t_ack)
        ctx.stats.inc('writes')

        # wait on the replica
        try:
            rc = self.conn(replica)
        except psycopg.Error:
            ctx.stats.inc('connect_errors')
            time.sleep(0.2)
            return
        timer = None
        if cancel_after is not None:
            timer = threading.Timer(cancel_after, rc.cancel)
            timer.start()
        t0 = now()
        ok = None
        try:
            ok = rc.execute(ctx.token_wait, (token, timeout_ms)).fetchone()[0]
            ctx.count_wait(replica, 'answered')
        except (pgerr.QueryCanceled,) as e:
            ctx.count_wait(replica, 'failed')
            ctx.stats.inc('waits_cancelled_seen')
        except (pgerr.AdminShutdown, psycopg.OperationalError) as e:
            ctx.count_wait(replica, 'failed')
            ctx.stats.inc('waits_connection_lost')
            self.drop(replica)
        except psycopg.Error as e:
            ctx.count_wait(replica, 'failed')
            ctx.stats.inc('waits_other_error')
            log('%s: wait on %s: %s %s' % (self.name, replica.name, type(e).__name__, e))
            self.drop(replica)
        finally:
            if timer is not None:
                timer.cancel()
                timer.join()
        t1 = now()
        if ok is None:
            return
        ctx.stats.inc('waits_true' if ok else 'waits_false')
        if ok and replica.killswitch_stably_off(t0, t1):
            ctx.stats.violation('wait_true_with_kill_switch_off',
                                '%s: rr_wait_for_lsn returned true while '
                                'rr_router.replica_reads was off' % replica.name)
        if not ok:
            return
        try:
            if cancel_after is not None:
                # a cancel sent late may hit the next statement: use a fresh one
                rc.execute('SELECT 1')
            n = rc.execute('SELECT count(*) FROM ryw WHERE w = %s AND seq = %s',
                           (self.w, self.seq)).fetchone()[0]
        except psycopg.Error as e:
            ctx.stats.inc('read_errors')
            self.drop(replica)
            return
        ctx.stats.inc('checked_reads')
        ctx.stats.inc('checked_ryw_reads')
        if n != 1:
            ctx.stats.violation('read_your_writes',
                                '%s: rr_wait_for_lsn(%s) returned true but row '
                                '(%d, %d) is not visible' % (replica.name, token,
                                                             self.w, self.seq))


class StaleReader(Client):
    """rr_staleness() / rr_is_fresh() against ground truth."""

    def step(self):
        ctx = self.ctx
        rng = self.rng
        replica = rng.choice(ctx.replicas)
        bound = rng.choice([0.05, 0.2, 0.5, 1.0, 2.0, 5.0])
        try:
            c = self.conn(replica)
            t_send = now()
            d, fresh = c.execute(
                'SELECT extract(epoch FROM rr_staleness())::float8, '
                'rr_is_fresh(make_interval(secs => %s))', (bound,)).fetchone()
            t_back = now()
            checked = False
            lie = ctx.args.checker_self_test
            if d is not None:
                checked |= self.check_progress(replica, c, t_send - d - 0.0005 + lie,
                                               'staleness_bound')
            if fresh:
                checked |= self.check_progress(replica, c, t_send - bound - 0.0005 + lie,
                                               'fresh_answer')
            if fresh and replica.killswitch_stably_off(t_send, t_back):
                ctx.stats.violation('fresh_with_kill_switch_off',
                                    '%s: rr_is_fresh true while rr_router.replica_reads '
                                    'was off' % replica.name)
        except psycopg.Error as e:
            ctx.stats.inc('stale_read_errors')
            self.drop(replica)
            time.sleep(0.1)
            return
        ctx.stats.inc('staleness_calls')
        ctx.stats.inc('fresh_true' if fresh else 'fresh_false')
        if d is None:
            ctx.stats.inc('staleness_unknown')
        if checked:
            ctx.stats.inc('checked_reads')
            ctx.stats.inc('checked_staleness_reads')
        time.sleep(rng.uniform(0, 0.01))


class HttpChecker(Client):
    """GET /replica?max_staleness= against ground truth and SQL."""

    def step(self):
        ctx = self.ctx
        rng = self.rng
        replica = rng.choice(ctx.replicas)
        bound = rng.choice([0.1, 0.5, 1.0, 3.0])
        url = 'http://127.0.0.1:%d/replica?max_staleness=%gs' % (replica.hport, bound)
        t_send = now()
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                status, body = r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            status, body = e.code, e.read().decode()
        except Exception:
            ctx.stats.inc('http_errors')
            time.sleep(0.2)
            return
        t_back = now()
        ctx.stats.inc('http_checks')
        ctx.stats.inc('http_%d' % status)
        if status not in (200, 503):
            ctx.stats.violation('http_status', '%s: %s answered %d: %s'
                                % (replica.name, url, status, body.strip()))
            return
        m = re.match(r'role=(\w+) staleness=(\S+) lag_bytes=\S+ replica_reads=(on|off)', body)
        if not m:
            ctx.stats.violation('http_body', '%s: unexpected body %r' % (replica.name, body))
            return
        if m.group(1) != 'replica':
            ctx.stats.violation('http_role', '%s: role=%s' % (replica.name, m.group(1)))
        if status == 200:
            if m.group(3) != 'on':
                ctx.stats.violation('http_200_reads_off', '%s: 200 with replica_reads=off'
                                    % replica.name)
            if replica.killswitch_stably_off(t_send, t_back):
                ctx.stats.violation('http_200_kill_switch_off',
                                    '%s: /replica answered 200 while the kill switch '
                                    'was off' % replica.name)
            if m.group(2) == 'unknown' or float(m.group(2).rstrip('s')) > bound:
                ctx.stats.violation('http_200_beyond_bound', '%s: 200 for bound %gs: %s'
                                    % (replica.name, bound, body.strip()))
            try:
                c = self.conn(replica)
                if self.check_progress(replica, c, t_send - bound - 0.0005, 'http_fresh'):
                    ctx.stats.inc('checked_reads')
                    ctx.stats.inc('checked_http_reads')
            except psycopg.Error:
                self.drop(replica)
        time.sleep(rng.uniform(0.05, 0.2))


# --- faults ---------------------------------------------------------------------

def make_schedule(seed, duration, rate, replicas):
    """The fault schedule: a list of (at, kind, target, params), from the
    seed alone."""
    rng = random.Random('schedule-%d' % seed)
    kinds = [k for k, _ in FAULT_WEIGHTS]
    weights = [w for _, w in FAULT_WEIGHTS]
    names = [r.name for r in replicas]
    out = []
    t = 2.0
    while True:
        t += rng.expovariate(rate)
        if t > duration - 8:
            break
        kind = rng.choices(kinds, weights)[0]
        dur = round(rng.uniform(0.2, 4.0), 3)
        target = rng.choice(names)
        params = {'dur': dur}
        if kind == 'apply_delay':
            params['delay_ms'] = rng.choice([50, 200, 500, 1500, 3000])
        elif kind == 'stop_walsender':
            target = rng.choice(['primary', 'replica1'])
        elif kind in ('kill9_worker', 'kill9_backend', 'terminate_backend', 'cancel_backend'):
            target = rng.choice(names + (['primary'] if kind != 'cancel_backend' else []))
            params['pick'] = rng.random()
        elif kind == 'restart_replica':
            params['mode'] = rng.choice(['fast', 'immediate'])
        elif kind == 'pgbench_burst':
            target = 'primary'
            params['clients'] = rng.choice([2, 4, 8])
        out.append((round(t, 3), kind, target, params))
    return out


class Chaos(threading.Thread):
    def __init__(self, ctx, schedule):
        super().__init__(name='chaos', daemon=True)
        self.ctx = ctx
        self.schedule = schedule
        self.threads = []
        self.stopped_pids = set()
        self.ever_stopped = set()
        self.spl = threading.Lock()
        self.killed = {}      # node name -> set of pids killed with SIGKILL

    def node(self, name):
        return self.ctx.by_name[name]

    def run(self):
        ctx = self.ctx
        for at, kind, target, params in self.schedule:
            while not ctx.stop.is_set():
                if ctx.quiesce.is_set():
                    time.sleep(0.05)
                    continue
                if ctx.elapsed() >= at:
                    break
                time.sleep(0.02)
            if ctx.stop.is_set():
                break
            th = threading.Thread(target=self.apply, args=(at, kind, target, params),
                                  name='fault-%s' % kind, daemon=True)
            th.start()
            self.threads.append(th)
            self.threads = [t for t in self.threads if t.is_alive()]

    def wait_idle(self, timeout=120):
        deadline = now() + timeout
        for th in list(self.threads):
            th.join(max(0.1, deadline - now()))
        return all(not t.is_alive() for t in self.threads)

    def apply(self, at, kind, target, params):
        ctx = self.ctx
        node = self.node(target)
        try:
            getattr(self, 'f_' + kind)(node, params)
            ctx.stats.inc('faults')
            ctx.stats.inc('fault_' + kind)
            log('fault %s on %s %s done' % (kind, target, params))
        except Exception as e:
            ctx.stats.inc('faults_not_applied')
            ctx.stats.inc('fault_skipped_' + kind)
            log('fault %s on %s not applied: %s' % (kind, target, str(e).strip()[:200]))

    def sleep(self, dur):
        end = now() + dur
        while now() < end and not self.ctx.stop.is_set():
            time.sleep(0.02)

    def signal(self, pid, sig):
        os.kill(pid, sig)

    # each fault: do it, hold it for params['dur'], undo it (bounded retries)

    def f_pause_replay(self, node, p):
        node.sql('SELECT pg_wal_replay_pause()')
        self.sleep(p['dur'])
        node.sql('SELECT pg_wal_replay_resume()', retries=60)

    def f_apply_delay(self, node, p):
        node.sql("ALTER SYSTEM SET recovery_min_apply_delay = '%dms'" % p['delay_ms'])
        node.sql('SELECT pg_reload_conf()')
        self.sleep(p['dur'])
        node.sql('ALTER SYSTEM RESET recovery_min_apply_delay', retries=60)
        node.sql('SELECT pg_reload_conf()', retries=60)

    def stop_cont(self, pid, dur):
        with self.spl:
            self.stopped_pids.add(pid)
            self.ever_stopped.add(pid)
        try:
            self.signal(pid, signal.SIGSTOP)
            self.sleep(dur)
        finally:
            try:
                self.signal(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
            with self.spl:
                self.stopped_pids.discard(pid)

    def f_stop_walreceiver(self, node, p):
        rows = node.sql('SELECT pid FROM pg_stat_wal_receiver')
        if not rows:
            raise RuntimeError('no walreceiver')
        self.stop_cont(rows[0][0], p['dur'])

    def f_stop_walsender(self, node, p):
        rows = node.sql('SELECT pid FROM pg_stat_replication ORDER BY pid')
        if not rows:
            raise RuntimeError('no walsender')
        self.stop_cont(random.Random(p['dur']).choice(rows)[0], p['dur'])

    def f_term_walreceiver(self, node, p):
        rows = node.sql('SELECT pid FROM pg_stat_wal_receiver')
        if not rows:
            raise RuntimeError('no walreceiver')
        self.signal(rows[0][0], signal.SIGTERM)

    def kill9(self, node, pid):
        with node.lock:
            self.killed.setdefault(node.name, set()).add(pid)
            self.signal(pid, signal.SIGKILL)
            self.ctx.crashed(node)
            self.wait_up(node)

    def wait_up(self, node, timeout=120):
        deadline = now() + timeout
        while now() < deadline:
            try:
                if node.sql('SELECT 1')[0][0] == 1:
                    return
            except psycopg.Error:
                pass
            time.sleep(0.2)
        raise RuntimeError('%s did not come back' % node.name)

    def f_kill9_walreceiver(self, node, p):
        rows = node.sql('SELECT pid FROM pg_stat_wal_receiver')
        if not rows:
            raise RuntimeError('no walreceiver')
        self.kill9(node, rows[0][0])

    def f_kill9_worker(self, node, p):
        rows = node.sql('SELECT worker_pid FROM rr_status')
        if not rows or not rows[0][0]:
            raise RuntimeError('no worker')
        self.kill9(node, rows[0][0])

    def client_backends(self, node, waiting_only=False):
        q = ("SELECT pid FROM pg_stat_activity WHERE application_name LIKE 'chaos-%%' "
             "AND backend_type = 'client backend'")
        if waiting_only:
            q = 'SELECT pid FROM rr_waiters'
        return sorted(r[0] for r in node.sql(q))

    def f_kill9_backend(self, node, p):
        pids = self.client_backends(node)
        if not pids:
            raise RuntimeError('no backend')
        self.kill9(node, pids[int(p['pick'] * len(pids))])

    def f_terminate_backend(self, node, p):
        pids = self.client_backends(node, waiting_only=node.is_replica) or \
            self.client_backends(node)
        if not pids:
            raise RuntimeError('no backend')
        node.sql('SELECT pg_terminate_backend(%s)', (pids[int(p['pick'] * len(pids))],))

    def f_cancel_backend(self, node, p):
        pids = self.client_backends(node, waiting_only=True)
        if not pids:
            raise RuntimeError('no waiter')
        node.sql('SELECT pg_cancel_backend(%s)', (pids[int(p['pick'] * len(pids))],))

    def f_kill_switch(self, node, p):
        # overlapping flips of one node: off with the first, on after the last
        with node.ks_lock:
            node.killswitch_holders += 1
            if node.killswitch_holders == 1:
                try:
                    node.sql('ALTER SYSTEM SET rr_router.replica_reads = off')
                    node.sql('SELECT pg_reload_conf()')
                except Exception:
                    node.killswitch_holders -= 1
                    raise
                node.killswitch_off.append([now(), None])
        try:
            self.sleep(p['dur'] + 1.5)
        finally:
            with node.ks_lock:
                node.killswitch_holders -= 1
                if node.killswitch_holders == 0:
                    node.killswitch_off[-1][1] = now()
                    node.sql('ALTER SYSTEM RESET rr_router.replica_reads', retries=60)
                    node.sql('SELECT pg_reload_conf()', retries=60)

    def f_restart_replica(self, node, p):
        with node.lock:
            self.ctx.crashed(node)
            r = node.pg_ctl('restart', '-m', p['mode'])
            if r.returncode != 0:
                raise RuntimeError('restart failed: ' + r.stdout[-500:])
            self.wait_up(node)

    def f_pgbench_burst(self, node, p):
        dur = max(1, int(round(p['dur'])))
        subprocess.run([os.path.join(self.ctx.args.pg_bin, 'pgbench'), '-n', '-c',
                        str(p['clients']), '-T', str(dur), '-h', '127.0.0.1', '-p',
                        str(node.port), '-U', 'postgres', 'postgres'],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=dur + 60)

    def release_all(self):
        with self.spl:
            pids = list(self.stopped_pids)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass


# --- the run --------------------------------------------------------------------

class Ctx:
    def __init__(self, args):
        self.args = args
        self.stats = Stats()
        self.stop = threading.Event()
        self.quiesce = threading.Event()
        self.t_start = now()
        self.wlock = threading.Lock()
        self.wcount = {}      # node -> {'answered': n, 'failed': n}
        self.epochs_dirty = set()

    def elapsed(self):
        return now() - self.t_start

    def count_wait(self, node, what):
        with self.wlock:
            d = self.wcount.setdefault(node.name, {'answered': 0, 'failed': 0})
            d[what] += 1

    def crashed(self, node):
        with self.wlock:
            self.epochs_dirty.add(node.name)


def node_epoch(node):
    # the checkpointer is restarted by every crash restart
    rows = node.sql("SELECT pg_postmaster_start_time()::text, "
                    "(SELECT pid FROM pg_stat_activity WHERE backend_type = 'checkpointer')")
    return tuple(rows[0])


def checkpoint(ctx, chaos, clients, prev, final=False):
    """Quiesce, then check waiters and counters on every node."""
    st = ctx.stats
    ctx.quiesce.set()
    deadline = now() + 90
    while now() < deadline and not all(c.paused.is_set() for c in clients):
        time.sleep(0.05)
    if final:
        chaos.wait_idle(180)
    chaos.release_all()
    st.inc('checkpoints')
    cur = {}
    for node in [ctx.primary] + ctx.replicas:
        try:
            # let cancellations and terminations finish
            waiters = None
            for _ in range(100):
                waiters = node.sql('SELECT pid, target_lsn::text FROM rr_waiters', retries=20)
                if not waiters:
                    break
                time.sleep(0.1)
            if waiters:
                st.violation('waiters_not_empty', '%s: rr_waiters has %r while quiescent'
                             % (node.name, waiters))
            row = node.sql('SELECT waits, waits_immediate, waits_woken, waits_timed_out, '
                           'waits_cancelled FROM rr_status', retries=20)[0]
            if row[0] != sum(row[1:]):
                st.violation('counters', '%s: waits %d != %d' % (node.name, row[0], sum(row[1:])))
            ep = node_epoch(node)
        except Exception as e:
            st.violation('checkpoint_unreachable', '%s: %s' % (node.name, e))
            continue
        with ctx.wlock:
            wc = ctx.wcount.pop(node.name, {'answered': 0, 'failed': 0})
            dirty = node.name in ctx.epochs_dirty
            ctx.epochs_dirty.discard(node.name)
        cur[node.name] = (ep, row[0])
        if node.name in prev and prev[node.name][0] == ep and not dirty:
            delta = row[0] - prev[node.name][1]
            st.inc('counter_checks')
            if not (wc['answered'] <= delta <= wc['answered'] + wc['failed']):
                st.violation('counters_vs_clients',
                             '%s: waits grew by %d, clients saw %d answered and %d failed'
                             % (node.name, delta, wc['answered'], wc['failed']))
    log('checkpoint %s' % json.dumps(st.c, sort_keys=True))
    ctx.quiesce.clear()
    return cur


def scan_logs(ctx, chaos):
    """No PANIC, no assertion failure, no process ended by a signal we did not
    send."""
    st = ctx.stats
    for node in [ctx.primary] + ctx.replicas:
        try:
            text = open(node.logfile, errors='replace').read()
        except OSError:
            continue
        killed = chaos.killed.get(node.name, set())
        for line in text.splitlines():
            if 'PANIC:' in line or 'TRAP:' in line:
                st.violation('panic', '%s: %s' % (node.name, line))
            m = re.search(r'\(PID (\d+)\) was terminated by signal (\d+)', line)
            if m:
                pid, sig = int(m.group(1)), int(m.group(2))
                # a process stopped with SIGSTOP during a crash restart is
                # killed by the postmaster with SIGKILL
                if sig != INJECTED_SIGNAL or (pid not in killed and
                                              pid not in chaos.ever_stopped):
                    st.violation('crash', '%s: %s' % (node.name, line))
                else:
                    st.inc('injected_kills_seen')
            if re.search(r'rr_router worker.*exited with exit code [^01]', line):
                st.violation('worker_exit', '%s: %s' % (node.name, line))
            if 'AddressSanitizer' in line or 'runtime error:' in line:
                st.violation('sanitizer', '%s: %s' % (node.name, line))


def main():
    global LOG_FILE, VERBOSE, T0
    ap = argparse.ArgumentParser()
    ap.add_argument('--seed', type=int, default=None)
    ap.add_argument('--duration', type=float, default=180, help='seconds of chaos')
    ap.add_argument('--fault-rate', type=float, default=0.3, help='faults per second')
    ap.add_argument('--ryw-clients', type=int, default=6)
    ap.add_argument('--stale-readers', type=int, default=3)
    ap.add_argument('--http-checkers', type=int, default=1)
    ap.add_argument('--checkpoint', type=float, default=120, help='seconds between checkpoints')
    ap.add_argument('--workdir', required=True)
    ap.add_argument('--pg-bin', default='/usr/lib/postgresql/15/bin')
    ap.add_argument('--base-port', type=int, default=25700)
    ap.add_argument('--token', default='lsn', choices=sorted(TOKEN_KINDS))
    ap.add_argument('--checker-self-test', type=float, default=0.0, metavar='S',
                    help='judge staleness answers as if they were S seconds smaller '
                    '(a lie the checker must catch: expect violations)')
    ap.add_argument('--schedule-only', action='store_true',
                    help='print the schedule for the seed and exit')
    ap.add_argument('--keep', action='store_true', help='leave the servers running')
    ap.add_argument('-v', '--verbose', action='store_true')
    args = ap.parse_args()
    VERBOSE = args.verbose
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1, 2**31)
    print('=== chaos seed %d (repeat with --seed %d)' % (args.seed, args.seed), flush=True)

    names = [type('N', (), {'name': n}) for n in ('replica1', 'replica2', 'cascade')]
    schedule = make_schedule(args.seed, args.duration, args.fault_rate, names)
    sched_text = '\n'.join('%9.3f %-18s %-9s %s' % (a, k, t, json.dumps(p, sort_keys=True))
                           for a, k, t, p in schedule)
    print('=== schedule: %d faults over %gs, sha256 %s' % (
        len(schedule), args.duration, hashlib.sha256(sched_text.encode()).hexdigest()[:16]),
        flush=True)
    if args.schedule_only:
        print(sched_text)
        return 0

    os.makedirs(args.workdir, exist_ok=True)
    with open(os.path.join(args.workdir, 'schedule.txt'), 'w') as f:
        f.write(sched_text + '\n')
    LOG_FILE = open(os.path.join(args.workdir, 'chaos.log'), 'w')

    ctx = Ctx(args)
    ctx.token_take, ctx.token_wait = TOKEN_KINDS[args.token]
    ctx.gt = GroundTruth(args.ryw_clients)
    try:
        primary, replicas = build_cluster(args)
    except Exception as e:
        print('chaos: setup failed: %s' % e, file=sys.stderr)
        return 2
    ctx.primary, ctx.replicas = primary, replicas
    ctx.by_name = {n.name: n for n in [primary] + replicas}
    all_nodes = [primary] + replicas
    log('=== cluster up: %s' % ', '.join('%s:%d' % (n.name, n.port) for n in all_nodes))

    clients = [RywClient(ctx, w, args.seed * 1000 + w) for w in range(args.ryw_clients)]
    clients += [StaleReader(ctx, 'stale%d' % i, args.seed * 1000 + 100 + i)
                for i in range(args.stale_readers)]
    clients += [HttpChecker(ctx, 'http%d' % i, args.seed * 1000 + 200 + i)
                for i in range(args.http_checkers)]
    chaos = Chaos(ctx, schedule)
    rc = 0
    try:
        prev = checkpoint(ctx, chaos, [], {})
        ctx.t_start = now()
        T0 = ctx.t_start
        for c in clients:
            c.start()
        chaos.start()
        next_cp = args.checkpoint
        while ctx.elapsed() < args.duration:
            time.sleep(0.5)
            if ctx.elapsed() >= next_cp and ctx.elapsed() < args.duration - 20:
                t_q = now()
                prev = checkpoint(ctx, chaos, clients, prev)
                ctx.t_start += now() - t_q     # the schedule does not count the pause
                next_cp += args.checkpoint
        log('=== chaos over; quiescing')
        chaos.join(timeout=5)
        prev = checkpoint(ctx, chaos, clients, prev, final=True)
        ctx.stop.set()
        for c in clients:
            c.join(timeout=30)
        scan_logs(ctx, chaos)
    finally:
        ctx.stop.set()
        chaos.release_all()
        if not args.keep:
            stop_cluster(all_nodes)
    st = ctx.stats
    summary = {'seed': args.seed, 'duration_s': args.duration,
               'scheduled_faults': len(schedule), 'counts': st.c,
               'violations': st.violations}
    with open(os.path.join(args.workdir, 'summary.json'), 'w') as f:
        json.dump(summary, f, indent=1, sort_keys=True)
    print('=== summary (seed %d)' % args.seed)
    print(json.dumps(st.c, indent=1, sort_keys=True))
    if st.violations:
        print('=== %d VIOLATIONS' % len(st.violations))
        for v in st.violations[:50]:
            print('  %s: %s' % (v['kind'], v['detail']))
        rc = 1
    else:
        print('=== no violations')
    if st.c.get('driver_errors'):
        print('=== %d driver errors (see chaos.log)' % st.c['driver_errors'])
        rc = rc or 1
    return rc


if __name__ == '__main__':
    sys.exit(main())
