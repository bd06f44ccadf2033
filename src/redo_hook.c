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
 *	  The wrapper runs once per replayed record, so its common path is the
 *	  call through our table entry and one atomic load compared with the
 *	  record's end (see wait.c's NOTES for why no barrier is needed); the
 *	  waiter lock is taken only when a waiter's target has been reached.
 *	  Commit and abort records also store the primary time they prove
 *	  (staleness.c), inline: one store, to a line only the startup
 *	  process writes; heartbeats, rare, go through heartbeat.c.  By the time the original redo routine returns,
 *	  the record's effects are visible to new snapshots (a commit record has
 *	  updated the commit log and the known-assigned xids), although the
 *	  core's own replay position is advanced only after we return; the
 *	  position we publish when waking a waiter covers that gap.
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
#include "access/xact.h"
#include "access/xlog_internal.h"
#include "access/xlogreader.h"
#include "port/atomics.h"

#include "heartbeat.h"
#include "redo_hook.h"
#include "shmem.h"
#include "staleness.h"
#include "wait.h"

#ifdef RR_MEASURE_REDO
/*
 * "make RR_MEASURE_REDO=1" (for test/bench/replay.py, never a normal
 * build): count the records and the clock ticks spent in our part of
 * rr_redo() and in the original routines, and log both when the startup
 * process exits.  The ticks are the TSC on x86, else nanoseconds.  An
 * empty interval timed after every record gives the clock's own share of
 * each counted interval, in the same conditions.
 */
#include <time.h>
#include "storage/ipc.h"

static uint64 m_records,
			m_noted,
			m_ours,
			m_orig,
			m_empty,
			m_t;

static inline uint64
m_now(void)
{
#if defined(__x86_64__) || defined(__i386__)
	return __builtin_ia32_rdtsc();
#else
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64) ts.tv_sec * 1000000000 + ts.tv_nsec;
#endif
}

/* Log the counts, with the cost of one clock read and the tick rate. */
static void
m_report(int code, Datum arg)
{
	uint64		pair = 0,
				t0,
				t1;
	struct timespec a,
				b;

	clock_gettime(CLOCK_MONOTONIC, &a);
	t0 = m_now();
	for (int i = 0; i < 1000000; i++)
	{
		t1 = m_now();
		pair += m_now() - t1;
	}
	do
		clock_gettime(CLOCK_MONOTONIC, &b);
	while ((b.tv_sec - a.tv_sec) * 1000000000L + b.tv_nsec - a.tv_nsec < 50000000L);
	t1 = m_now();
	elog(LOG, "rr_router redo measure: records=" UINT64_FORMAT " noted=" UINT64_FORMAT
		 " hook_ticks=" UINT64_FORMAT " orig_ticks=" UINT64_FORMAT
		 " empty_ticks=" UINT64_FORMAT " read_pair_ticks=%.2f ticks_per_ns=%.4f",
		 m_records, m_noted, m_ours, m_orig, m_empty, pair / 1e6,
		 (double) (t1 - t0) / ((b.tv_sec - a.tv_sec) * 1e9 + b.tv_nsec - a.tv_nsec));
}

#define MEASURE_START() \
	do { if (unlikely(m_records++ == 0)) on_proc_exit(m_report, 0); m_t = m_now(); } while (0)
#define MEASURE_SWITCH(acc) \
	do { uint64 n_ = m_now(); acc += n_ - m_t; m_t = n_; } while (0)
#define MEASURE_STOP() \
	do { uint64 n_ = m_now(); m_ours += n_ - m_t; m_empty += m_now() - n_; } while (0)
#define MEASURE_NOTED()	(m_noted++)
#else
#define MEASURE_START()			((void) 0)
#define MEASURE_SWITCH(acc)		((void) 0)
#define MEASURE_STOP()			((void) 0)
#define MEASURE_NOTED()			((void) 0)
#endif

/* Has this (startup) process told shared memory who it is? */
static bool announced = false;

/* The original redo routines of the built-in resource managers. */
static void (*original_redo[RM_MAX_BUILTIN_ID + 1]) (XLogReaderState *record);

/*
 * The primary time a commit or abort record carries (rr_record_primary_time()
 * in heartbeat.c says the same, out of line): xl_xact_commit and
 * xl_xact_abort, and their prepared forms, begin with it.
 */
static inline TimestampTz
xact_record_time(XLogReaderState *record)
{
	TimestampTz t;

	StaticAssertStmt(offsetof(xl_xact_commit, xact_time) == 0 &&
					 offsetof(xl_xact_abort, xact_time) == 0,
					 "commit and abort records start with their time");
	memcpy(&t, XLogRecGetData(record), sizeof(t));
	return t;
}

/*
 * Replay 'record' with its own routine, then report the primary time it
 * proves the data current as of (staleness.c) and how far replay got
 * (wait.c), in that order: a waiter woken for this record must find the
 * staleness bound already advanced.
 */
static void
rr_redo(XLogReaderState *record)
{
	RmgrId		rmid;

	MEASURE_START();
	rmid = XLogRecGetRmid(record);
	if (unlikely(!announced))
	{
		rr_announce_startup_process();
		announced = true;
	}
	MEASURE_SWITCH(m_ours);
	original_redo[rmid] (record);
	MEASURE_SWITCH(m_orig);
	if (rmid == RM_XACT_ID)
	{
		uint8		op = XLogRecGetInfo(record) & XLOG_XACT_OPMASK;

		/* inline: a commit is one record in four or five under writes */
		if (op == XLOG_XACT_COMMIT || op == XLOG_XACT_ABORT ||
			op == XLOG_XACT_COMMIT_PREPARED || op == XLOG_XACT_ABORT_PREPARED)
		{
			MEASURE_NOTED();
			pg_atomic_write_u64(&rr_shared->as_of,
								(uint64) xact_record_time(record));
			pg_write_barrier();	/* a woken waiter sees the new bound */
		}
	}
	else if (unlikely(rmid == RM_LOGICALMSG_ID))
	{
		MEASURE_NOTED();
		rr_note_primary_time(rr_record_primary_time(record));
		pg_write_barrier();
	}
	rr_note_replayed(record->EndRecPtr);
	MEASURE_STOP();
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
