/*-------------------------------------------------------------------------
 *
 * shmem.h
 *	  rr_router's shared memory: the worker's latest sample of replication
 *	  progress, the wait counters and the queue of waiting backends.
 *
 * Copyright (c) 2026, rr_router developers
 *
 * IDENTIFICATION
 *	  src/shmem.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef RR_SHMEM_H
#define RR_SHMEM_H

#include "postgres.h"

#include "access/xlogdefs.h"
#include "datatype/timestamp.h"
#include "lib/pairingheap.h"
#include "port/atomics.h"
#include "storage/lwlock.h"
#include "storage/latch.h"
#include "storage/spin.h"

/* What the worker saw at its latest sample. */
typedef struct RRSample
{
	TimestampTz sampled_at;		/* 0 until the first sample */
	bool		in_recovery;	/* replica (true) or primary (false) */
	TimeLineID	timeline;		/* replay timeline, or insert timeline */
	XLogRecPtr	receive_lsn;	/* replica: flushed by the walreceiver */
	XLogRecPtr	replay_lsn;		/* replica: end of the last replayed record */
	XLogRecPtr	primary_lsn;	/* newest primary WAL position known here */
	bool		has_primary_lsn;	/* false: no primary has told us its position */
	int			receiver_state; /* WalRcvState, or -1 on a primary */
	bool		replay_paused;	/* replica: pause requested or in effect */
	bool		has_clock_offset;
	int64		clock_offset;	/* replica: our clock minus the primary's, us */
} RRSample;

/* Wait statistics; times in microseconds. */
typedef struct RRWaitCounters
{
	int64		waits;			/* every call that got past argument checks */
	int64		waits_immediate;	/* answered without sleeping */
	int64		waits_woken;	/* slept, then the target was replayed */
	int64		waits_timed_out;	/* false after sleeping, or timeout 0 */
	int64		waits_cancelled;	/* left by an error or interrupt */
	int64		wait_time_total;
	int64		wait_time_max;
} RRWaitCounters;

/* One backend's entry in the waiter queue, indexed by its PGPROC number. */
typedef struct RRWaiter
{
	pairingheap_node node;		/* link in RRShared.waiters */
	bool		in_queue;		/* is node in the queue? */
	XLogRecPtr	target;			/* wake once replay reaches this */
	int			pid;
	TimestampTz since;
	TimestampTz deadline;
} RRWaiter;

typedef struct RRShared
{
	/* The worker's sample and the wait counters, under 'mutex'. */
	slock_t		mutex;
	RRSample	sample;
	RRWaitCounters counters;
	int			worker_pid;		/* 0 while no worker runs */
	Latch	   *worker_latch;	/* NULL while no worker runs */

	/* Kill switch as the worker last read it from the configuration. */
	pg_atomic_uint32 replica_reads;

	/*
	 * End of the last record the startup process replayed, published by the
	 * redo hook before it looks at min_waited_lsn.  Ahead of, never behind,
	 * what GetXLogReplayRecPtr() reports.
	 */
	pg_atomic_uint64 replayed_lsn;

	/*
	 * PGPROC number of the startup process, announced by the redo hook the
	 * first time it runs (PG_UINT32_MAX until then), and whether the worker
	 * last saw that process held up by a recovery conflict: replay cannot
	 * progress until the conflicting sessions end, so waiters answer false.
	 */
	pg_atomic_uint32 startup_procno;
	pg_atomic_uint32 replay_blocked;

	/*
	 * Primary time the data here is current as of: the largest time proven
	 * by a replayed heartbeat, commit or abort (heartbeat.c); 0 while
	 * unknown.  Written by the startup process only.
	 */
	pg_atomic_uint64 as_of;

	/*
	 * The smallest target in 'waiters', or PG_UINT64_MAX when it is empty:
	 * lets the startup process skip the lock while nobody waits for what it
	 * just replayed.  Written only under 'lock'.
	 */
	pg_atomic_uint64 min_waited_lsn;

	/* The waiter queue, ordered by target, and its slots, under 'lock'. */
	LWLock	   *lock;
	pairingheap waiters;
	int			nslots;
	RRWaiter	slots[FLEXIBLE_ARRAY_MEMBER];
} RRShared;

extern RRShared *rr_shared;

extern void rr_shmem_request(void);
extern void rr_shmem_startup(void);

/*
 * WAL bytes a sample's replica is behind the primary (0 on a primary, -1
 * while the primary's position is unknown).
 */
extern int64 rr_sample_lag_bytes(const RRSample *s);

/* Copy the latest sample, or the counters, out of shared memory. */
extern void rr_read_sample(RRSample *sample, int *worker_pid);
extern void rr_read_counters(RRWaitCounters *counters);

#endif							/* RR_SHMEM_H */
