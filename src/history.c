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
 *	  For /metrics the worker also keeps running statistics of the windows
 *	  in its own memory (see "Running statistics" below), so that a scrape
 *	  does not copy and sort the ring.  It updates them under the ring's
 *	  lock in shared mode, a bounded number of samples at a time.
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
#include "port/pg_bitutils.h"
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
	uint64		resets;			/* times rr_reset_stats() emptied the ring */
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
		history->resets = 0;
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
		nulls[2] = entries[i].lag_bytes < 0;
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
		st->lag_bytes_max = -1;

		/* entries are newest first: stop at the first one too old */
		for (; samples < n && entries[samples].sampled_at >= since; samples++)
		{
			st->lag_bytes_max = Max(st->lag_bytes_max, entries[samples].lag_bytes);
			if (entries[samples].staleness >= 0)
				staleness[known++] = entries[samples].staleness;
		}
		st->samples = samples;
		st->has_lag_bytes = st->lag_bytes_max >= 0;
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
 * Running statistics
 *
 * The worker keeps the windows of rr_lag_stats up to date as samples enter
 * and leave them, so that /metrics costs the same whatever the size of the
 * ring; rr_lag_stats itself (a backend's query) still copies and sorts.
 *
 * Samples are numbered from 0 since the last reset; the ring holds numbers
 * [written - size, written).  Window w counts the samples [tail[w], head).
 * Each window's staleness values are counted in a log-linear histogram:
 * values below RR_HIST_SUB microseconds each in a bucket of their own,
 * larger ones in buckets 1/RR_HIST_HALF of their value wide.  A quantile is
 * reported as the top of the bucket that holds the nearest-rank value,
 * capped at the window's maximum: never below the exact value, at most
 * 0.1 % above it.  The maxima are exact: for every block of
 * RR_BLOCK_SAMPLES consecutive samples the largest staleness and lag are
 * kept, and a window's maximum is that of its whole blocks and of the
 * samples at its two ends, read from the ring.
 */
#define RR_HIST_SUB_BITS	11
#define RR_HIST_SUB			(1 << RR_HIST_SUB_BITS)
#define RR_HIST_HALF		(RR_HIST_SUB / 2)
#define RR_HIST_MAX_BITS	42	/* the last bucket takes 2^41 us (25 days) on */
#define RR_HIST_BUCKETS \
	(RR_HIST_SUB + (RR_HIST_MAX_BITS - RR_HIST_SUB_BITS) * RR_HIST_HALF)
#define RR_NO_BUCKET		PG_UINT16_MAX	/* staleness unknown */
#define RR_BLOCK_SAMPLES	1024
#define RR_FOLLOW_BATCH		16384	/* samples taken in per follow call */

typedef struct RRRunning
{
	uint64		resets;			/* history->resets this was built for */
	uint64		head;			/* samples before this have been taken in */
	uint64		tail[RR_LAG_STATS_WINDOWS];
	int64		known[RR_LAG_STATS_WINDOWS];	/* with staleness */
	int32	   *counts[RR_LAG_STATS_WINDOWS];	/* RR_HIST_BUCKETS each */
	uint16	   *bucket;			/* per ring slot: its sample's bucket */
	int			nblocks;
	uint64	   *block_no;		/* per block slot: which block it holds */
	int64	   *block_staleness_max;
	int64	   *block_lag_max;
} RRRunning;

static RRRunning *running = NULL;

/* Return the histogram bucket of a staleness value in microseconds (>= 0). */
static int
hist_bucket(int64 v)
{
	int			shift;

	if (v < RR_HIST_SUB)
		return (int) v;
	if (v >= ((int64) 1 << RR_HIST_MAX_BITS))
		v = ((int64) 1 << RR_HIST_MAX_BITS) - 1;
	shift = pg_leftmost_one_pos64((uint64) v) - RR_HIST_SUB_BITS + 1;
	return RR_HIST_SUB + (shift - 1) * RR_HIST_HALF +
		(int) ((v >> shift) - RR_HIST_HALF);
}

/* Return the largest value that falls in bucket 'b' (any, for the last). */
static int64
hist_bucket_top(int b)
{
	int			shift;
	int64		m;

	if (b < RR_HIST_SUB)
		return b;
	if (b == RR_HIST_BUCKETS - 1)
		return PG_INT64_MAX;
	shift = (b - RR_HIST_SUB) / RR_HIST_HALF + 1;
	m = (b - RR_HIST_SUB) % RR_HIST_HALF + RR_HIST_HALF;
	return ((m + 1) << shift) - 1;
}

/* Forget every sample: the ring was emptied 'resets' times so far. */
static void
running_clear(uint64 resets)
{
	running->resets = resets;
	running->head = 0;
	for (int w = 0; w < RR_LAG_STATS_WINDOWS; w++)
	{
		running->tail[w] = 0;
		running->known[w] = 0;
		memset(running->counts[w], 0, sizeof(int32) * RR_HIST_BUCKETS);
	}
	for (int b = 0; b < running->nblocks; b++)
		running->block_no[b] = PG_UINT64_MAX;
}

/* Allocate the running statistics in the worker's memory, empty. */
static void
running_init(void)
{
	MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

	running = palloc0(sizeof(RRRunning));
	for (int w = 0; w < RR_LAG_STATS_WINDOWS; w++)
		running->counts[w] = palloc(sizeof(int32) * RR_HIST_BUCKETS);
	running->bucket = palloc(sizeof(uint16) * history->size);
	running->nblocks = history->size / RR_BLOCK_SAMPLES + 2;
	running->block_no = palloc(sizeof(uint64) * running->nblocks);
	running->block_staleness_max = palloc(sizeof(int64) * running->nblocks);
	running->block_lag_max = palloc(sizeof(int64) * running->nblocks);
	MemoryContextSwitchTo(old);
	running_clear(history->resets);
}

/*
 * Drop samples from the old end of window w: those numbered before 'upto'
 * (gone from the ring), then those sampled before 'since'.
 */
static void
window_drop(int w, uint64 upto, TimestampTz since)
{
	while (running->tail[w] < running->head)
	{
		uint64		i = running->tail[w];
		int			b = running->bucket[i % history->size];

		if (i >= upto && history->entries[i % history->size].sampled_at >= since)
			break;
		if (b != RR_NO_BUCKET)
		{
			running->counts[w][b]--;
			running->known[w]--;
		}
		running->tail[w]++;
	}
}

/*
 * Bring the running statistics up to the ring as of 'now', taking in at most
 * 'budget' new samples; caller holds the ring's lock.
 */
static void
running_sync(TimestampTz now, uint64 budget)
{
	TimestampTz since[RR_LAG_STATS_WINDOWS];
	uint64		oldest;
	uint64		end;

	if (running == NULL)
		running_init();
	if (history->resets != running->resets || history->written < running->head)
		running_clear(history->resets);
	oldest = history->written > (uint64) history->size ?
		history->written - history->size : 0;

	for (int w = 0; w < RR_LAG_STATS_WINDOWS; w++)
	{
		since[w] = now - (int64) stat_windows[w] * USECS_PER_MINUTE;
		window_drop(w, oldest, since[w]);
	}
	if (running->head < oldest)
	{
		/* fell behind the ring: what was not taken in is lost */
		running->head = oldest;
		for (int w = 0; w < RR_LAG_STATS_WINDOWS; w++)
			running->tail[w] = oldest;
	}

	end = history->written - running->head > budget ?
		running->head + budget : history->written;
	for (uint64 i = running->head; i < end; i++)
	{
		const RRHistoryEntry *e = &history->entries[i % history->size];
		int			b = e->staleness >= 0 ? hist_bucket(e->staleness) : RR_NO_BUCKET;
		int			blk = (int) ((i / RR_BLOCK_SAMPLES) % running->nblocks);

		/* the slot's previous sample, i - size, has left every window */
		running->bucket[i % history->size] = (uint16) b;

		if (running->block_no[blk] != i / RR_BLOCK_SAMPLES)
		{
			running->block_no[blk] = i / RR_BLOCK_SAMPLES;
			running->block_staleness_max[blk] = -1;
			running->block_lag_max[blk] = -1;
		}
		running->block_staleness_max[blk] =
			Max(running->block_staleness_max[blk], e->staleness);
		running->block_lag_max[blk] = Max(running->block_lag_max[blk], e->lag_bytes);

		for (int w = 0; w < RR_LAG_STATS_WINDOWS; w++)
		{
			if (running->tail[w] == i && e->sampled_at < since[w])
				running->tail[w]++; /* too old already */
			else if (b != RR_NO_BUCKET)
			{
				running->counts[w][b]++;
				running->known[w]++;
			}
		}
	}
	running->head = end;
}

/*
 * Set *staleness_max and *lag_max to the largest of the samples [from, to),
 * all in the ring and taken in; -1 where none is known.
 */
static void
running_max(uint64 from, uint64 to, int64 *staleness_max, int64 *lag_max)
{
	uint64		i = from;

	*staleness_max = -1;
	*lag_max = -1;
	while (i < to)
	{
		uint64		block = i / RR_BLOCK_SAMPLES;
		int			blk = (int) (block % running->nblocks);

		if (i == block * RR_BLOCK_SAMPLES && i + RR_BLOCK_SAMPLES <= to)
		{
			Assert(running->block_no[blk] == block);
			*staleness_max = Max(*staleness_max, running->block_staleness_max[blk]);
			*lag_max = Max(*lag_max, running->block_lag_max[blk]);
			i += RR_BLOCK_SAMPLES;
		}
		else
		{
			const RRHistoryEntry *e = &history->entries[i % history->size];

			*staleness_max = Max(*staleness_max, e->staleness);
			*lag_max = Max(*lag_max, e->lag_bytes);
			i++;
		}
	}
}

/* Worker: take a bounded number of new samples into the running statistics. */
void
rr_lag_stats_follow(void)
{
	LWLockAcquire(history->lock, LW_SHARED);
	running_sync(GetCurrentTimestamp(), RR_FOLLOW_BATCH);
	LWLockRelease(history->lock);
}

/*
 * Worker: compute the windows of rr_lag_stats at 'now' from the running
 * statistics; as rr_lag_stats_compute() but for the quantiles, which are
 * rounded up to the top of their histogram bucket (at most 0.1 %).
 */
void
rr_lag_stats_running(TimestampTz now, RRLagStats stats[RR_LAG_STATS_WINDOWS])
{
	LWLockAcquire(history->lock, LW_SHARED);
	running_sync(now, PG_UINT64_MAX);

	for (int w = 0; w < RR_LAG_STATS_WINDOWS; w++)
	{
		RRLagStats *st = &stats[w];
		static const int pct[3] = {50, 90, 99};
		int64	   *out[3];
		int64		cum = 0;
		int			k = 0;

		memset(st, 0, sizeof(*st));
		st->minutes = stat_windows[w];
		st->samples = (int64) (running->head - running->tail[w]);
		running_max(running->tail[w], running->head,
					&st->staleness_max, &st->lag_bytes_max);
		st->has_lag_bytes = st->lag_bytes_max >= 0;
		st->has_staleness = running->known[w] > 0;
		if (!st->has_staleness)
		{
			st->staleness_max = 0;
			continue;
		}

		/* nearest rank, as percentile(): ceil(p/100 * known) */
		out[0] = &st->staleness_p50;
		out[1] = &st->staleness_p90;
		out[2] = &st->staleness_p99;
		for (int b = 0; b < RR_HIST_BUCKETS && k < 3; b++)
		{
			cum += running->counts[w][b];
			while (k < 3 &&
				   cum >= Max((pct[k] * running->known[w] + 99) / 100, 1))
			{
				*out[k] = Min(hist_bucket_top(b), st->staleness_max);
				k++;
			}
		}
	}
	LWLockRelease(history->lock);
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
		nulls[6] = !stats[w].has_lag_bytes;
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
	history->resets++;
	LWLockRelease(history->lock);

	rr_reset_counters();

	PG_RETURN_VOID();
}
