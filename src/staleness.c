/*-------------------------------------------------------------------------
 *
 * staleness.c
 *	  rr_staleness() and rr_is_fresh(): an upper bound on how far this
 *	  server's visible data is behind the primary.
 *
 * The bound is now - as_of, where as_of is the newest primary time proven by
 * a replayed record (see heartbeat.c).  It needs no cooperation from the
 * walreceiver and no assumption about the primary's activity, so it stays
 * an upper bound when the primary is idle (heartbeats move as_of), when
 * replay is paused or delayed and when the replica is cut off (nothing
 * moves as_of, so the bound grows with the clock), and across restarts
 * (as_of starts unknown and is re-learnt from WAL replayed again).  It is
 * measured on this server's clock against times read on the primary's, so
 * it is off by the clock offset between them (rr_status.clock_offset).
 *
 * NOTES
 *	  as_of is an atomic with one writer, the startup process; the functions
 *	  here read it and the kill switch without a lock, do no I/O and touch
 *	  no catalog.
 *
 * Copyright (c) 2026, rr_router developers
 *
 * IDENTIFICATION
 *	  src/staleness.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "common/int.h"
#include "fmgr.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "rr_router.h"
#include "shmem.h"
#include "staleness.h"
#include "statement.h"

PG_FUNCTION_INFO_V1(rr_staleness);
PG_FUNCTION_INFO_V1(rr_is_fresh);

/*
 * Set as_of to the time the record just replayed proves; called by the
 * startup process.  Every such record is a bound on its own, so the latest
 * one is used rather than the largest time ever seen: a primary clock that
 * ran fast and was then set back (or a new primary whose clock is behind)
 * must not keep the bound small.  Concurrent commits read the clock in a
 * slightly different order than they enter WAL, so as_of may step back by
 * that much: an over-estimate, never an under-estimate.
 */
void
rr_note_primary_time(TimestampTz t)
{
	if (rr_shared == NULL || t <= 0)
		return;
	pg_atomic_write_u64(&rr_shared->as_of, (uint64) t);
}

/* Staleness bound at 'now' (usecs) and its as_of; false while unknown. */
bool
rr_current_staleness(TimestampTz now, int64 *staleness, TimestampTz *as_of)
{
	TimestampTz t;

	if (!RecoveryInProgress())
	{
		*staleness = 0;
		*as_of = 0;
		return true;
	}

	t = (TimestampTz) pg_atomic_read_u64(&rr_shared->as_of);
	if (t == 0)
		return false;
	*as_of = t;
	*staleness = now > t ? now - t : 0;
	return true;
}

/*
 * An interval as microseconds (a month counting 30 days), saturating at
 * the int64 maximum; negative intervals are an error.
 */
static int64
bound_usecs(Interval *iv, const char *what)
{
	int64		days_us;
	int64		total;

	if (pg_mul_s64_overflow((int64) iv->month * DAYS_PER_MONTH + iv->day,
							USECS_PER_DAY, &days_us) ||
		pg_add_s64_overflow(days_us, iv->time, &total))
	{
		/* too large either way: its sign decides */
		double		approx = ((double) iv->month * DAYS_PER_MONTH + iv->day) *
			USECS_PER_DAY + (double) iv->time;

		total = approx < 0 ? PG_INT64_MIN : PG_INT64_MAX;
	}

	if (total < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("\"%s\" must not be negative", what),
				 errhint("Pass NULL to use \"rr_router.max_staleness\".")));
	return total;
}

/*
 * rr_staleness() -> interval
 *
 * Upper bound on how far this server's visible data is behind the primary:
 * 0 on a primary, NULL while unknown.
 */
Datum
rr_staleness(PG_FUNCTION_ARGS)
{
	int64		staleness;
	TimestampTz as_of;

	rr_check_loaded();

	if (!rr_current_staleness(GetCurrentTimestamp(), &staleness, &as_of))
		PG_RETURN_NULL();
	return rr_usecs_interval(staleness);
}

/*
 * rr_is_fresh(max_staleness interval DEFAULT NULL) -> boolean
 *
 * rr_staleness() <= max_staleness (NULL: rr_router.max_staleness); false
 * while staleness is unknown or the kill switch is off; true on a primary.
 */
Datum
rr_is_fresh(PG_FUNCTION_ARGS)
{
	int64		bound;
	int64		staleness;
	TimestampTz as_of;

	rr_check_loaded();

	if (PG_ARGISNULL(0))
		bound = (int64) rr_max_staleness * 1000;
	else
		bound = bound_usecs(PG_GETARG_INTERVAL_P(0), "max_staleness");

	if (rr_snapshot_predates_statement())
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TRANSACTION_STATE),
				 errmsg("rr_is_fresh() cannot vouch for the snapshot of this transaction"),
				 errdetail("A REPEATABLE READ or SERIALIZABLE transaction keeps the snapshot it has already taken, which may be older than the data the answer is about."),
				 errhint("Call rr_is_fresh() before BEGIN, then start the transaction.")));

	if (!RecoveryInProgress())
		PG_RETURN_BOOL(true);
	if (!rr_replica_reads_on())
		PG_RETURN_BOOL(false);
	if (!rr_current_staleness(GetCurrentTimestamp(), &staleness, &as_of))
		PG_RETURN_BOOL(false);
	PG_RETURN_BOOL(staleness <= bound);
}
