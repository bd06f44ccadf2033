/*-------------------------------------------------------------------------
 *
 * compat.h
 *	  Every PostgreSQL version difference rr_router cares about, in one place.
 *
 * The rest of the code is written against PostgreSQL 15 and uses only the
 * names defined here where a later (or earlier) release spells things
 * differently.
 *
 * Copyright (c) 2026, rr_router developers
 *
 * IDENTIFICATION
 *	  src/compat.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef RR_COMPAT_H
#define RR_COMPAT_H

#include "access/twophase.h"
#include "pgstat.h"
#include "utils/wait_event.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "utils/memutils.h"

#if PG_VERSION_NUM < 150000
#error "rr_router requires PostgreSQL 15 or later"
#endif

/*
 * A backend's index into the PGPROC array, used to give every process its
 * own waiter slot.  PostgreSQL 17 renamed pgprocno to a global.
 */
#if PG_VERSION_NUM >= 170000
#define RR_MY_PROC_NUMBER		MyProcNumber
#define RR_PROC_BY_NUMBER(n)	GetPGProcByNumber(n)
#else
#define RR_MY_PROC_NUMBER		(MyProc->pgprocno)
#define RR_PROC_BY_NUMBER(n)	(&ProcGlobal->allProcs[(n)])
#endif

/*
 * printf format of an LSN as pg_lsn prints it, for LSN_FORMAT_ARGS().
 * PostgreSQL 19 pads the low half to eight digits ("0/0300ABA8").
 */
#if PG_VERSION_NUM >= 190000
#define RR_LSN_FORMAT	"%X/%08X"
#else
#define RR_LSN_FORMAT	"%X/%X"
#endif

/* Number of PGPROC entries, hence of possible waiter slots. */
#define RR_TOTAL_PROCS() \
	add_size(add_size(MaxBackends, NUM_AUXILIARY_PROCS), max_prepared_xacts)

/* The materialized-SRF helper was renamed during the 15 cycle. */
#ifndef MAT_SRF_USE_EXPECTED_DESC
#define InitMaterializedSRF(fcinfo, flags)	SetSingleFuncCall(fcinfo, flags)
#endif

/*
 * The wait event of the startup process while it waits for sessions to drop
 * their pins on a buffer it must clean up (a buffer-pin recovery conflict).
 * PostgreSQL 17 renamed its class PG_WAIT_BUFFER_PIN to PG_WAIT_BUFFERPIN,
 * with one event, WAIT_EVENT_BUFFER_PIN.  PostgreSQL 19 renamed that event
 * WAIT_EVENT_BUFFER_CLEANUP, in a class PG_WAIT_BUFFER that also holds the
 * buffer content-lock waits, which are no conflict: so compare the event,
 * not the class.
 */
#if PG_VERSION_NUM >= 190000
#define RR_WAIT_EVENT_BUFFER_CLEANUP	WAIT_EVENT_BUFFER_CLEANUP
#elif PG_VERSION_NUM >= 170000
#define RR_WAIT_EVENT_BUFFER_CLEANUP	WAIT_EVENT_BUFFER_PIN
#else
#define RR_WAIT_EVENT_BUFFER_CLEANUP	PG_WAIT_BUFFER_PIN
#endif

/*
 * Is this wait event of the startup process one where replay waits for
 * sessions on the replica (a recovery conflict)?
 */
#define RR_IS_RECOVERY_CONFLICT_WAIT(event) \
	((event) == WAIT_EVENT_RECOVERY_CONFLICT_SNAPSHOT || \
	 (event) == WAIT_EVENT_RECOVERY_CONFLICT_TABLESPACE || \
	 ((event) & 0xFF000000) == PG_WAIT_LOCK || \
	 (event) == RR_WAIT_EVENT_BUFFER_CLEANUP)

/* Room for an LSN as RR_LSN_FORMAT prints it, and the terminator. */
#define RR_LSN_BUFSIZE	18

/*
 * ExecutorRun_hook's signature: PostgreSQL 18 dropped the execute_once
 * argument.  Use as "uint64 count RR_EXECUTOR_RUN_ONCE_PARAM" in a hook's
 * parameter list and "count RR_EXECUTOR_RUN_ONCE_ARG" when passing it on.
 */
#if PG_VERSION_NUM >= 180000
#define RR_EXECUTOR_RUN_ONCE_PARAM
#define RR_EXECUTOR_RUN_ONCE_ARG
#else
#define RR_EXECUTOR_RUN_ONCE_PARAM	, bool execute_once
#define RR_EXECUTOR_RUN_ONCE_ARG	, execute_once
#endif

/*
 * planner_hook's signature: PostgreSQL 19 added the ExplainState of an
 * EXPLAIN being planned.  Used like RR_EXECUTOR_RUN_ONCE_PARAM/_ARG.
 */
#if PG_VERSION_NUM >= 190000
#define RR_PLANNER_HOOK_PARAM	, ExplainState *es
#define RR_PLANNER_HOOK_ARG		, es
#else
#define RR_PLANNER_HOOK_PARAM
#define RR_PLANNER_HOOK_ARG
#endif

/*
 * Make this background worker a backend without a database, so that it
 * shows in pg_stat_activity: InitPostgres() took two booleans before
 * PostgreSQL 17 and a flags word since.  Called directly rather than
 * through BackgroundWorkerInitializeConnection(), which refuses a worker
 * that starts with the postmaster; the worker calls it only once the
 * server accepts connections (worker.c), when a backend's start-up is safe.
 * It then holds a sinval slot it never reads: after one catch-up signal
 * the queue resets it, which costs nothing since it uses no caches.
 */
#if PG_VERSION_NUM >= 170000
#define rr_init_backend_without_database() \
	InitPostgres(NULL, InvalidOid, NULL, InvalidOid, 0, NULL)
#else
#define rr_init_backend_without_database() \
	InitPostgres(NULL, InvalidOid, NULL, InvalidOid, false, false, NULL)
#endif

/*
 * A WaitEventSet that lives until it is freed or the process exits.
 * PostgreSQL 17 ties a set to a resource owner (none: it is ours to free)
 * where 15 and 16 take a memory context.
 */
#if PG_VERSION_NUM >= 170000
#define rr_create_wait_event_set(nevents) \
	CreateWaitEventSet(NULL, (nevents))
#else
#define rr_create_wait_event_set(nevents) \
	CreateWaitEventSet(TopMemoryContext, (nevents))
#endif

/*
 * The wait events our sleeps show in pg_stat_activity.  PostgreSQL 17 lets
 * an extension name its own (WaitEventExtensionNew(), wait_event_type
 * "Extension"); before that every extension wait shows as "Extension".  A
 * name is registered in shared memory by a process's first sleep; its
 * number is kept for the next.
 */
static inline uint32
rr_named_wait_event(const char *name, uint32 *id)
{
#if PG_VERSION_NUM >= 170000
	if (*id == 0)
		*id = WaitEventExtensionNew(name);
	return *id;
#else
	return PG_WAIT_EXTENSION;
#endif
}

/* A session sleeping in rr_wait_for_lsn(): "RRWaitForLSN". */
static inline uint32
rr_wait_event_wait_for_lsn(void)
{
	static uint32 id = 0;

	return rr_named_wait_event("RRWaitForLSN", &id);
}

/* The worker between samples (serving HTTP if enabled): "RRWorkerMain". */
static inline uint32
rr_wait_event_worker_main(void)
{
	static uint32 id = 0;

	return rr_named_wait_event("RRWorkerMain", &id);
}

#endif							/* RR_COMPAT_H */
