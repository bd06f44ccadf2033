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

#include "postgres.h"

#include "access/xlogdefs.h"
#include "lib/pairingheap.h"

extern void rr_wait_queue_init(pairingheap *heap);

/*
 * Called by the startup process after replaying a record that ends at
 * 'end': publishes the position and wakes the waiters it satisfies.
 */
extern void rr_note_replayed(XLogRecPtr end);

/*
 * Wake waiters whose target is at or before 'replayed'; with 'all', wake
 * every waiter so it re-examines its state (kill switch, promotion).
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
