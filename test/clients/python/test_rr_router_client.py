"""End-to-end tests of rr_router_client.py against a real primary and two
replicas (started by test/t/201_python_router.pl, which runs this script and
checks its exit code).

Environment (libpq conninfo strings):
    RR_PRIMARY           the primary
    RR_REPLICA_DELAYED   a replica with recovery_min_apply_delay = '300ms'
    RR_REPLICA_PAUSABLE  a replica this script pauses with pg_wal_replay_pause()
    RR_DEAD              where nothing listens (an unreachable replica)
    RR_ITERATIONS        iterations per classic scenario (default 100)

Every test leaves the replicas replaying, with their kill switch on.  Lines
starting with "RR_RESULT" report each test for the TAP file; the rest of
stdout is the story of the run (stale reads seen, shares, timings).
"""

import bisect
import itertools
import logging
import os
import random
import sys
import threading
import time
import unittest

import psycopg

from rr_router_client import (NaiveReplicaRouter, Router, Session,
                              StickyPrimaryRouter, WriteLostError, token_key)

ENV = {k: os.environ.get(k) for k in
       ("RR_PRIMARY", "RR_REPLICA_DELAYED", "RR_REPLICA_PAUSABLE", "RR_DEAD")}
PRIMARY = ENV["RR_PRIMARY"]
DELAYED = ENV["RR_REPLICA_DELAYED"]
PAUSABLE = ENV["RR_REPLICA_PAUSABLE"]
DEAD = ENV["RR_DEAD"]
ITERATIONS = int(os.environ.get("RR_ITERATIONS", "100"))

# How long the router lets the first replica wait for a token in most tests:
# shorter than the delayed replica's 300 ms, so both outcomes of a wait
# (caught up, timed out) happen all the time.
WAIT_MS = 100

# Generous, so that a loaded test machine does not turn "replica" into
# "fallback: could not connect"; test_07 sets its own.
CONNECT_S = 15.0

ids = itertools.count(1)   # a fresh user / post id for every iteration


def say(*args):
    print(*args, flush=True)


def admin(conninfo):
    return psycopg.connect(conninfo, autocommit=True)


def scalar(conninfo, sql, params=None):
    with admin(conninfo) as conn:
        return conn.execute(sql, params).fetchone()[0]


def poll(conninfo, sql, expected, timeout=30.0):
    deadline = time.monotonic() + timeout
    with admin(conninfo) as conn:
        while True:
            got = conn.execute(sql).fetchone()[0]
            if got == expected:
                return
            if time.monotonic() > deadline:
                raise AssertionError("%s: %r after %.0f s, wanted %r"
                                     % (sql, got, timeout, expected))
            time.sleep(0.05)


def pause(conninfo):
    scalar(conninfo, "SELECT pg_wal_replay_pause()")
    poll(conninfo, "SELECT pg_get_wal_replay_pause_state()", "paused")


def resume(conninfo):
    scalar(conninfo, "SELECT pg_wal_replay_resume()")


def catch_up(*replicas):
    """Wait until the replicas have replayed everything the primary has."""
    lsn = scalar(PRIMARY, "SELECT pg_current_wal_flush_lsn()::text")
    for r in replicas:
        poll(r, "SELECT pg_last_wal_replay_lsn() >= '%s'::pg_lsn" % lsn, True)


def kill_switch(conninfo, on):
    with admin(conninfo) as conn:
        if on:
            conn.execute("ALTER SYSTEM RESET rr_router.replica_reads")
        else:
            conn.execute("ALTER SYSTEM SET rr_router.replica_reads = off")
        conn.execute("SELECT pg_reload_conf()")
    # Effective within one sample interval: wait until rr_is_fresh says so.
    poll(conninfo, "SELECT rr_is_fresh('1 hour')", on, timeout=30)


def pct(part, whole):
    return 100.0 * part / whole if whole else 0.0


# -- the classic failures from the field -------------------------------------
# Each makes a write as a fresh user and reads it back at once; returns
# (saw the write?, the read's Result, what a stale read looked like).

def email_then_profile(router, user, uid):
    new = "user%d@new.example" % uid
    router.write(user, "UPDATE users SET email = %s WHERE id = %s", (new, uid))
    r = router.read_your_writes(user, "SELECT email FROM users WHERE id = %s", (uid,))
    return r.rows[0][0] == new, r, "profile shows %r after the change to %r" % (r.rows[0][0], new)


def comment_then_list(router, user, uid):
    cid = router.write(user, "INSERT INTO comments(post_id, body) VALUES (%s, %s) RETURNING id",
                       (uid, "first!")).rows[0][0]
    r = router.read_your_writes(user, "SELECT id FROM comments WHERE post_id = %s ORDER BY id", (uid,))
    listed = [row[0] for row in r.rows]
    return cid in listed, r, "comment %d just posted is missing from the list %r" % (cid, listed)


def upgrade_then_access(router, user, uid):
    router.write(user, "UPDATE accounts SET plan = 'pro' WHERE user_id = %s", (uid,))
    r = router.read_your_writes(
        user, "SELECT EXISTS (SELECT FROM accounts JOIN plan_features USING (plan)"
              " WHERE user_id = %s AND feature = 'export')", (uid,))
    return r.rows[0][0] is True, r, "export still denied right after the upgrade to pro"


class RouterTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        missing = [k for k, v in ENV.items() if not v]
        if missing:
            raise RuntimeError("set %s (see the docstring)" % ", ".join(missing))
        with admin(PRIMARY) as conn:
            conn.execute("""
                DROP TABLE IF EXISTS users, comments, accounts, plan_features, ticks;
                CREATE TABLE users(id int PRIMARY KEY, email text NOT NULL);
                CREATE TABLE comments(id bigserial PRIMARY KEY, post_id int NOT NULL,
                                      body text NOT NULL);
                CREATE INDEX ON comments(post_id);
                CREATE TABLE accounts(user_id int PRIMARY KEY, plan text NOT NULL);
                CREATE TABLE plan_features(plan text, feature text,
                                           PRIMARY KEY (plan, feature));
                INSERT INTO plan_features VALUES ('free', 'view'), ('pro', 'view'),
                                                 ('pro', 'export');
                INSERT INTO users SELECT i, 'user' || i || '@old.example'
                                  FROM generate_series(1, 20000) i;
                INSERT INTO accounts SELECT i, 'free' FROM generate_series(1, 20000) i;
                CREATE TABLE ticks(seq bigint PRIMARY KEY,
                                   written_at timestamptz NOT NULL DEFAULT clock_timestamp());
            """)
        catch_up(DELAYED, PAUSABLE)

    def tearDown(self):
        # Whatever happened, leave the replicas replaying with replica reads on.
        for r in (DELAYED, PAUSABLE):
            resume(r)
            if scalar(r, "SELECT current_setting('rr_router.replica_reads')") == "off":
                kill_switch(r, True)

    def test_01_tags_and_log(self):
        """Every result and log entry names the server that really ran it."""
        log = []
        with Router(PRIMARY, [DELAYED, PAUSABLE], wait_timeout_ms=WAIT_MS, log=log,
                    connect_timeout=CONNECT_S) as router:
            user = Session()
            ask = "SELECT pg_is_in_recovery(), current_setting('port')"
            results = []
            for i in range(10):
                results.append(router.write(user, "UPDATE users SET email = email WHERE id = %s"
                                            " RETURNING pg_is_in_recovery(), current_setting('port')",
                                            (next(ids),)))
                results.append(router.read_your_writes(user, ask))
                results.append(router.read_bounded(ask, max_staleness=60))
                results.append(router.read_strong(ask))
            self.assertIsNotNone(user.token, "writes gave the session a token")
            for r in results:
                in_recovery, port = r.rows[0]
                self.assertEqual(r.role, "replica" if in_recovery else "primary", r)
                self.assertTrue(r.server.endswith(":" + port), r)
            self.assertEqual(len(log), len(results), "one log entry per statement")
            self.assertEqual([e.server for e in log], [r.server for r in results])
            kinds = {}
            for e in log:
                kinds.setdefault(e.kind, set()).add(e.role)
            say("log kinds and roles:", kinds)
            self.assertEqual(kinds["write"], {"primary"})
            self.assertEqual(kinds["read_strong"], {"primary"})
            self.assertIn("replica", kinds["read_your_writes"] | kinds["read_bounded"])
            say("a log entry:", log[1])

    def test_02_tokens_through_a_pool(self):
        """Two users share one pooled connection to the primary: each keeps
        only the tokens of its own commits."""
        with Router(PRIMARY, [PAUSABLE], pool_size=1, wait_timeout_ms=30000,
                    connect_timeout=CONNECT_S) as router:
            alice, bob = Session(), Session()
            a, b = next(ids), next(ids)
            router.write(alice, "UPDATE users SET email = 'alice@new.example' WHERE id = %s", (a,))
            self.assertIsNotNone(alice.token)
            router.write(bob, "SELECT 1")           # writes nothing: no commit record
            router.write(bob, "UPDATE users SET email = 'nobody' WHERE id = -1")
            self.assertIsNone(bob.token, "bob must not inherit alice's token from the connection")
            with router.transaction(bob) as conn:
                conn.execute("UPDATE users SET email = 'bob@new.example' WHERE id = %s", (b,))
                conn.execute("UPDATE accounts SET plan = 'pro' WHERE user_id = %s", (b,))
            self.assertIsNotNone(bob.token)
            self.assertNotEqual(bob.token, alice.token)
            token_a = alice.token
            with router.transaction(alice) as conn:   # read-only: no new token
                # (plan_features is never updated: a scan of a table with dead
                # rows may prune pages, and rr_router 1.0 then reports the end
                # of that WAL as a token although nothing committed.)
                conn.execute("SELECT count(*) FROM plan_features")
            self.assertEqual(alice.token, token_a)
            r = router.read_your_writes(
                bob, "SELECT email, plan FROM users JOIN accounts ON user_id = id WHERE id = %s", (b,))
            self.assertEqual((r.role, r.rows), ("replica", [("bob@new.example", "pro")]), r)
            say("tokens: alice %s, bob %s; bob's read: %s" % (alice.token, bob.token, r))

    def test_03_wait_then_fallback(self):
        """On the delayed replica a wait long enough succeeds there; a short
        one falls back to the primary, and both reads see the write."""
        for timeout, role in ((30000, "replica"), (50, "primary")):
            with Router(PRIMARY, [DELAYED], wait_timeout_ms=timeout,
                        connect_timeout=CONNECT_S) as router:
                for i in range(5):
                    ok, r, stale = email_then_profile(router, Session(), next(ids))
                    self.assertTrue(ok, stale)
                    self.assertEqual(r.role, role, r)
                say("wait %d ms on the 300 ms-delayed replica: %s (%s)" % (timeout, r.server, r.reason))

    def test_04_classic_failures(self):
        """Naive replica reads lose the user's write; the router never does.
        The undelayed replica is paused for the middle third of the run."""
        scenarios = (email_then_profile, comment_then_list, upgrade_then_access)
        naive = NaiveReplicaRouter(PRIMARY, [DELAYED, PAUSABLE], connect_timeout=CONNECT_S)
        router = Router(PRIMARY, [DELAYED, PAUSABLE], wait_timeout_ms=WAIT_MS,
                        connect_timeout=CONNECT_S)
        totals = {"replica": 0, "primary": 0}
        try:
            for scenario in scenarios:
                name = scenario.__name__
                naive_stale, router_stale, served = [], [], {"replica": 0, "primary": 0}
                t0 = time.monotonic()
                for i in range(ITERATIONS):
                    if i == ITERATIONS // 3:
                        pause(PAUSABLE)
                    if i == 2 * ITERATIONS // 3:
                        resume(PAUSABLE)
                    ok, r, stale = scenario(naive, Session(), next(ids))
                    if not ok:
                        naive_stale.append("%s (read on %s %s)" % (stale, r.role, r.server))
                    ok, r, stale = scenario(router, Session(), next(ids))
                    served[r.role] += 1
                    if not ok:
                        router_stale.append("%s (read on %s %s, %s)" % (stale, r.role, r.server, r.reason))
                say("%-20s naive: %3d/%d stale reads   router: %d/%d stale, %d from replicas, "
                    "%d from the primary (%.1f s)"
                    % (name, len(naive_stale), ITERATIONS, len(router_stale), ITERATIONS,
                       served["replica"], served["primary"], time.monotonic() - t0))
                if naive_stale:
                    say("    naive, e.g.:", naive_stale[0])
                self.assertGreater(len(naive_stale), 0,
                                   "%s: naive routing should have shown a stale read" % name)
                self.assertEqual(router_stale, [], "%s: the router returned stale data" % name)
                for k in totals:
                    totals[k] += served[k]
        finally:
            naive.close()
            router.close()
        # Both outcomes really happened: replicas served reads, and reads the
        # replicas could not serve in time went to the primary.
        self.assertGreater(totals["replica"], 0)
        self.assertGreater(totals["primary"], 0)

    def test_05_bounded_reads(self):
        """read_bounded never returns data older than its bound.

        Ground truth: a writer inserts a row every 10 ms on the primary
        (written_at = clock_timestamp() there) and notes when each commit was
        acknowledged.  A read that begins at t0 with bound b must see every
        row acknowledged before t0 - b.  (All servers and this script share
        one clock.)  The undelayed replica is paused for the second half."""
        stop = threading.Event()
        acked_at, acked_seq = [], []

        def writer():
            with admin(PRIMARY) as conn:
                for seq in itertools.count(1):
                    if stop.is_set():
                        return
                    conn.execute("INSERT INTO ticks(seq) VALUES (%s)", (seq,))
                    acked_at.append(time.time())
                    acked_seq.append(seq)
                    time.sleep(0.01)

        sql = "SELECT coalesce(max(seq), 0), max(written_at) FROM ticks"
        bounds = (0.1, 0.5, 1.0)
        router = Router(PRIMARY, [DELAYED, PAUSABLE], connect_timeout=CONNECT_S)
        naive = NaiveReplicaRouter(PRIMARY, [DELAYED, PAUSABLE], connect_timeout=CONNECT_S)
        stats = {}   # (policy, phase, bound) -> [reads, from replicas, too old, worst age]
        thread = threading.Thread(target=writer)
        thread.start()
        try:
            time.sleep(0.5)
            for phase in ("healthy", "paused"):
                if phase == "paused":
                    pause(PAUSABLE)
                for k in range(90):
                    bound = bounds[k % len(bounds)]
                    for policy, rt in (("router", router), ("naive", naive)):
                        t0 = time.time()
                        r = rt.read_bounded(sql, max_staleness=bound)
                        seen, written_at = r.rows[0]
                        # The newest row acknowledged before t0 - bound.
                        n = bisect.bisect_left(acked_at, t0 - bound)
                        must_see = acked_seq[n - 1] if n else 0
                        age = t0 - written_at.timestamp()
                        s = stats.setdefault((policy, phase, bound), [0, 0, 0, 0.0])
                        s[0] += 1
                        s[1] += r.role == "replica"
                        s[2] += seen < must_see
                        s[3] = max(s[3], age)
                        if policy == "router":
                            self.assertGreaterEqual(
                                seen, must_see,
                                "bound %.1f s: read on %s (%s) saw row %d, but row %d was "
                                "committed before t0 - bound" % (bound, r.server, r.reason, seen, must_see))
                    time.sleep(0.02)
        finally:
            stop.set()
            thread.join()
            router.close()
            naive.close()
        say("bounded reads: policy  phase    bound  reads  from replicas  older than bound"
            "  newest row visible, worst case")
        for (policy, phase, bound), (n, rep, old, worst) in sorted(stats.items()):
            say("               %-7s %-8s %4.1f s  %5d  %12.0f%%  %16d  %6.0f ms before the read"
                % (policy, phase, bound, n, pct(rep, n), old, worst * 1000))
        router_old = sum(s[2] for (p, _, _), s in stats.items() if p == "router")
        naive_old = sum(s[2] for (p, _, _), s in stats.items() if p == "naive")
        self.assertEqual(router_old, 0)
        self.assertGreater(naive_old, 0, "naive reads should have returned data older than the bound")
        self.assertGreater(stats[("router", "healthy", 1.0)][1], 0,
                           "a healthy replica should serve bounded reads")

    def test_06_kill_switch(self):
        """With rr_router.replica_reads off on the replicas every read goes
        to the primary, with no change to the application."""
        log = []
        router = Router(PRIMARY, [DELAYED, PAUSABLE], wait_timeout_ms=WAIT_MS, log=log,
                        connect_timeout=CONNECT_S)
        naive = NaiveReplicaRouter(PRIMARY, [DELAYED, PAUSABLE], connect_timeout=CONNECT_S)
        try:
            user = Session()
            router.write(user, "UPDATE users SET email = email WHERE id = %s", (next(ids),))
            catch_up(DELAYED, PAUSABLE)      # the replicas could serve every read...
            for r in (DELAYED, PAUSABLE):
                kill_switch(r, False)        # ...but are told not to
            t0 = time.monotonic()
            naive_on_replica = 0
            for i in range(20):
                router.read_your_writes(user, "SELECT 1")
                router.read_your_writes(Session(), "SELECT 1")   # no token yet
                router.read_bounded("SELECT 1", max_staleness=3600)
                naive_on_replica += naive.read_your_writes(user, "SELECT 1").role == "replica"
            off = [e.role for e in log if e.kind != "write"]
            say("kill switch off: %d/%d router reads on the primary in %.0f ms; "
                "naive routing still sent %d/20 to replicas; e.g. %s"
                % (off.count("primary"), len(off), (time.monotonic() - t0) * 1000,
                   naive_on_replica, log[-1].reason))
            self.assertEqual(off, ["primary"] * 60)
            for r in (DELAYED, PAUSABLE):
                kill_switch(r, True)
            log.clear()
            for i in range(10):
                router.read_bounded("SELECT 1", max_staleness=3600)
            self.assertEqual([e.role for e in log], ["replica"] * 10,
                             "switched back on, the replicas serve reads again")
        finally:
            router.close()
            naive.close()

    def test_07_replica_failures(self):
        """A replica that cannot be reached costs one connect timeout and is
        skipped afterwards; one that cancels a read (statement_timeout)
        hands it to the primary.  No read fails."""
        logging.getLogger("psycopg.pool").setLevel(logging.CRITICAL)
        log = []
        with Router(PRIMARY, [DEAD, PAUSABLE], wait_timeout_ms=WAIT_MS, connect_timeout=0.5,
                    retry_after=60, log=log) as router:
            router.replicas[1].pool.wait(CONNECT_S)   # the live replica is ready
            t0 = time.monotonic()
            for i in range(10):
                ok, r, stale = email_then_profile(router, Session(), next(ids))
                self.assertTrue(ok, stale)
                router.read_bounded("SELECT 1", max_staleness=5)
            reads = [e for e in log if e.kind != "write"]
            failed = [e for e in reads if "failed" in e.reason]
            say("unreachable replica: %d reads in %.1f s, %d on replicas; %s"
                % (len(reads), time.monotonic() - t0, sum(e.role == "replica" for e in reads),
                   failed[0].reason if failed else "never tried"))
            self.assertEqual(len(failed), 1, "tried once, then skipped")
            self.assertNotIn(router.replicas[0].name, {e.server for e in log})

        # A replica whose statement_timeout cancels the read: the read is
        # answered by the primary instead, and the replica stays in use.
        slow = psycopg.conninfo.make_conninfo(PAUSABLE, options="-c statement_timeout=200")
        with Router(PRIMARY, [slow], connect_timeout=CONNECT_S) as router:
            r = router.read_bounded("SELECT pg_sleep(0.5), 'done'", max_staleness=5)
            say("replica statement_timeout: %s %s (%s)" % (r.role, r.rows, r.reason))
            self.assertEqual((r.role, r.rows[0][1]), ("primary", "done"))
            self.assertIn("statement timeout", r.reason)
            self.assertEqual(router.read_bounded("SELECT 1", max_staleness=60).role, "replica")

    def test_09_tokens_and_lost_writes(self):
        """Sessions keep 'TLI:LSN' tokens, newest first.  A token the
        primary's history does not hold -- as a write lost in a failover is
        on the new primary; here one of a timeline these servers never had
        -- makes read_your_writes wait on the replicas, which cannot tell it
        from a timeline they have not reached yet, then have the primary
        confirm the loss: WriteLostError, and the token is forgotten.  (The
        real failover is test/t/016_failover_tokens.pl.)"""
        self.assertLess(token_key("1:0/FFFFFFFF"), token_key("1:1/0"))
        self.assertLess(token_key("1:FF/0"), token_key("2:0/1"))
        with Router(PRIMARY, [DELAYED, PAUSABLE], wait_timeout_ms=WAIT_MS,
                    connect_timeout=CONNECT_S) as router:
            user = Session()
            router.write(user, "UPDATE users SET email = email WHERE id = %s", (next(ids),))
            self.assertRegex(user.token, r"^[1-9][0-9]*:[0-9A-F]+/[0-9A-F]+$")
            tli = int(user.token.split(":")[0])
            r = router.read_your_writes(user, "SELECT 1")
            self.assertEqual(r.rows, [(1,)])

            lost = Session(token="%d:0/1" % (tli + 5))
            t0 = time.monotonic()
            with self.assertRaises(WriteLostError) as cm:
                router.read_your_writes(lost, "SELECT 1")
            waited = time.monotonic() - t0
            say("lost write: %s after %.0f ms" % (cm.exception, waited * 1000))
            self.assertIsNone(lost.token, "the router forgets a lost token")
            self.assertEqual(cm.exception.server, router.primary.name)
            self.assertIn("is not in the history", cm.exception.detail)
            self.assertGreaterEqual(waited, WAIT_MS / 1000.0 * 0.9,
                                    "the first replica waited before the primary was asked")
            r = router.read_your_writes(lost, "SELECT 1")   # no token: a bounded read
            self.assertEqual(r.rows, [(1,)])

            # The primary confirms a token of its own timeline beyond the end
            # of its WAL (a tail lost in a crash, or a made-up token) too.
            beyond = Session(token="%d:FFFFFFFF/0" % tli)
            with self.assertRaises(WriteLostError) as cm:
                router.read_your_writes(beyond, "SELECT 1")
            say("beyond the primary's WAL: %s" % cm.exception)
            self.assertIn("ends at", cm.exception.detail)
            self.assertIsNone(beyond.token)

        # RESET or DISCARD ALL (a pooler's) empties the reported token on a
        # connection: that is no token, not an error.
        with Router(PRIMARY, [PAUSABLE], pool_size=1,
                    connect_timeout=CONNECT_S) as router:
            user = Session()
            router.write(user, "UPDATE users SET email = email WHERE id = %s", (next(ids),))
            token = user.token
            self.assertIsNotNone(token)
            router.write(user, 'RESET "rr_router.last_commit_token"')
            self.assertEqual(user.token, token)
            router.write(user, "UPDATE users SET email = email WHERE id = %s", (next(ids),))
            token = user.token
            router.write(user, "DISCARD ALL")
            self.assertEqual(user.token, token)

    def test_08_share_vs_sticky(self):
        """The same web-like workload through the router, a 2-second sticky
        primary and naive replica routing: the router serves most reads from
        the replica and is never stale."""

        def workload(policy, replicas, wait_ms, seed=7, users=12, requests=200, pace=0.015):
            rnd = random.Random(seed)
            base = next(ids)
            for _ in range(users):
                next(ids)
            sessions = [Session() for _ in range(users)]
            expected = ["user%d@old.example" % (base + u) for u in range(users)]
            reads = on_replica = stale = 0
            cls = {"router": Router, "sticky 2 s": StickyPrimaryRouter,
                   "naive": NaiveReplicaRouter}[policy]
            with cls(PRIMARY, replicas, wait_timeout_ms=wait_ms, connect_timeout=CONNECT_S) as rt:
                start = time.monotonic()
                for n in range(requests):
                    time.sleep(max(0.0, start + n * pace - time.monotonic()))
                    u = rnd.randrange(users)
                    if rnd.random() < 0.25:
                        expected[u] = "user%d.%d@new.example" % (base + u, n)
                        rt.write(sessions[u], "UPDATE users SET email = %s WHERE id = %s",
                                 (expected[u], base + u))
                    else:
                        r = rt.read_your_writes(sessions[u], "SELECT email FROM users WHERE id = %s",
                                                (base + u,))
                        reads += 1
                        on_replica += r.role == "replica"
                        stale += r.rows[0][0] != expected[u]
            return reads, on_replica, stale

        # The router's wait: up to 1 s (rr_router.wait_timeout's default) with
        # the healthy replica alone, where it takes milliseconds; 100 ms with
        # the delayed one too, which then passes its reads to the healthy one.
        table = {}
        for label, replicas, wait_ms in (("healthy replica", [PAUSABLE], 1000),
                                         ("+ 300 ms-delayed replica", [PAUSABLE, DELAYED], WAIT_MS)):
            for policy in ("router", "sticky 2 s", "naive"):
                table[(label, policy)] = workload(policy, replicas, wait_ms)
        say("share of reads served by replicas (200 requests, 12 users, 25% writes,"
            " one every 15 ms):")
        for (label, policy), (reads, rep, stale) in table.items():
            say("RR_SHARE %-26s %-11s %5.1f%% of %d reads from replicas, %d stale"
                % (label, policy, pct(rep, reads), reads, stale))
        for label in ("healthy replica", "+ 300 ms-delayed replica"):
            self.assertEqual(table[(label, "router")][2], 0, "the router was stale")
        router, sticky = table[("healthy replica", "router")], table[("healthy replica", "sticky 2 s")]
        self.assertGreater(pct(router[1], router[0]), pct(sticky[1], sticky[0]),
                           "the router should serve a larger share from the replica than sticky")


class Reporter(unittest.TextTestResult):
    """Also prints one RR_RESULT line per test, for the TAP file."""

    def _report(self, test, status):
        name = getattr(test, "_testMethodName", str(test))
        print("RR_RESULT %s %s" % (status, name), flush=True)

    def addSuccess(self, test):
        super().addSuccess(test)
        self._report(test, "ok")

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._report(test, "FAIL")

    def addError(self, test, err):
        super().addError(test, err)
        self._report(test, "ERROR")


if __name__ == "__main__":
    suite = unittest.defaultTestLoader.loadTestsFromTestCase(RouterTest)
    print("RR_PLAN %d" % suite.countTestCases(), flush=True)
    runner = unittest.TextTestRunner(stream=sys.stderr, verbosity=2, resultclass=Reporter)
    result = runner.run(suite)
    sys.exit(0 if result.wasSuccessful() else 1)
