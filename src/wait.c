/*-------------------------------------------------------------------------
 *
 * wait.c
 *	  rr_wait_for_lsn(): wait on a replica until WAL replay has passed a
 *	  causality token, woken the moment it does.
 *
 * A waiting backend enters a queue in shared memory ordered by target LSN
 * and sleeps on its latch.  When replay reaches the smallest target (or,
 * while it catches up, shortly after), the startup process (redo_hook.c)
 * sets the latch of that one waiter, which pops every waiter replay has
 * satisfied and sets their latches; the worker does the same as a safety
 * net.  No client polls (a waiter whose WAL is about to arrive spins
 * briefly before it sleeps), and replay never waits for the queue's lock.
 *
 * NOTES
 *	  The queue and the RRWaiter slots are protected by RRShared.lock.  A
 *	  backend only ever touches its own slot (indexed by its PGPROC number)
 *	  and does so under the lock; a waker may clear another backend's
 *	  'in_queue' while popping it, also under the lock, which is why removal
 *	  is idempotent.  Wakers collect the latches to set under the lock and
 *	  set them after releasing it, in batches.
 *
 *	  The startup process pays one atomic read per replayed record: after a
 *	  record's redo it compares the record's end with min_waited_lsn.  Only
 *	  when a waiter's target is reached does it publish the position
 *	  (replayed_lsn, so the woken waiter finds its target reached before the
 *	  core has advanced its own position), set wake_pending with an atomic
 *	  exchange and, if that was clear, set the latch of the head waiter
 *	  (head_procno).  It never takes the lock: popping the queue and setting
 *	  the other waiters' latches is left to the backends (rr_wake_waiters()),
 *	  where it costs replay nothing.  PostgreSQL 19's xlogwait.c has the
 *	  startup process do that work under its lock instead.
 *
 *	  Deferred hand-overs.  A wake-up costs the process that sends it more
 *	  than the system call: the backend it wakes has slept, the scheduler
 *	  favours it, and on a small machine it often takes the sender's CPU.
 *	  During a catch-up with many waiters that is one preemption of the
 *	  startup process per waiter.  So while replay is catching up -- the
 *	  record after this one is already decoded, which means replay goes on
 *	  without waiting for WAL -- and no recovery_min_apply_delay holds
 *	  records back, the startup process holds a hand-over back for up to
 *	  RR_DEFER_HANDOVER_US (it reads the clock every RR_DEFER_CLOCK_RECORDS
 *	  records, so a run of slow records can stretch that), and the waiters
 *	  replay satisfies meanwhile are woken together, by one SetLatch() and
 *	  the head's pass.  It never holds one back at a record after which
 *	  replay may wait for WAL: a read-your-writes wait on a replica that
 *	  keeps up is woken at once, or once replay has applied what was
 *	  already decoded after its record.  With recovery_prefetch off (or no
 *	  prefetching on the platform) nothing is decoded ahead and nothing is
 *	  held back.  The position is published for every such record all the
 *	  same, so any waker's pass serves the deferred waiters.  A deferral
 *	  delays a wake-up and never loses one: it ends at a later record,
 *	  whose hand-over publishes a position past every target the deferred
 *	  ones reached, and the argument below applies to that record.  If
 *	  replay stops first -- paused, at a recovery target, or waiting out a
 *	  recovery conflict -- a waiter's own first sleep (RR_FIRST_SLEEP_MS),
 *	  any other waiter's pass, or the worker's pass every
 *	  RR_CONFLICT_CHECK_MS finds the position past their targets: a rare
 *	  wake-up late by about that much.  Read-ahead stops at a shutdown
 *	  checkpoint and at an end-of-recovery record, so the last record
 *	  before promotion is never held back.
 *
 *	  Spinning before the first sleep.  On a replica that keeps up, a
 *	  read-your-writes wait usually arrives before the WAL it waits for, a
 *	  fraction of a millisecond before replay reaches it; waking from a
 *	  sleep can take as long again.  A waiter in that position spins for up
 *	  to RR_SPIN_US first, one waiter at a time (spin_before_sleep()).  It
 *	  is already in the queue, so the hand-over reaches it as usual: the
 *	  startup process's SetLatch() then only sets a flag it sees.  The spin
 *	  changes no rule below: it is followed by an rr_wake_waiters() pass, as
 *	  any wake-up is, and by a first sleep bounded as any first sleep.
 *
 *	  Why the hand-over loses no wake-up.  Three rules: (1) every process
 *	  that takes a waiter out of the queue, after releasing the lock, runs
 *	  rr_wake_waiters(), which clears wake_pending with an atomic exchange,
 *	  then reads replayed_lsn and pops every waiter it satisfies, until
 *	  min_waited_lsn lies beyond it; (2) a waiter runs rr_wake_waiters()
 *	  every time it wakes up; (3) the startup process exchanges wake_pending
 *	  for every record that reaches min_waited_lsn, after publishing
 *	  replayed_lsn, and reads head_procno only after that exchange.  All
 *	  exchanges of wake_pending are ordered; take a record ending at E whose
 *	  exchange found wake_pending clear and whose waker read head H.  If H
 *	  was still the head, it is a waiter: its latch is set after that
 *	  exchange, so its next rr_wake_waiters() clears wake_pending after it
 *	  and sees E.  If H was no longer the head because a waiter entered the
 *	  queue in front of it, H still waits and rule 2 applies to it.  If H
 *	  was taken out of the queue, the process that took it out either
 *	  cleared wake_pending after the startup process's exchange (and sees
 *	  E: rule 1) or before it, and then wrote the new head before it, so the
 *	  startup process read that head, not H.  A record whose exchange found
 *	  wake_pending already set is covered by the exchange that set it: the
 *	  clear that follows comes after both and sees E.  In every case some
 *	  process pops the waiters E satisfies.  Nothing between releasing the
 *	  lock and the exchange of rule 1 can raise an error or exit (setting
 *	  latches cannot), so rule 1 is never skipped.  head_procno and
 *	  min_waited_lsn are two stores, not ordered for a reader on every
 *	  architecture: a head read older than the min is a waiter that was
 *	  taken out (covered above) or none at all, in which case the startup
 *	  process clears wake_pending again and the next record retries.  As a
 *	  backstop the worker also runs rr_wake_waiters() every
 *	  RR_CONFLICT_CHECK_MS once a waiter has slept RR_FIRST_SLEEP_MS.
 *
 *	  The per-record comparison has no barrier, so a waiter that has just
 *	  entered the queue can be missed, but only for one record and for at
 *	  most RR_FIRST_SLEEP_MS (plus a spin): a waiter publishes its target
 *	  (queue insert, then min_waited_lsn, released by the LWLock) and then
 *	  reads the replay position, which the core updates under its
 *	  info_lck after every record.  If that read comes after the core's
 *	  update for record N, the waiter sees N replayed.  If it comes before,
 *	  the waiter's spinlock section precedes the core's for N, so the redo
 *	  hook of record N+1, which runs after the core's, reads the waiter's
 *	  min_waited_lsn and wakes it (or defers, as above); only the hook of
 *	  record N itself may have read the old value.  When no record N+1
 *	  comes (an idle primary), the waiter's own first sleep after entering
 *	  the queue is bounded by RR_FIRST_SLEEP_MS (after a spin of at most
 *	  RR_SPIN_US), after which it looks again.  PostgreSQL 19's redo loop
 *	  wakes WAIT FOR waiters after its info_lck section and needs no such
 *	  bound; a redo routine runs before that section.
 *
 *	  The same ordering lets wakers skip the lock when min_waited_lsn says
 *	  nobody waits for what they wake: a waiter that enters the queue after
 *	  that read looks at the replay position, the kill switch, the recovery
 *	  state and replay_blocked itself.  The worker publishes the kill switch
 *	  and replay_blocked with an atomic exchange (a full barrier) before it
 *	  reads min_waited_lsn; the end of recovery it only observes, and
 *	  RecoveryInProgress(), which the waiter calls, reads the shared
 *	  recovery state behind a barrier of its own.
 *
 *	  A waiting session must not hold back replay for everyone else.  A
 *	  backend's xmin makes the startup process wait (up to
 *	  max_standby_streaming_delay) before replaying cleanup of rows it could
 *	  see.  When the wait function is the whole of a top-level statement and
 *	  no other portal or snapshot of the session is alive, nothing the
 *	  backend can still read depends on its xmin once the call has begun, so
 *	  we drop it for the duration of the wait (check_may_wait_here() says
 *	  exactly what is refused).  A call that may wait (timeout above 0) made
 *	  any other way is refused, always, so misuse shows in testing and not
 *	  only under lag.
 *
 *	  Budgets are measured on the monotonic clock (instr_time), so a step of
 *	  the wall clock neither lengthens nor shortens a wait; the wall-clock
 *	  times in rr_waiters are for display.
 *
 * Copyright (c) 2026, rr_router developers
 *
 * IDENTIFICATION
 *	  src/wait.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "access/xlog_internal.h"
#include "access/xlogrecovery.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/plannodes.h"
#include "pgstat.h"
#include "portability/instr_time.h"
#include "replication/walreceiver.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "tcop/pquery.h"
#include "utils/pg_lsn.h"
#include "utils/portal.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "compat.h"
#include "rr_router.h"
#include "shmem.h"
#include "statement.h"
#include "wait.h"

/*
 * Longest single sleep: a backstop only.  Waiters are woken when replay
 * reaches them (by the head waiter the startup process signals, see NOTES)
 * and by the worker for everything else (kill switch, promotion, recovery
 * conflicts).
 */
#define RR_MAX_SLEEP_MS			10000

/*
 * Longest first sleep after entering the queue (ms): bounds a wake-up the
 * startup process may miss (see NOTES).  A waiter still asleep after it
 * also alerts the worker.
 */
#define RR_FIRST_SLEEP_MS		5

/*
 * How long the startup process may hold back a hand-over while it catches
 * up (us), how many records go by between two looks at the clock, and how
 * many at most.
 */
#define RR_DEFER_HANDOVER_US	500
#define RR_DEFER_CLOCK_RECORDS	16
#define RR_DEFER_MAX_RECORDS	4096

/*
 * A waiter whose WAL is about to arrive on a caught-up replica spins this
 * long (us) before its first sleep: at most this much received WAL not yet
 * replayed, and a target at most this far past the replay position.
 */
#define RR_SPIN_US				250
#define RR_SPIN_BACKLOG_BYTES	(64 * 1024)

/* Latches collected under the lock before setting them. */
#define RR_WAKE_BATCH			16

/* What the waiter found when it looked at the world. */
typedef enum RRWaitState
{
	RR_STATE_WAITING,
	RR_STATE_REACHED,
	RR_STATE_REFUSED,			/* kill switch off */
	RR_STATE_PROMOTED,			/* recovery ended before the target */
	RR_STATE_BLOCKED,			/* replay held up by a recovery conflict */
	RR_STATE_EXPIRED
} RRWaitState;

/* Start of the wait in progress, for the error-cleanup callback. */
static instr_time wait_started_at;

PG_FUNCTION_INFO_V1(rr_wait_for_lsn);

/* Pairing-heap order: the smallest target first. */
static int
waiter_cmp(const pairingheap_node *a, const pairingheap_node *b, void *arg)
{
	const RRWaiter *wa = pairingheap_const_container(RRWaiter, node, a);
	const RRWaiter *wb = pairingheap_const_container(RRWaiter, node, b);

	if (wa->target < wb->target)
		return 1;
	if (wa->target > wb->target)
		return -1;
	return 0;
}

/* Initialise the (shared) waiter queue; called once by the postmaster. */
void
rr_wait_queue_init(pairingheap *heap)
{
	heap->ph_compare = waiter_cmp;
	heap->ph_arg = NULL;
	heap->ph_root = NULL;
}

/*
 * Recompute min_waited_lsn and head_procno; caller holds the lock
 * exclusively.
 */
static void
update_min_waited_lsn(void)
{
	uint64		min = PG_UINT64_MAX;
	uint32		head = PG_UINT32_MAX;

	if (!pairingheap_is_empty(&rr_shared->waiters))
	{
		RRWaiter   *w = pairingheap_container(RRWaiter, node,
											  pairingheap_first(&rr_shared->waiters));

		min = w->target;
		head = w - rr_shared->slots;
	}
	pg_atomic_write_u32(&rr_shared->head_procno, head);
	pg_atomic_write_u64(&rr_shared->min_waited_lsn, min);
}

/* Put this backend in the queue unless it is there already. */
static void
queue_insert(XLogRecPtr target, TimestampTz since, TimestampTz deadline)
{
	RRWaiter   *w = &rr_shared->slots[RR_MY_PROC_NUMBER];

	LWLockAcquire(rr_shared->lock, LW_EXCLUSIVE);
	if (!w->in_queue)
	{
		w->target = target;
		w->pid = MyProcPid;
		w->since = since;
		w->deadline = deadline;
		pairingheap_add(&rr_shared->waiters, &w->node);
		w->in_queue = true;
		update_min_waited_lsn();
	}
	LWLockRelease(rr_shared->lock);
}

/*
 * Wake the worker so that it starts looking for recovery conflicts every
 * RR_CONFLICT_CHECK_MS now rather than at its next sample.  Done by a
 * waiter still asleep after RR_FIRST_SLEEP_MS: most waits are over long
 * before that, and waking the worker for each would cost more than it
 * saves.
 */
static void
alert_worker(void)
{
	uint32		procno = pg_atomic_read_u32(&rr_shared->worker_procno);

	if (procno != PG_UINT32_MAX)
		SetLatch(&RR_PROC_BY_NUMBER(procno)->procLatch);
}

/*
 * Is this backend in the queue?  Read without the lock: only this backend
 * puts itself in, so 'false' is final until it does; a 'true' that a waker
 * is clearing comes with a SetLatch.
 */
static bool
queue_contains_me(void)
{
	return ((volatile RRWaiter *) &rr_shared->slots[RR_MY_PROC_NUMBER])->in_queue;
}

/* Take this backend out of the queue if a waker has not done so already. */
static void
queue_remove(void)
{
	RRWaiter   *w = &rr_shared->slots[RR_MY_PROC_NUMBER];

	if (!queue_contains_me())
		return;					/* popped by a waker: no lock needed */

	LWLockAcquire(rr_shared->lock, LW_EXCLUSIVE);
	if (w->in_queue)
	{
		pairingheap_remove(&rr_shared->waiters, &w->node);
		w->in_queue = false;
		update_min_waited_lsn();
	}
	LWLockRelease(rr_shared->lock);

	/* a wake-up meant for the head may have come to us (NOTES, rule 1) */
	rr_wake_waiters(InvalidXLogRecPtr, false);
}

/*
 * Pop the waiters 'replayed' -- or the redo hook's position, if further --
 * satisfies (all with 'all') and set their latches.  Clears wake_pending
 * first and goes on until nobody waits for what has been replayed, so it
 * also serves any wake-up the startup process asked for (NOTES).
 */
void
rr_wake_waiters(XLogRecPtr replayed, bool all)
{
	for (;;)
	{
		int			procnos[RR_WAKE_BATCH];
		int			n = 0;
		bool		more;

		if (!all)
		{
			/* the exchange is a full barrier: replayed_lsn is read after it */
			(void) pg_atomic_exchange_u32(&rr_shared->wake_pending, 0);
			replayed = Max(replayed,
						   pg_atomic_read_u64(&rr_shared->replayed_lsn));
		}

		/* nobody to wake: skip the lock (see NOTES for why this is safe) */
		if (pg_atomic_read_u64(&rr_shared->min_waited_lsn) >
			(all ? PG_UINT64_MAX - 1 : replayed))
			return;

		LWLockAcquire(rr_shared->lock, LW_EXCLUSIVE);
		while (n < RR_WAKE_BATCH && !pairingheap_is_empty(&rr_shared->waiters))
		{
			RRWaiter   *w = pairingheap_container(RRWaiter, node,
												  pairingheap_first(&rr_shared->waiters));

			if (!all && w->target > replayed)
				break;
			(void) pairingheap_remove_first(&rr_shared->waiters);
			w->in_queue = false;
			procnos[n++] = w - rr_shared->slots;
		}
		update_min_waited_lsn();
		more = (n == RR_WAKE_BATCH);
		LWLockRelease(rr_shared->lock);

		for (int i = 0; i < n; i++)
		{
			/* a waiter that pops itself is awake already */
			if (procnos[i] != RR_MY_PROC_NUMBER)
				SetLatch(&RR_PROC_BY_NUMBER(procnos[i])->procLatch);
		}

		/* everyone woken: now serve what the startup process asked for */
		if (all && !more)
			all = false;
	}
}

/* Microseconds since 'start' on the monotonic clock. */
static int64
usecs_since(instr_time start)
{
	instr_time	now;

	INSTR_TIME_SET_CURRENT(now);
	INSTR_TIME_SUBTRACT(now, start);
	return (int64) INSTR_TIME_GET_MICROSEC(now);
}

/*
 * Startup process: a deferred hand-over (see below) began at
 * 'defer_started' and has let 'defer_records' records go by since.
 */
static bool defer_active = false;
static uint32 defer_records;
static instr_time defer_started;

#ifdef RR_MEASURE_REDO
/* "make RR_MEASURE_REDO=1" only: logged by redo_hook.c, see there */
uint64		rr_measure_handovers = 0;
uint64		rr_measure_deferred = 0;
#define MEASURE_COUNT(c)	((c)++)
#else
#define MEASURE_COUNT(c)	((void) 0)
#endif

/*
 * Startup process: may the hand-over for 'record' wait?  Only while replay
 * is catching up -- the record after it is already decoded, so replay goes
 * on without waiting for WAL -- and no apply delay holds records back, and
 * then for at most RR_DEFER_HANDOVER_US (the clock is read every
 * RR_DEFER_CLOCK_RECORDS records) and RR_DEFER_MAX_RECORDS records.
 * Waiters replay satisfies meanwhile are woken together, by one SetLatch()
 * instead of one each (NOTES).
 *
 * A deferral left behind when its waiters went away before it ended
 * (nobody's target was reached any more) makes the next one end within
 * RR_DEFER_CLOCK_RECORDS records: early, never late.
 */
static bool
hand_over_can_wait(XLogReaderState *record)
{
	int64		elapsed;

	if (record->record == NULL ||
		record->decode_queue_tail == record->record ||
		recovery_min_apply_delay > 0)
		return false;
	if (!defer_active)
	{
		defer_active = true;
		defer_records = 0;
		INSTR_TIME_SET_CURRENT(defer_started);
		return true;
	}
	if (++defer_records % RR_DEFER_CLOCK_RECORDS != 0)
		return true;
	if (defer_records >= RR_DEFER_MAX_RECORDS)
		return false;
	elapsed = usecs_since(defer_started);
	return elapsed >= 0 && elapsed < RR_DEFER_HANDOVER_US;
}

/*
 * Startup process: replay of 'record' has reached a waiter's target
 * (rr_note_replayed() checked).  Publish the position; then, unless the
 * hand-over may wait, hand the wake-up to the head waiter unless one is
 * already pending.  No lock is taken here (NOTES).
 */
void
rr_wake_replayed(XLogReaderState *record)
{
	/*
	 * Whoever reads this position must also see the timeline the core set
	 * (replayEndTLI) before replaying the record: a token wait judges the
	 * position by that timeline's history (timeline.c).  Published even
	 * when the hand-over waits, so that any waker's pass sees it.
	 */
	pg_write_barrier();
	pg_atomic_write_u64(&rr_shared->replayed_lsn, record->EndRecPtr);

	if (hand_over_can_wait(record))
	{
		MEASURE_COUNT(rr_measure_deferred);
		return;
	}
	defer_active = false;

	if (pg_atomic_exchange_u32(&rr_shared->wake_pending, 1) == 0)
	{
		uint32		head = pg_atomic_read_u32(&rr_shared->head_procno);

		if (head != PG_UINT32_MAX)
		{
			MEASURE_COUNT(rr_measure_handovers);
			SetLatch(&RR_PROC_BY_NUMBER(head)->procLatch);
		}
		else
		{
			/*
			 * The queue emptied after min_waited_lsn was read: nobody took
			 * the hand-over, so let the next record that reaches a waiter
			 * hand it over again (only this process sets the flag).
			 */
			pg_atomic_write_u32(&rr_shared->wake_pending, 0);
		}
	}
}

/* Startup process: publish its PGPROC number for the conflict check. */
void
rr_announce_startup_process(void)
{
	if (rr_shared != NULL && MyProc != NULL)
		pg_atomic_write_u32(&rr_shared->startup_procno, RR_MY_PROC_NUMBER);
}

/*
 * Worker: is the startup process waiting for sessions on this replica to
 * release a snapshot, a lock, a buffer pin or a tablespace?  While it does,
 * replay stands still, and a waiter may itself be one of the sessions it
 * waits for: the startup process waits for the whole transaction of every
 * session whose xmin conflicted when the record was replayed, even if that
 * session has dropped its xmin since (rr_wait_for_lsn() drops it only once
 * its statement has begun).  Waiting on would then last until the timeout
 * or max_standby_streaming_delay, holding back every reader on the replica,
 * so waiters answer false at once instead.
 */
bool
rr_check_replay_blocked(bool in_recovery)
{
	static int	sightings = 0;
	uint32		procno = pg_atomic_read_u32(&rr_shared->startup_procno);
	bool		blocked;

	if (in_recovery && procno != PG_UINT32_MAX &&
		RR_IS_RECOVERY_CONFLICT_WAIT(((volatile PGPROC *) RR_PROC_BY_NUMBER(procno))->wait_event_info))
		sightings++;
	else
		sightings = 0;

	/*
	 * A buffer-pin or lock wait can be momentary; only one seen on two
	 * consecutive checks (RR_CONFLICT_CHECK_MS apart) counts.
	 */
	blocked = sightings >= 2;
	if (pg_atomic_exchange_u32(&rr_shared->replay_blocked, blocked ? 1 : 0) == 0 &&
		blocked)
		rr_wake_waiters(InvalidXLogRecPtr, true);
	return sightings > 0;
}

/*
 * Has replay certainly passed 'target'?  The redo hook's position is read
 * first: it is one atomic load, and it covers every waiter woken for a
 * replayed record.  The core's position, which takes the spinlock the
 * startup process takes after every record, is consulted only when the
 * hook's falls short -- for a waiter checking before it sleeps, usually,
 * since the hook publishes its position only for records that reach
 * min_waited_lsn.
 */
static bool
replayed_past(XLogRecPtr target)
{
	return pg_atomic_read_u64(&rr_shared->replayed_lsn) >= target ||
		GetXLogReplayRecPtr(NULL) >= target;
}

/* The furthest replay position known: the redo hook's or the core's. */
XLogRecPtr
rr_replayed_upto(void)
{
	XLogRecPtr	hooked = pg_atomic_read_u64(&rr_shared->replayed_lsn);
	XLogRecPtr	core = GetXLogReplayRecPtr(NULL);

	return Max(hooked, core);
}

/*
 * Move a target that points just past a page header back to the page
 * boundary: no record ends inside a header, so WAL replayed up to the
 * boundary satisfies it.  pg_current_wal_insert_lsn() returns such
 * positions; waiting for them literally would stall until the next record.
 */
XLogRecPtr
rr_normalize_target(XLogRecPtr target)
{
	if (target >= SizeOfXLogLongPHD &&
		XLogSegmentOffset(target, wal_segment_size) == SizeOfXLogLongPHD)
		return target - SizeOfXLogLongPHD;
	if (target >= SizeOfXLogShortPHD &&
		target % XLOG_BLCKSZ == SizeOfXLogShortPHD)
		return target - SizeOfXLogShortPHD;
	return target;
}

/* Add one call's outcome and duration to the shared counters. */
static void
count_wait(RRWaitOutcome outcome, instr_time started)
{
	rr_count_wait(outcome, usecs_since(started));
}

/* Leave the queue and count the wait as cancelled (error or exit path). */
static void
wait_cleanup(int code, Datum arg)
{
	queue_remove();
	count_wait(RR_WAIT_CANCELLED, wait_started_at);
}

/*
 * Is this call the whole of its statement, so that the statement's snapshot
 * reads nothing after we return?  True for "SELECT rr_wait_for_lsn(...)"
 * and "SELECT * FROM rr_wait_for_lsn(...)" run as a portal of their own
 * (simple or extended protocol, PREPARE/EXECUTE, a cursor), whatever their
 * arguments compute: arguments are evaluated before the call.
 */
static bool
call_is_whole_statement(FunctionCallInfo fcinfo)
{
	Node	   *expr = fcinfo->flinfo ? fcinfo->flinfo->fn_expr : NULL;
	PlannedStmt *stmt;
	Plan	   *plan;

	if (expr == NULL || ActivePortal == NULL ||
		list_length(ActivePortal->stmts) != 1)
		return false;

	stmt = linitial_node(PlannedStmt, ActivePortal->stmts);
	if (stmt->commandType != CMD_SELECT)
		return false;

	plan = stmt->planTree;
	if (plan == NULL || plan->lefttree != NULL || plan->righttree != NULL)
		return false;

	if (IsA(plan, Result))
		return list_length(plan->targetlist) == 1 &&
			(Node *) linitial_node(TargetEntry, plan->targetlist)->expr == expr;

	if (IsA(plan, FunctionScan) && plan->qual == NIL && plan->initPlan == NIL)
	{
		FunctionScan *fscan = (FunctionScan *) plan;
		ListCell   *lc;

		if (list_length(fscan->functions) != 1 ||
			((RangeTblFunction *) linitial(fscan->functions))->funcexpr != expr)
			return false;
		foreach(lc, plan->targetlist)
		{
			if (!IsA(lfirst_node(TargetEntry, lc)->expr, Var))
				return false;
		}
		return true;
	}
	return false;
}

/*
 * Refuse a call that may wait unless dropping its xmin is safe: it must be
 * the whole of a top-level statement (not reached through FETCH, a
 * function or another statement, not a WITH HOLD cursor that runs at
 * commit), and no other snapshot or portal that could still read may be
 * alive -- a suspended portal of the extended protocol, an open cursor, a
 * REPEATABLE READ snapshot shared by several portals.  These are the tests
 * core applies before COPY FREEZE.  Checked whether or not this call will
 * actually sleep, so that misuse shows up on a primary and on an idle
 * replica, not only under lag.
 */
static void
check_may_wait_here(FunctionCallInfo fcinfo, const char *funcname)
{
	InvalidateCatalogSnapshot();

	if (!call_is_whole_statement(fcinfo) || !rr_called_at_top_level() ||
		(ActivePortal->cursorOptions & CURSOR_OPT_HOLD) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("%s() must be called as a statement of its own to wait",
						funcname),
				 errdetail("Waiting inside a larger query, a function or a cursor would hold a snapshot that can stall WAL replay on a replica."),
				 errhint("Run \"SELECT %s(...)\" by itself before the statements that read, or pass a timeout of 0 to check without waiting.",
						 funcname)));

	/*
	 * Under REPEATABLE READ the transaction's snapshot is registered beside
	 * the statement's; rr_wait_for_target() refuses it unless it is this
	 * statement's own (rr_snapshot_predates_statement()).
	 */
	if (!ThereAreNoReadyPortals() ||
		(!IsolationUsesXactSnapshot() && !ThereAreNoPriorRegisteredSnapshots()))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("%s() cannot wait while another portal or snapshot of this session is open",
						funcname),
				 errdetail("An open cursor or a suspended portal could read rows that WAL replay removes while this session waits."),
				 errhint("Close open cursors and finish suspended portals before waiting, or pass a timeout of 0 to check without waiting.")));
}

/*
 * Stop this backend's snapshots from holding back replay while it waits.
 * check_may_wait_here() has established that the statement's own snapshot,
 * registered until the statement ends, will not be used to read again and
 * that no other snapshot is alive: nothing this backend can still read
 * depends on rows replay may now remove.  The next snapshot taken sets xmin
 * afresh.
 */
static void
release_snapshot_xmin(void)
{
	MyProc->xmin = InvalidTransactionId;
}

/*
 * Where the waiter stands now.  A server that is not in recovery has every
 * target visible -- unless it was a replica when this call began, in which
 * case only what was replayed before promotion counts.  'check', if given,
 * may raise an error or hold the target unreached whatever the replay
 * position (see RRWaitCheck).
 */
static RRWaitState
wait_state(RRWaitSpec *spec, instr_time started, bool began_in_recovery)
{
	bool		reachable = spec->check == NULL || spec->check(spec->check_arg);

	if (!RecoveryInProgress())
	{
		if (reachable && (!began_in_recovery || replayed_past(spec->target)))
			return RR_STATE_REACHED;
		if (began_in_recovery)
			return RR_STATE_PROMOTED;
	}
	else
	{
		if (!rr_replica_reads_on())
			return RR_STATE_REFUSED;
		if (reachable && replayed_past(spec->target))
			return RR_STATE_REACHED;
		if (pg_atomic_read_u32(&rr_shared->replay_blocked) != 0)
			return RR_STATE_BLOCKED;
	}
	if (usecs_since(started) >= (int64) spec->timeout_ms * 1000)
		return RR_STATE_EXPIRED;
	return RR_STATE_WAITING;
}

/*
 * Parse the optional timeout argument at 'argno': NULL means
 * rr_router.wait_timeout.
 */
int
rr_wait_timeout_arg(FunctionCallInfo fcinfo, int argno)
{
	int			timeout_ms;

	if (PG_ARGISNULL(argno))
		return rr_wait_timeout;
	timeout_ms = PG_GETARG_INT32(argno);
	if (timeout_ms < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("timeout must not be negative"),
				 errdetail("The timeout_ms argument was %d.", timeout_ms),
				 errhint("Pass 0 to check without waiting, or NULL to use \"rr_router.wait_timeout\".")));
	return timeout_ms;
}

/*
 * Before its first sleep, spin for up to RR_SPIN_US while replay is about
 * to pass 'target': the walreceiver is streaming, replay has applied all
 * but RR_SPIN_BACKLOG_BYTES of what it received, and 'target' lies at most
 * that far past the replay position -- a read-your-writes wait whose WAL
 * is in flight.  Being on a CPU when replay gets there saves the wake-up
 * from a sleep, which on some machines (virtual CPUs especially) takes
 * longer than the rest of the wait.  One waiter spins at a time, so the
 * CPU this burns is bounded; replay that is behind, a far target or
 * another spinner means sleeping at once.  The spin ends early when the
 * latch is set, which is how the startup process hands over a wake-up.
 * Returns whether it spun.
 */
static bool
spin_before_sleep(XLogRecPtr target)
{
	XLogRecPtr	replayed = rr_replayed_upto();
	XLogRecPtr	received;
	WalRcvState rcv_state;
	instr_time	start;
	uint32		zero = 0;

	if (target - replayed > RR_SPIN_BACKLOG_BYTES ||
		pg_atomic_read_u32(&rr_shared->spinning) != 0)
		return false;

	/* read directly: WalRcvStreaming() is the startup process's to call */
	SpinLockAcquire(&WalRcv->mutex);
	rcv_state = WalRcv->walRcvState;
	received = WalRcv->flushedUpto;
	SpinLockRelease(&WalRcv->mutex);
	if (rcv_state != WALRCV_STREAMING ||
		received > replayed + RR_SPIN_BACKLOG_BYTES)
		return false;

	if (!pg_atomic_compare_exchange_u32(&rr_shared->spinning, &zero, 1))
		return false;

	INSTR_TIME_SET_CURRENT(start);
	for (int i = 1;; i++)
	{
		if (((volatile Latch *) MyLatch)->is_set || InterruptPending ||
			pg_atomic_read_u64(&rr_shared->replayed_lsn) >= target)
			break;
		/* the clock every 64 turns, the core's position every 256 */
		if (i % 64 == 0)
		{
			int64		spun = usecs_since(start);

			if (spun < 0 || spun >= RR_SPIN_US)
				break;
			if (i % 256 == 0 && GetXLogReplayRecPtr(NULL) >= target)
				break;
		}
		pg_spin_delay();
	}
	pg_atomic_write_u32(&rr_shared->spinning, 0);
	return true;
}

/*
 * Wait until replay has passed spec->target (and spec->check, if any,
 * agrees), the timeout elapses or the kill switch is off.  The body of
 * every wait function: counts the call, sleeps in the queue, raises the
 * promotion error.  'funcname' names the SQL function in messages, e.g.
 * "rr_wait_for_lsn".
 */
bool
rr_wait_for_target(FunctionCallInfo fcinfo, const char *funcname,
				   RRWaitSpec *spec)
{
	instr_time	started;
	TimestampTz started_at;
	volatile RRWaitState state;
	volatile bool slept = false;
	volatile bool spin_tried = false;
	volatile bool spun = false;
	volatile bool alerted = false;
	volatile bool just_queued = true;

	if (spec->timeout_ms > 0)
		check_may_wait_here(fcinfo, funcname);

	/* in autocommit the next statement takes a new snapshot: that is fine */
	if (rr_snapshot_predates_statement())
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TRANSACTION_STATE),
				 errmsg("%s() cannot make newly replayed data visible to this transaction",
						funcname),
				 errdetail("A REPEATABLE READ or SERIALIZABLE transaction keeps the snapshot it has already taken."),
				 errhint("Call %s() before BEGIN, then start the transaction.",
						 funcname)));

	INSTR_TIME_SET_CURRENT(started);
	started_at = GetCurrentTimestamp();

	state = wait_state(spec, started, false);
	if (state == RR_STATE_WAITING && spec->timeout_ms == 0)
		state = RR_STATE_EXPIRED;
	if (state == RR_STATE_WAITING)
	{
		/* for display in rr_waiters only: budgets use the monotonic clock */
		TimestampTz deadline = TimestampTzPlusMilliseconds(started_at,
														   spec->timeout_ms);

		release_snapshot_xmin();

		wait_started_at = started;
		PG_ENSURE_ERROR_CLEANUP(wait_cleanup, (Datum) 0);
		{
			queue_insert(spec->target, started_at, deadline);
			for (;;)
			{
				int64		left_ms;

				/* check only after being in the queue: see NOTES */
				state = wait_state(spec, started, true);
				if (state != RR_STATE_WAITING)
					break;

				/* popped by a wake-up that was not for us: queue again */
				if (!queue_contains_me())
				{
					queue_insert(spec->target, started_at, deadline);
					just_queued = true;
					continue;
				}

				if (slept && !alerted)
				{
					alert_worker();
					alerted = true;
				}

				if (!spin_tried)
				{
					spin_tried = true;
					if (spin_before_sleep(spec->target))
					{
						spun = true;
						/* as after any wake-up (NOTES, rule 2) */
						rr_wake_waiters(InvalidXLogRecPtr, false);
						continue;
					}
				}

				/* round up: waking a little late beats waking twice */
				left_ms = ((int64) spec->timeout_ms * 1000 -
						   usecs_since(started) + 999) / 1000;
				(void) WaitLatch(MyLatch,
								 WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
								 Max(Min(left_ms,
										 alerted && !just_queued ?
										 RR_MAX_SLEEP_MS : RR_FIRST_SLEEP_MS),
									 1),
								 rr_wait_event_wait_for_lsn());
				ResetLatch(MyLatch);
				slept = true;
				just_queued = false;
				CHECK_FOR_INTERRUPTS();

				/*
				 * Woken: pop whoever replay has satisfied, this backend
				 * included (NOTES, rule 2).
				 */
				rr_wake_waiters(InvalidXLogRecPtr, false);
			}
		}
		PG_END_ENSURE_ERROR_CLEANUP(wait_cleanup, (Datum) 0);
		queue_remove();
	}

	if (state == RR_STATE_PROMOTED)
	{
		count_wait(RR_WAIT_CANCELLED, started);
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("recovery ended before replaying target LSN " RR_LSN_FORMAT,
						LSN_FORMAT_ARGS(spec->target)),
				 errdetail("This server was promoted; the last replayed LSN is " RR_LSN_FORMAT ".",
						   LSN_FORMAT_ARGS(rr_replayed_upto())),
				 errhint("Read from the new primary.")));
	}

	if (!slept && !spun)
		count_wait(state == RR_STATE_EXPIRED ? RR_WAIT_TIMED_OUT : RR_WAIT_IMMEDIATE,
				   started);
	else
		count_wait(state == RR_STATE_REACHED ? RR_WAIT_WOKEN : RR_WAIT_TIMED_OUT,
				   started);

	return state == RR_STATE_REACHED;
}

/*
 * rr_wait_for_lsn(target pg_lsn, timeout_ms integer DEFAULT NULL) -> boolean
 *
 * True once this replica has replayed WAL up to 'target' (at once on a
 * primary); false if the timeout elapses first or the kill switch is off.
 */
Datum
rr_wait_for_lsn(PG_FUNCTION_ARGS)
{
	RRWaitSpec	spec = {0};

	rr_check_loaded();

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	spec.target = rr_normalize_target(PG_GETARG_LSN(0));
	spec.timeout_ms = rr_wait_timeout_arg(fcinfo, 1);

	PG_RETURN_BOOL(rr_wait_for_target(fcinfo, "rr_wait_for_lsn", &spec));
}
