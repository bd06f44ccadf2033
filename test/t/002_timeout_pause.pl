
# Copyright (c) 2025, rr_router contributors
#
# rr_wait_for_lsn with replay paused: the timeout, timeout 0, the
# rr_router.wait_timeout default, a waiter visible in rr_waiters, its prompt
# wake-up on pg_wal_replay_resume(), and the wait counters of rr_status.

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

my $replayed = write_token($primary, 't', 'before');
$primary->wait_for_catchup($replica);

my $c0 = rr_counters($replica);
my $r = timed_sql($replica, "SELECT rr_wait_for_lsn('$replayed', 1000)");
is($r->{out}, 't', 'a replayed target returns true');
cmp_ok($r->{ms}, '<', 500, '... at once');
my $c1 = rr_counters($replica);
is($c1->{waits} - $c0->{waits}, 1, 'waits counted the call');
is($c1->{waits_immediate} - $c0->{waits_immediate},
	1, 'waits_immediate counted the call');

is($replica->safe_psql('postgres', 'SELECT rr_wait_for_lsn(NULL, 10)'),
	'', 'a NULL target returns NULL');

# --- replay paused: the target is received but not replayed -------------

pause_replay($replica);
my $token = write_token($primary, 't', 'paused');
poll_until($replica, "SELECT pg_last_wal_receive_lsn() >= '$token'")
  or die 'replica did not receive the write';
is($replica->safe_psql('postgres',
		"SELECT pg_last_wal_replay_lsn() < '$token'"),
	't', 'the token is received but not replayed');

$c0 = rr_counters($replica);
$r = timed_sql($replica, "SELECT rr_wait_for_lsn('$token', 300)");
note "timeout 300 ms while paused: $r->{out} after $r->{ms} ms";
is($r->{out}, 'f', 'the wait times out while replay is paused');
cmp_ok($r->{ms}, '>=', 250, '... after the timeout, not before');
cmp_ok($r->{ms}, '<', 5000, '... and not much later');
$c1 = rr_counters($replica);
is($c1->{waits_timed_out} - $c0->{waits_timed_out},
	1, 'waits_timed_out counted the timeout');
is($c1->{waits_woken} - $c0->{waits_woken}, 0, 'waits_woken did not move');

$r = timed_sql($replica, "SELECT rr_wait_for_lsn('$token', 0)");
note "timeout 0 while paused: $r->{out} after $r->{ms} ms";
is($r->{out}, 'f', 'timeout 0 checks without waiting: false');
cmp_ok($r->{ms}, '<', 250, '... at once');
is( $replica->safe_psql('postgres',
		"SELECT rr_wait_for_lsn('$replayed', 0)"),
	't',
	'timeout 0 on a replayed target: true');

$r = timed_sql(
	$replica,
	"SELECT rr_wait_for_lsn('$token', NULL)",
	setup => "SET rr_router.wait_timeout = '200ms';");
note "NULL timeout, wait_timeout 200ms: $r->{out} after $r->{ms} ms";
is($r->{out}, 'f', 'a NULL timeout uses rr_router.wait_timeout');
cmp_ok($r->{ms}, '>=', 150, '... and waits that long');
cmp_ok($r->{ms}, '<', 900, '... not the 1s default');

$r = timed_sql(
	$replica,
	"SELECT rr_wait_for_lsn('$token')",
	setup => "SET rr_router.wait_timeout = '200ms';");
is($r->{out}, 'f', 'omitting the timeout uses rr_router.wait_timeout too');
cmp_ok($r->{ms}, '>=', 150, '... and waits that long');

$r = timed_sql($replica, "SELECT rr_wait_for_lsn('$token')");
note "default wait_timeout: $r->{out} after $r->{ms} ms";
is($r->{out}, 'f', 'the default wait_timeout (1s) times out');
cmp_ok($r->{ms}, '>=', 900, '... after about a second');

$r = timed_sql(
	$replica,
	"SELECT rr_wait_for_lsn('$token', NULL)",
	setup => "SET rr_router.wait_timeout = 0;");
is($r->{out}, 'f', 'rr_router.wait_timeout = 0 checks without waiting');
cmp_ok($r->{ms}, '<', 250, '... at once');

# --- a waiter in the background, woken by the resume ---------------------

$c0 = rr_counters($replica);
my $waiter = bg_psql(
	$replica,
	"SELECT rr_wait_for_lsn('$token', 60000);\n"
	  . "SELECT extract(epoch FROM clock_timestamp());",
	app => 'waiter1',
	verbose => 1);
ok( wait_waiters($replica, 1,
		"target_lsn = '$token' AND pid = (SELECT pid FROM pg_stat_activity "
		  . "WHERE application_name = 'waiter1')"),
	'rr_waiters shows the waiter with its pid and target');
is( $replica->safe_psql(
		'postgres',
		'SELECT waiting_since <= now() AND '
		  . "deadline BETWEEN waiting_since + interval '55 s' "
		  . "AND waiting_since + interval '65 s' FROM rr_waiters"),
	't',
	'rr_waiters shows waiting_since and a deadline 60 s later');
ok(bg_alive($waiter), 'the waiter is still waiting');

my $resumed_at = resume_replay($replica);
my $res = bg_finish($waiter, 30);
my ($ok, $ended_at) = split /\n/, $res->{out};
my $latency = defined $ended_at ? ($ended_at - $resumed_at) * 1000 : -1;
note sprintf('waiter returned %.1f ms after pg_wal_replay_resume() '
	  . '(client saw it after %.3f s)', $latency, $res->{secs});
is($res->{err}, '', 'the waiter raised no error');
is($ok, 't', 'the waiter returned true after the resume');
cmp_ok($res->{secs}, '<', 5, 'the waiter finished within a few seconds');
cmp_ok($latency, '<', 2000, '... and its wait ended soon after the resume');

ok(wait_waiters($replica, 0, 'true', 5), 'rr_waiters is empty afterwards');
$c1 = rr_counters($replica);
is($c1->{waits} - $c0->{waits}, 1, 'waits counted the background waiter');
is($c1->{waits_woken} - $c0->{waits_woken},
	1, 'waits_woken counted the wake-up');
is($c1->{waits_timed_out} - $c0->{waits_timed_out},
	0, 'waits_timed_out did not move');

is( $replica->safe_psql('postgres', "SELECT count(*) FROM t WHERE v = 'paused'"),
	'1', 'the row is visible after the wake-up');

done_testing();
