
# Copyright (c) 2025, rr_router contributors
#
# Promotion while waiting: a waiter whose target was replayed before
# recovery ended returns true; one whose target never was gets ERROR 55000
# with the last replayed LSN in the detail; rr_waiters empties and
# rr_status reports the new role.

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

is($replica->safe_psql('postgres', 'SELECT role FROM rr_status'),
	'replica', 'rr_status.role is replica before promotion');

# Replay is paused with a write received but not replayed: promotion
# replays what was received before recovery ends.
pause_replay($replica);
my $token = write_token($primary, 't', 'received');
my $far = far_lsn($primary);
poll_until($replica, "SELECT pg_last_wal_receive_lsn() >= '$token'")
  or die 'replica did not receive the write';
is($replica->safe_psql('postgres',
		"SELECT pg_last_wal_replay_lsn() < '$token'"),
	't', 'the write is received but not replayed');

# The primary goes away, as in a failover.
$primary->stop;

my $wait_sql = sub {
	my ($lsn) = @_;
	return "SELECT rr_wait_for_lsn('$lsn', 120000);\n"
	  . "SELECT 'next statement ran';";
};
my $w_received =
  bg_psql($replica, $wait_sql->($token), app => 'received', verbose => 1);
my $w_far = bg_psql($replica, $wait_sql->($far), app => 'far', verbose => 1);
ok(wait_waiters($replica, 2), 'both waiters are queued');

$replica->promote;
my $res_received = bg_finish($w_received, 30);
my $res_far = bg_finish($w_far, 30);
note "waiter for the received write: out '$res_received->{out}', "
  . "err '$res_received->{err}'";
note "waiter for the far target: out '$res_far->{out}', err '$res_far->{err}'";

is($res_received->{err}, '',
	'the waiter whose target was replayed before promotion raised no error');
is($res_received->{out}, "t\nnext statement ran",
	'... and returned true');

is(sqlstate_of($res_far->{err}), '55000',
	'the waiter whose target was never replayed got ERROR 55000');
like($res_far->{err}, qr/DETAIL:.*[0-9A-F]+\/[0-9A-F]+/,
	'... with the last replayed LSN in the detail');
like($res_far->{out}, qr/^next statement ran$/m,
	'... and its session went on');
cmp_ok($res_far->{secs}, '<', 15, '... promptly after the promotion');

ok(wait_waiters($replica, 0, 'true', 5), 'rr_waiters is empty');
ok(poll_until($replica, 'SELECT role FROM rr_status', 'primary', 30),
	'rr_status.role is primary after promotion');

is( $replica->safe_psql('postgres',
		"SELECT count(*) FROM t WHERE v = 'received'"),
	'1',
	'the received write is visible on the promoted server');

my $r = timed_sql($replica, "SELECT rr_wait_for_lsn('$far', 10000)");
is($r->{out}, 't', 'the promoted server answers true');
cmp_ok($r->{ms}, '<', 1000, '... at once');

done_testing();
