/*-------------------------------------------------------------------------
 *
 * http_parse.c
 *	  Parsing of the HTTP endpoint's requests (see http.c): where a request
 *	  head ends, the request line, and the query string of /replica and
 *	  /read-only (max_staleness=, max_lag_bytes=).
 *
 * NOTES
 *	  Everything here is a pure function of its arguments: no shared memory,
 *	  no locks, no memory allocation, no server calls, no output functions
 *	  (port.h renames those).  The file needs the server's headers only for
 *	  the types of c.h, so test/fuzz/run.sh compiles it on its own into a
 *	  libFuzzer target; keep it that way.
 *
 * Copyright (c) 2026, rr_router developers
 *
 * IDENTIFICATION
 *	  src/http_parse.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "http_parse.h"

/*
 * Classify what a client sent so far; buf[0..from) is known to hold no end
 * of head and no NUL byte.
 */
RRHttpHead
rr_http_head_state(const char *buf, int from, int len, int max)
{
	if (memchr(buf + from, '\0', len - from) != NULL)
		return RR_HTTP_HEAD_BAD;
	if (rr_http_head_complete(buf, from, len))
		return RR_HTTP_HEAD_COMPLETE;
	return len >= max ? RR_HTTP_HEAD_TOO_LARGE : RR_HTTP_HEAD_PARTIAL;
}

/*
 * Does a request head end in buf[0..len), given that buf[0..from) held no end
 * of head?  Only the bytes from 'from' on are examined, so a client sending
 * one byte at a time costs constant work per byte.
 */
bool
rr_http_head_complete(const char *buf, int from, int len)
{
	for (int i = from; i < len; i++)
	{
		if (buf[i] != '\n')
			continue;
		/* "\n\n" or "\r\n\r\n" ends here */
		if (i >= 1 && buf[i - 1] == '\n')
			return true;
		if (i >= 3 && buf[i - 1] == '\r' && buf[i - 2] == '\n' &&
			buf[i - 3] == '\r')
			return true;
	}
	return false;
}

/* Cut a complete request head after its first line; return that line. */
char *
rr_http_request_line(char *buf)
{
	char	   *eol = strpbrk(buf, "\r\n");

	/* a complete head has a newline */
	if (eol != NULL)
		*eol = '\0';
	return buf;
}

/* Parse a duration such as 500ms, 1.5s, 2min or 250 (milliseconds). */
bool
rr_http_parse_duration_usecs(const char *s, int64 *usecs)
{
	char	   *end;
	double		v;
	double		unit = 1000.0;

	errno = 0;
	v = strtod(s, &end);
	if (end == s || errno != 0 || isnan(v) || v < 0)
		return false;
	if (*end == '\0' || strcmp(end, "ms") == 0)
		unit = 1000.0;
	else if (strcmp(end, "us") == 0)
		unit = 1.0;
	else if (strcmp(end, "s") == 0)
		unit = 1000000.0;
	else if (strcmp(end, "min") == 0)
		unit = 60000000.0;
	else if (strcmp(end, "h") == 0)
		unit = 3600000000.0;
	else
		return false;
	if (v * unit >= (double) PG_INT64_MAX)
		return false;
	*usecs = (int64) (v * unit);
	return true;
}

/* Parse a byte count (decimal, as strtoll reads it; never negative). */
bool
rr_http_parse_bytes(const char *s, int64 *bytes)
{
	char	   *end;
	long long	v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (end == s || *end != '\0' || errno != 0 || v < 0)
		return false;
	*bytes = (int64) v;
	return true;
}

/*
 * Parse the request line 'line' (NUL-terminated, modified in place) into
 * 'req': 0 when it is a request to answer, else the status to answer with.
 */
int
rr_http_parse_request(char *line, RRHttpRequest *req)
{
	char	   *method = line;
	char	   *target;
	char	   *version;
	char	   *query;

	req->head_only = false;
	req->path = RR_HTTP_HEALTH;
	req->has_max_staleness = false;
	req->max_staleness = 0;
	req->max_lag_bytes = -1;

	/* METHOD SP TARGET SP HTTP/x.y */
	target = strchr(method, ' ');
	if (target == NULL)
		return 400;
	*target++ = '\0';
	version = strchr(target, ' ');
	if (version == NULL || strncmp(version + 1, "HTTP/1.", 7) != 0)
		return 400;
	*version = '\0';

	if (strcmp(method, "HEAD") == 0)
		req->head_only = true;
	else if (strcmp(method, "GET") != 0)
		return 405;

	query = strchr(target, '?');
	if (query != NULL)
		*query++ = '\0';

	if (strcmp(target, "/health") == 0)
		req->path = RR_HTTP_HEALTH;
	else if (strcmp(target, "/primary") == 0)
		req->path = RR_HTTP_PRIMARY;
	else if (strcmp(target, "/replica") == 0)
		req->path = RR_HTTP_REPLICA;
	else if (strcmp(target, "/read-only") == 0)
		req->path = RR_HTTP_READ_ONLY;
	else if (strcmp(target, "/metrics") == 0)
		req->path = RR_HTTP_METRICS;
	else
		return 404;

	/* name=value&name=value */
	while (query != NULL && *query != '\0')
	{
		char	   *next = strchr(query, '&');
		char	   *value;

		if (next != NULL)
			*next++ = '\0';
		value = strchr(query, '=');
		if (value == NULL)
			return 400;
		*value++ = '\0';
		if (strcmp(query, "max_staleness") == 0)
		{
			if (!rr_http_parse_duration_usecs(value, &req->max_staleness))
				return 400;
			req->has_max_staleness = true;
		}
		else if (strcmp(query, "max_lag_bytes") == 0)
		{
			if (!rr_http_parse_bytes(value, &req->max_lag_bytes))
				return 400;
		}
		else
			return 400;
		query = next;
	}
	return 0;
}
