/*-------------------------------------------------------------------------
 *
 * views.h
 *	  Set-returning functions behind the rr_status and rr_waiters views.
 *
 * Copyright (c) 2026, rr_router developers
 *
 * IDENTIFICATION
 *	  src/views.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef RR_VIEWS_H
#define RR_VIEWS_H

#include "fmgr.h"

extern Datum rr_status_data(PG_FUNCTION_ARGS);
extern Datum rr_waiters_data(PG_FUNCTION_ARGS);

#endif							/* RR_VIEWS_H */
