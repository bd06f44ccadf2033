/*-------------------------------------------------------------------------
 *
 * views.c
 *	  The functions behind the rr_status and rr_waiters views.
 *
 * NOTES
 *	  Shared data is copied out under its lock (the sample and counters
 *	  under RRShared.mutex, the waiter slots under RRShared.lock in shared
 *	  mode), and tuples are built only after the lock is released.
 *
 * Copyright (c) 2026, rr_router developers
 *
 * IDENTIFICATION
 *	  src/views.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/pg_lsn.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "compat.h"
#include "rr_router.h"
#include "shmem.h"
#include "staleness.h"
#include "views.h"
#include "worker.h"

#define RR_STATUS_COLS	21
#define RR_WAITERS_COLS	4

PG_FUNCTION_INFO_V1(rr_status_data);
PG_FUNCTION_INFO_V1(rr_waiters_data);

/*
 * rr_status_data() -> one row of rr_status: the worker's latest sample and
 * the wait counters.
 */
Datum
rr_status_data(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Datum		values[RR_STATUS_COLS];
	bool		nulls[RR_STATUS_COLS];
	RRSample	s;
	RRWaitCounters c;
	int			worker_pid;
	bool		sampled;
	bool		replica;
	int64		staleness;
	TimestampTz as_of;
	TimestampTz now;
	int			i = 0;

	rr_check_loaded();
	InitMaterializedSRF(fcinfo, 0);

	rr_read_sample(&s, &worker_pid);
	rr_read_counters(&c);
	sampled = s.sampled_at != 0;
	replica = sampled && s.in_recovery;

	memset(nulls, 0, sizeof(nulls));

	/* role, replica_reads, timeline */
	if (sampled)
		values[i] = CStringGetTextDatum(s.in_recovery ? "replica" : "primary");
	else
		nulls[i] = true;
	i++;
	values[i++] = BoolGetDatum(pg_atomic_read_u32(&rr_shared->replica_reads) != 0);
	values[i] = Int64GetDatum((int64) s.timeline);
	nulls[i++] = !sampled;

	/* receive_lsn, replay_lsn, primary_lsn, lag_bytes */
	values[i] = LSNGetDatum(s.receive_lsn);
	nulls[i++] = !replica || s.receive_lsn == InvalidXLogRecPtr;
	values[i] = LSNGetDatum(s.replay_lsn);
	nulls[i++] = !replica;
	values[i] = LSNGetDatum(s.primary_lsn);
	nulls[i++] = !sampled || s.primary_lsn == InvalidXLogRecPtr;
	values[i] = Int64GetDatum(rr_sample_lag_bytes(&s));
	nulls[i++] = !sampled || rr_sample_lag_bytes(&s) < 0;

	/* staleness, as_of: measured now, not at the sample; a primary is current */
	now = GetCurrentTimestamp();
	if (rr_current_staleness(now, &staleness, &as_of))
	{
		values[i++] = rr_usecs_interval(staleness);
		values[i++] = TimestampTzGetDatum(as_of != 0 ? as_of : now);
	}
	else
	{
		nulls[i++] = true;
		nulls[i++] = true;
	}

	/* replay_paused, receiver_state */
	values[i] = BoolGetDatum(s.replay_paused);
	nulls[i++] = !replica;
	if (replica && rr_receiver_state_name(s.receiver_state) != NULL)
		values[i] = CStringGetTextDatum(rr_receiver_state_name(s.receiver_state));
	else
		nulls[i] = true;
	i++;

	/* clock_offset */
	values[i] = rr_usecs_interval(s.clock_offset);
	nulls[i++] = !replica || !s.has_clock_offset;

	/* last_sample_at, worker_pid */
	values[i] = TimestampTzGetDatum(s.sampled_at);
	nulls[i++] = !sampled;
	values[i] = Int32GetDatum(worker_pid);
	nulls[i++] = worker_pid == 0;

	/* the wait counters */
	values[i++] = Int64GetDatum(c.waits);
	values[i++] = Int64GetDatum(c.waits_immediate);
	values[i++] = Int64GetDatum(c.waits_woken);
	values[i++] = Int64GetDatum(c.waits_timed_out);
	values[i++] = Int64GetDatum(c.waits_cancelled);
	values[i++] = rr_usecs_interval(c.wait_time_total);
	values[i++] = rr_usecs_interval(c.wait_time_max);

	Assert(i == RR_STATUS_COLS);
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	return (Datum) 0;
}

/* rr_waiters_data() -> one row per session waiting in rr_wait_for_lsn(). */
Datum
rr_waiters_data(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	RRWaiter   *copy;
	int			n = 0;

	rr_check_loaded();
	InitMaterializedSRF(fcinfo, 0);

	copy = palloc(sizeof(RRWaiter) * rr_shared->nslots);
	LWLockAcquire(rr_shared->lock, LW_SHARED);
	for (int slot = 0; slot < rr_shared->nslots; slot++)
	{
		if (rr_shared->slots[slot].in_queue)
			copy[n++] = rr_shared->slots[slot];
	}
	LWLockRelease(rr_shared->lock);

	for (int k = 0; k < n; k++)
	{
		Datum		values[RR_WAITERS_COLS];
		bool		nulls[RR_WAITERS_COLS] = {0};

		values[0] = Int32GetDatum(copy[k].pid);
		values[1] = LSNGetDatum(copy[k].target);
		values[2] = TimestampTzGetDatum(copy[k].since);
		values[3] = TimestampTzGetDatum(copy[k].deadline);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
