/*-------------------------------------------------------------------------
 *
 * redo_hook.c
 *	  Learn, in the startup process, the moment each WAL record is replayed.
 *
 * PostgreSQL 15 has no hook in its redo loop, and the walreceiver and
 * walsender are only told about WAL that arrives, not WAL that is applied.
 * But the resource-manager table through which the startup process applies
 * every record became writable in 15 (for custom resource managers).  At
 * preload time, in the postmaster, we wrap the redo routine of every
 * built-in resource manager: the wrapper calls the original and then tells
 * wait.c that replay has reached the end of that record.  The startup
 * process inherits the patched table when it is forked.
 *
 * Nothing is written to WAL and no record format changes: a replica with
 * rr_router replays WAL from a primary without it, and the reverse.
 *
 * NOTES
 *	  The wrapper runs once per replayed record, so its common path is one
 *	  atomic store, a memory barrier and one atomic load (see wait.c); the
 *	  waiter lock is taken only when a waiter's target has been reached.
 *	  By the time the original redo routine returns, the record's effects
 *	  are visible to new snapshots (a commit record has updated the commit
 *	  log and the known-assigned xids), although the core's own replay
 *	  position is advanced only after we return; wait.c therefore trusts
 *	  the larger of the two.
 *
 * Copyright (c) 2026, rr_router developers
 *
 * IDENTIFICATION
 *	  src/redo_hook.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/rmgr.h"
#include "access/xlog_internal.h"
#include "access/xlogreader.h"
#include "port/atomics.h"

#include "heartbeat.h"
#include "redo_hook.h"
#include "staleness.h"
#include "wait.h"

/* Has this (startup) process told shared memory who it is? */
static bool announced = false;

/* The original redo routines of the built-in resource managers. */
static void (*original_redo[RM_MAX_BUILTIN_ID + 1]) (XLogReaderState *record);

/*
 * Replay 'record' with its own routine, then report the primary time it
 * proves the data current as of (staleness.c) and how far replay got
 * (wait.c), in that order: a waiter woken for this record must find the
 * staleness bound already advanced.
 */
static void
rr_redo(XLogReaderState *record)
{
	RmgrId		rmid = XLogRecGetRmid(record);

	if (unlikely(!announced))
	{
		rr_announce_startup_process();
		announced = true;
	}
	original_redo[rmid] (record);
	if (rmid == RM_XACT_ID || rmid == RM_LOGICALMSG_ID)
	{
		rr_note_primary_time(rr_record_primary_time(record));
		pg_write_barrier();		/* a woken waiter sees the new bound */
	}
	else if (rmid == RM_XLOG_ID)
	{
		/*
		 * A timeline switch happens at an XLOG record, and the core set
		 * replayEndTLI before replaying it: whoever sees the position we
		 * publish must see the new timeline too (timeline.c).
		 */
		pg_write_barrier();
	}
	rr_note_replayed(record->EndRecPtr);
}

/* Wrap every built-in redo routine; called once, from _PG_init. */
void
rr_install_redo_hook(void)
{
	for (int rmid = 0; rmid <= RM_MAX_BUILTIN_ID; rmid++)
	{
		if (RmgrTable[rmid].rm_name == NULL ||
			RmgrTable[rmid].rm_redo == NULL ||
			RmgrTable[rmid].rm_redo == rr_redo)
			continue;
		original_redo[rmid] = RmgrTable[rmid].rm_redo;
		RmgrTable[rmid].rm_redo = rr_redo;
	}
}
