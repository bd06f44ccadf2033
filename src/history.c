/*-------------------------------------------------------------------------
 *
 * history.c
 *	  The lag history: a ring of rr_router.history_size samples in shared
 *	  memory, the rr_lag_history and rr_lag_stats views over it, and
 *	  rr_reset_stats().
 *
 * NOTES
 *	  The ring has its own LWLock (the second of tranche "rr_router").  The
 *	  worker, its only writer, takes it exclusively for the few stores of
 *	  one sample; readers take it shared just long enough to copy the ring
 *	  and compute nothing under it.  rr_reset_stats() takes it exclusively
 *	  to empty the ring; the wait counters are atomics (shmem.c).
 *
 * Copyright (c) 2026, rr_router developers
 *
 * IDENTIFICATION
 *	  src/history.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "funcapi.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/pg_lsn.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "compat.h"
#include "history.h"
#include "rr_router.h"
#include "shmem.h"

#define RR_LAG_HISTORY_COLS	4
#define RR_LAG_STATS_COLS	7

typedef struct RRHistory
{
	LWLock	   *lock;
	int			size;			/* capacity: rr_router.history_size */
	uint64		written;		/* samples ever written since reset */
	RRHistoryEntry entries[FLEXIBLE_ARRAY_MEMBER];
} RRHistory;

static RRHistory *history = NULL;

/* The windows of rr_lag_stats, in minutes. */
static const int stat_windows[RR_LAG_STATS_WINDOWS] = {1, 5, 15};

PG_FUNCTION_INFO_V1(rr_lag_history_data);
PG_FUNCTION_INFO_V1(rr_lag_stats_data);
PG_FUNCTION_INFO_V1(rr_reset_stats);

/* Bytes of shared memory the ring needs. */
Size
rr_history_shmem_size(void)
{
	return MAXALIGN(add_size(offsetof(RRHistory, entries),
							 mul_size(rr_history_size, sizeof(RRHistoryEntry))));
}

/* Create or attach to the ring; caller holds AddinShmemInitLock. */
void
rr_history_shmem_init(void)
{
	bool		found;

	history = ShmemInitStruct("rr_router history", rr_history_shmem_size(),
							  &found);
	if (!found)
	{
		history->lock = &(GetNamedLWLockTranche("rr_router"))[1].lock;
		history->size = rr_history_size;
		history->written = 0;
	}
}

/* Append a sample, overwriting the oldest once the ring is full. */
void
rr_history_add(const RRHistoryEntry *entry)
{
	LWLockAcquire(history->lock, LW_EXCLUSIVE);
	history->entries[history->written % history->size] = *entry;
	history->written++;
	LWLockRelease(history->lock);
}

/* Copy the ring, newest first, into palloc'd memory; returns the count. */
static int
copy_history(RRHistoryEntry **out)
{
	RRHistoryEntry *copy = palloc(sizeof(RRHistoryEntry) * history->size);
	int			n;

	LWLockAcquire(history->lock, LW_SHARED);
	n = (int) Min(history->written, (uint64) history->size);
	for (int i = 0; i < n; i++)
		copy[i] = history->entries[(history->written - 1 - i) % history->size];
	LWLockRelease(history->lock);

	*out = copy;
	return n;
}

/* rr_lag_history_data() -> the ring, newest first. */
Datum
rr_lag_history_data(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	RRHistoryEntry *entries;
	int			n;

	rr_check_loaded();
	InitMaterializedSRF(fcinfo, 0);

	n = copy_history(&entries);
	for (int i = 0; i < n; i++)
	{
		Datum		values[RR_LAG_HISTORY_COLS];
		bool		nulls[RR_LAG_HISTORY_COLS] = {0};

		values[0] = TimestampTzGetDatum(entries[i].sampled_at);
		values[1] = LSNGetDatum(entries[i].replay_lsn);
		nulls[1] = entries[i].replay_lsn == InvalidXLogRecPtr;
		values[2] = Int64GetDatum(entries[i].lag_bytes);
		values[3] = rr_usecs_interval(entries[i].staleness);
		nulls[3] = entries[i].staleness < 0;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/* qsort comparator for int64. */
static int
cmp_int64(const void *a, const void *b)
{
	int64		x = *(const int64 *) a;
	int64		y = *(const int64 *) b;

	return (x > y) - (x < y);
}

/* Nearest-rank percentile 'p' (0-100) of 'n' sorted values. */
static int64
percentile(const int64 *sorted, int n, int p)
{
	int			rank = (int) (((int64) p * n + 99) / 100);	/* ceil(p/100*n) */

	return sorted[Max(rank, 1) - 1];
}

/* Compute the windows of rr_lag_stats at 'now' from a copy of the ring. */
void
rr_lag_stats_compute(TimestampTz now, RRLagStats stats[RR_LAG_STATS_WINDOWS])
{
	RRHistoryEntry *entries;
	int64	   *staleness;
	int			n;

	n = copy_history(&entries);
	staleness = palloc(sizeof(int64) * Max(n, 1));

	for (int w = 0; w < RR_LAG_STATS_WINDOWS; w++)
	{
		RRLagStats *st = &stats[w];
		TimestampTz since = now - (int64) stat_windows[w] * USECS_PER_MINUTE;
		int			samples = 0;
		int			known = 0;

		memset(st, 0, sizeof(*st));
		st->minutes = stat_windows[w];

		/* entries are newest first: stop at the first one too old */
		for (; samples < n && entries[samples].sampled_at >= since; samples++)
		{
			st->lag_bytes_max = Max(st->lag_bytes_max, entries[samples].lag_bytes);
			if (entries[samples].staleness >= 0)
				staleness[known++] = entries[samples].staleness;
		}
		st->samples = samples;
		if (known == 0)
			continue;

		qsort(staleness, known, sizeof(int64), cmp_int64);
		st->has_staleness = true;
		st->staleness_p50 = percentile(staleness, known, 50);
		st->staleness_p90 = percentile(staleness, known, 90);
		st->staleness_p99 = percentile(staleness, known, 99);
		st->staleness_max = staleness[known - 1];
	}
	pfree(staleness);
	pfree(entries);
}

/*
 * rr_lag_stats_data() -> one row per window (1, 5, 15 min): samples,
 * staleness p50/p90/p99/max, and the largest lag in bytes.
 */
Datum
rr_lag_stats_data(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	RRLagStats	stats[RR_LAG_STATS_WINDOWS];

	rr_check_loaded();
	InitMaterializedSRF(fcinfo, 0);

	rr_lag_stats_compute(GetCurrentTimestamp(), stats);
	for (int w = 0; w < RR_LAG_STATS_WINDOWS; w++)
	{
		Datum		values[RR_LAG_STATS_COLS];
		bool		nulls[RR_LAG_STATS_COLS] = {0};
		Interval   *period = palloc0(sizeof(Interval));

		period->time = (int64) stats[w].minutes * USECS_PER_MINUTE;
		values[0] = IntervalPGetDatum(period);
		values[1] = Int64GetDatum(stats[w].samples);
		values[2] = rr_usecs_interval(stats[w].staleness_p50);
		values[3] = rr_usecs_interval(stats[w].staleness_p90);
		values[4] = rr_usecs_interval(stats[w].staleness_p99);
		values[5] = rr_usecs_interval(stats[w].staleness_max);
		nulls[2] = nulls[3] = nulls[4] = nulls[5] = !stats[w].has_staleness;
		values[6] = Int64GetDatum(stats[w].lag_bytes_max);
		nulls[6] = stats[w].samples == 0;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/* rr_reset_stats() -> void: empty the ring and zero the wait counters. */
Datum
rr_reset_stats(PG_FUNCTION_ARGS)
{
	rr_check_loaded();

	LWLockAcquire(history->lock, LW_EXCLUSIVE);
	history->written = 0;
	LWLockRelease(history->lock);

	rr_reset_counters();

	PG_RETURN_VOID();
}
