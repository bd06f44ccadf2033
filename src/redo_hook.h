/*-------------------------------------------------------------------------
 *
 * redo_hook.h
 *	  Notification from the startup process after every replayed record.
 *
 * Copyright (c) 2026, rr_router developers
 *
 * IDENTIFICATION
 *	  src/redo_hook.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef RR_REDO_HOOK_H
#define RR_REDO_HOOK_H

extern void rr_install_redo_hook(void);

#endif							/* RR_REDO_HOOK_H */
