/*-------------------------------------------------------------------------
 *
 * fuzz_http.c
 *	  libFuzzer target for the HTTP endpoint's request parsing
 *	  (src/http_parse.c), built and run by test/fuzz/run.sh with
 *	  -fsanitize=fuzzer,address,undefined.
 *
 *	  Input: one byte that chooses how the rest is cut into recv()-sized
 *	  chunks, then the bytes a client sends.  The target replays what
 *	  http.c's client_read() does with them (a buffer of
 *	  RR_HTTP_MAX_REQUEST + 1 bytes, the head examined chunk by chunk) and
 *	  parses the request line of a complete head.  Besides memory errors and
 *	  undefined behaviour it checks:
 *	  - the incremental end-of-head test agrees with a scan from the start;
 *	  - a complete head's first line has no CR or LF and lies in the buffer;
 *	  - parse results are 0, 400, 404 or 405; an accepted request has a
 *	    known path, max_staleness >= 0 if given, max_lag_bytes >= -1;
 *	  - an accepted request, written out again canonically, parses to the
 *	    same request (no lost or invented parameter);
 *	  - every '\0'-separated piece of the input, given to the duration and
 *	    byte-count parsers, gives a value >= 0 when accepted, and an
 *	    accepted byte count prints and parses back to itself.
 *
 * Copyright (c) 2026, rr_router developers
 *
 * IDENTIFICATION
 *	  test/fuzz/fuzz_http.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_parse.h"

/* As in src/http.c. */
#define RR_HTTP_MAX_REQUEST		4096

/* port.h maps these to libpgport's versions, which this target does not link */
#undef snprintf
#undef fprintf

#define CHECK(cond) \
	do { \
		if (!(cond)) \
		{ \
			fprintf(stderr, "fuzz_http: check failed at line %d: %s\n", \
					__LINE__, #cond); \
			abort(); \
		} \
	} while (0)

static const char *const paths[] = {
	"/health", "/primary", "/replica", "/read-only", "/metrics"
};

/* Same requests?  Both accepted. */
static bool
same_request(const RRHttpRequest *a, const RRHttpRequest *b)
{
	return a->head_only == b->head_only && a->path == b->path &&
		a->has_max_staleness == b->has_max_staleness &&
		(!a->has_max_staleness || a->max_staleness == b->max_staleness) &&
		a->max_lag_bytes == b->max_lag_bytes;
}

/* Parse a copy of 'line' in a buffer of its exact size; check the result. */
static void
check_line(const char *line)
{
	size_t		n = strlen(line);
	char	   *copy = malloc(n + 1);
	RRHttpRequest req;
	int			status;

	memcpy(copy, line, n + 1);
	status = rr_http_parse_request(copy, &req);
	free(copy);
	CHECK(status == 0 || status == 400 || status == 404 || status == 405);
	if (status != 0)
		return;

	CHECK((int) req.path >= 0 && (int) req.path < (int) lengthof(paths));
	CHECK(!req.has_max_staleness || req.max_staleness >= 0);
	CHECK(req.max_lag_bytes >= -1);

	/* write it out canonically and parse it again */
	{
		char		canon[256];
		RRHttpRequest again;
		int			len;

		len = snprintf(canon, sizeof(canon), "%s %s?",
					   req.head_only ? "HEAD" : "GET", paths[req.path]);
		if (req.has_max_staleness)
			len += snprintf(canon + len, sizeof(canon) - len,
							"max_staleness=%lldus&",
							(long long) req.max_staleness);
		if (req.max_lag_bytes >= 0)
			len += snprintf(canon + len, sizeof(canon) - len,
							"max_lag_bytes=%lld&",
							(long long) req.max_lag_bytes);
		/* drop the final '&' (or '?'), which the parser would refuse */
		canon[len - 1] = '\0';
		strcat(canon, " HTTP/1.1");
		CHECK(rr_http_parse_request(canon, &again) == 0);
		CHECK(same_request(&req, &again));
	}
}

/* Give the value parsers one string. */
static void
check_values(const char *s)
{
	int64		v;

	if (rr_http_parse_duration_usecs(s, &v))
		CHECK(v >= 0);
	if (rr_http_parse_bytes(s, &v))
	{
		char		buf[32];
		int64		w;

		CHECK(v >= 0);
		snprintf(buf, sizeof(buf), "%lld", (long long) v);
		CHECK(rr_http_parse_bytes(buf, &w) && w == v);
	}
}

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char buf[RR_HTTP_MAX_REQUEST + 1];
	unsigned int rng;
	size_t		pos = 1;
	int			len = 0;
	RRHttpHead	state = RR_HTTP_HEAD_PARTIAL;

	if (size < 1)
		return 0;
	rng = data[0];

	/* client_read(), one recv() per chunk */
	while (pos < size && state == RR_HTTP_HEAD_PARTIAL)
	{
		size_t		room = RR_HTTP_MAX_REQUEST - len;
		size_t		n;
		int			from = len;

		rng = rng * 1103515245u + 12345u;
		n = (rng & 0x80) ? size - pos : 1 + (rng >> 16) % 16;
		if (n > size - pos)
			n = size - pos;
		if (n > room)
			n = room;
		memcpy(buf + len, data + pos, n);
		pos += n;
		len += (int) n;
		buf[len] = '\0';

		state = rr_http_head_state(buf, from, len, RR_HTTP_MAX_REQUEST);
		if (state != RR_HTTP_HEAD_BAD)
			CHECK(rr_http_head_complete(buf, from, len) ==
				  rr_http_head_complete(buf, 0, len));
	}

	if (state == RR_HTTP_HEAD_COMPLETE)
	{
		char	   *line = rr_http_request_line(buf);

		CHECK(line == buf);
		CHECK(strlen(line) < (size_t) len);
		CHECK(strpbrk(line, "\r\n") == NULL);
		check_line(line);
	}
	else if (state == RR_HTTP_HEAD_TOO_LARGE)
		CHECK(len == RR_HTTP_MAX_REQUEST);

	/* the value parsers on every NUL-separated piece of the raw input */
	{
		char	   *copy = malloc(size);
		size_t		start = 0;

		memcpy(copy, data + 1, size - 1);
		copy[size - 1] = '\0';
		for (size_t i = 0; i < size; i++)
		{
			if (copy[i] == '\0')
			{
				check_values(copy + start);
				start = i + 1;
			}
		}
		free(copy);
	}
	return 0;
}
