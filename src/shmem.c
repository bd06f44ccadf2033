/*-------------------------------------------------------------------------
 *
 * shmem.c
 *	  Allocation and initialisation of rr_router's shared memory (the
 *	  history ring is history.c's).
 *
 * NOTES
 *	  RRShared is created once by the postmaster (shmem_startup_hook) and
 *	  inherited by every child.  Three kinds of protection are used, chosen
 *	  by how hot each field is:
 *
 *	  - 'mutex' (spinlock) guards the worker's sample and pid.
 *	    The worker writes the sample once per sample interval; backends copy
 *	    it out in a few instructions, so rr_status never blocks on an LWLock.
 *	    rr_staleness() and rr_is_fresh() read only atomics.
 *
 *	  - 'lock' (LWLock, tranche "rr_router") guards the waiter queue and
 *	    every RRWaiter slot.  Waiters take it in exclusive mode to enter and
 *	    leave the queue; wakers (waiting backends, the worker) take it
 *	    exclusive to pop the waiters whose target has been replayed, and set
 *	    their latches only after releasing it; rr_waiters takes it shared to
 *	    copy the queue.  The startup process never takes it.
 *
 *	  - atomics: 'replayed_lsn', 'as_of' and 'startup_procno' have one
 *	    writer, the startup process; 'replay_blocked' and 'replica_reads'
 *	    have one writer, the worker; 'min_waited_lsn' and 'head_procno' are
 *	    only written under 'lock'; 'wake_pending' is set by the startup
 *	    process and cleared by wakers (wait.c); 'spinning' is taken and
 *	    given back by waiters with atomic operations; 'worker_procno' is written
 *	    by the worker as it starts and exits; the wait counters are added to
 *	    by every waiter, the longest wait with a compare-and-swap loop.
 *	    All are read without a lock.
 *
 * Copyright (c) 2026, rr_router developers
 *
 * IDENTIFICATION
 *	  src/shmem.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/shmem.h"

#include "compat.h"
#include "history.h"
#include "rr_router.h"
#include "shmem.h"
#include "wait.h"

RRShared   *rr_shared = NULL;

/* Bytes of shared memory RRShared needs. */
static Size
rr_shmem_size(void)
{
	Size		size;

	size = offsetof(RRShared, slots);
	size = add_size(size, mul_size(RR_TOTAL_PROCS(), sizeof(RRWaiter)));
	return MAXALIGN(size);
}

/* Ask the postmaster for our memory and LWLock (shmem_request_hook). */
void
rr_shmem_request(void)
{
	RequestAddinShmemSpace(add_size(rr_shmem_size(), rr_history_shmem_size()));
	RequestNamedLWLockTranche("rr_router", 2);	/* waiters, history */
}

/* Create or attach to RRShared and the history (shmem_startup_hook). */
void
rr_shmem_startup(void)
{
	bool		found;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);

	rr_shared = ShmemInitStruct("rr_router", rr_shmem_size(), &found);
	if (!found)
	{
		int			nslots = RR_TOTAL_PROCS();

		memset(rr_shared, 0, rr_shmem_size());
		SpinLockInit(&rr_shared->mutex);
		rr_shared->sample.receiver_state = -1;
		pg_atomic_init_u32(&rr_shared->replica_reads, rr_replica_reads ? 1 : 0);
		pg_atomic_init_u64(&rr_shared->replayed_lsn, InvalidXLogRecPtr);
		pg_atomic_init_u64(&rr_shared->min_waited_lsn, PG_UINT64_MAX);
		pg_atomic_init_u32(&rr_shared->head_procno, PG_UINT32_MAX);
		pg_atomic_init_u32(&rr_shared->wake_pending, 0);
		pg_atomic_init_u32(&rr_shared->spinning, 0);
		pg_atomic_init_u64(&rr_shared->as_of, 0);
		pg_atomic_init_u32(&rr_shared->startup_procno, PG_UINT32_MAX);
		pg_atomic_init_u32(&rr_shared->replay_blocked, 0);
		pg_atomic_init_u32(&rr_shared->worker_procno, PG_UINT32_MAX);
		for (int i = 0; i < RR_WAIT_OUTCOMES; i++)
			pg_atomic_init_u64(&rr_shared->wait_outcomes[i], 0);
		pg_atomic_init_u64(&rr_shared->wait_time_total, 0);
		pg_atomic_init_u64(&rr_shared->wait_time_max, 0);
		rr_shared->lock = &(GetNamedLWLockTranche("rr_router"))->lock;
		rr_wait_queue_init(&rr_shared->waiters);
		rr_shared->nslots = nslots;
	}
	rr_history_shmem_init();

	LWLockRelease(AddinShmemInitLock);
}

/* Copy the worker's latest sample (and its pid) under the spinlock. */
void
rr_read_sample(RRSample *sample, int *worker_pid)
{
	SpinLockAcquire(&rr_shared->mutex);
	*sample = rr_shared->sample;
	if (worker_pid)
		*worker_pid = rr_shared->worker_pid;
	SpinLockRelease(&rr_shared->mutex);
}

/*
 * Copy the wait counters.  Each is read atomically and is exact, but the
 * set is not one atomic snapshot: a call counted in its outcome may not be
 * in the times yet.  'waits' is the sum of the outcomes read, so it always
 * agrees with them.
 */
void
rr_read_counters(RRWaitCounters *c)
{
	c->waits_immediate = pg_atomic_read_u64(&rr_shared->wait_outcomes[RR_WAIT_IMMEDIATE]);
	c->waits_woken = pg_atomic_read_u64(&rr_shared->wait_outcomes[RR_WAIT_WOKEN]);
	c->waits_timed_out = pg_atomic_read_u64(&rr_shared->wait_outcomes[RR_WAIT_TIMED_OUT]);
	c->waits_cancelled = pg_atomic_read_u64(&rr_shared->wait_outcomes[RR_WAIT_CANCELLED]);
	c->waits = c->waits_immediate + c->waits_woken + c->waits_timed_out +
		c->waits_cancelled;
	c->wait_time_total = pg_atomic_read_u64(&rr_shared->wait_time_total);
	c->wait_time_max = pg_atomic_read_u64(&rr_shared->wait_time_max);
}

/* Count one call of a wait function that took 'elapsed' microseconds. */
void
rr_count_wait(RRWaitOutcome outcome, int64 elapsed)
{
	uint64		max = pg_atomic_read_u64(&rr_shared->wait_time_max);

	if (elapsed < 0)
		elapsed = 0;
	pg_atomic_fetch_add_u64(&rr_shared->wait_outcomes[outcome], 1);
	pg_atomic_fetch_add_u64(&rr_shared->wait_time_total, elapsed);
	/* on failure 'max' is reloaded with the current value */
	while ((uint64) elapsed > max &&
		   !pg_atomic_compare_exchange_u64(&rr_shared->wait_time_max, &max,
										   (uint64) elapsed))
		;
}

/* Zero the wait counters (rr_reset_stats). */
void
rr_reset_counters(void)
{
	for (int i = 0; i < RR_WAIT_OUTCOMES; i++)
		pg_atomic_write_u64(&rr_shared->wait_outcomes[i], 0);
	pg_atomic_write_u64(&rr_shared->wait_time_total, 0);
	pg_atomic_write_u64(&rr_shared->wait_time_max, 0);
}

/*
 * WAL bytes a sample's replica is behind the primary (0 on a primary, -1
 * while the primary's position is unknown).
 */
int64
rr_sample_lag_bytes(const RRSample *s)
{
	if (s->in_recovery && !s->has_primary_lsn)
		return -1;
	if (!s->in_recovery || s->primary_lsn <= s->replay_lsn)
		return 0;
	return (int64) (s->primary_lsn - s->replay_lsn);
}
