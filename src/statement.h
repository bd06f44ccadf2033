/*-------------------------------------------------------------------------
 *
 * statement.h
 *	  Where a call sits: statement nesting and the transaction's snapshot.
 *
 * Copyright (c) 2026, rr_router developers
 *
 * IDENTIFICATION
 *	  src/statement.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef RR_STATEMENT_H
#define RR_STATEMENT_H

extern void rr_install_statement_hooks(void);

/* Is the running query the outermost one (no FETCH, function, trigger)? */
extern bool rr_called_at_top_level(void);

/* Does the transaction read with a snapshot older than this statement? */
extern bool rr_snapshot_predates_statement(void);

#endif							/* RR_STATEMENT_H */
