/*-------------------------------------------------------------------------
 *
 * commit_lsn.h
 *	  Causality tokens: the end LSN (and timeline) of this session's last
 *	  commit.
 *
 * Copyright (c) 2026, rr_router developers
 *
 * IDENTIFICATION
 *	  src/commit_lsn.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef RR_COMMIT_LSN_H
#define RR_COMMIT_LSN_H

#include "access/xlogdefs.h"
#include "nodes/nodes.h"

/*
 * Names of the GUC_REPORT settings, hence of the ParameterStatus messages,
 * that carry the token to the client: the LSN alone, and "TLI:LSN".
 */
#define RR_COMMIT_LSN_PARAMETER		"rr_router.last_commit_lsn"
#define RR_COMMIT_TOKEN_PARAMETER	"rr_router.last_commit_token"

/* Room for "TLI:LSN" with both at their largest, and the terminator. */
#define RR_TOKEN_BUFSIZE	32

extern void rr_install_commit_callback(void);

/* A utility statement is about to run (COMMIT PREPARED moves the token). */
extern void rr_commit_lsn_note_utility(Node *parsetree);

/* Format a token as "TLI:LSN", the LSN as pg_lsn prints it. */
extern void rr_format_token(char *buf, size_t size, TimeLineID tli,
							XLogRecPtr lsn);

#endif							/* RR_COMMIT_LSN_H */
