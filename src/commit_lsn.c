/*-------------------------------------------------------------------------
 *
 * commit_lsn.c
 *	  Causality tokens: rr_last_commit_lsn(), rr_last_commit_token() and
 *	  their reports to the client, the settings "rr_router.last_commit_lsn"
 *	  and "rr_router.last_commit_token".
 *
 * When a transaction that writes a commit record commits (one with a
 * transaction id, or one that ran COMMIT PREPARED), a transaction callback
 * remembers the end of that record (XactLastCommitEnd) and the timeline it
 * was inserted on.  That position is the token: a replica that has replayed
 * up to it shows the transaction.
 *
 * The client learns its token the way it learns any GUC_REPORT setting:
 * the two settings above are marked GUC_REPORT, and with
 * rr_router.report_commit_lsn on the commit callback sets them to the new
 * token.  Core then sends one ParameterStatus per changed setting just
 * before the ReadyForQuery that ends the round trip
 * (ReportChangedGUCOptions), so a query or pipeline that commits ten times
 * reports once, with the newest token, and a pooler that replays reported
 * settings with SET keeps working.  With reporting off the settings are
 * left alone, so nothing is reported after commits; core still reports
 * their (empty) values once at connection start, as it does for every
 * GUC_REPORT setting.  The settings are for display only: a SET changes
 * what is shown and reported, never what rr_last_commit_lsn() returns.
 *
 * NOTES
 *	  Backend-local state only; no shared memory or locks.
 *
 *	  Where the settings are changed matters.  CommitTransaction() calls the
 *	  XACT_EVENT_COMMIT callbacks after the commit record is written and
 *	  before AtEOXact_GUC(true, 1), so a SET made from the callback at
 *	  GUC nest level 1 is kept (committed) by AtEOXact_GUC like any SET made
 *	  during the transaction, and survives an error in a later statement of
 *	  the same query.  But nothing after the commit record may raise an
 *	  ERROR (the transaction could no longer abort: PANIC).  So the
 *	  XACT_EVENT_PRE_COMMIT callback, which may still fail safely, re-sets
 *	  both settings to their current values: that pushes their GUC stack
 *	  entries for this transaction, and the SET at commit then allocates no
 *	  stack entry; its only allocation is the copy of the new value, whose
 *	  failure set_config_option() reports at WARNING and survives.  The
 *	  source is PGC_S_SESSION, the source of an interactive SET, so that a
 *	  SET by the client (or a pooler) never outranks later tokens and RESET
 *	  or DISCARD ALL return the settings to their defaults.
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
#include "nodes/parsenodes.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/pg_lsn.h"

#include "commit_lsn.h"
#include "compat.h"
#include "rr_router.h"

/*
 * End of this session's last commit record and the timeline it was
 * inserted on; Invalid / 0 until there is one.
 */
static XLogRecPtr last_commit_lsn = InvalidXLogRecPtr;
static TimeLineID last_commit_tli = 0;

/* Does the transaction now committing write a commit record? */
static bool committing_with_record = false;

/* ... and will it report the new token to the client? */
static bool committing_with_report = false;

/*
 * Has this transaction run COMMIT PREPARED?  It has no xid of its own, but
 * it writes the prepared transaction's commit record.
 */
static bool ran_commit_prepared = false;


PG_FUNCTION_INFO_V1(rr_last_commit_lsn);
PG_FUNCTION_INFO_V1(rr_last_commit_token);

/* Format a token as text: "TLI:LSN", the LSN as pg_lsn prints it. */
void
rr_format_token(char *buf, size_t size, TimeLineID tli, XLogRecPtr lsn)
{
	snprintf(buf, size, "%u:" RR_LSN_FORMAT, tli, LSN_FORMAT_ARGS(lsn));
}

/*
 * Set one of the display settings as an interactive SET would; 'elevel' is
 * how loudly to fail.
 */
static void
set_display_setting(const char *name, const char *value, int elevel)
{
	(void) set_config_option(name, value, PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SET, true, elevel, false);
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
	char		value[RR_TOKEN_BUFSIZE];

	if (event == XACT_EVENT_PRE_COMMIT)
	{
		committing_with_record = ran_commit_prepared ||
			TransactionIdIsValid(GetTopTransactionIdIfAny());
		ran_commit_prepared = false;
		committing_with_report = committing_with_record &&
			rr_report_commit_lsn && whereToSendOutput == DestRemote;

		/*
		 * A transaction still in parallel mode cannot set GUCs: it does not
		 * report, rather than allocate stack entries after its commit
		 * record (where an out-of-memory ERROR would be a PANIC).
		 */
		if (committing_with_report && IsInParallelMode())
			committing_with_report = false;

		/* push the GUC stack entries now, while failing is still safe */
		if (committing_with_report)
		{
			set_display_setting(RR_COMMIT_LSN_PARAMETER,
								rr_last_commit_lsn_setting, ERROR);
			set_display_setting(RR_COMMIT_TOKEN_PARAMETER,
								rr_last_commit_token_setting, ERROR);
		}
		return;
	}
	if (event == XACT_EVENT_ABORT)
		ran_commit_prepared = committing_with_record =
			committing_with_report = false;
	if (event != XACT_EVENT_COMMIT || !committing_with_record)
		return;
	committing_with_record = false;

	/* only a primary writes commit records; its timeline is fixed by now */
	last_commit_lsn = XactLastCommitEnd;
	last_commit_tli = GetWALInsertionTimeLine();

	/*
	 * After the commit record nothing may raise an ERROR.  The stack entries
	 * were pushed at PRE_COMMIT; what is left to allocate is the copy of
	 * each new value (guc_strdup), and if that fails set_config_option()
	 * reports it at WARNING (elevel below) and leaves the setting as it
	 * was: that round trip then reports no new token (or only the LSN), the
	 * client keeps its previous one, and rr_last_commit_lsn() and
	 * rr_last_commit_token(), set above, are right all the same.
	 */
	if (committing_with_report)
	{
		committing_with_report = false;
		snprintf(value, sizeof(value), RR_LSN_FORMAT,
				 LSN_FORMAT_ARGS(last_commit_lsn));
		set_display_setting(RR_COMMIT_LSN_PARAMETER, value, WARNING);
		rr_format_token(value, sizeof(value), last_commit_tli,
						last_commit_lsn);
		set_display_setting(RR_COMMIT_TOKEN_PARAMETER, value, WARNING);
	}
}

/*
 * Note a utility statement about to run at any level (statement.c's
 * ProcessUtility_hook calls this): COMMIT PREPARED writes a commit record
 * for a transaction that has no xid in this session.
 */
void
rr_commit_lsn_note_utility(Node *parsetree)
{
	if (IsA(parsetree, TransactionStmt) &&
		((TransactionStmt *) parsetree)->kind == TRANS_STMT_COMMIT_PREPARED)
		ran_commit_prepared = true;
}

/* Register the transaction callback; called from _PG_init. */
void
rr_install_commit_callback(void)
{
	RegisterXactCallback(commit_callback, NULL);
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

/*
 * rr_last_commit_token() -> text
 *
 * "TLI:LSN" of this session's last commit record: the timeline it was
 * inserted on and its end; NULL if none yet.
 */
Datum
rr_last_commit_token(PG_FUNCTION_ARGS)
{
	char		value[RR_TOKEN_BUFSIZE];

	rr_check_loaded();

	if (last_commit_lsn == InvalidXLogRecPtr)
		PG_RETURN_NULL();
	rr_format_token(value, sizeof(value), last_commit_tli, last_commit_lsn);
	PG_RETURN_TEXT_P(cstring_to_text(value));
}
