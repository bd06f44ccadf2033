/*-------------------------------------------------------------------------
 *
 * timeline.h
 *	  Failover-safe causality tokens: "TLI:LSN", judged against this
 *	  server's timeline history.
 *
 * Copyright (c) 2026, rr_router developers
 *
 * IDENTIFICATION
 *	  src/timeline.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef RR_TIMELINE_H
#define RR_TIMELINE_H

#include "postgres.h"

#include "access/xlogdefs.h"

/* SQLSTATE of "causality token refers to WAL lost in a failover". */
#define ERRCODE_RR_TOKEN_LOST	MAKE_SQLSTATE('R','R','0','0','1')

/* A causality token: the timeline a commit was written on, and its end. */
typedef struct RRToken
{
	TimeLineID	tli;
	XLogRecPtr	lsn;
} RRToken;

/* What this server's timeline history says about a token. */
typedef enum RRTokenVerdict
{
	RR_TOKEN_IN_HISTORY,		/* its WAL is part of this server's history:
								 * visible once replay reaches its LSN */
	RR_TOKEN_LOST,				/* its timeline ended here before its LSN:
								 * the write will never be here */
	RR_TOKEN_UNKNOWN			/* its timeline is not in this server's
								 * history: a later or a sibling timeline */
} RRTokenVerdict;

/* Parse "TLI:LSN"; ERROR 22P02 for anything else, or timeline 0. */
extern void rr_parse_token(const char *str, RRToken *token);

/*
 * The timeline this server's data follows now: the insertion timeline on a
 * primary; on a replica, the timeline of the record being replayed (which
 * becomes the new one as soon as replay commits to a timeline switch).
 * Sets *in_recovery to which of the two it is.
 */
extern TimeLineID rr_server_timeline(bool *in_recovery);

/*
 * Judge 'token' against the history of timeline 'server_tli' (read from
 * pg_wal once per backend and timeline).  For RR_TOKEN_LOST, *switchpoint
 * is where the token's timeline ended in that history.
 */
extern RRTokenVerdict rr_token_verdict(const RRToken *token,
									   TimeLineID server_tli,
									   XLogRecPtr *switchpoint);

/*
 * Raise ERROR RR001 for 'token', lost in this server's history of
 * 'server_tli' at 'switchpoint' (InvalidXLogRecPtr: the token's timeline is
 * not in that history at all).
 */
extern void rr_report_lost_token(const RRToken *token, TimeLineID server_tli,
								 XLogRecPtr switchpoint);

#endif							/* RR_TIMELINE_H */
