/*-------------------------------------------------------------------------
 *
 * worker.h
 *	  The rr_router background worker.
 *
 * Copyright (c) 2026, rr_router developers
 *
 * IDENTIFICATION
 *	  src/worker.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef RR_WORKER_H
#define RR_WORKER_H

#include "fmgr.h"

extern void rr_register_worker(void);
extern PGDLLEXPORT void rr_worker_main(Datum main_arg);

/* Name of a WalRcvState value as shown in rr_status.receiver_state. */
extern const char *rr_receiver_state_name(int state);

#endif							/* RR_WORKER_H */
