/*-------------------------------------------------------------------------
 *
 * commit_lsn.h
 *	  Causality tokens: the end LSN of this session's last commit.
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

/* Name of the ParameterStatus that carries the token to the client. */
#define RR_COMMIT_LSN_PARAMETER "rr_router.last_commit_lsn"

extern void rr_install_commit_callback(void);

#endif							/* RR_COMMIT_LSN_H */
