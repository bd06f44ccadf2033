/*-------------------------------------------------------------------------
 *
 * statement.c
 *	  Where a call to one of our functions sits: how deeply nested in
 *	  other statements it runs, and whether the transaction's snapshot is
 *	  older than the statement.
 *
 * rr_wait_for_lsn() may drop its backend's xmin while it sleeps only when
 * nothing the backend can still read depends on it: the call must be the
 * whole of a top-level statement.  The portal machinery alone cannot tell a
 * top-level "SELECT rr_wait_for_lsn(...)" from the same query run by FETCH
 * from a cursor or by a PL/pgSQL loop over an SPI cursor: in each case the
 * active portal's plan is exactly the call.  So, like pg_stat_statements,
 * we count how deeply executor runs and utility statements are nested.
 *
 * NOTES
 *	  Backend-local state only; no shared memory, no locks.  EXECUTE is not
 *	  counted as a level: it runs its prepared statement in a portal of its
 *	  own that it drops before returning, as a top-level statement would.
 *
 * Copyright (c) 2026, rr_router developers
 *
 * IDENTIFICATION
 *	  src/statement.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/parallel.h"
#include "access/xact.h"
#include "executor/executor.h"
#include "tcop/utility.h"
#include "utils/snapmgr.h"

#include "compat.h"
#include "statement.h"

/* Executor runs and utility statements under way in this backend. */
static int	nesting_level = 0;

static ExecutorRun_hook_type prev_executor_run = NULL;
static ExecutorFinish_hook_type prev_executor_finish = NULL;
static ProcessUtility_hook_type prev_process_utility = NULL;

/* ExecutorRun_hook: count the level while the executor runs. */
static void
statement_executor_run(QueryDesc *queryDesc, ScanDirection direction,
					   uint64 count RR_EXECUTOR_RUN_ONCE_PARAM)
{
	nesting_level++;
	PG_TRY();
	{
		if (prev_executor_run)
			prev_executor_run(queryDesc, direction, count RR_EXECUTOR_RUN_ONCE_ARG);
		else
			standard_ExecutorRun(queryDesc, direction, count RR_EXECUTOR_RUN_ONCE_ARG);
	}
	PG_FINALLY();
	{
		nesting_level--;
	}
	PG_END_TRY();
}

/* ExecutorFinish_hook: AFTER triggers run here, one level down. */
static void
statement_executor_finish(QueryDesc *queryDesc)
{
	nesting_level++;
	PG_TRY();
	{
		if (prev_executor_finish)
			prev_executor_finish(queryDesc);
		else
			standard_ExecutorFinish(queryDesc);
	}
	PG_FINALLY();
	{
		nesting_level--;
	}
	PG_END_TRY();
}

/* ProcessUtility_hook: every utility statement but EXECUTE is a level. */
static void
statement_process_utility(PlannedStmt *pstmt, const char *queryString,
						  bool readOnlyTree, ProcessUtilityContext context,
						  ParamListInfo params, QueryEnvironment *queryEnv,
						  DestReceiver *dest, QueryCompletion *qc)
{
	int			levels = IsA(pstmt->utilityStmt, ExecuteStmt) ? 0 : 1;

	nesting_level += levels;
	PG_TRY();
	{
		if (prev_process_utility)
			prev_process_utility(pstmt, queryString, readOnlyTree, context,
								 params, queryEnv, dest, qc);
		else
			standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
									params, queryEnv, dest, qc);
	}
	PG_FINALLY();
	{
		nesting_level -= levels;
	}
	PG_END_TRY();
}

/* Install the nesting counters; called once, from _PG_init. */
void
rr_install_statement_hooks(void)
{
	prev_executor_run = ExecutorRun_hook;
	ExecutorRun_hook = statement_executor_run;
	prev_executor_finish = ExecutorFinish_hook;
	ExecutorFinish_hook = statement_executor_finish;
	prev_process_utility = ProcessUtility_hook;
	ProcessUtility_hook = statement_process_utility;
}

/*
 * Is the caller's query the outermost one running: not reached through
 * FETCH, a function, a trigger or another utility statement?
 */
bool
rr_called_at_top_level(void)
{
	return nesting_level == 1;
}

/*
 * Does this transaction read with a snapshot taken before the current
 * statement began (REPEATABLE READ or SERIALIZABLE, inside a transaction
 * block that has already taken it)?  Then nothing replayed since can become
 * visible to it.  A parallel worker runs in a transaction block of its own
 * whatever its leader does; it learns the leader's transaction and
 * statement start times, which are equal exactly when the leader runs a
 * single statement in a transaction of its own.
 */
bool
rr_snapshot_predates_statement(void)
{
	if (!IsolationUsesXactSnapshot() || !FirstSnapshotSet)
		return false;
	if (IsParallelWorker())
		return GetCurrentTransactionStartTimestamp() !=
			GetCurrentStatementStartTimestamp();
	return IsTransactionBlock();
}
