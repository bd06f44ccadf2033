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
 * from a cursor, by a PL/pgSQL loop over an SPI cursor or by a function
 * the planner folds into a constant: in each case the active portal's plan
 * is exactly the call.  So, like pg_stat_statements, we count how deeply
 * planning, executor runs and utility statements are nested.
 *
 * Under REPEATABLE READ a transaction reads with the snapshot its first
 * statement took.  A transaction block says so itself, but a pipeline of
 * the extended protocol runs several statements in one transaction that is
 * not a block, until Sync.  So we also count the top-level statements that
 * took or used a snapshot in the current transaction.
 *
 * NOTES
 *	  Backend-local state only; no shared memory, no locks.  EXECUTE is not
 *	  counted as a level, nor as a statement of its own: it runs its
 *	  prepared statement in a portal of its own that it drops before
 *	  returning, as a top-level statement would, and that statement counts.
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
#include "optimizer/planner.h"
#include "tcop/pquery.h"
#include "tcop/utility.h"
#include "utils/snapmgr.h"

#include "commit_lsn.h"
#include "compat.h"
#include "statement.h"

/* Planning, executor runs and utility statements under way here. */
static int	nesting_level = 0;

/* Top-level statements that used a snapshot in the current transaction. */
static int	statements_in_xact = 0;

static planner_hook_type prev_planner = NULL;
static ExecutorStart_hook_type prev_executor_start = NULL;
static ExecutorRun_hook_type prev_executor_run = NULL;
static ExecutorFinish_hook_type prev_executor_finish = NULL;
static ProcessUtility_hook_type prev_process_utility = NULL;

/* planner_hook: functions the planner evaluates run one level down. */
static PlannedStmt *
statement_planner(Query *parse, const char *query_string, int cursorOptions,
				  ParamListInfo boundParams RR_PLANNER_HOOK_PARAM)
{
	PlannedStmt *result;

	nesting_level++;
	PG_TRY();
	{
		if (prev_planner)
			result = prev_planner(parse, query_string, cursorOptions,
								  boundParams RR_PLANNER_HOOK_ARG);
		else
			result = standard_planner(parse, query_string, cursorOptions,
									  boundParams RR_PLANNER_HOOK_ARG);
	}
	PG_FINALLY();
	{
		nesting_level--;
	}
	PG_END_TRY();
	return result;
}

/* ExecutorStart_hook: a query starting at the top is a statement. */
static void
statement_executor_start(QueryDesc *queryDesc, int eflags)
{
	if (nesting_level == 0)
		statements_in_xact++;
	if (prev_executor_start)
		prev_executor_start(queryDesc, eflags);
	else
		standard_ExecutorStart(queryDesc, eflags);
}

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

/*
 * ProcessUtility_hook, rr_router's only one: every utility statement but
 * EXECUTE is a level; commit_lsn.c notes COMMIT PREPARED.
 */
static void
statement_process_utility(PlannedStmt *pstmt, const char *queryString,
						  bool readOnlyTree, ProcessUtilityContext context,
						  ParamListInfo params, QueryEnvironment *queryEnv,
						  DestReceiver *dest, QueryCompletion *qc)
{
	int			levels = IsA(pstmt->utilityStmt, ExecuteStmt) ? 0 : 1;

	rr_commit_lsn_note_utility(pstmt->utilityStmt);
	if (nesting_level == 0 && levels == 1 && PlannedStmtRequiresSnapshot(pstmt))
		statements_in_xact++;
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

/* Transaction end: the next statement starts a new transaction. */
static void
statement_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			statements_in_xact = 0;
			break;
		default:
			break;
	}
}

/* Install the nesting counters; called once, from _PG_init. */
void
rr_install_statement_hooks(void)
{
	prev_planner = planner_hook;
	planner_hook = statement_planner;
	prev_executor_start = ExecutorStart_hook;
	ExecutorStart_hook = statement_executor_start;
	prev_executor_run = ExecutorRun_hook;
	ExecutorRun_hook = statement_executor_run;
	prev_executor_finish = ExecutorFinish_hook;
	ExecutorFinish_hook = statement_executor_finish;
	prev_process_utility = ProcessUtility_hook;
	ProcessUtility_hook = statement_process_utility;
	RegisterXactCallback(statement_xact_callback, NULL);
}

/*
 * Is the caller's query the outermost one running: not reached through
 * FETCH, a function, a trigger, planning or another utility statement?
 */
bool
rr_called_at_top_level(void)
{
	return nesting_level == 1;
}

/*
 * Does this transaction read with a snapshot taken before the current
 * statement began (REPEATABLE READ or SERIALIZABLE, in a transaction block
 * or in a pipeline of the extended protocol whose earlier statement has
 * taken it)?  Then nothing replayed since can become visible to it.
 * Parallel workers answer false: they run in a transaction block of their
 * own whatever their leader does, and the functions that ask are parallel
 * restricted, so their leader has asked already.
 */
bool
rr_snapshot_predates_statement(void)
{
	if (!IsolationUsesXactSnapshot() || !FirstSnapshotSet || IsParallelWorker())
		return false;
	return IsTransactionBlock() || statements_in_xact > 1;
}
