/*-------------------------------------------------------------------------
 *
 * commit_lsn.c
 *	  Causality tokens: rr_last_commit_lsn() and the ParameterStatus
 *	  "rr_router.last_commit_lsn".
 *
 * When a transaction that writes a commit record commits (one with a
 * transaction id, or one that ran COMMIT PREPARED), a transaction callback remembers the end of that record
 * (XactLastCommitEnd).  That
 * position is the token: a replica that has replayed up to it shows the
 * transaction.  With rr_router.report_commit_lsn on, the callback also sends
 * it to the client as a ParameterStatus message, which arrives with the
 * command's own results, so the client has its token without asking.
 *
 * NOTES
 *	  Backend-local state only; no shared memory or locks.
 *
 * Copyright (c) 2026, rr_router developers
 *
 * IDENTIFICATION
 *	  src/commit_lsn.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "fmgr.h"
#include "libpq/pqformat.h"
#include "nodes/parsenodes.h"
#include "tcop/tcopprot.h"
#include "tcop/utility.h"
#include "utils/pg_lsn.h"

#include "commit_lsn.h"
#include "compat.h"
#include "rr_router.h"

/* End of this session's last commit record; Invalid until there is one. */
static XLogRecPtr last_commit_lsn = InvalidXLogRecPtr;

/* Does the transaction now committing write a commit record? */
static bool committing_with_record = false;

/*
 * Has this transaction run COMMIT PREPARED?  It has no xid of its own, but
 * it writes the prepared transaction's commit record.
 */
static bool ran_commit_prepared = false;

static ProcessUtility_hook_type prev_process_utility = NULL;

PG_FUNCTION_INFO_V1(rr_last_commit_lsn);

/* Send the token to the client as a ParameterStatus message. */
static void
report_commit_lsn(XLogRecPtr lsn)
{
	StringInfoData msg;
	char		value[64];

	snprintf(value, sizeof(value), RR_LSN_FORMAT, LSN_FORMAT_ARGS(lsn));
	pq_beginmessage(&msg, 'S');
	pq_sendstring(&msg, RR_COMMIT_LSN_PARAMETER);
	pq_sendstring(&msg, value);
	pq_endmessage(&msg);
}

/*
 * Remember (and maybe report) the commit record a commit just wrote.
 *
 * Only a transaction with a transaction id writes a commit record.
 * XactLastCommitEnd alone is not enough to tell: it also advances for
 * transactions without one that wrote WAL (hint-bit page images, pruning),
 * and a read-only query must not move the token.
 */
static void
commit_callback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_PRE_COMMIT)
	{
		committing_with_record = ran_commit_prepared ||
			TransactionIdIsValid(GetTopTransactionIdIfAny());
		ran_commit_prepared = false;
		return;
	}
	if (event == XACT_EVENT_ABORT)
		ran_commit_prepared = committing_with_record = false;
	if (event != XACT_EVENT_COMMIT || !committing_with_record)
		return;
	committing_with_record = false;

	last_commit_lsn = XactLastCommitEnd;
	if (rr_report_commit_lsn && whereToSendOutput == DestRemote)
		report_commit_lsn(last_commit_lsn);
}

/* Note COMMIT PREPARED, then run the utility statement as usual. */
static void
commit_lsn_process_utility(PlannedStmt *pstmt, const char *queryString,
						   bool readOnlyTree, ProcessUtilityContext context,
						   ParamListInfo params, QueryEnvironment *queryEnv,
						   DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *parsetree = pstmt->utilityStmt;

	if (IsA(parsetree, TransactionStmt) &&
		((TransactionStmt *) parsetree)->kind == TRANS_STMT_COMMIT_PREPARED)
		ran_commit_prepared = true;

	if (prev_process_utility)
		prev_process_utility(pstmt, queryString, readOnlyTree, context,
							 params, queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
								params, queryEnv, dest, qc);
}

/* Register the transaction callback and utility hook; called from _PG_init. */
void
rr_install_commit_callback(void)
{
	RegisterXactCallback(commit_callback, NULL);
	prev_process_utility = ProcessUtility_hook;
	ProcessUtility_hook = commit_lsn_process_utility;
}

/*
 * rr_last_commit_lsn() -> pg_lsn
 *
 * End LSN of the commit record of this session's last transaction that
 * wrote one; NULL if none yet.
 */
Datum
rr_last_commit_lsn(PG_FUNCTION_ARGS)
{
	rr_check_loaded();

	if (last_commit_lsn == InvalidXLogRecPtr)
		PG_RETURN_NULL();
	PG_RETURN_LSN(last_commit_lsn);
}
