/*-------------------------------------------------------------------------
 *
 * history.h
 *	  The lag history ring and the statistics computed from it.
 *
 * Copyright (c) 2026, rr_router developers
 *
 * IDENTIFICATION
 *	  src/history.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef RR_HISTORY_H
#define RR_HISTORY_H

#include "access/xlogdefs.h"
#include "datatype/timestamp.h"

/* One sample of the ring. */
typedef struct RRHistoryEntry
{
	TimestampTz sampled_at;
	XLogRecPtr	replay_lsn;		/* Invalid on a primary */
	int64		lag_bytes;		/* -1 while unknown */
	int64		staleness;		/* microseconds; -1 while unknown */
} RRHistoryEntry;

/* Statistics of one window of rr_lag_stats. */
typedef struct RRLagStats
{
	int			minutes;		/* the window: 1, 5 or 15 */
	int64		samples;
	bool		has_staleness;	/* false when no sample knew its staleness */
	int64		staleness_p50;	/* microseconds */
	int64		staleness_p90;
	int64		staleness_p99;
	int64		staleness_max;
	bool		has_lag_bytes;	/* false when no sample knew its lag */
	int64		lag_bytes_max;
} RRLagStats;

#define RR_LAG_STATS_WINDOWS 3

extern Size rr_history_shmem_size(void);
extern void rr_history_shmem_init(void);

/* Worker: append a sample, overwriting the oldest once the ring is full. */
extern void rr_history_add(const RRHistoryEntry *entry);

/* Compute the RR_LAG_STATS_WINDOWS windows of rr_lag_stats at 'now'. */
extern void rr_lag_stats_compute(TimestampTz now,
								 RRLagStats stats[RR_LAG_STATS_WINDOWS]);

/*
 * Worker: the same windows from running statistics, at a cost independent
 * of rr_router.history_size; the quantiles are rounded up by at most 0.1 %.
 */
extern void rr_lag_stats_running(TimestampTz now,
								 RRLagStats stats[RR_LAG_STATS_WINDOWS]);

/* Worker: take a bounded number of new samples into the running statistics. */
extern void rr_lag_stats_follow(void);

#endif							/* RR_HISTORY_H */
