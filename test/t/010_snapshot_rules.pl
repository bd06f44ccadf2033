
# Copyright (c) 2025, rr_router contributors
#
# Where rr_wait_for_lsn may be called on a replica: inside a REPEATABLE READ
# transaction that already has its snapshot it raises an error with a hint
# to call it before BEGIN (waiting could not make the data visible); in a
# READ COMMITTED block, the next statement after the wait sees the write.

use strict;
use warnings FATAL => 'all';
use FindBin;
use lib $FindBin::RealBin;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use RRTest;
use Test::More;

my $primary = rr_primary('primary');
$primary->safe_psql('postgres', 'CREATE TABLE t(id serial, v text)');
my $replica = rr_replica($primary, 'replica');

my $replayed = write_token($primary, 't', 'replayed');
$primary->wait_for_catchup($replica);

# (SERIALIZABLE cannot be used on a hot standby at all in PostgreSQL 15.)
my $r = timed_sql($replica,
	"BEGIN ISOLATION LEVEL REPEATABLE READ;\nSELECT count(*) FROM t;\n"
	  . "SELECT rr_wait_for_lsn('$replayed', 100);\nROLLBACK");
note "REPEATABLE READ: $r->{err}";
like($r->{err}, qr/ERROR:/,
	'REPEATABLE READ with a snapshot taken: rr_wait_for_lsn raises an error');
like($r->{err}, qr/HINT:.*BEGIN/, '... with a hint to call it before BEGIN');
is($r->{out}, '1', '... after the statement that took the snapshot ran');
ok(wait_waiters($replica, 0, 'true', 5), '... and leaves nothing queued');

# READ COMMITTED: each statement takes a new snapshot, so a wait in the
# middle of a transaction block is fine and the next statement sees the
# write.
pause_replay($replica);
my $token = write_token($primary, 't', 'read committed');
my $s = session($replica);
$s->q('BEGIN');
is($s->q("SELECT count(*) FROM t WHERE v = 'read committed'"),
	'0', 'READ COMMITTED block: the write is not visible yet');
my $resumer = bg_psql($replica,
	"SELECT pg_sleep(0.3);\nSELECT pg_wal_replay_resume();");
is($s->q("SELECT rr_wait_for_lsn('$token', 20000)"),
	't', 'the wait inside a READ COMMITTED block returns true');
is($s->q("SELECT count(*) FROM t WHERE v = 'read committed'"),
	'1', '... and the next statement sees the write');
$s->q('COMMIT');
bg_finish($resumer, 10);
$s->quit;

done_testing();
