
# Copyright (c) 2026, rr_router contributors
#
# Poolers that move a client between server connections (PgDog) replay the
# parameters the server reported on the new connection:
#     SET "rr_router.last_commit_lsn" TO '0/3000148'
#     SET "rr_router.last_commit_token" TO '1:0/3000148'
# Such a SET, on another backend of the primary or of a replica, must break
# nothing: no error; SHOW displays the value; rr_last_commit_lsn() and
# rr_last_commit_token() keep answering for the session's own commits; the
# next commit's report carries that commit, not the replayed value; RESET,
# SET LOCAL and DISCARD ALL work; waits on a replica are unaffected.

use strict;
use warnings FATAL => 'all';
use FindBin;
use lib $FindBin::RealBin;

use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use RRTest;
use Test::More;

my ($python) = grep { -x $_ } ('/usr/bin/python3');
my ($pyout, $pyerr) = ('', '');
plan skip_all => 'python3 with psycopg 3 is needed (apt-get install python3-psycopg)'
  unless $python
  && IPC::Run::run([ $python, '-c', 'import psycopg' ],
	'>' => \$pyout, '2>' => \$pyerr);

my $primary = rr_primary('primary');
$primary->safe_psql('postgres', 'CREATE TABLE t(id int PRIMARY KEY, v text)');
my $replica = rr_replica($primary, 'replica');

# Session A commits; its reported token is what a pooler would replay on
# session B (another backend), which then commits itself.  One line
# "name=value" per observation; None for NULL.
my $client = <<'PY';
import sys
import psycopg

def one(conn, sql):
    return str(conn.execute(sql).fetchone()[0])

def show(name, value):
    print(f"{name}={value}", flush=True)

def ps(conn, name):
    return str(conn.info.parameter_status(name))

primary, replica = sys.argv[1], sys.argv[2]
a = psycopg.connect(primary, autocommit=True,
                    options="-c rr_router.report_commit_lsn=on")
a.execute("INSERT INTO t VALUES (1, 'a')")
lsn, token = ps(a, "rr_router.last_commit_lsn"), ps(a, "rr_router.last_commit_token")
show("a_lsn", lsn)
show("a_token", token)
show("a_last", one(a, "SELECT rr_last_commit_lsn()"))

# The pooler moves the client to backend B and replays what A reported.
b = psycopg.connect(primary, autocommit=True,
                    options="-c rr_router.report_commit_lsn=on")
errors = []
for name, value in (("rr_router.last_commit_lsn", lsn),
                    ("rr_router.last_commit_token", token)):
    try:
        b.execute(f'SET "{name}" TO \'{value}\'')
    except psycopg.Error as e:
        errors.append(f"{name}: {e.sqlstate} {e}")
show("b_set_errors", "; ".join(errors) or "none")
if errors:
    sys.exit(0)
show("b_show_lsn", one(b, 'SHOW "rr_router.last_commit_lsn"'))
show("b_show_token", one(b, 'SHOW "rr_router.last_commit_token"'))
show("b_last_after_set", one(b, "SELECT rr_last_commit_lsn()"))
show("b_token_after_set", one(b, "SELECT rr_last_commit_token()"))
b.execute("INSERT INTO t VALUES (2, 'b')")
show("b_ps_after_commit", ps(b, "rr_router.last_commit_lsn"))
show("b_ps_token_after_commit", ps(b, "rr_router.last_commit_token"))
show("b_last_after_commit", one(b, "SELECT rr_last_commit_lsn()"))
show("b_token_after_commit", one(b, "SELECT rr_last_commit_token()"))

# RESET, SET LOCAL, DISCARD ALL.
b.execute('RESET "rr_router.last_commit_lsn"')
with b.transaction():
    b.execute(f'SET LOCAL "rr_router.last_commit_lsn" TO \'{lsn}\'')
b.execute("DISCARD ALL")
show("b_last_after_discard", one(b, "SELECT rr_last_commit_lsn()"))
b.execute("SET rr_router.report_commit_lsn = on")
b.execute("INSERT INTO t VALUES (3, 'b')")
show("b_ps_after_discard_commit", ps(b, "rr_router.last_commit_lsn"))
show("b_last_after_discard_commit", one(b, "SELECT rr_last_commit_lsn()"))
show("b_usable", one(b, "SELECT 1"))

# On a replica: the replayed SETs, then waits for A's token.
r = psycopg.connect(replica, autocommit=True)
r.execute(f'SET "rr_router.last_commit_lsn" TO \'{lsn}\'')
r.execute(f'SET "rr_router.last_commit_token" TO \'{token}\'')
show("r_wait_lsn", one(r, f"SELECT rr_wait_for_lsn('{lsn}', 10000)"))
show("r_wait_token", one(r, f"SELECT rr_wait_for_token('{token}', 10000)"))
show("r_row", one(r, "SELECT v FROM t WHERE id = 1"))
show("r_last", one(r, "SELECT rr_last_commit_lsn()"))
PY

my ($out, $err) = ('', '');
my $ran = IPC::Run::run(
	[ $python, '-c', $client, $primary->connstr('postgres'),
	  $replica->connstr('postgres') ],
	'>' => \$out, '2>' => \$err, IPC::Run::timeout(120));
note "client output:\n$out";
ok($ran, 'the psycopg client ran') or diag $err;
my %v = map { split /=/, $_, 2 } grep { /=/ } split /\n/, $out;

my $lsn_re = qr{^[0-9A-F]+/[0-9A-F]+$};
like($v{a_lsn} // '', $lsn_re, 'A: its commit is reported');
is($v{a_lsn}, $v{a_last}, '... as rr_last_commit_lsn()');
is($v{b_set_errors}, 'none',
	'B: SET "rr_router.last_commit_lsn" and "..._token" to A\'s values: no error');
is($v{b_show_lsn}, $v{a_lsn}, 'B: SHOW displays the replayed value');
is($v{b_show_token}, $v{a_token}, '... for the token too');
is($v{b_last_after_set}, 'None',
	'B: rr_last_commit_lsn() is still its own (none yet)');
is($v{b_token_after_set}, 'None', '... and rr_last_commit_token() too');
like($v{b_last_after_commit} // '', $lsn_re, 'B: after its own commit');
ok(defined $v{b_last_after_commit} && $v{b_last_after_commit} =~ $lsn_re
	  && lsn_cmp($v{b_last_after_commit}, $v{a_lsn}) > 0,
	'... rr_last_commit_lsn() is its own commit, past A\'s');
is($v{b_ps_after_commit}, $v{b_last_after_commit},
	'... and the report carries it, not the replayed value');
is($v{b_ps_token_after_commit}, $v{b_token_after_commit},
	'... for the token too');
is($v{b_last_after_discard}, $v{b_last_after_commit},
	'B: RESET, SET LOCAL and DISCARD ALL leave rr_last_commit_lsn() alone');
is($v{b_ps_after_discard_commit}, $v{b_last_after_discard_commit},
	'B: the next commit is reported again');
is($v{b_usable}, '1', 'B: the connection is usable');
is($v{r_wait_lsn}, 'True', 'replica: after the replayed SETs, rr_wait_for_lsn works');
is($v{r_wait_token}, 'True', '... and rr_wait_for_token');
is($v{r_row}, 'a', '... and the write is visible');
is($v{r_last}, 'None', '... while rr_last_commit_lsn() there is its own (none)');

done_testing();
