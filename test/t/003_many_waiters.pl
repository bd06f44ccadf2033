
# Copyright (c) 2025, rr_router contributors
#
# 200 concurrent waiters (one pgbench with 200 connections, to keep a
# 2-core machine sane) all queued in rr_waiters while replay is paused, and
# all woken when it resumes; waiters for a target further on stay queued.

use strict;
use warnings FATAL => 'all';
use FindBin;
use lib $FindBin::RealBin;

use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use RRTest;
use Test::More;
use Time::HiRes qw(time);

my $nwaiters = 200;
my $nfar = 10;

my $conf = qq(
max_connections = 260
shared_buffers = 16MB
log_statement = none
);
my $primary = rr_primary('primary', conf => $conf);
$primary->safe_psql('postgres', 'CREATE TABLE t(id serial, v text)');
my $replica = rr_replica($primary, 'replica', conf => $conf);

pause_replay($replica);
my $token = write_token($primary, 't', 'many');
my $far = far_lsn($primary);
poll_until($replica, "SELECT pg_last_wal_receive_lsn() >= '$token'")
  or die 'replica did not receive the write';
my $c0 = rr_counters($replica);

# Every pgbench client waits once; a false answer fails the client.
my $script = PostgreSQL::Test::Utils::tempdir() . '/wait.sql';
PostgreSQL::Test::Utils::append_to_file(
	$script, qq(SELECT rr_wait_for_lsn('$token', 120000) AS ok \\gset
\\if :ok
\\else
SELECT 1/0;
\\endif
));
my ($pb_out, $pb_err) = ('', '');
my $pgbench = IPC::Run::start(
	[
		$replica->installed_command('pgbench'), '-n',
		'-c', $nwaiters, '-j', '2', '-t', '1',
		'-f', $script, '-h', $replica->host,
		'-p', $replica->port, 'postgres'
	],
	'>' => \$pb_out,
	'2>' => \$pb_err);

my @far = map {
	bg_psql($replica, "SELECT rr_wait_for_lsn('$far', 120000);",
		app => "far$_", verbose => 1)
} 1 .. $nfar;

my ($all_in, $secs) =
  wait_waiters($replica, $nwaiters + $nfar, 'true', 120);
note sprintf('%d waiters queued after %.1f s', $nwaiters + $nfar, $secs);
ok($all_in, "rr_waiters shows all $nwaiters + $nfar waiters");
is( $replica->safe_psql('postgres',
		"SELECT count(*) FROM rr_waiters WHERE target_lsn = '$token'"),
	$nwaiters,
	"$nwaiters of them wait for the write");
is( $replica->safe_psql(
		'postgres', 'SELECT count(DISTINCT pid) FROM rr_waiters'),
	$nwaiters + $nfar,
	'each waiter is listed once, with its own pid');

my $t0 = time();
resume_replay($replica);
$pgbench->finish;
my $pb_rc = $? >> 8;
my $woken_secs = time() - $t0;
note sprintf('all %d waiters returned %.2f s after the resume',
	$nwaiters, $woken_secs);
is($pb_rc, 0, 'pgbench succeeded: every waiter returned true')
  or diag "pgbench stdout:\n$pb_out\nstderr:\n$pb_err";
like(
	$pb_out,
	qr/number of transactions actually processed: $nwaiters\/$nwaiters/,
	"all $nwaiters waits completed");
cmp_ok($woken_secs, '<', 20, 'they returned within seconds of the resume');

ok(wait_waiters($replica, $nfar, 'true', 10),
	'only the waiters for a later target are left');
is( $replica->safe_psql('postgres',
		"SELECT count(*) FROM rr_waiters WHERE target_lsn = '$far'"),
	$nfar,
	'... and they are the ones waiting for it');
ok(!grep({ !bg_alive($_) } @far), '... still waiting');

# pg_stat_activity names their wait: extensions may name their wait events
# since PostgreSQL 17; before that all show the generic "Extension".
# (major: a release candidate such as 17rc1 sorts below 17 itself)
my $wait_event =
  $replica->pg_version->major >= 17 ? 'RRWaitForLSN' : 'Extension';
ok( poll_until(
		$replica,
		"SELECT count(*) = $nfar FROM pg_stat_activity
		  WHERE wait_event_type = 'Extension' AND wait_event = '$wait_event'
		    AND pid IN (SELECT pid FROM rr_waiters)"),
	"pg_stat_activity shows the sleeping waiters in wait event $wait_event");

my $c1 = rr_counters($replica);
is($c1->{waits_woken} - $c0->{waits_woken},
	$nwaiters, "waits_woken counted $nwaiters wake-ups");

$replica->safe_psql('postgres',
	'SELECT pg_cancel_backend(pid) FROM rr_waiters');
my $cancelled = 0;
for my $bg (@far)
{
	my $res = bg_finish($bg, 20);
	$cancelled++ if $res->{err} =~ /57014/;
}
is($cancelled, $nfar, 'the far waiters were cancelled');
ok(wait_waiters($replica, 0, 'true', 10), 'rr_waiters is empty at the end');

$c1 = rr_counters($replica);
is($c1->{waits} - $c0->{waits}, $nwaiters + $nfar, 'waits counted every call');
is($c1->{waits_cancelled} - $c0->{waits_cancelled},
	$nfar, 'waits_cancelled counted the far waiters');

done_testing();
