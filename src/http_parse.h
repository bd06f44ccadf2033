/*-------------------------------------------------------------------------
 *
 * http_parse.h
 *	  Parsing of the HTTP endpoint's requests: the end of a request head,
 *	  the request line and the query string of /replica and /read-only.
 *	  Pure functions on bytes, with no server state, so that they can be
 *	  compiled on their own and fuzzed (test/fuzz).
 *
 * Copyright (c) 2026, rr_router developers
 *
 * IDENTIFICATION
 *	  src/http_parse.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef RR_HTTP_PARSE_H
#define RR_HTTP_PARSE_H

/* The paths the endpoint serves. */
typedef enum RRHttpPath
{
	RR_HTTP_HEALTH,
	RR_HTTP_PRIMARY,
	RR_HTTP_REPLICA,
	RR_HTTP_READ_ONLY,
	RR_HTTP_METRICS
} RRHttpPath;

/* A parsed request line. */
typedef struct RRHttpRequest
{
	bool		head_only;		/* HEAD rather than GET */
	RRHttpPath	path;
	bool		has_max_staleness;	/* max_staleness= was given */
	int64		max_staleness;	/* microseconds, if given */
	int64		max_lag_bytes;	/* -1 unless max_lag_bytes= was given */
} RRHttpRequest;

/* What the bytes received so far from a client amount to. */
typedef enum RRHttpHead
{
	RR_HTTP_HEAD_PARTIAL,		/* no end of head yet: read more */
	RR_HTTP_HEAD_COMPLETE,		/* a blank line ends the head */
	RR_HTTP_HEAD_BAD,			/* a NUL byte: answer 400 */
	RR_HTTP_HEAD_TOO_LARGE		/* 'max' bytes and no end: answer 431 */
} RRHttpHead;

/*
 * Classify buf[0..len) (NUL-terminated at len) given that buf[0..from) was
 * RR_HTTP_HEAD_PARTIAL; examines only the bytes from 'from' on.
 */
extern RRHttpHead rr_http_head_state(const char *buf, int from, int len,
									 int max);

/*
 * Does a request head end in buf[0..len), given that buf[0..from) held no
 * end of head?
 */
extern bool rr_http_head_complete(const char *buf, int from, int len);

/*
 * Cut a complete head (RR_HTTP_HEAD_COMPLETE) after its first line and
 * return that line.
 */
extern char *rr_http_request_line(char *buf);

/*
 * Parse the request line 'line' (modified in place) into 'req'; returns 0
 * when it is a request to answer, else the HTTP status to answer with
 * (400, 404 or 405; 'req->head_only' is set once the method is known).
 */
extern int	rr_http_parse_request(char *line, RRHttpRequest *req);

/* Parse a duration such as 500ms, 1.5s, 2min or 250 (milliseconds). */
extern bool rr_http_parse_duration_usecs(const char *s, int64 *usecs);

/* Parse a byte count (decimal digits only). */
extern bool rr_http_parse_bytes(const char *s, int64 *bytes);

#endif							/* RR_HTTP_PARSE_H */
