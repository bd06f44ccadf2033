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
	RR_TOKEN_LOST,				/* its timeline ended before its LSN (or, on
								 * a primary, its WAL ends before it): the
								 * write will never be here */
	RR_TOKEN_UNKNOWN			/* its timeline is not one this server has
								 * reached: a later or a sibling timeline */
} RRTokenVerdict;

/* Why a token was judged lost, for the message. */
typedef struct RRTokenLoss
{
	TimeLineID	server_tli;		/* the timeline this server's data follows */
	TimeLineID	history_tli;	/* whose history judged the token */
	XLogRecPtr	switchpoint;	/* where the token's timeline ended, or
								 * Invalid */
	XLogRecPtr	wal_end;		/* a primary's WAL end before the token, or
								 * Invalid */
} RRTokenLoss;

/*
 * Parse "TLI:LSN"; ERROR 22P02 for anything else, for timeline 0 or a
 * timeline with leading zeros.
 */
extern void rr_parse_token(const char *str, RRToken *token);

/*
 * The timeline this server's data follows now: the insertion timeline on a
 * primary; on a replica, the timeline of the record being replayed (which
 * becomes the new one as soon as replay commits to a timeline switch).
 * Sets *in_recovery to which of the two it is.
 */
extern TimeLineID rr_server_timeline(bool *in_recovery);

/*
 * Judge 'token' on a server whose data follows timeline 'server_tli'.  A
 * primary judges by its own timeline's history and the end of its WAL; a
 * replica by the history of the newest timeline in pg_wal that descends
 * from server_tli (server_tli's own when there is none), and counts a
 * token of a timeline after server_tli as unknown until it gets there.
 * Histories are read from pg_wal once per backend and choice; a replica
 * looks for a newer one with one stat() per call.  Fills *loss for
 * rr_report_lost_token().
 */
extern RRTokenVerdict rr_token_verdict(const RRToken *token,
									   TimeLineID server_tli,
									   bool in_recovery,
									   RRTokenLoss *loss);

/*
 * Raise ERROR RR001 for 'token' ('given': as the caller wrote it), lost or
 * (on a primary) not in the history, as *loss tells.
 */
extern void rr_report_lost_token(const char *given, const RRToken *token,
								 const RRTokenLoss *loss, bool in_recovery);

#endif							/* RR_TIMELINE_H */
