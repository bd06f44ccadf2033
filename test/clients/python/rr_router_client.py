"""A reference read/write router for psycopg 3 on top of rr_router.

Documentation that runs: it is small on purpose, and the tests next to it
(test_rr_router_client.py) run it against a real primary and two replicas.

    router = Router(PRIMARY, [REPLICA1, REPLICA2])
    user = Session()          # one per user; keep user.token in the web session

    router.write(user, "UPDATE users SET email = %s WHERE id = %s", (email, uid))
    r = router.read_your_writes(user, "SELECT email FROM users WHERE id = %s", (uid,))
    r.rows, r.server, r.role  # [('new@example.com',)], '10.0.0.2:5432', 'replica'

    router.read_bounded("SELECT * FROM top_posts", max_staleness=5.0)         # listings
    router.read_strong("SELECT balance FROM accounts WHERE id = %s", (uid,))  # money, auth

Where each kind of statement goes:

write             The primary.  The commit's causality token ('TLI:LSN')
                  arrives with the result as the ParameterStatus
                  rr_router.last_commit_token (no extra round trip) and is
                  kept in the user's Session.
read_your_writes  A replica where "SELECT rr_wait_for_token(token, timeout)"
                  answered true, else the primary.  A session with no token
                  yet gets a bounded read with the default bound.  If the
                  write was lost in a failover, raises WriteLostError.
read_bounded      A replica where "SELECT rr_is_fresh(bound)" answered true,
                  else the primary.
read_strong       The primary: money, authentication, permissions -- reads
                  that must see everybody's writes, not just the user's own.

Check, then read.  Every replica read is two statements on one connection:
the check, then the query.  The query's snapshot is taken after the check
returned, so it sees at least what the check vouched for: after
rr_wait_for_token answered true every later statement sees the token's commit;
rr_is_fresh(bound) true at time t means everything committed before
t - bound is visible, and replay only moves forward, so the read is at least
that new.  Folding the check into the query ("SELECT ... WHERE
rr_is_fresh()") would be wrong: that query's snapshot predates the check.
rr_wait_for_token must be a statement of its own in any case.

Writes lost in a failover.  A token names the timeline of its commit, so a
server can tell a write that is merely not replayed yet from one that was
lost when an asynchronous replica was promoted: rr_wait_for_token raises
SQLSTATE RR001 for the latter.  A replica's RR001 is confirmed with the
primary (rr_wait_for_token(token, 0) there: true if the write is in the
primary's history, RR001 if not); a read that falls back to the primary is
checked the same way.  When the primary confirms, read_your_writes clears the
session's token and raises WriteLostError instead of reading: the
application should tell the user that their last change may have been lost
(see the README).

Falling back instead of failing.  A replica that answers false (behind,
timed out, or its kill switch rr_router.replica_reads is off), cannot be
reached, or cancels the query (recovery conflict, statement_timeout) hands
the read to the next replica and finally to the primary.  Only the first
replica tried may wait; the others are asked whether they are ready now
(timeout 0).  A replica that cannot be reached is skipped for retry_after
seconds.  Errors in the query itself (syntax, permissions) are raised: the
primary would raise them too.

Every Result names the server that produced it (host:port, role) and why it
was chosen; Router(log=[...]) also appends a LogEntry per statement.

StickyPrimaryRouter and NaiveReplicaRouter are the hand-rolled policies that
rr_router replaces, kept here so the tests can compare them on one workload.
"""

import itertools
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Callable, List, Optional, Sequence, Union

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

TOKEN_PARAMETER = "rr_router.last_commit_token"

# SQLSTATE of rr_wait_for_token(): the token's write was lost in a failover.
WRITE_LOST = "RR001"

# Failures that are the replica's, not the query's: fall back on these.
# OperationalError covers lost connections, statement_timeout and cancels;
# SerializationFailure is "canceling statement due to conflict with recovery".
REPLICA_ERRORS = (PoolTimeout, psycopg.OperationalError,
                  psycopg.errors.SerializationFailure)

Bound = Union[None, float, timedelta]   # seconds, a timedelta, or None


def lsn_to_int(lsn: str) -> int:
    """'16/B374D848' -> 0x16B374D848, so that LSNs can be compared."""
    hi, lo = lsn.split("/")
    return (int(hi, 16) << 32) | int(lo, 16)


def token_key(token: str):
    """'2:0/3000148' -> (2, 0x3000148): later timelines, then later LSNs,
    are newer (a session's writes all go to the primary of their time)."""
    tli, lsn = token.split(":")
    return int(tli), lsn_to_int(lsn)


class WriteLostError(Exception):
    """The session's last write was lost in a failover: the primary's
    timeline history shows that the token's timeline ended before the
    token's LSN (SQLSTATE RR001), so no server will ever show the write.
    The router has cleared the session's token; tell the user that their
    last change may not have been saved."""

    def __init__(self, token: str, server: str, detail: Optional[str]):
        super().__init__("write %s lost in a failover (confirmed by %s): %s"
                         % (token, server, detail))
        self.token = token
        self.server = server
        self.detail = detail


def as_interval(bound: Bound) -> Optional[timedelta]:
    return timedelta(seconds=bound) if isinstance(bound, (int, float)) else bound


class Session:
    """What the application keeps per user (session store, signed cookie):
    the causality token of the user's latest write, as text ('1:0/3000148',
    the timeline and the LSN)."""

    def __init__(self, token: Optional[str] = None):
        self.token = token
        self.last_write_at: Optional[float] = None  # for StickyPrimaryRouter

    def observe(self, token: str) -> None:
        """Keep the newest token (writes may come from several connections)."""
        if self.token is None or token_key(token) > token_key(self.token):
            self.token = token
        self.last_write_at = time.monotonic()


@dataclass
class Result:
    rows: List[tuple]
    server: str     # host:port of the server that ran the query
    role: str       # "primary" or "replica"
    reason: str     # why that server: "write", "caught up", "fresh", "strong",
                    # "fallback: <why each replica was passed over>", ...


@dataclass
class LogEntry:
    at: float       # time.time() when the statement had run
    kind: str       # "write", "read_your_writes", "read_bounded", "read_strong", ...
    sql: str
    server: str
    role: str
    reason: str
    ms: float       # elapsed, checks and fallbacks included


@dataclass
class Server:
    name: str               # host:port, from the conninfo
    role: str               # "primary" or "replica"
    pool: Any
    down_until: float = 0.0  # skipped until then (time.monotonic())


class Router:
    def __init__(self, primary: str, replicas: Sequence[str], *,
                 wait_timeout_ms: Optional[int] = None,
                 default_max_staleness: Bound = None,
                 connect_timeout: float = 2.0,
                 retry_after: float = 5.0,
                 pool_size: int = 4,
                 log: Union[None, list, Callable[[LogEntry], None]] = None):
        """primary, replicas: libpq conninfo strings.

        wait_timeout_ms        how long the first replica may wait for a
                               token (None: its rr_router.wait_timeout, 1 s)
        default_max_staleness  bound of read_bounded() without one, and of
                               read_your_writes() before the session's first
                               write (None: the replica's
                               rr_router.max_staleness, 1 s)
        connect_timeout        seconds to wait for a connection to a
                               replica before moving on (the primary, the
                               last resort, gets 30 s)
        retry_after            seconds an unreachable replica is skipped
        log                    a list to append a LogEntry to per statement,
                               or a callable taking one
        """
        self.wait_timeout_ms = wait_timeout_ms
        self.default_max_staleness = as_interval(default_max_staleness)
        self.retry_after = retry_after
        self.log = log
        self._turn = itertools.count()
        # Every connection to the primary reports its commits' tokens.
        self.primary = self._server(primary, "primary", pool_size, 30.0,
                                    "SET rr_router.report_commit_lsn = on")
        self.replicas = [self._server(r, "replica", pool_size, connect_timeout)
                         for r in replicas]

    @staticmethod
    def _server(conninfo, role, size, timeout, setup_sql=None) -> Server:
        d = psycopg.conninfo.conninfo_to_dict(conninfo)
        name = "%s:%s" % (d.get("host") or "localhost", d.get("port") or 5432)

        def configure(conn):
            if setup_sql:
                conn.execute(setup_sql)
        pool = ConnectionPool(conninfo, min_size=1, max_size=size, open=True,
                              kwargs={"autocommit": True}, configure=configure,
                              timeout=timeout, name=name)
        return Server(name, role, pool)

    def close(self):
        for server in [self.primary] + self.replicas:
            server.pool.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- writes --------------------------------------------------------------

    def write(self, session: Session, sql: str, params=None) -> Result:
        """One statement on the primary, as its own transaction."""
        t0 = time.monotonic()
        with self.primary.pool.connection() as conn:
            before = conn.info.parameter_status(TOKEN_PARAMETER)
            result = self._run("write", self.primary, conn, sql, params, "write", t0)
            self._take_token(session, conn, before)
        return result

    @contextmanager
    def transaction(self, session: Session):
        """Several statements in one transaction on the primary:

            with router.transaction(user) as conn:
                conn.execute(...)
                conn.execute(...)
        """
        with self.primary.pool.connection() as conn:
            before = conn.info.parameter_status(TOKEN_PARAMETER)
            with conn.transaction():
                yield conn
            self._take_token(session, conn, before)

    @staticmethod
    def _take_token(session, conn, before):
        # A pooled connection still shows the token of whoever committed on
        # it last: only a value that changed during our work is ours.  (A
        # transaction that wrote nothing has no commit record, no new token.)
        after = conn.info.parameter_status(TOKEN_PARAMETER)
        # '' is no token: RESET or DISCARD ALL (a pooler's) empties it.
        if after and after != before:
            session.observe(after)

    # -- reads ---------------------------------------------------------------

    def read_your_writes(self, session: Session, sql: str, params=None,
                         timeout_ms: Optional[int] = None) -> Result:
        """A read that sees every write this session has made.  Raises
        WriteLostError (and forgets the token) if the session's last write
        was lost in a failover."""
        if session.token is None:
            return self.read_bounded(sql, params, kind="read_your_writes")
        timeout = self.wait_timeout_ms if timeout_ms is None else timeout_ms

        def check(nth):     # only the first replica tried may wait
            return ("SELECT rr_wait_for_token(%s, %s::integer)",
                    (session.token, timeout if nth == 0 else 0), "caught up")
        return self._read_via_replicas("read_your_writes", check, sql, params,
                                       session=session)

    def read_bounded(self, sql: str, params=None, max_staleness: Bound = None,
                     kind: str = "read_bounded") -> Result:
        """A read of data no older than max_staleness at the time of the
        call (None: default_max_staleness)."""
        bound = as_interval(max_staleness)
        if bound is None:
            bound = self.default_max_staleness

        def check(nth):
            return "SELECT rr_is_fresh(%s::interval)", (bound,), "fresh"
        return self._read_via_replicas(kind, check, sql, params)

    def read_strong(self, sql: str, params=None) -> Result:
        """Money, authentication, permissions: always the primary."""
        return self._on_primary("read_strong", sql, params, "strong",
                                time.monotonic())

    # -- plumbing ------------------------------------------------------------

    def _replicas_in_turn(self) -> List[Server]:
        """The replicas, round robin, without those skipped for now."""
        if not self.replicas:
            return []
        start = next(self._turn) % len(self.replicas)
        now = time.monotonic()
        order = self.replicas[start:] + self.replicas[:start]
        return [r for r in order if r.down_until <= now]

    def _read_via_replicas(self, kind, check, sql, params,
                           session: Optional[Session] = None) -> Result:
        """With a session: the check is a token wait, and the primary
        confirms a lost write before anything is read."""
        t0 = time.monotonic()
        passed_over = []
        for nth, replica in enumerate(self._replicas_in_turn()):
            check_sql, check_params, reason = check(nth)
            try:
                with replica.pool.connection() as conn:
                    # The check is a statement of its own, before the read.
                    if conn.execute(check_sql, check_params).fetchone()[0]:
                        if passed_over:
                            reason += " (passed over: %s)" % "; ".join(passed_over)
                        return self._run(kind, replica, conn, sql, params,
                                         reason, t0)
                passed_over.append("%s not ready" % replica.name)
            except psycopg.Error as e:     # PoolTimeout is one too
                if getattr(e, "sqlstate", None) == WRITE_LOST and session is not None:
                    # This replica's history lost the write: only the
                    # primary's history is authoritative (a replica may
                    # still follow a dead branch), so ask it below.
                    passed_over.append("%s: write lost in its history" % replica.name)
                    break
                if not isinstance(e, REPLICA_ERRORS):
                    raise
                if unreachable(e):
                    replica.down_until = time.monotonic() + self.retry_after
                passed_over.append("%s failed: %s" % (
                    replica.name, (str(e).strip() or type(e).__name__).splitlines()[0]))
        reason = "fallback: " + ("; ".join(passed_over) or "no replica")
        return self._on_primary(kind, sql, params, reason, t0, session=session)

    def _on_primary(self, kind, sql, params, reason, t0,
                    session: Optional[Session] = None) -> Result:
        with self.primary.pool.connection() as conn:
            if session is not None and session.token is not None:
                self._confirm_on_primary(session, conn)
            return self._run(kind, self.primary, conn, sql, params, reason, t0)

    def _confirm_on_primary(self, session: Session, conn) -> None:
        """On the primary a token wait answers at once: true if the write is
        in the primary's history, RR001 if it was lost."""
        try:
            conn.execute("SELECT rr_wait_for_token(%s, 0)", (session.token,))
        except psycopg.Error as e:
            if getattr(e, "sqlstate", None) != WRITE_LOST:
                raise
            token, session.token = session.token, None
            raise WriteLostError(token, self.primary.name,
                                 e.diag.message_detail) from e

    def _run(self, kind, server, conn, sql, params, reason, t0) -> Result:
        cur = conn.execute(sql, params)
        rows = cur.fetchall() if cur.description else []
        # Tag with where the connection really went, not where we meant it to.
        where = "%s:%s" % (conn.info.host, conn.info.port)
        if self.log is not None:
            entry = LogEntry(time.time(), kind, sql, where, server.role, reason,
                             (time.monotonic() - t0) * 1000)
            if callable(self.log):
                self.log(entry)
            else:
                self.log.append(entry)
        return Result(rows, where, server.role, reason)

    # Used by the comparison policies below: any replica, no questions asked.
    def _on_any_replica(self, kind, sql, params, reason) -> Result:
        t0 = time.monotonic()
        for replica in self._replicas_in_turn():
            try:
                with replica.pool.connection() as conn:
                    return self._run(kind, replica, conn, sql, params, reason, t0)
            except REPLICA_ERRORS as e:
                if unreachable(e):
                    replica.down_until = time.monotonic() + self.retry_after
        return self._on_primary(kind, sql, params, "fallback: no replica", t0)


def unreachable(e: Exception) -> bool:
    """The server could not be reached (rather than: it refused a query)."""
    if isinstance(e, PoolTimeout):
        return True
    state = getattr(e, "sqlstate", None)
    return isinstance(e, psycopg.OperationalError) and (
        state is None or state.startswith("08") or state in ("57P01", "57P02", "57P03"))


# -- the policies rr_router replaces, for comparison --------------------------

class StickyPrimaryRouter(Router):
    """The usual hand-rolled rule: for `sticky` seconds after a user's write,
    read from the primary; otherwise from any replica, however far behind."""

    def __init__(self, *args, sticky: float = 2.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.sticky = sticky

    def read_your_writes(self, session, sql, params=None, timeout_ms=None):
        if (session.last_write_at is not None
                and time.monotonic() - session.last_write_at < self.sticky):
            return self._on_primary("sticky", sql, params, "sticky",
                                    time.monotonic())
        return self._on_any_replica("sticky", sql, params, "not sticky")


class NaiveReplicaRouter(Router):
    """Every read from a replica, no questions asked."""

    def read_your_writes(self, session, sql, params=None, timeout_ms=None):
        return self._on_any_replica("naive", sql, params, "naive")

    def read_bounded(self, sql, params=None, max_staleness=None, kind="naive"):
        return self._on_any_replica(kind, sql, params, "naive")
