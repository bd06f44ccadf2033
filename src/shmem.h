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

/* How a call to a wait function ended, for the counters. */
typedef enum RRWaitOutcome
{
	RR_WAIT_IMMEDIATE,			/* answered without sleeping */
	RR_WAIT_WOKEN,				/* slept, then the target was replayed */
	RR_WAIT_TIMED_OUT,			/* false after sleeping, or timeout 0 */
	RR_WAIT_CANCELLED			/* left by an error or interrupt */
} RRWaitOutcome;

#define RR_WAIT_OUTCOMES		(RR_WAIT_CANCELLED + 1)

/* Wait statistics as the views show them; times in microseconds. */
typedef struct RRWaitCounters
{
	int64		waits;			/* every call that got past argument checks */
	int64		waits_immediate;
	int64		waits_woken;
	int64		waits_timed_out;
	int64		waits_cancelled;
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
	/* The worker's sample and pid, under 'mutex'. */
	slock_t		mutex;
	RRSample	sample;
	int			worker_pid;		/* 0 while no worker runs */

	/* The worker's PGPROC number, PG_UINT32_MAX while no worker runs. */
	pg_atomic_uint32 worker_procno;

	/*
	 * Wait counters: calls by outcome (their sum is the number of calls),
	 * total and longest time spent in calls, in microseconds.  Atomics, so
	 * that no call takes a lock to count itself.
	 */
	pg_atomic_uint64 wait_outcomes[RR_WAIT_OUTCOMES];
	pg_atomic_uint64 wait_time_total;
	pg_atomic_uint64 wait_time_max;

	/* Kill switch as the worker last read it from the configuration. */
	pg_atomic_uint32 replica_reads;

	/*
	 * End of the last replayed record that reached a waiter's target,
	 * published by the redo hook before it wakes that waiter, because the
	 * core advances its own replay position (GetXLogReplayRecPtr()) only
	 * after the redo routine returns.  Otherwise behind the core's
	 * position; waiters trust the larger of the two.
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
	 * Primary time the data here is current as of: the time proven by the
	 * latest replayed heartbeat, commit or abort that carries one
	 * (heartbeat.c), kept even if an earlier record proved a later time;
	 * 0 while unknown.  Written by the startup process only.
	 */
	pg_atomic_uint64 as_of;

	/*
	 * The smallest target in 'waiters', or PG_UINT64_MAX when it is empty:
	 * the startup process compares every replayed record's end with it.
	 * Written only under 'lock'.
	 */
	pg_atomic_uint64 min_waited_lsn;

	/*
	 * The PGPROC number of the waiter with that smallest target, or
	 * PG_UINT32_MAX; written with min_waited_lsn, under 'lock'.  The startup
	 * process sets its latch, and only its, when replay reaches the target.
	 */
	pg_atomic_uint32 head_procno;

	/*
	 * Set by the startup process when replay reaches min_waited_lsn (1), and
	 * cleared by every rr_wake_waiters() pass before it looks at the queue
	 * (0); while it is set, the startup process signals nobody.  wait.c's
	 * NOTES say why no wake-up is lost.
	 */
	pg_atomic_uint32 wake_pending;

	/*
	 * 1 while a waiter spins before its first sleep (wait.c), else 0: one
	 * spinner at a time.
	 */
	pg_atomic_uint32 spinning;

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

/* Count one call of a wait function that took 'elapsed' microseconds. */
extern void rr_count_wait(RRWaitOutcome outcome, int64 elapsed);
extern void rr_reset_counters(void);

#endif							/* RR_SHMEM_H */
