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
 *	  The wrapper runs once per replayed record, in the one process that
 *	  replays, so it is kept to a handful of instructions: one wrapper per
 *	  resource manager (no look-up of the manager, no test of it at run
 *	  time), no "first record?" test (the first record re-points the
 *	  startup process's copy of the table), then the call of the original
 *	  routine and one atomic load compared with the record's end (see
 *	  wait.c's NOTES for why no barrier is needed); when a waiter's target
 *	  has been reached, one atomic exchange and one SetLatch(), never the
 *	  waiter lock -- and while replay catches up, that hand-over may wait
 *	  up to about RR_DEFER_HANDOVER_US, so that one serves several waiters
 *	  (wait.c).
 *	  Commit and abort records also store the primary time they prove
 *	  (staleness.c), inline: one store of a field only the startup process
 *	  writes; heartbeats, rare, go through heartbeat.c.  By the time the
 *	  original redo routine returns, the record's effects are visible to
 *	  new snapshots (a commit record has updated the commit log and the
 *	  known-assigned xids), although the core's own replay position is
 *	  advanced only after we return; the position we publish when a waiter
 *	  is to be woken covers that gap.
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
 * the wrappers below and in the original routines, and log both when the startup
 * process exits.  The ticks are the TSC on x86, else nanoseconds.  An
 * empty interval timed after every record gives the clock's own share of
 * each counted interval, in the same conditions; records interrupted or
 * preempted inside a counted interval are left out (the clock counts wall
 * time, not CPU time).
 */
#include <time.h>
#include "storage/ipc.h"

static uint64 m_records,
			m_skipped,
			m_hook1,
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
	elog(LOG, "rr_router redo measure: records=" UINT64_FORMAT " skipped=" UINT64_FORMAT
		 " noted=" UINT64_FORMAT
		 " hook_ticks=" UINT64_FORMAT " orig_ticks=" UINT64_FORMAT
		 " empty_ticks=" UINT64_FORMAT " read_pair_ticks=%.2f ticks_per_ns=%.4f"
		 " handovers=" UINT64_FORMAT " deferred=" UINT64_FORMAT,
		 m_records, m_skipped, m_noted, m_ours, m_orig, m_empty, pair / 1e6,
		 (double) (t1 - t0) / ((b.tv_sec - a.tv_sec) * 1e9 + b.tv_nsec - a.tv_nsec),
		 rr_measure_handovers, rr_measure_deferred);
}

/*
 * A record whose hook intervals or empty interval took longer than this
 * many ticks was interrupted or preempted (the clock counts wall time):
 * it is left out of the sums and counted in m_skipped.
 */
#define MEASURE_MAX_TICKS 20000

#define MEASURE_START() \
	do { if (unlikely(m_records++ == 0)) on_proc_exit(m_report, 0); m_t = m_now(); } while (0)
#define MEASURE_PAUSE() \
	do { uint64 n_ = m_now(); m_hook1 = n_ - m_t; m_t = n_; } while (0)
#define MEASURE_RESUME() \
	do { uint64 n_ = m_now(); m_orig += n_ - m_t; m_t = n_; } while (0)
#define MEASURE_STOP() \
	do { uint64 n_ = m_now(), h_ = m_hook1 + n_ - m_t, e_ = m_now() - n_; \
		 if (h_ < MEASURE_MAX_TICKS && e_ < MEASURE_MAX_TICKS) \
			 { m_ours += h_; m_empty += e_; } else m_skipped++; } while (0)
#define MEASURE_NOTED()	(m_noted++)
#else
#define MEASURE_START()			((void) 0)
#define MEASURE_PAUSE()			((void) 0)
#define MEASURE_RESUME()		((void) 0)
#define MEASURE_STOP()			((void) 0)
#define MEASURE_NOTED()			((void) 0)
#endif

/*
 * The original redo routines of the built-in resource managers, indexed by
 * resource manager; room for RR_MAX_RMGRS so that every wrapper below has
 * an entry, whatever the version's number of built-in managers.
 */
#define RR_MAX_RMGRS 32
StaticAssertDecl(RM_MAX_BUILTIN_ID < RR_MAX_RMGRS,
				 "one redo wrapper per built-in resource manager");
static void (*original_redo[RR_MAX_RMGRS]) (XLogReaderState *record);

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
 * After 'record' of resource manager 'rmid' (a constant in every wrapper,
 * so the tests on it cost nothing) has been replayed: report the primary
 * time it proves the data current as of (staleness.c) and how far replay
 * got (wait.c), in that order, so that a waiter woken for this record
 * finds the staleness bound already advanced.
 */
static inline void
after_redo(XLogReaderState *record, RmgrId rmid)
{
	if (rmid == RM_XACT_ID)
	{
		uint8		op = XLogRecGetInfo(record) & XLOG_XACT_OPMASK;

		if (op == XLOG_XACT_COMMIT || op == XLOG_XACT_ABORT ||
			op == XLOG_XACT_COMMIT_PREPARED || op == XLOG_XACT_ABORT_PREPARED)
		{
			MEASURE_NOTED();
			pg_atomic_write_u64(&rr_shared->as_of,
								(uint64) xact_record_time(record));
			pg_write_barrier();	/* a woken waiter sees the new bound */
		}
	}
	else if (rmid == RM_LOGICALMSG_ID)
	{
		MEASURE_NOTED();
		rr_note_primary_time(rr_record_primary_time(record));
		pg_write_barrier();
	}
	rr_note_replayed(record);
}

/*
 * One wrapper per resource manager: replay 'record' with the original
 * routine, then after_redo().  Knowing its manager, a wrapper neither
 * looks it up nor tests it at run time.
 */
#define RR_REDO_WRAPPER(n) \
static void \
rr_redo_##n(XLogReaderState *record) \
{ \
	MEASURE_START(); \
	MEASURE_PAUSE(); \
	original_redo[n] (record); \
	MEASURE_RESUME(); \
	after_redo(record, n); \
	MEASURE_STOP(); \
}

RR_REDO_WRAPPER(0) RR_REDO_WRAPPER(1) RR_REDO_WRAPPER(2) RR_REDO_WRAPPER(3)
RR_REDO_WRAPPER(4) RR_REDO_WRAPPER(5) RR_REDO_WRAPPER(6) RR_REDO_WRAPPER(7)
RR_REDO_WRAPPER(8) RR_REDO_WRAPPER(9) RR_REDO_WRAPPER(10) RR_REDO_WRAPPER(11)
RR_REDO_WRAPPER(12) RR_REDO_WRAPPER(13) RR_REDO_WRAPPER(14) RR_REDO_WRAPPER(15)
RR_REDO_WRAPPER(16) RR_REDO_WRAPPER(17) RR_REDO_WRAPPER(18) RR_REDO_WRAPPER(19)
RR_REDO_WRAPPER(20) RR_REDO_WRAPPER(21) RR_REDO_WRAPPER(22) RR_REDO_WRAPPER(23)
RR_REDO_WRAPPER(24) RR_REDO_WRAPPER(25) RR_REDO_WRAPPER(26) RR_REDO_WRAPPER(27)
RR_REDO_WRAPPER(28) RR_REDO_WRAPPER(29) RR_REDO_WRAPPER(30) RR_REDO_WRAPPER(31)

static void (*const wrappers[RR_MAX_RMGRS]) (XLogReaderState *record) = {
	rr_redo_0, rr_redo_1, rr_redo_2, rr_redo_3, rr_redo_4, rr_redo_5,
	rr_redo_6, rr_redo_7, rr_redo_8, rr_redo_9, rr_redo_10, rr_redo_11,
	rr_redo_12, rr_redo_13, rr_redo_14, rr_redo_15, rr_redo_16, rr_redo_17,
	rr_redo_18, rr_redo_19, rr_redo_20, rr_redo_21, rr_redo_22, rr_redo_23,
	rr_redo_24, rr_redo_25, rr_redo_26, rr_redo_27, rr_redo_28, rr_redo_29,
	rr_redo_30, rr_redo_31
};

/*
 * The routine every wrapped entry points to at fork: the first record the
 * startup process replays announces it (wait.c), then points the entries
 * of its own copy of the table at the wrappers, so that no later record
 * pays for a "first time?" test, and replays the record.
 */
static void
rr_redo_first(XLogReaderState *record)
{
	rr_announce_startup_process();
	for (int rmid = 0; rmid <= RM_MAX_BUILTIN_ID; rmid++)
	{
		if (RmgrTable[rmid].rm_redo == rr_redo_first)
			RmgrTable[rmid].rm_redo = wrappers[rmid];
	}
	wrappers[XLogRecGetRmid(record)] (record);
}

/* Wrap every built-in redo routine; called once, from _PG_init. */
void
rr_install_redo_hook(void)
{
	for (int rmid = 0; rmid <= RM_MAX_BUILTIN_ID; rmid++)
	{
		if (RmgrTable[rmid].rm_name == NULL ||
			RmgrTable[rmid].rm_redo == NULL ||
			RmgrTable[rmid].rm_redo == rr_redo_first)
			continue;
		original_redo[rmid] = RmgrTable[rmid].rm_redo;
		RmgrTable[rmid].rm_redo = rr_redo_first;
	}
}
