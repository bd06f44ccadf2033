/*-------------------------------------------------------------------------
 *
 * wait.h
 *	  The waiter queue behind rr_wait_for_lsn().
 *
 * Copyright (c) 2026, rr_router developers
 *
 * IDENTIFICATION
 *	  src/wait.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef RR_WAIT_H
#define RR_WAIT_H

#include "access/xlogdefs.h"
#include "access/xlogreader.h"
#include "fmgr.h"
#include "lib/pairingheap.h"

#include "shmem.h"

/*
 * An extra condition on a wait target, checked every time the waiter looks
 * at the world: returns false to keep waiting even if replay has passed the
 * target, and may raise an error to end the wait.  Through its own pointer
 * to the spec it may move spec->target (which is why rr_wait_for_target()
 * takes the spec as non-const); the waiter queues for the new target the
 * next time it enters the queue.
 */
typedef bool (*RRWaitCheck) (void *arg);

/* What a wait function waits for. */
typedef struct RRWaitSpec
{
	XLogRecPtr	target;			/* replay must pass this LSN */
	int			timeout_ms;		/* 0: check without waiting */
	RRWaitCheck check;			/* NULL, or an extra condition */
	void	   *check_arg;
} RRWaitSpec;

/*
 * The body of every wait function: true once the target is replayed, false
 * on timeout or with the kill switch off; 'funcname' names the SQL function
 * in messages, e.g. "rr_wait_for_lsn".  spec->check may move spec->target
 * during the wait.
 */
extern bool rr_wait_for_target(FunctionCallInfo fcinfo, const char *funcname,
							   RRWaitSpec *spec);

/* The timeout argument at 'argno': NULL means rr_router.wait_timeout. */
extern int	rr_wait_timeout_arg(FunctionCallInfo fcinfo, int argno);

extern void rr_wait_queue_init(pairingheap *heap);

extern void rr_wake_replayed(XLogReaderState *record);

#ifdef RR_MEASURE_REDO
/* hand-overs (latches set) and records whose hand-over waited */
extern uint64 rr_measure_handovers;
extern uint64 rr_measure_deferred;
#endif

/*
 * Called by the startup process after replaying 'record': has the waiters
 * it satisfies woken, at once or, while replay catches up, a little later.
 * Once per replayed record, so the common path is one atomic read (wait.c's
 * NOTES say why no wake-up is lost and how late one can be).
 */
static inline void
rr_note_replayed(XLogReaderState *record)
{
	if (unlikely(record->EndRecPtr >=
				 pg_atomic_read_u64(&rr_shared->min_waited_lsn)))
		rr_wake_replayed(record);
}

/*
 * Wake waiters whose target is at or before 'replayed' (or the redo hook's
 * position), serving any wake-up the startup process handed over; with
 * 'all', wake every waiter first so it re-examines its state (kill switch,
 * promotion).
 */
extern void rr_wake_waiters(XLogRecPtr replayed, bool all);

/* Startup process: publish its PGPROC number for the conflict check. */
extern void rr_announce_startup_process(void);

/*
 * Worker: is replay held up by a recovery conflict right now?  Publishes
 * the answer and wakes every waiter when it becomes true; returns whether
 * the worker should keep looking often (a conflict is seen or suspected).
 */
extern bool rr_check_replay_blocked(bool in_recovery);

/* How far replay has certainly progressed, as waiters judge it. */
extern XLogRecPtr rr_replayed_upto(void);

/* A token that points just past a WAL page header, moved back onto it. */
extern XLogRecPtr rr_normalize_target(XLogRecPtr target);

#endif							/* RR_WAIT_H */
