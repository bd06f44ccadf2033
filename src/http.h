/*-------------------------------------------------------------------------
 *
 * http.h
 *	  The optional HTTP health and metrics endpoint served by the worker.
 *
 * Copyright (c) 2026, rr_router developers
 *
 * IDENTIFICATION
 *	  src/http.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef RR_HTTP_H
#define RR_HTTP_H

/* Settings, defined in rr_router.c. */
extern int	rr_http_port;
extern char *rr_http_listen_addresses;

/* Worker: open the listening sockets if rr_router.http_port is set. */
extern void rr_http_start(void);

/*
 * Worker: sleep up to 'timeout_ms' on the latch, like WaitLatch(), while
 * serving HTTP clients; exits if the postmaster dies.
 */
extern void rr_http_wait(long timeout_ms);

#endif							/* RR_HTTP_H */
