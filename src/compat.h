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

#include "postgres.h"

#include "access/twophase.h"
#include "pgstat.h"
#include "utils/wait_event.h"
#include "funcapi.h"
#include "storage/proc.h"

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

/* Number of PGPROC entries, hence of possible waiter slots. */
#define RR_TOTAL_PROCS() \
	add_size(add_size(MaxBackends, NUM_AUXILIARY_PROCS), max_prepared_xacts)

/* The materialized-SRF helper was renamed during the 15 cycle. */
#ifndef MAT_SRF_USE_EXPECTED_DESC
#define InitMaterializedSRF(fcinfo, flags)	SetSingleFuncCall(fcinfo, flags)
#endif

/*
 * Is this wait event of the startup process one where replay waits for
 * sessions on the replica (a recovery conflict)?
 */
#define RR_IS_RECOVERY_CONFLICT_WAIT(event) \
	((event) == WAIT_EVENT_RECOVERY_CONFLICT_SNAPSHOT || \
	 (event) == WAIT_EVENT_RECOVERY_CONFLICT_TABLESPACE || \
	 ((event) & 0xFF000000) == PG_WAIT_LOCK || \
	 ((event) & 0xFF000000) == PG_WAIT_BUFFER_PIN)

/*
 * How pg_lsn prints an LSN (printf format for LSN_FORMAT_ARGS): PostgreSQL
 * 19 pads the low half to eight digits.
 */
#if PG_VERSION_NUM >= 190000
#define RR_LSN_FORMAT	"%X/%08X"
#else
#define RR_LSN_FORMAT	"%X/%X"
#endif

/* Room for an LSN so formatted, and the terminator. */
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

/* Wait event for our sleeps; PostgreSQL 17 lets extensions name their own. */
#define RR_WAIT_EVENT	PG_WAIT_EXTENSION

#endif							/* RR_COMPAT_H */
