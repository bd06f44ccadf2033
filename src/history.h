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

#include "postgres.h"

#include "access/xlogdefs.h"
#include "datatype/timestamp.h"

/* One sample of the ring. */
typedef struct RRHistoryEntry
{
	TimestampTz sampled_at;
	XLogRecPtr	replay_lsn;		/* Invalid on a primary */
	int64		lag_bytes;
	int64		staleness;		/* microseconds; -1 while unknown */
} RRHistoryEntry;

extern Size rr_history_shmem_size(void);
extern void rr_history_shmem_init(void);

/* Worker: append a sample, overwriting the oldest once the ring is full. */
extern void rr_history_add(const RRHistoryEntry *entry);

#endif							/* RR_HISTORY_H */
