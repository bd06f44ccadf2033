/*-------------------------------------------------------------------------
 *
 * worker.c
 *	  The rr_router background worker: samples replication progress into
 *	  shared memory and keeps the waiter queue honest.
 *
 * Every rr_router.sample_interval the worker records the role, timeline,
 * receive and replay positions, the primary's newest known position, the
 * walreceiver's state, whether replay is paused and the clock offset to the
 * primary, and appends lag and staleness to the history ring.  On a
 * primary it writes the WAL heartbeat every rr_router.heartbeat_interval.
 * With rr_router.http_port set it also serves the HTTP endpoint (http.c)
 * while it sleeps.  It is also the
 * waiters' safety net: it wakes waiters whose target has been replayed (the
 * waiters normally have done so already), wakes every waiter when the
 * kill switch goes off, the server is promoted, replay moves to a new
 * timeline (which may have lost the writes token waiters wait for) or
 * replay is held up by a recovery conflict (checked every
 * RR_CONFLICT_CHECK_MS while anyone waits), and publishes the kill switch on
 * configuration reload.
 *
 * NOTES
 *	  The worker takes RRShared.mutex to publish a sample, the history lock
 *	  to append to the ring and RRShared.lock (through rr_wake_waiters) to
 *	  wake waiters; it never holds two at once.  It has no database
 *	  connection and starts with the postmaster, so it also runs during
 *	  recovery.  If it dies, the postmaster restarts it after
 *	  RR_WORKER_RESTART_SECS; waiters depend on it to be woken only when
 *	  replay stops in the middle of a deferred hand-over with no other
 *	  waiter looking (wait.c), and then sleep at most RR_MAX_SLEEP_MS.
 *
 * Copyright (c) 2026, rr_router developers
 *
 * IDENTIFICATION
 *	  src/worker.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xlog.h"
#include "access/xlogrecovery.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "replication/walreceiver.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/procsignal.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "compat.h"
#include "heartbeat.h"
#include "history.h"
#include "http.h"
#include "rr_router.h"
#include "shmem.h"
#include "staleness.h"
#include "wait.h"
#include "worker.h"

/* Seconds before the postmaster restarts a worker that died. */
#define RR_WORKER_RESTART_SECS	1

/* How often to look for a recovery conflict while sessions wait, in ms. */
#define RR_CONFLICT_CHECK_MS	10

/* Samples over which the smallest clock-offset reading is kept. */
#define RR_OFFSET_WINDOW		64

/*
 * Recent (receipt - send) readings of the walreceiver, in microseconds: a
 * ring of the last RR_OFFSET_WINDOW, the next slot to write and how many
 * slots hold a reading (never more than the window, so nothing wraps).
 */
static int64 offset_readings[RR_OFFSET_WINDOW];
static int	offset_next = 0;
static int	offset_count = 0;
static TimestampTz offset_last_send = 0;

/*
 * Estimate our clock minus the primary's from the walreceiver's last
 * message: receipt time here minus send time there, which is the offset
 * plus the network delay.  The smallest of recent readings carries the
 * least delay.  False until a message has arrived.
 */
static bool
estimate_clock_offset(TimestampTz send, TimestampTz receipt, int64 *offset)
{
	if (send != 0 && receipt != 0 && send != offset_last_send)
	{
		offset_readings[offset_next] = receipt - send;
		offset_next = (offset_next + 1) % RR_OFFSET_WINDOW;
		offset_count = Min(offset_count + 1, RR_OFFSET_WINDOW);
		offset_last_send = send;
	}
	if (offset_count == 0)
		return false;
	*offset = offset_readings[0];
	for (int i = 1; i < offset_count; i++)
		*offset = Min(*offset, offset_readings[i]);
	return true;
}

/* Register the worker with the postmaster; called from _PG_init. */
void
rr_register_worker(void)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS;
	worker.bgw_start_time = BgWorkerStart_PostmasterStart;
	worker.bgw_restart_time = RR_WORKER_RESTART_SECS;
	strlcpy(worker.bgw_library_name, "rr_router", BGW_MAXLEN);
	strlcpy(worker.bgw_function_name, "rr_worker_main", BGW_MAXLEN);
	strlcpy(worker.bgw_name, "rr_router worker", BGW_MAXLEN);
	strlcpy(worker.bgw_type, "rr_router worker", BGW_MAXLEN);
	RegisterBackgroundWorker(&worker);
}

/* Name of a WalRcvState value as shown in rr_status.receiver_state. */
const char *
rr_receiver_state_name(int state)
{
	switch (state)
	{
		case WALRCV_STOPPED:
			return "stopped";
		case WALRCV_STARTING:
			return "starting";
		case WALRCV_STREAMING:
			return "streaming";
		case WALRCV_WAITING:
			return "waiting";
		case WALRCV_RESTARTING:
			return "restarting";
		case WALRCV_STOPPING:
			return "stopping";
	}
	return NULL;
}

/* Read replication progress from the server's own shared state. */
static void
take_sample(RRSample *s)
{
	memset(s, 0, sizeof(*s));
	s->sampled_at = GetCurrentTimestamp();
	s->in_recovery = RecoveryInProgress();

	if (s->in_recovery)
	{
		WalRcvData *walrcv = WalRcv;
		XLogRecPtr	latest_wal_end;
		TimestampTz send_time;
		TimestampTz receipt_time;

		s->replay_lsn = GetXLogReplayRecPtr(&s->timeline);
		s->replay_lsn = Max(s->replay_lsn, rr_replayed_upto());
		s->replay_paused = GetRecoveryPauseState() != RECOVERY_NOT_PAUSED;

		SpinLockAcquire(&walrcv->mutex);
		s->receiver_state = walrcv->walRcvState;
		s->receive_lsn = walrcv->flushedUpto;
		latest_wal_end = walrcv->latestWalEnd;
		send_time = walrcv->lastMsgSendTime;
		receipt_time = walrcv->lastMsgReceiptTime;
		SpinLockRelease(&walrcv->mutex);

		s->has_clock_offset = estimate_clock_offset(send_time, receipt_time,
													&s->clock_offset);

		/*
		 * Only a message from a walsender tells where the primary is; an
		 * archive-only replica, or one whose primary has not answered since
		 * it started, does not know (receive_lsn alone is only where
		 * streaming was asked to start).
		 */
		s->has_primary_lsn = latest_wal_end != InvalidXLogRecPtr;
		if (s->has_primary_lsn)
			s->primary_lsn = Max(latest_wal_end, Max(s->receive_lsn, s->replay_lsn));
	}
	else
	{
		s->timeline = GetWALInsertionTimeLine();
		s->primary_lsn = GetFlushRecPtr(NULL);
		s->has_primary_lsn = true;
		s->receiver_state = -1;
	}
}

/* Publish the kill switch; wake every waiter when it turns off. */
static void
publish_replica_reads(void)
{
	uint32		old = pg_atomic_exchange_u32(&rr_shared->replica_reads,
											 rr_replica_reads ? 1 : 0);

	if (old && !rr_replica_reads)
		rr_wake_waiters(InvalidXLogRecPtr, true);
}

/*
 * Join the backend status array, so that the worker shows in
 * pg_stat_activity with its wait events, once clients can connect to look
 * (a hot standby that has reached consistency, or a primary): before that
 * nobody can see it, and a backend's initialisation is best not run while
 * recovery has barely begun.  Called until it has done so.
 */
static void
join_backend_status(bool *joined)
{
	if (*joined || (RecoveryInProgress() && !HotStandbyActive()))
		return;
	rr_init_backend_without_database();
	SetProcessingMode(NormalProcessing);
	*joined = true;
}

/* Clear the published pid when the worker exits. */
static void
worker_exit(int code, Datum arg)
{
	SpinLockAcquire(&rr_shared->mutex);
	rr_shared->worker_pid = 0;
	SpinLockRelease(&rr_shared->mutex);
	pg_atomic_write_u32(&rr_shared->worker_procno, PG_UINT32_MAX);
}

/* Record a sample in the lag history. */
static void
record_history(const RRSample *s)
{
	RRHistoryEntry entry;
	TimestampTz as_of;

	entry.sampled_at = s->sampled_at;
	entry.replay_lsn = s->in_recovery ? s->replay_lsn : InvalidXLogRecPtr;
	entry.lag_bytes = rr_sample_lag_bytes(s);
	if (!rr_current_staleness(s->sampled_at, &entry.staleness, &as_of))
		entry.staleness = -1;
	rr_history_add(&entry);
}

/* Milliseconds from 'now' until 'then', at least 1 unless 'then' has passed. */
static long
ms_until(TimestampTz now, TimestampTz then)
{
	return then <= now ? 0 : TimestampDifferenceMilliseconds(now, then);
}

/* Entry point of the background worker. */
void
rr_worker_main(Datum main_arg)
{
	MemoryContext loop_cxt;
	bool		was_in_recovery = true;
	TimeLineID	last_timeline = 0;
	bool		joined = false;
	TimestampTz next_sample = 0;
	TimestampTz next_heartbeat = 0;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, SignalHandlerForShutdownRequest);
	/* as a backend we take part in ProcSignal barriers: absorb them */
	pqsignal(SIGUSR1, procsignal_sigusr1_handler);
	BackgroundWorkerUnblockSignals();

	SpinLockAcquire(&rr_shared->mutex);
	rr_shared->worker_pid = MyProcPid;
	SpinLockRelease(&rr_shared->mutex);
	pg_atomic_write_u32(&rr_shared->worker_procno, RR_MY_PROC_NUMBER);
	before_shmem_exit(worker_exit, (Datum) 0);

	publish_replica_reads();
	rr_http_start();

	loop_cxt = AllocSetContextCreate(TopMemoryContext, "rr_router worker loop",
									 ALLOCSET_DEFAULT_SIZES);

	while (!ShutdownRequestPending)
	{
		MemoryContext old_cxt;
		TimestampTz now;
		long		sleep_ms;
		bool		watching;

		join_backend_status(&joined);

		MemoryContextReset(loop_cxt);
		old_cxt = MemoryContextSwitchTo(loop_cxt);

		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			publish_replica_reads();
			next_sample = next_heartbeat = 0;	/* intervals may have changed */
		}

		now = GetCurrentTimestamp();

		/* On a primary, carry the clock to the replicas. */
		if (rr_heartbeat_interval > 0 && now >= next_heartbeat &&
			!RecoveryInProgress())
		{
			(void) rr_write_heartbeat();
			next_heartbeat = TimestampTzPlusMilliseconds(now, rr_heartbeat_interval);
		}

		if (now >= next_sample)
		{
			RRSample	sample;

			take_sample(&sample);
			SpinLockAcquire(&rr_shared->mutex);
			rr_shared->sample = sample;
			SpinLockRelease(&rr_shared->mutex);
			record_history(&sample);

			if (sample.in_recovery && sample.timeline != last_timeline &&
				last_timeline != 0)
				rr_wake_waiters(InvalidXLogRecPtr, true);	/* new timeline */
			else if (!sample.in_recovery && was_in_recovery)
				rr_wake_waiters(InvalidXLogRecPtr, true);	/* promoted */
			was_in_recovery = sample.in_recovery;
			last_timeline = sample.timeline;
			next_sample = TimestampTzPlusMilliseconds(now, rr_sample_interval);
		}

		watching = rr_check_replay_blocked(was_in_recovery);

		/*
		 * Waiters whose target has been replayed: the backstop for the
		 * hand-over of wake-ups (wait.c's NOTES).
		 */
		if (was_in_recovery &&
			pg_atomic_read_u64(&rr_shared->min_waited_lsn) != PG_UINT64_MAX)
			rr_wake_waiters(rr_replayed_upto(), false);

		MemoryContextSwitchTo(old_cxt);

		/* a clock stepped back must not stop sampling and heartbeats */
		next_sample = Min(next_sample,
						  TimestampTzPlusMilliseconds(now, rr_sample_interval));
		next_heartbeat = Min(next_heartbeat,
							 TimestampTzPlusMilliseconds(now, rr_heartbeat_interval));

		sleep_ms = ms_until(now, next_sample);
		if (watching ||
			pg_atomic_read_u64(&rr_shared->min_waited_lsn) != PG_UINT64_MAX)
			sleep_ms = Min(sleep_ms, RR_CONFLICT_CHECK_MS);
		if (rr_heartbeat_interval > 0 && !was_in_recovery)
			sleep_ms = Min(sleep_ms, ms_until(now, next_heartbeat));
		if (rr_http_port > 0)
			rr_http_wait(sleep_ms);
		else if (sleep_ms > 0)
			(void) WaitLatch(MyLatch,
							 WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 sleep_ms,
							 rr_wait_event_worker_main());
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}

	/*
	 * Exit code 1 asks the postmaster to start us again after
	 * RR_WORKER_RESTART_SECS (0 would unregister the worker for good), so a
	 * worker terminated on its own comes back; at server shutdown the
	 * postmaster starts nothing anyway.
	 */
	proc_exit(1);
}
