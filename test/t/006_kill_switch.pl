
# Copyright (c) 2025, rr_router contributors
#
# The kill switch rr_router.replica_reads, flipped on a replica with
# ALTER SYSTEM + pg_reload_conf(): off makes every wait answer false at once
# (even for a replayed target, even for a waiter already waiting); on again
# restores normal answers.

use strict;
use warnings FATAL => 'all';
use FindBin;
use lib $FindBin::RealBin;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use RRTest;
use Test::More;
use Time::HiRes qw(time);

my $primary = rr_primary('primary');
$primary->safe_psql('postgres', 'CREATE TABLE t(id serial, v text)');
my $replica = rr_replica($primary, 'replica');

my $token = write_token($primary, 't', 'replayed');
$primary->wait_for_catchup($replica);
my $far = far_lsn($primary);

is($replica->safe_psql('postgres', "SELECT rr_wait_for_lsn('$token', 1000)"),
	't', 'with replica_reads on, a replayed target returns true');
is($replica->safe_psql('postgres', 'SELECT replica_reads FROM rr_status'),
	't', 'rr_status.replica_reads is true');

my $waiter = bg_psql(
	$replica,
	"SELECT rr_wait_for_lsn('$far', 120000);",
	app => 'early',
	verbose => 1);
ok(wait_waiters($replica, 1), 'a waiter is waiting before the switch flips');

my $t0 = time();
$replica->safe_psql('postgres',
	"ALTER SYSTEM SET rr_router.replica_reads = off;\n"
	  . 'SELECT pg_reload_conf()');

my $res = bg_finish($waiter, 30);
note sprintf('waiter already waiting returned %.3f s after the reload',
	$res->{secs});
is($res->{err}, '', 'the waiter raised no error');
is($res->{out}, 'f', 'the waiter already waiting returned false');
cmp_ok($res->{secs}, '<', 5, '... within a few seconds of the reload');

my ($off, $secs) = poll_until($replica,
	"SELECT rr_wait_for_lsn('$token', 1000)", 'f', 10);
note sprintf('a replayed target answered false %.3f s after the reload',
	time() - $t0);
ok($off, 'with replica_reads off, even a replayed target returns false');

my $r = timed_sql($replica, "SELECT rr_wait_for_lsn('$token', 5000)");
is($r->{out}, 'f', 'a new wait returns false');
cmp_ok($r->{ms}, '<', 500, '... at once, not after its timeout');
$r = timed_sql($replica, "SELECT rr_wait_for_lsn('$far', 5000)");
is($r->{out}, 'f', 'a wait for an unreplayed target returns false');
cmp_ok($r->{ms}, '<', 500, '... at once');
is($replica->safe_psql('postgres', 'SELECT replica_reads FROM rr_status'),
	'f', 'rr_status.replica_reads is false');
ok(wait_waiters($replica, 0, 'true', 5), 'nothing is left in rr_waiters');

$replica->safe_psql('postgres',
	"ALTER SYSTEM RESET rr_router.replica_reads;\n"
	  . 'SELECT pg_reload_conf()');
ok(poll_until($replica, "SELECT rr_wait_for_lsn('$token', 1000)", 't', 10),
	'switched back on, a replayed target returns true again');
is($replica->safe_psql('postgres', 'SELECT replica_reads FROM rr_status'),
	't', 'rr_status.replica_reads is true again');

$token = write_token($primary, 't', 'after');
is($replica->safe_psql('postgres', "SELECT rr_wait_for_lsn('$token', 10000)"),
	't', 'a new write is waited for normally');
is($replica->safe_psql('postgres', "SELECT count(*) FROM t WHERE v = 'after'"),
	'1', '... and then visible');

done_testing();
