# rr_router/Makefile
#
# Built with PGXS against the PostgreSQL found by $(PG_CONFIG).
#
#   make && make install            build and install (install needs root)
#   make WERROR=1                   the same, warnings being errors (CI)
#   make RR_MEASURE_REDO=1          a build that measures the redo hook's
#                                   cost per record (benchmarks only)
#   make installcheck               pg_regress on a throwaway instance that
#                                   preloads the library, then the TAP tests
#                                   in test/t (real primary and replicas);
#                                   must run as an ordinary user
#   make SANITIZE=1                 build with UndefinedBehaviorSanitizer
#                                   (RR_SANITIZE=1 bash test/run-tests.sh
#                                   runs the whole suite on such a build)
#   make PG_CONFIG=/var/cache/rr_router/asan/pg15/bin/pg_config
#                                   build against a PostgreSQL built with
#                                   AddressSanitizer and UBSan, taking its
#                                   flags (RR_SANITIZE=address bash
#                                   test/run-tests.sh builds that server
#                                   and runs the whole suite on it)

MODULE_big = rr_router
OBJS = \
	src/rr_router.o \
	src/shmem.o \
	src/worker.o \
	src/redo_hook.o \
	src/wait.o \
	src/commit_lsn.o \
	src/timeline.o \
	src/views.o \
	src/heartbeat.o \
	src/staleness.o \
	src/history.o \
	src/http.o \
	src/http_parse.o \
	src/statement.o

EXTENSION = rr_router
DATA = rr_router--1.0.sql rr_router--1.0--1.1.sql
PGFILEDESC = "rr_router - safe reads from streaming-replication replicas"

REGRESS = setup wait_for_lsn commit_lsn tokens staleness lag_history views grants \
	extension_update
REGRESS_OPTS = --temp-config=$(srcdir)/test/regress.conf \
	--temp-instance=$(CURDIR)/tmp_check

TAP_TESTS = 1
PROVE_TESTS = test/t/*.pl

PG_CPPFLAGS = -I$(srcdir)/src
PG_CFLAGS = -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers
# Warnings are errors only when asked for ("make WERROR=1", as CI does):
# a newer compiler's new warning must not stop a user's build.
ifeq ($(WERROR),1)
PG_CFLAGS += -Werror
endif

# "make RR_MEASURE_REDO=1": the redo hook counts the clock ticks it costs
# per replayed record and logs them (test/bench/replay.py); never for use.
ifeq ($(RR_MEASURE_REDO),1)
PG_CPPFLAGS += -DRR_MEASURE_REDO
endif

# UndefinedBehaviorSanitizer on our code (the server is Debian's, not
# instrumented).  Its runtime needs no preloading, unlike AddressSanitizer's,
# which deadlocks Debian 12's server at startup (bindtextdomain); for ASan,
# test/asan/build-pg.sh builds a server with it, whose pg_config passes
# its flags to this build.
ifeq ($(SANITIZE),1)
PG_CFLAGS += -fsanitize=undefined -fno-omit-frame-pointer -g
SHLIB_LINK += -fsanitize=undefined
endif

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# PGXS tracks no header dependencies: rebuild everything when one changes,
# or objects disagree about the layout of shared memory.
$(OBJS): $(wildcard $(srcdir)/src/*.h)
