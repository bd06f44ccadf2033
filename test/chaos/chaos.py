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
#                   'progress' table, in one transaction; replication is
#                   asynchronous, commits are durable locally: with
#                   synchronous_commit off a crash restart of the primary
#                   loses acknowledged writes on the same timeline, where
#                   no token can tell), take a token -- even
#                   clients rr_last_commit_lsn(), odd ones the failover-safe
#                   rr_last_commit_token() -- wait for it on a random
#                   replica with a random timeout (some waits cancelled),
#                   and when the wait says true read the row there: it must
#                   be visible (for an LSN token, unless a failover lost
#                   the write: rr_wait_for_lsn is timeline-blind).  A true
#                   while the kill switch has been off all along is a
#                   violation too.  RR001 from rr_wait_for_token must name
#                   a write a failover that began before it lost.  After a
#                   failover, clients now and then wait again for old
#                   tokens: for a lost write, every node that was on the
#                   new timeline (or a later one) before the call must
#                   raise RR001 (never true, never false); for a surviving
#                   write RR001 is always wrong.
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
#                   write bursts on the primary; and promotions (one
#                   stream of their own in the schedule): a direct replica,
#                   mostly one first cut off from the primary for a few
#                   seconds while the writers go on, is promoted after the
#                   old primary is stopped (fast or immediate), the old
#                   primary is rebuilt as a replica (pg_rewind or
#                   pg_basebackup), replicas that replayed or received WAL
#                   past the fork point are rewound and the others
#                   re-pointed by a reload.  Roles keep their shape:
#                   replica1 with its cascade, replica2.  The writes the new
#                   primary does not have are lost from then on: the
#                   staleness checks no longer require them.
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
# Tokens: TOKEN_KINDS maps a kind to the SQL that takes a token and the SQL
# that waits for it; --token picks lsn, token or mixed (the default).
#
# A check that a promotion overlapped (ctx.topo_gen moved) is not judged:
# the node may have changed role under it.  Answers that are right only if
# a failover lost the write (RR001, an LSN true without the row) are judged
# once no promotion is under way, against the ground truth taken from the
# new primary.
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
    'token': ('SELECT rr_last_commit_token()',
              'SELECT rr_wait_for_token(%s, %s)'),
}

# SQLSTATE of rr_wait_for_token's "causality token refers to WAL lost in a
# failover".
RR_TOKEN_LOST = 'RR001'

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
    """One server.  'name' (pg0..pg3) is the server's identity (its data
    directory, log and ports); 'role' (primary, replica1, replica2, cascade)
    is the part it plays now, which a promotion changes.  Faults name roles."""

    def __init__(self, name, role, port, hport, datadir, sockdir, pgbin, upstream=None):
        self.name = name
        self.role = role
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

    @property
    def label(self):
        return '%s(%s)' % (self.role, self.name)

    def primary_conninfo(self):
        """What a replica of this node puts in primary_conninfo."""
        return 'host=127.0.0.1 port=%d user=postgres application_name=%s' % (
            self.port, 'walreceiver')

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
wal_log_hints = on
restart_after_crash = on
rr_router.http_port = %d
rr_router.http_listen_addresses = '127.0.0.1'
""" % (node.port, node.sockdir, node.hport)


# initdb's postgresql.conf, before common_conf: what a rebuilt server's
# postgresql.conf starts from (pg_rewind and pg_basebackup copy the source's)
CONF_TEMPLATE = ''


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
    def node(i, role, upstream=None):
        return Node('pg%d' % i, role, bp + i, bp + 100 + i, os.path.join(work, 'pg%d' % i),
                    sockdir, args.pg_bin, upstream)
    p = node(0, 'primary')
    r1 = node(1, 'replica1', p)
    r2 = node(2, 'replica2', p)
    c1 = node(3, 'cascade', r1)

    # wal_log_hints (common_conf) lets pg_rewind bring a former primary or a
    # replica past the fork point back after a promotion
    run([os.path.join(args.pg_bin, 'initdb'), '-D', p.datadir, '-A', 'trust',
         '-U', 'postgres', '--no-sync', '-E', 'UTF8', '--locale=C'])
    global CONF_TEMPLATE
    with open(os.path.join(p.datadir, 'postgresql.conf')) as f:
        CONF_TEMPLATE = f.read()
    with open(os.path.join(p.datadir, 'postgresql.conf'), 'a') as f:
        f.write(common_conf(p))
    with open(os.path.join(p.datadir, 'pg_hba.conf'), 'a') as f:
        f.write('host replication postgres 127.0.0.1/32 trust\n')
    r = p.pg_ctl('start')
    if r.returncode != 0:
        raise RuntimeError('primary did not start: ' + r.stdout)
    p.sql('CREATE EXTENSION rr_router')
    # the sweeps (sweep_tokens) judge many tokens in one statement
    p.sql("""CREATE FUNCTION chaos_token_verdict(tok text) RETURNS text
               LANGUAGE plpgsql AS $$
               BEGIN
                   RETURN rr_wait_for_token(tok, 0)::text;
               EXCEPTION WHEN SQLSTATE 'RR001' THEN
                   RETURN 'RR001';
               END $$""")
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
    acknowledged (client clock; same host as the servers), less the writes a
    failover lost; and which writes were lost, and from when."""

    def __init__(self, nwriters):
        self.lock = threading.Lock()
        self.seqs = [[] for _ in range(nwriters)]
        self.acked = [[] for _ in range(nwriters)]
        self.tokens = [{} for _ in range(nwriters)]   # seq -> failover-safe token
        self.lost = {}                                # (w, seq) -> failover start

    def record(self, w, seq, t_ack, token=None):
        # one writer per list; appends in time order
        with self.lock:
            self.acked[w].append(t_ack)
            self.seqs[w].append(seq)
            if token is not None:
                self.tokens[w][seq] = token
                if len(self.tokens[w]) > 4000:
                    for k in sorted(self.tokens[w])[:2000]:
                        del self.tokens[w][k]

    def required(self, t_bound):
        """For each writer, the newest seq acknowledged before t_bound (0)."""
        req = []
        with self.lock:
            for w in range(len(self.seqs)):
                n = len(self.acked[w])
                k = bisect.bisect_left(self.acked[w], t_bound, 0, n)
                req.append(self.seqs[w][k - 1] if k > 0 else 0)
        return req

    def acked_at(self, w, seq):
        with self.lock:
            k = bisect.bisect_left(self.seqs[w], seq)
            if k < len(self.seqs[w]) and self.seqs[w][k] == seq:
                return self.acked[w][k]
        return None

    def mark_lost(self, w, newest_kept, t_failover):
        """Every acknowledged write of w after seq newest_kept was lost by the
        failover that began at t_failover: no longer required anywhere.
        Returns [(seq, token or None)] of the writes lost, and the newest
        surviving (seq, token) of w that has a token, or None."""
        with self.lock:
            k = bisect.bisect_right(self.seqs[w], newest_kept)
            gone = self.seqs[w][k:]
            del self.seqs[w][k:]
            del self.acked[w][k:]
            out = []
            for seq in gone:
                self.lost[(w, seq)] = t_failover
                out.append((seq, self.tokens[w].pop(seq, None)))
            kept = [q for q in self.tokens[w] if q <= newest_kept]
            survivor = (max(kept), self.tokens[w][max(kept)]) if kept else None
        return out, survivor

    def survivors(self, w, newest_kept, n):
        """The newest n surviving writes of w with a token: [(seq, token)]."""
        with self.lock:
            kept = sorted(q for q in self.tokens[w] if q <= newest_kept)[-n:]
            return [(q, self.tokens[w][q]) for q in kept]

    def lost_before(self, w, seq, t):
        """Whether (w, seq) was lost by a failover that began before t."""
        with self.lock:
            t_lost = self.lost.get((w, seq))
        return t_lost is not None and t_lost <= t


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

    def check_progress(self, node, c, t_bound, what, gen):
        """Read 'progress' on node; every commit acknowledged before t_bound
        (and not lost by a failover) must be there.  A miss is judged only
        when no promotion overlapped the check (gen: ctx.topo_gen when it
        began): during one, the node may change role under the reader."""
        ctx = self.ctx
        gt = ctx.gt
        req = gt.required(t_bound)
        if not any(req):
            return False
        seen = dict(c.execute('SELECT w, seq FROM progress').fetchall())
        for w, r in enumerate(req):
            if seen.get(w, 0) < r:
                if not ctx.topology_stable_since(gen):
                    ctx.stats.inc('checks_discarded_failover')
                    return False
                t_ack = gt.acked_at(w, r)
                if t_ack is None:        # lost by a failover meanwhile
                    ctx.stats.inc('checks_discarded_failover')
                    return False
                ctx.stats.violation(
                    what, '%s: writer %d seq %d acknowledged %.3fs before the bound '
                    '(%.3fs before the check), replica shows seq %d'
                    % (node.label, w, r, t_bound - t_ack, now() - t_ack,
                       seen.get(w, 0)))
                return True
        return True


class RywClient(Client):
    """write -> token -> wait on a random replica -> read.  Clients with an
    even number use LSN tokens, odd ones failover-safe tokens (--token
    mixed); token clients now and then wait again for an old token: one a
    failover lost (it must raise RR001 on every node that follows the new
    timeline) or one that survived (never RR001)."""

    def __init__(self, ctx, w, seed):
        super().__init__(ctx, 'ryw%d' % w, seed)
        self.w = w
        self.seq = 0
        kind = ctx.args.token
        if kind == 'mixed':
            kind = 'token' if w % 2 else 'lsn'
        self.kind = kind
        self.take_sql, self.wait_sql = TOKEN_KINDS[kind]

    def begin_write(self):
        """The primary to write on, counted in flight; None while a
        promotion has the writers stopped."""
        ctx = self.ctx
        with ctx.gate:
            if ctx.primary_for_writes is None:
                return None
            ctx.inflight += 1
            return ctx.primary_for_writes

    def end_write(self):
        ctx = self.ctx
        with ctx.gate:
            ctx.inflight -= 1
            ctx.gate.notify_all()

    def step(self):
        ctx = self.ctx
        rng = self.rng
        if ctx.old_tokens and rng.random() < 0.08:
            self.rewait(rng.choice(ctx.old_tokens), rng.choice(ctx.replicas + [None]),
                        rng.choice([0, 0, 50, 500]))
            return
        replica = rng.choice(ctx.replicas)
        timeout_ms = rng.choice([0, 20, 100, 500, 1000, 1000, 3000])
        cancel_after = rng.uniform(0.005, 0.4) if rng.random() < 0.05 else None

        # write, and take the token in the same session
        primary = self.begin_write()
        if primary is None:
            time.sleep(0.05)
            return
        try:
            self.seq += 1
            try:
                pc = self.conn(primary)
                with pc.transaction():
                    pc.execute('INSERT INTO ryw(w, seq) VALUES (%s, %s)', (self.w, self.seq))
                    pc.execute('UPDATE progress SET seq = %s WHERE w = %s', (self.seq, self.w))
                t_ack = now()
                token = pc.execute(self.take_sql).fetchone()[0]
            except psycopg.Error as e:
                ctx.stats.inc('write_errors')
                log('%s: write failed: %s' % (self.name, str(e).strip().splitlines()[0]
                                              if str(e).strip() else type(e).__name__))
                self.drop(primary)
                time.sleep(0.2)
                return
            ctx.gt.record(self.w, self.seq, t_ack, token if self.kind == 'token' else None)
            ctx.stats.inc('writes')
            ctx.stats.inc('writes_' + self.kind)
        finally:
            self.end_write()

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
            ok = rc.execute(self.wait_sql, (token, timeout_ms)).fetchone()[0]
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
            if e.sqlstate == RR_TOKEN_LOST:
                # judged once the failover that may have lost it is settled
                ctx.stats.inc('token_rr001_fresh')
                ctx.defer('rr001', self.w, self.seq, replica, now(), token)
            else:
                ctx.stats.inc('waits_other_error')
                log('%s: wait on %s: %s %s' % (self.name, replica.label, type(e).__name__, e))
                self.drop(replica)
        finally:
            if timer is not None:
                timer.cancel()
                timer.join()
        t1 = now()
        if ok is None:
            return
        ctx.stats.inc('waits_true' if ok else 'waits_false')
        ctx.stats.inc('waits_%s_%s' % (self.kind, 'true' if ok else 'false'))
        if ok and replica.killswitch_stably_off(t0, t1):
            ctx.stats.violation('wait_true_with_kill_switch_off',
                                '%s: %s returned true while '
                                'rr_router.replica_reads was off' % (replica.label, self.wait_sql))
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
        if n == 1:
            return
        if self.kind == 'lsn':
            # rr_wait_for_lsn is timeline-blind: true for a write a failover
            # lost is what it promises.  Judged once the failover is settled.
            ctx.defer('lsn_miss', self.w, self.seq, replica, t1, token)
            return
        ctx.stats.violation('read_your_writes',
                            '%s: %s(%s) returned true but row '
                            '(%d, %d) is not visible' % (replica.label, self.wait_sql, token,
                                                         self.w, self.seq))

    def rewait(self, old, node, timeout_ms):
        """Wait again for an old token (a dict from ctx.old_tokens) on node
        (None: the primary), with this client's kind.  Token clients: for a
        lost write, a node that was on the new timeline (or a later one)
        before the call must raise RR001; for a surviving one RR001 is
        always wrong; a true must be followed by a read that sees the row.
        LSN clients wait for the token's LSN: a true for a lost write whose
        row is not there is rr_wait_for_lsn's documented blindness (counted,
        not a violation); for a surviving write it is a violation."""
        ctx = self.ctx
        node = node or ctx.primary_for_writes
        if node is None:
            time.sleep(0.05)
            return
        gen = ctx.topo_gen
        if self.kind == 'token':
            arg = old['token']
        else:
            arg = old['token'].split(':', 1)[1]
        try:
            c = self.conn(node)
            tli = c.execute('SELECT timeline FROM rr_status').fetchone()[0] or 0
        except psycopg.Error:
            ctx.stats.inc('token_rewait_errors')
            self.drop(node)
            time.sleep(0.1)
            return
        try:
            ok = c.execute(self.wait_sql, (arg, timeout_ms)).fetchone()[0]
            ctx.count_wait(node, 'answered')
            err = None
        except psycopg.Error as e:
            ctx.count_wait(node, 'failed')
            if e.sqlstate != RR_TOKEN_LOST:
                ctx.stats.inc('token_rewait_errors')
                self.drop(node)
                time.sleep(0.1)
                return
            ok, err = None, e
        what = '%s_%s' % (self.kind, 'lost' if old['lost'] else 'survivor')
        ctx.stats.inc('rewaits')
        ctx.stats.inc('rewait_' + what)
        strict = self.kind == 'token' and old['lost'] and tli >= old['new_tli']
        if err is not None:
            ctx.stats.inc('rewait_%s_rr001' % what)
            if self.kind == 'lsn' or not old['lost']:
                ctx.stats.violation('rr001_for_surviving_write',
                                    '%s: %s(%s) raised RR001, but row (%d, %d) '
                                    'survived the failover to timeline %d: %s'
                                    % (node.label, self.wait_sql, arg, old['w'], old['seq'],
                                       old['new_tli'], str(err).strip()))
            return
        ctx.stats.inc('rewait_%s_%s' % (what, 'true' if ok else 'false'))
        if strict:
            ctx.stats.violation('lost_token_not_rr001',
                                '%s (timeline %d before the call): rr_wait_for_token(%s, %d) '
                                'returned %s for row (%d, %d), lost when timeline %d began'
                                % (node.label, tli, arg, timeout_ms, ok, old['w'],
                                   old['seq'], old['new_tli']))
            return
        if not ok:
            return
        try:
            n = c.execute('SELECT count(*) FROM ryw WHERE w = %s AND seq = %s',
                          (old['w'], old['seq'])).fetchone()[0]
        except psycopg.Error:
            ctx.stats.inc('read_errors')
            self.drop(node)
            return
        if n != 1 and self.kind == 'lsn' and old['lost']:
            ctx.stats.inc('lsn_true_for_lost_write')
            return
        ctx.stats.inc('checked_reads')
        ctx.stats.inc('checked_rewait_reads')
        if n != 1 and ctx.topology_stable_since(gen):
            ctx.stats.violation('read_your_writes',
                                '%s: %s(%s) (a re-wait) returned true but '
                                'row (%d, %d) is not visible' % (node.label, self.wait_sql, arg,
                                                                 old['w'], old['seq']))


class StaleReader(Client):
    """rr_staleness() / rr_is_fresh() against ground truth."""

    def step(self):
        ctx = self.ctx
        rng = self.rng
        replica = rng.choice(ctx.replicas)
        bound = rng.choice([0.05, 0.2, 0.5, 1.0, 2.0, 5.0])
        gen = ctx.topo_gen
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
                                               'staleness_bound', gen)
            if fresh:
                checked |= self.check_progress(replica, c, t_send - bound - 0.0005 + lie,
                                               'fresh_answer', gen)
            if fresh and replica.killswitch_stably_off(t_send, t_back):
                ctx.stats.violation('fresh_with_kill_switch_off',
                                    '%s: rr_is_fresh true while rr_router.replica_reads '
                                    'was off' % replica.label)
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
        gen = ctx.topo_gen
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
        if not ctx.topology_stable_since(gen):
            # a promotion may have made this node the primary meanwhile
            ctx.stats.inc('http_discarded_failover')
            time.sleep(rng.uniform(0.05, 0.2))
            return
        ctx.stats.inc('http_checks')
        ctx.stats.inc('http_%d' % status)
        if status not in (200, 503):
            ctx.stats.violation('http_status', '%s: %s answered %d: %s'
                                % (replica.label, url, status, body.strip()))
            return
        m = re.match(r'role=(\w+) staleness=(\S+) lag_bytes=\S+ replica_reads=(on|off)', body)
        if not m:
            ctx.stats.violation('http_body', '%s: unexpected body %r' % (replica.label, body))
            return
        if m.group(1) != 'replica':
            ctx.stats.violation('http_role', '%s: role=%s' % (replica.label, m.group(1)))
        if status == 200:
            if m.group(3) != 'on':
                ctx.stats.violation('http_200_reads_off', '%s: 200 with replica_reads=off'
                                    % replica.label)
            if replica.killswitch_stably_off(t_send, t_back):
                ctx.stats.violation('http_200_kill_switch_off',
                                    '%s: /replica answered 200 while the kill switch '
                                    'was off' % replica.label)
            if m.group(2) == 'unknown' or float(m.group(2).rstrip('s')) > bound:
                ctx.stats.violation('http_200_beyond_bound', '%s: 200 for bound %gs: %s'
                                    % (replica.label, bound, body.strip()))
            try:
                c = self.conn(replica)
                if self.check_progress(replica, c, t_send - bound - 0.0005, 'http_fresh', gen):
                    ctx.stats.inc('checked_reads')
                    ctx.stats.inc('checked_http_reads')
            except psycopg.Error:
                self.drop(replica)
        time.sleep(rng.uniform(0.05, 0.2))


# --- faults ---------------------------------------------------------------------

def make_schedule(seed, duration, rate, replicas, promote_every=120):
    """The fault schedule: a list of (at, kind, target, params), from the
    seed alone.  Promotions come from a stream of their own (so they do not
    move the other faults): the first between 25 % and 45 % of the run,
    always of a replica left behind, then one every 60 s + an exponential
    with mean promote_every - 60 s (0: no promotions)."""
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
    if promote_every > 0:
        prng = random.Random('promote-%d' % seed)
        t = duration * prng.uniform(0.25, 0.45)
        first = True
        while t < duration - 40:
            # behind: seconds the replica is cut off from the primary while
            # the writers go on (0: promoted as it is)
            behind = round(prng.uniform(0.5, 3.0), 3) if first or prng.random() < 0.75 else 0
            out.append((round(t, 3), 'promote', prng.choice(['replica1', 'replica2']),
                        {'behind': behind,
                         'stop': prng.choice(['fast', 'immediate']),
                         'rebuild': prng.choice(['rewind', 'rewind', 'basebackup'])}))
            first = False
            t += 60 + prng.expovariate(1.0 / max(1, promote_every - 60))
        out.sort(key=lambda f: f[0])
    return out


class TopoLock:
    """Faults hold it shared for as long as they act on a node they looked
    up by role; a promotion holds it exclusive, so no fault sees a role
    change under it.  A waiting promotion keeps new faults out."""

    def __init__(self):
        self.cv = threading.Condition()
        self.readers = 0
        self.writer = False
        self.writers_waiting = 0

    def acquire_shared(self):
        with self.cv:
            while self.writer or self.writers_waiting:
                self.cv.wait()
            self.readers += 1

    def release_shared(self):
        with self.cv:
            self.readers -= 1
            self.cv.notify_all()

    def acquire_exclusive(self):
        with self.cv:
            self.writers_waiting += 1
            while self.writer or self.readers:
                self.cv.wait()
            self.writers_waiting -= 1
            self.writer = True

    def release_exclusive(self):
        with self.cv:
            self.writer = False
            self.cv.notify_all()


def parse_lsn(text):
    hi, lo = text.split('/')
    return int(hi, 16) << 32 | int(lo, 16)


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
        label = target
        try:
            if kind == 'promote':
                self.f_promote(target, params)
            else:
                ctx.topo.acquire_shared()
                try:
                    node = self.node(target)
                    label = node.label
                    getattr(self, 'f_' + kind)(node, params)
                finally:
                    ctx.topo.release_shared()
            ctx.stats.inc('faults')
            ctx.stats.inc('fault_' + kind)
            log('fault %s on %s %s done' % (kind, label, params))
        except Exception as e:
            ctx.stats.inc('faults_not_applied')
            ctx.stats.inc('fault_skipped_' + kind)
            log('fault %s on %s not applied: %s' % (kind, label, str(e).strip()[:300]))
            if kind == 'promote':
                # the topology may be left broken: the run proves nothing more
                ctx.stats.inc('driver_errors')
                log(traceback.format_exc())

    def sleep(self, dur):
        end = now() + dur
        while now() < end and not self.ctx.stop.is_set():
            time.sleep(0.02)

    def signal(self, pid, sig):
        os.kill(pid, sig)

    # each fault: do it, hold it for params['dur'], undo it (bounded retries)

    # --- promotion ---------------------------------------------------------------

    def f_promote(self, target, p):
        """Promote the replica in role 'target' and make it the writers'
        primary.  With p['behind'] it is first cut off from the primary for
        that long while the writers go on, so acknowledged writes are really
        lost.  The old primary is stopped (p['stop']) before the promotion
        (no split brain) and rebuilt as a replica (p['rebuild']: pg_rewind or
        pg_basebackup); a replica that replayed or received WAL past the fork
        point is rewound, the others are re-pointed by a reload.  Promoting
        replica1 makes its cascade the new replica1 and the old primary the
        new cascade; promoting replica2 makes the old primary the new
        replica2.  Ground truth: the writes acknowledged before the failover
        that the new primary does not have are lost from then on."""
        ctx = self.ctx
        with ctx.promo_lock:
            ctx.topo.acquire_exclusive()
            try:
                ctx.topo_gen += 1                 # odd: a failover is under way
                try:
                    self.promote(target, p)
                finally:
                    ctx.topo_gen += 1
                    ctx.judge_deferred()
            finally:
                ctx.topo.release_exclusive()

    def promote(self, target, p):
        ctx = self.ctx
        st = ctx.stats
        t_fail = now()
        old = ctx.primary
        new = ctx.by_name[target]
        r1, r2, casc = ctx.by_name['replica1'], ctx.by_name['replica2'], ctx.by_name['cascade']
        ctx.replicas = [n for n in ctx.replicas if n is not new]
        log('=== promotion of %s (old primary %s) %s' % (new.label, old.label, p))

        if p['behind'] > 0:
            new.sql("ALTER SYSTEM SET primary_conninfo = ''")
            new.sql('SELECT pg_reload_conf()')
            deadline = now() + 15
            while new.sql('SELECT count(*) FROM pg_stat_wal_receiver')[0][0]:
                if now() > deadline:
                    raise RuntimeError('walreceiver of %s did not stop' % new.label)
                time.sleep(0.05)
            self.sleep(p['behind'])

        # fence the old primary, then stop the writers (acknowledged writes
        # are all recorded once none is in flight)
        with old.lock:
            ctx.crashed(old)
            r = old.pg_ctl('stop', '-m', p['stop'])
            if r.returncode != 0:
                raise RuntimeError('stopping %s failed: %s' % (old.label, r.stdout[-300:]))
        with ctx.gate:
            ctx.primary_for_writes = None
            if not ctx.gate.wait_for(lambda: ctx.inflight == 0, timeout=60):
                raise RuntimeError('writes still in flight')

        with new.lock:
            ctx.crashed(new)
            if not new.sql('SELECT pg_promote(true, 60)')[0][0]:
                raise RuntimeError('pg_promote on %s failed' % new.label)
        new.sql('ALTER SYSTEM RESET primary_conninfo')
        new.sql('SELECT pg_reload_conf()')
        # pg_rewind reads the source's timeline from its control file
        new.sql('CHECKPOINT')
        walfile = new.sql('SELECT pg_walfile_name(pg_current_wal_lsn())')[0][0]
        new_tli = int(walfile[:8], 16)
        with open(os.path.join(new.datadir, 'pg_wal', '%08X.history' % new_tli)) as f:
            last = [l for l in f.read().splitlines() if l.strip()][-1].split()
        old_tli, fork = int(last[0]), parse_lsn(last[1])
        log('promoted %s: timeline %d forks off %d at %s' % (new.label, new_tli, old_tli, last[1]))

        # ground truth: what the new primary has of each writer
        n_lost = 0
        sweep = []
        for w in range(len(ctx.gt.seqs)):
            kept = new.sql('SELECT coalesce(max(seq), 0) FROM ryw WHERE w = %s', (w,))[0][0]
            gone, survivor = ctx.gt.mark_lost(w, kept, t_fail)
            n_lost += len(gone)
            sweep += [(w, seq, tok, True) for seq, tok in gone if tok is not None]
            sweep += [(w, seq, tok, False) for seq, tok in ctx.gt.survivors(w, kept, 50)]
            liar = ctx.args.checker_self_test_failover
            with ctx.wlock:
                for i, (seq, tok) in enumerate(gone[-20:]):
                    if tok is not None:
                        ctx.old_tokens.append({'w': w, 'seq': seq, 'token': tok,
                                               'lost': not (liar and i == 0),
                                               'new_tli': new_tli})
                if survivor is not None:
                    ctx.old_tokens.append({'w': w, 'seq': survivor[0], 'token': survivor[1],
                                           'lost': liar, 'new_tli': new_tli})
                del ctx.old_tokens[:-400]
            if gone:
                log('writer %d: kept up to seq %d, lost seq %d..%d (%d writes)'
                    % (w, kept, gone[0][0], gone[-1][0], len(gone)))
        st.inc('writes_lost', n_lost)
        st.inc('promotions_with_lost_writes' if n_lost else 'promotions_without_lost_writes')

        # the new topology
        if target == 'replica1':
            roles = {'primary': new, 'replica1': casc, 'replica2': r2, 'cascade': old}
        else:
            roles = {'primary': new, 'replica1': r1, 'replica2': old, 'cascade': casc}
        upstream = {roles['replica1']: new, roles['replica2']: new,
                    roles['cascade']: roles['replica1']}
        mark = parse_lsn(new.sql('SELECT pg_current_wal_insert_lsn()::text')[0][0])
        how = {}
        for n in (roles['replica1'], roles['replica2'], roles['cascade']):
            if n is old:
                continue
            if n.upstream is new and upstream[n] is new:
                how[n] = 'kept'          # it streams from the promoted server already
                continue
            try:
                tli, replay, recv = n.sql(
                    "SELECT (SELECT timeline FROM rr_status), pg_last_wal_replay_lsn()::text, "
                    "coalesce(pg_last_wal_receive_lsn(), '0/0')::text")[0]
                past = tli == old_tli and max(parse_lsn(replay), parse_lsn(recv)) > fork
            except (psycopg.Error, TypeError, ValueError):
                past = True
            if past:
                self.rebuild(n, new, upstream[n], 'rewind')
                how[n] = 'rewound'
            elif n.upstream is not upstream[n]:
                # ALTER SYSTEM takes no parameters; the conninfo has no quotes
                n.sql("ALTER SYSTEM SET primary_conninfo = '%s'" % upstream[n].primary_conninfo())
                n.sql('SELECT pg_reload_conf()')
                how[n] = 're-pointed'
            else:
                how[n] = 'kept'
        self.rebuild(old, new, upstream[old], p['rebuild'])
        how[old] = p['rebuild']

        for role, n in roles.items():
            n.role = role
            n.upstream = upstream.get(n)
        for n in upstream:
            if not self.following(n, new_tli, mark, 60):
                log('%s does not follow timeline %d: rebuilding it' % (n.label, new_tli))
                self.rebuild(n, new, upstream[n], 'basebackup')
                how[n] += '+basebackup'
                if not self.following(n, new_tli, mark, 120):
                    st.violation('topology', '%s did not follow timeline %d after a promotion'
                                 % (n.label, new_tli))
        ctx.by_name = dict(roles)
        ctx.primary = new
        ctx.replicas = [roles['replica1'], roles['replica2'], roles['cascade']]
        ctx.lost_tokens += [e for e in sweep if e[3]]
        sweep_tokens(ctx, sweep, 'after the promotion to timeline %d' % new_tli)
        with ctx.gate:
            ctx.primary_for_writes = new
            ctx.gate.notify_all()
        st.inc('promotions')
        st.inc('promotions_' + ('behind' if p['behind'] else 'caught_up'))
        ctx.failovers.append({'at': round(now() - T0, 1), 'promoted': new.name, 'tli': new_tli,
                              'fork': last[1], 'lost': n_lost, 'outage_s': round(now() - t_fail, 1),
                              'others': {n.label: h for n, h in how.items()}})
        log('=== promotion done: %s' % json.dumps(ctx.failovers[-1], sort_keys=True))

    def rebuild(self, node, source, upstream, method):
        """Stop node, make it a copy of source's history (pg_rewind, or a new
        base backup when that is asked for or pg_rewind fails), and start it
        as a replica of upstream."""
        ctx = self.ctx
        bindir = ctx.args.pg_bin
        with node.lock:
            ctx.crashed(node)
            node.pg_ctl('stop', '-m', 'fast')
            if method == 'rewind':
                r = subprocess.run([os.path.join(bindir, 'pg_rewind'), '-D', node.datadir,
                                    '--source-server', source.conninfo('rr-chaos-rewind')],
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   timeout=300)
                log('pg_rewind %s from %s: rc %d: %s' % (node.label, source.label, r.returncode,
                                                         ' | '.join(r.stdout.splitlines()[-3:])))
                if r.returncode != 0:
                    ctx.stats.inc('rewind_failed')
                    method = 'basebackup'
                else:
                    ctx.stats.inc('rebuilt_rewind')
            if method == 'basebackup':
                shutil.rmtree(node.datadir)
                run([os.path.join(bindir, 'pg_basebackup'), '-D', node.datadir, '-X', 'stream',
                     '-c', 'fast', '-h', '127.0.0.1', '-p', str(source.port), '-U', 'postgres',
                     '--no-sync'])
                ctx.stats.inc('rebuilt_basebackup')
            # both copy the source's configuration: make it this node's again
            with open(os.path.join(node.datadir, 'postgresql.conf'), 'w') as f:
                f.write(CONF_TEMPLATE + common_conf(node))
            with open(os.path.join(node.datadir, 'postgresql.auto.conf'), 'w') as f:
                f.write("primary_conninfo = '%s'\n" % upstream.primary_conninfo())
            for sig in ('recovery.signal',):
                try:
                    os.unlink(os.path.join(node.datadir, sig))
                except FileNotFoundError:
                    pass
            open(os.path.join(node.datadir, 'standby.signal'), 'w').close()
            r = node.pg_ctl('start')
            if r.returncode != 0:
                log('%s start: %s' % (node.label, r.stdout[-300:]))
        self.wait_up(node)

    def following(self, node, tli, mark, timeout):
        """Whether node has replayed the promoted server's WAL up to mark on
        timeline tli (or later) within timeout seconds."""
        deadline = now() + timeout
        while now() < deadline:
            try:
                t, ok = node.sql('SELECT (SELECT timeline FROM rr_status), '
                                 'pg_last_wal_replay_lsn() >= %s::pg_lsn',
                                 ('%X/%X' % (mark >> 32, mark & 0xffffffff),))[0]
                if t is not None and t >= tli and ok:
                    return True
            except psycopg.Error:
                pass
            time.sleep(0.2)
        return False

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
        # promotions: the writers' primary (None while one is under way),
        # writes in flight, the role lock, and a generation that is odd
        # while a promotion runs
        self.gate = threading.Condition()
        self.primary_for_writes = None
        self.inflight = 0
        self.topo = TopoLock()
        self.topo_gen = 0
        self.promo_lock = threading.Lock()      # a promotion or a checkpoint
        self.old_tokens = []                    # tokens from before a failover
        self.failovers = []
        self.lost_tokens = []                   # (w, seq, token, True) of every lost write
        self.deferred = []                      # answers judged after failovers settle

    def elapsed(self):
        return now() - self.t_start

    def count_wait(self, node, what):
        with self.wlock:
            d = self.wcount.setdefault(node.name, {'answered': 0, 'failed': 0})
            d[what] += 1

    def crashed(self, node):
        with self.wlock:
            self.epochs_dirty.add(node.name)

    def topology_stable_since(self, gen):
        """No promotion ran since ctx.topo_gen was gen."""
        return gen % 2 == 0 and self.topo_gen == gen

    def defer(self, kind, w, seq, node, t, token):
        """An answer that is right only if a failover that began before t
        lost (w, seq): RR001 from rr_wait_for_token, or a true from
        rr_wait_for_lsn whose row is not there.  Judged by judge_deferred()
        when no promotion is under way."""
        with self.wlock:
            self.deferred.append((kind, w, seq, node.label, t, token))

    def judge_deferred(self):
        with self.wlock:
            todo, self.deferred = self.deferred, []
        for kind, w, seq, label, t, token in todo:
            if self.gt.lost_before(w, seq, t):
                self.stats.inc('token_rr001_fresh_lost' if kind == 'rr001'
                               else 'lsn_true_for_lost_write')
                continue
            if kind == 'rr001':
                self.stats.violation('rr001_for_existing_write',
                                     '%s: rr_wait_for_token(%s) raised RR001 but row (%d, %d) '
                                     'was not lost' % (label, token, w, seq))
            else:
                self.stats.violation('read_your_writes',
                                     '%s: rr_wait_for_lsn(%s) returned true but row (%d, %d) '
                                     'is not visible (and no failover lost it)'
                                     % (label, token, w, seq))


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
        chaos.wait_idle(300)
    with ctx.promo_lock:          # not in the middle of a promotion
        ctx.judge_deferred()
        return checkpoint_locked(ctx, chaos, prev, final)


def sweep_tokens(ctx, entries, why):
    """Every node, all on the newest timeline, judges every token in
    entries ((w, seq, token, lost)) without waiting: a lost write must get
    RR001 everywhere; a surviving one never, and true on the primary."""
    st = ctx.stats
    if not entries:
        return
    for node in [ctx.primary] + ctx.replicas:
        try:
            rows = node.sql('SELECT chaos_token_verdict(t) FROM unnest(%s::text[]) '
                            'WITH ORDINALITY AS u(t, i) ORDER BY i',
                            ([e[2] for e in entries],), retries=10)
        except psycopg.Error as e:
            st.inc('sweep_errors')
            log('sweep on %s failed: %s' % (node.label, e))
            continue
        bad = 0
        for (w, seq, tok, lost), (verdict,) in zip(entries, rows):
            ctx.count_wait(node, 'failed' if verdict == 'RR001' else 'answered')
            st.inc('sweep_%s_%s' % ('lost' if lost else 'survivor',
                                    'rr001' if verdict == 'RR001' else verdict))
            if lost and verdict != 'RR001' or not lost and (
                    verdict == 'RR001' or (node is ctx.primary and verdict != 'true')):
                bad += 1
                if bad <= 5:
                    st.violation('sweep_lost_token' if lost else 'sweep_surviving_token',
                                 '%s %s: rr_wait_for_token(%s, 0) gave %s for row (%d, %d), '
                                 '%s' % (node.label, why, tok, verdict, w, seq,
                                         'lost' if lost else 'not lost'))
        log('sweep %s on %s: %d tokens, %d wrong' % (why, node.label, len(entries), bad))


def checkpoint_locked(ctx, chaos, prev, final=False):
    st = ctx.stats
    chaos.release_all()
    st.inc('checkpoints')
    if final:
        sweep_tokens(ctx, ctx.lost_tokens, 'at the end')
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
                             % (node.label, waiters))
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
    ap.add_argument('--token', default='mixed', choices=sorted(TOKEN_KINDS) + ['mixed'],
                    help='the ryw clients\' tokens: mixed = even clients lsn, odd ones token')
    ap.add_argument('--promote-every', type=float, default=120, metavar='S',
                    help='mean seconds between promotions (0: none)')
    ap.add_argument('--checker-self-test', type=float, default=0.0, metavar='S',
                    help='judge staleness answers as if they were S seconds smaller '
                    '(a lie the checker must catch: expect violations)')
    ap.add_argument('--checker-self-test-failover', action='store_true',
                    help='after each promotion, file the newest surviving write of each '
                    'token client as lost and one of its lost writes as surviving (a lie '
                    'the token checks must catch: expect violations)')
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
    schedule = make_schedule(args.seed, args.duration, args.fault_rate, names,
                             args.promote_every)
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
    ctx.gt = GroundTruth(args.ryw_clients)
    try:
        primary, replicas = build_cluster(args)
    except Exception as e:
        print('chaos: setup failed: %s' % e, file=sys.stderr)
        return 2
    ctx.primary, ctx.replicas = primary, replicas
    ctx.by_name = {n.role: n for n in [primary] + replicas}
    ctx.primary_for_writes = primary
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
               'failovers': ctx.failovers, 'violations': st.violations}
    with open(os.path.join(args.workdir, 'summary.json'), 'w') as f:
        json.dump(summary, f, indent=1, sort_keys=True)
    print('=== summary (seed %d)' % args.seed)
    print(json.dumps(st.c, indent=1, sort_keys=True))
    for fo in ctx.failovers:
        print('failover %s' % json.dumps(fo, sort_keys=True))
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
