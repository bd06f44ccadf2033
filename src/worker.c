/*-------------------------------------------------------------------------
 *
 * worker.c
 *	  The rr_router background worker: samples replication progress into
 *	  shared memory and keeps the waiter queue honest.
 *
 * Every rr_router.sample_interval the worker records the role, timeline,
 * receive and replay positions, the primary's newest known position, the
 * walreceiver's state and whether replay is paused.  It is also the
 * waiters' safety net: it wakes waiters whose target has been replayed (the
 * startup process normally has done so already), wakes every waiter when the
 * kill switch goes off or the server is promoted, and publishes the kill
 * switch on configuration reload.
 *
 * NOTES
 *	  The worker takes RRShared.mutex to publish a sample and
 *	  RRShared.lock (through rr_wake_waiters) to wake waiters; it never
 *	  holds both.  It has no database connection and starts with the
 *	  postmaster, so it also runs during recovery.  If it dies, the
 *	  postmaster restarts it after RR_WORKER_RESTART_SECS; waiters do not
 *	  depend on it to be woken.
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
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "compat.h"
#include "rr_router.h"
#include "shmem.h"
#include "wait.h"
#include "worker.h"

/* Seconds before the postmaster restarts a worker that died. */
#define RR_WORKER_RESTART_SECS	1

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

		s->replay_lsn = GetXLogReplayRecPtr(&s->timeline);
		s->replay_lsn = Max(s->replay_lsn, rr_replayed_upto());
		s->replay_paused = GetRecoveryPauseState() != RECOVERY_NOT_PAUSED;

		SpinLockAcquire(&walrcv->mutex);
		s->receiver_state = walrcv->walRcvState;
		s->receive_lsn = walrcv->flushedUpto;
		latest_wal_end = walrcv->latestWalEnd;
		SpinLockRelease(&walrcv->mutex);

		s->primary_lsn = Max(latest_wal_end, Max(s->receive_lsn, s->replay_lsn));
	}
	else
	{
		s->timeline = GetWALInsertionTimeLine();
		s->primary_lsn = GetFlushRecPtr(NULL);
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

/* Clear the published pid when the worker exits. */
static void
worker_exit(int code, Datum arg)
{
	SpinLockAcquire(&rr_shared->mutex);
	rr_shared->worker_pid = 0;
	SpinLockRelease(&rr_shared->mutex);
}

/* Entry point of the background worker. */
void
rr_worker_main(Datum main_arg)
{
	MemoryContext loop_cxt;
	bool		was_in_recovery = true;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, SignalHandlerForShutdownRequest);
	BackgroundWorkerUnblockSignals();

	SpinLockAcquire(&rr_shared->mutex);
	rr_shared->worker_pid = MyProcPid;
	SpinLockRelease(&rr_shared->mutex);
	before_shmem_exit(worker_exit, (Datum) 0);

	publish_replica_reads();

	loop_cxt = AllocSetContextCreate(TopMemoryContext, "rr_router worker loop",
									 ALLOCSET_DEFAULT_SIZES);

	while (!ShutdownRequestPending)
	{
		RRSample	sample;
		MemoryContext old_cxt;

		MemoryContextReset(loop_cxt);
		old_cxt = MemoryContextSwitchTo(loop_cxt);

		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			publish_replica_reads();
		}

		take_sample(&sample);
		SpinLockAcquire(&rr_shared->mutex);
		rr_shared->sample = sample;
		SpinLockRelease(&rr_shared->mutex);

		if (sample.in_recovery)
			rr_wake_waiters(sample.replay_lsn, false);
		else if (was_in_recovery)
			rr_wake_waiters(InvalidXLogRecPtr, true);	/* promoted */
		was_in_recovery = sample.in_recovery;

		MemoryContextSwitchTo(old_cxt);

		(void) WaitLatch(MyLatch,
						 WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 rr_sample_interval,
						 RR_WAIT_EVENT);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}

	proc_exit(0);
}
