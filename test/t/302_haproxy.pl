
# Copyright (c) 2026, rr_router contributors
#
# A real HAProxy (/usr/sbin/haproxy, Debian package haproxy) in front of two
# replicas, configured from test/http/haproxy.cfg.in: a TCP frontend,
# "option httpchk GET /replica?max_staleness=1s" against each replica's
# rr_router endpoint, inter 500ms fall 2 rise 2, the primary as backup.
# Pausing replay on one replica takes it out of rotation within a few
# seconds, resuming puts it back; both replicas stale sends reads to the
# primary; the kill switch takes a replica out too.  Where connections land
# is observed through the frontend (SELECT current_setting('port')), HAProxy's
# view through its stats socket; the timings are printed.

use strict;
use warnings FATAL => 'all';
use FindBin;
use lib $FindBin::RealBin;
use lib "$FindBin::RealBin/../http";

use IO::Socket::UNIX;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use RRHttp;
use RRTest;
use Test::More;
use Time::HiRes qw(time usleep);

my $haproxy = '/usr/sbin/haproxy';
if (!-x $haproxy)
{
	fail("$haproxy is installed (Debian package haproxy)");
	done_testing();
	exit;
}

my $http_dir = "$FindBin::RealBin/../http";
my %http_port = map { $_ => PostgreSQL::Test::Cluster::get_free_port() }
  qw(primary replica1 replica2);

# TCP for HAProxy's connections; a short heartbeat so the sawtooth of a
# healthy replica's staleness (up to one heartbeat interval) stays far
# below the 1 s bound of the check.
my $primary = rr_primary(
	'primary',
	conf => "listen_addresses = '127.0.0.1'\n"
	  . "rr_router.heartbeat_interval = '250ms'\n"
	  . "rr_router.http_port = $http_port{primary}");
$primary->safe_psql('postgres', 'CREATE TABLE t(id serial, v text)');
my %node = (primary => $primary);
for my $name (qw(replica1 replica2))
{
	$node{$name} = rr_replica($primary, $name,
		conf => "rr_router.http_port = $http_port{$name}");
}
my %name_of_port = map { $node{$_}->port => $_ } keys %node;

# --- HAProxy ----------------------------------------------------------------

my $sockdir = PostgreSQL::Test::Utils::tempdir_short();
my $stats_socket = "$sockdir/haproxy.sock";
my $read_port = PostgreSQL::Test::Cluster::get_free_port();
my $cfg = "${PostgreSQL::Test::Utils::tmp_check}/haproxy.cfg";
render_template(
	"$http_dir/haproxy.cfg.in",
	$cfg,
	{
		STATS_SOCKET => $stats_socket,
		READ_PORT => $read_port,
		PRIMARY_PORT => $primary->port,
		REPLICA1_PORT => $node{replica1}->port,
		REPLICA1_HTTP_PORT => $http_port{replica1},
		REPLICA2_PORT => $node{replica2}->port,
		REPLICA2_HTTP_PORT => $http_port{replica2},
	});
my ($out, $err) = ('', '');
IPC::Run::run([ $haproxy, '-c', '-f', $cfg ], '>', \$out, '2>', \$err);
is($? >> 8, 0, 'haproxy -c accepts the rendered haproxy.cfg') or diag "$out$err";

my $hlog = "${PostgreSQL::Test::Utils::log_path}/haproxy.log";
my $t_start = time();
my $hap = IPC::Run::start([ $haproxy, '-db', '-f', $cfg ],
	'<', \undef, '>', $hlog, '2>&1');
END { eval { $hap->kill_kill(grace => 2) if $hap; 1 }; }

# HAProxy's "show stat" as { server => { status, check_status, chkdown, ... } }.
sub haproxy_stat
{
	my $s = IO::Socket::UNIX->new(Peer => $stats_socket, Type => SOCK_STREAM)
	  or return {};
	print $s "show stat\n";
	my $csv = do { local $/; <$s> };
	close $s;
	my ($head, @rows) = split /\n/, $csv // '';
	return {} unless defined $head && $head =~ s/^# //;
	my @cols = split /,/, $head;
	my %st;
	for my $row (@rows)
	{
		my %r;
		@r{@cols} = split /,/, $row, -1;
		next unless ($r{pxname} // '') eq 'pg_replicas';
		$st{ $r{svname} } = \%r;
	}
	return \%st;
}

sub status_of { return haproxy_stat()->{ $_[0] }{status} // 'none' }

# Open one connection through the frontend: the name of the server it
# landed on, or 'error'.
sub land
{
	my ($o, $e) = ('', '');
	IPC::Run::run(
		[
			$primary->installed_command('psql'), '-XAtq', '-d',
			"host=127.0.0.1 port=$read_port dbname=postgres connect_timeout=3",
			'-c', "SELECT current_setting('port')"
		],
		'>', \$o, '2>', \$e, IPC::Run::timeout(10));
	chomp $o;
	return $name_of_port{$o} // 'error';
}

# Where $n successive connections land: { server => count }.
sub spread
{
	my ($n) = @_;
	my %c;
	$c{ land() }++ for 1 .. $n;
	return \%c;
}

sub fmt { my ($h) = @_; return join(', ', map { "$_=$h->{$_}" } sort keys %$h) }

# Poll every 100 ms until HAProxy's status of $server matches $re; returns
# seconds since $t0, or undef after $timeout_s.
sub wait_status
{
	my ($server, $re, $t0, $timeout_s) = @_;
	while (time() - $t0 < $timeout_s)
	{
		return time() - $t0 if status_of($server) =~ $re;
		usleep(100_000);
	}
	return undef;
}

# Staleness reported by $name's endpoint, for messages.
sub staleness_of
{
	my ($name) = @_;
	my (undef, $s) = http_state($http_port{$name}, '/health');
	return $s && defined $s->{staleness} ? "$s->{staleness} s" : 'unknown';
}

my $t_up;
for my $name (qw(replica1 replica2))
{
	my $secs = wait_status($name, qr/^UP$/, $t_start, 30);
	ok(defined $secs, "HAProxy has $name UP");
}
# two good checks in a row on each: L7OK
my $deadline = time() + 10;
usleep(100_000)
  while time() < $deadline
  && grep { (haproxy_stat()->{$_}{check_status} // '') ne 'L7OK' }
  qw(replica1 replica2);
for my $name (qw(replica1 replica2))
{
	my $st = haproxy_stat()->{$name};
	is($st->{check_status}, 'L7OK', "$name passes the HTTP check (L7OK)");
	note "$name: check $st->{check_status} code $st->{check_code} "
	  . "in $st->{check_duration} ms, staleness " . staleness_of($name);
}
note sprintf('HAProxy started and both replicas checked in %.2f s',
	time() - $t_start);
my $st0 = haproxy_stat();

my $c = spread(8);
note 'both fresh, 8 connections: ' . fmt($c);
ok($c->{replica1} && $c->{replica2}, 'reads are spread over both replicas');
ok(!$c->{primary} && !$c->{error}, 'no read goes to the primary or fails');

# --- replica1 paused: out of rotation ----------------------------------------

pause_replay($node{replica1});
$primary->safe_psql('postgres', "INSERT INTO t(v) VALUES ('paused')");
my $t0 = time();
my ($t_down, $t_last_land, $n_landed) = (undef, undef, 0);
while (time() - $t0 < 15)
{
	my $where = land();
	$n_landed++;
	$t_last_land = time() - $t0 if $where eq 'replica1';
	if (!defined $t_down && status_of('replica1') =~ /^DOWN/)
	{
		$t_down = time() - $t0;
		note 'replica1 DOWN at staleness ' . staleness_of('replica1');
	}
	last if defined $t_down && time() - $t0 > $t_down + 1;
	usleep(100_000);
}
ok(defined $t_down, 'HAProxy marks the paused replica1 DOWN');
note sprintf('replica1 paused: HAProxy marked it DOWN %.2f s after the pause; '
	  . 'the last of %d probe connections to land on it came %s',
	$t_down // -1, $n_landed,
	defined $t_last_land ? sprintf('%.2f s after the pause', $t_last_land) : 'never');
cmp_ok($t_down // 99, '<', 5, '... within a few seconds');
$c = spread(10);
note 'replica1 paused, 10 connections: ' . fmt($c);
is(fmt($c), 'replica2=10', 'HAProxy sends no reads to the paused replica');

# --- both stale: reads fall back to the primary ----------------------------

pause_replay($node{replica2});
$primary->safe_psql('postgres', "INSERT INTO t(v) VALUES ('both paused')");
my $t1 = time();
my $secs = wait_status('replica2', qr/^DOWN/, $t1, 15);
ok(defined $secs, 'HAProxy marks replica2 DOWN once it is paused too');
note sprintf('replica2 paused: DOWN %.2f s after its pause', $secs // -1);
$c = spread(4);
note 'both paused, 4 connections: ' . fmt($c);
is(fmt($c), 'primary=4', 'with no fresh replica, reads go to the primary (backup)');

my $t2 = time();
resume_replay($node{replica2});
$secs = wait_status('replica2', qr/^UP$/, $t2, 15);
ok(defined $secs, 'replica2 is UP again after its resume');
note sprintf('replica2 resumed: UP %.2f s after the resume', $secs // -1);

# --- replica1 resumed: back in rotation -------------------------------------

my $t3 = time();
resume_replay($node{replica1});
my ($t_up1, $t_first_land) = (undef, undef);
while (time() - $t3 < 15)
{
	my $where = land();
	$t_first_land //= time() - $t3 if $where eq 'replica1';
	$t_up1 //= time() - $t3 if status_of('replica1') eq 'UP';
	last if defined $t_up1 && defined $t_first_land;
	usleep(100_000);
}
ok(defined $t_up1, 'HAProxy marks replica1 UP after the resume');
ok(defined $t_first_land, 'reads land on replica1 again');
note sprintf('replica1 resumed: UP %.2f s, first read on it %.2f s after the resume',
	$t_up1 // -1, $t_first_land // -1);
cmp_ok($t_up1 // 99, '<', 5, '... within a few seconds');
$c = spread(8);
note 'both fresh again, 8 connections: ' . fmt($c);
ok($c->{replica1} && $c->{replica2} && !$c->{primary} && !$c->{error},
	'reads are spread over both replicas again');

# --- kill switch: out of rotation at once -------------------------------------

my $t4 = time();
$node{replica2}->safe_psql('postgres',
	"ALTER SYSTEM SET rr_router.replica_reads = off;\n" . 'SELECT pg_reload_conf()');
$secs = wait_status('replica2', qr/^DOWN/, $t4, 15);
ok(defined $secs, 'the kill switch takes replica2 out of rotation');
note sprintf('replica2 kill switch off: DOWN %.2f s after the reload', $secs // -1);
$c = spread(6);
note 'replica2 switched off, 6 connections: ' . fmt($c);
is(fmt($c), 'replica1=6', '... no read goes to it');
my $t5 = time();
$node{replica2}->safe_psql('postgres',
	"ALTER SYSTEM RESET rr_router.replica_reads;\n" . 'SELECT pg_reload_conf()');
$secs = wait_status('replica2', qr/^UP$/, $t5, 15);
ok(defined $secs, 'the kill switch on again puts replica2 back');
note sprintf('replica2 kill switch on: UP %.2f s after the reload', $secs // -1);

# --- no flapping ----------------------------------------------------------------

my $st = haproxy_stat();
for my $name (qw(replica1 replica2))
{
	note "$name: chkfail $st->{$name}{chkfail} chkdown $st->{$name}{chkdown} "
	  . "status $st->{$name}{status}";
}
is($st->{replica1}{chkdown} - $st0->{replica1}{chkdown},
	1, 'replica1 went DOWN exactly once (no flapping)');
is($st->{replica2}{chkdown} - $st0->{replica2}{chkdown},
	2, 'replica2 went DOWN exactly twice (no flapping)');

$hap->signal('TERM');
$hap->finish;
undef $hap;
my $log = slurp_file($hlog);
like($log, qr{pg_replicas/replica1 is DOWN}, 'HAProxy logged replica1 going DOWN');
note "HAProxy's state changes:\n"
  . join("\n", grep { /is (?:UP|DOWN)/ && !/^\[/ } split /\n/, $log);

done_testing();
