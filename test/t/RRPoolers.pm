
# Copyright (c) 2026, rr_router contributors
#
# RRPoolers.pm
#	  Real connection poolers for the rr_router TAP tests: PgBouncer and
#	  pgpool-II from Debian's packages, started in the foreground on a
#	  free port of 127.0.0.1, with their configuration and log in the
#	  test's own directory, and stopped when the test ends.
#
# A test that needs a pooler asks find_pooler() first and skips the whole
# file with a message when the program is not installed; test/deps.sh
# installs both, so under CI they run.

package RRPoolers;

use strict;
use warnings FATAL => 'all';

use Exporter 'import';
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use RRTest ();
use Test::More;
use Time::HiRes qw(time usleep);

our @EXPORT = qw(find_pooler start_pgbouncer start_pgpool stop_pooler
  pooler_dsn wait_port python3_with psql_dsn bg_psql_dsn);

my @started;

# The full path of pooler program $name (pgbouncer, pgpool), or undef.
# Debian installs both in /usr/sbin, which an ordinary user's PATH lacks.
sub find_pooler
{
	my ($name) = @_;
	for my $dir (split(/:/, $ENV{PATH} // ''), '/usr/sbin', '/usr/bin',
		'/usr/local/sbin', '/usr/local/bin')
	{
		return "$dir/$name" if $dir ne '' && -x "$dir/$name";
	}
	return undef;
}

# /usr/bin/python3 if it imports every module named, else undef; the
# second value is the import error.
sub python3_with
{
	my @modules = @_;
	my ($python) = grep { -x $_ } ('/usr/bin/python3');
	return (undef, 'no /usr/bin/python3') unless $python;
	my ($out, $err) = ('', '');
	IPC::Run::run([ $python, '-c', 'import ' . join(', ', @modules) ],
		'>' => \$out, '2>' => \$err)
	  or return (undef, $err);
	return ($python, '');
}

# Wait until something accepts TCP connections on 127.0.0.1:$port.
sub wait_port
{
	my ($port, $timeout_s) = @_;
	require IO::Socket::INET;
	my $deadline = time() + ($timeout_s // 30);
	while (time() < $deadline)
	{
		my $s = IO::Socket::INET->new(
			PeerAddr => '127.0.0.1',
			PeerPort => $port,
			Proto => 'tcp',
			Timeout => 1);
		if ($s) { close $s; return 1; }
		usleep(50_000);
	}
	return 0;
}

sub write_file
{
	my ($path, $text) = @_;
	open my $fh, '>', $path or die "cannot write $path: $!";
	print $fh $text;
	close $fh;
	return;
}

# Start PgBouncer in front of the given databases.  $dbs: alias =>
# { node => a PostgreSQL::Test::Cluster, mode => session|transaction,
# size => pool size }.  Returns a handle with port, dir, log.
sub start_pgbouncer
{
	my ($name, $dbs, %opt) = @_;
	my $bin = find_pooler('pgbouncer') or die 'pgbouncer is not installed';
	my $dir = PostgreSQL::Test::Utils::tempdir("pgbouncer_$name");
	my $port = PostgreSQL::Test::Cluster::get_free_port();
	my $user = $ENV{USER} // getpwuid($>);

	my $databases = '';
	for my $alias (sort keys %$dbs)
	{
		my $d = $dbs->{$alias};
		$databases .= sprintf(
			"%s = host=%s port=%d dbname=postgres pool_mode=%s pool_size=%d\n",
			$alias, $d->{node}->host, $d->{node}->port, $d->{mode},
			$d->{size});
	}
	write_file("$dir/userlist.txt", qq("$user" ""\n));
	write_file(
		"$dir/pgbouncer.ini", qq([databases]
$databases
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = trust
auth_file = $dir/userlist.txt
admin_users = $user
pidfile = $dir/pgbouncer.pid
logfile = $dir/pgbouncer.log
max_client_conn = 200
server_reset_query = DISCARD ALL
ignore_startup_parameters = extra_float_digits
) . ($opt{extra} // ''));

	# Output goes to files, never to pipes: nobody drains a pipe while the
	# test waits for a client, and a pooler blocked on a full pipe stalls
	# every connection.
	my $h = IPC::Run::start([ $bin, '-q', "$dir/pgbouncer.ini" ],
		'<' => '/dev/null', '>' => "$dir/stdout", '2>' => "$dir/stderr");
	my $p = {
		kind => 'pgbouncer',
		h => $h,
		port => $port,
		dir => $dir,
		log => "$dir/pgbouncer.log",
	};
	push @started, $p;
	wait_port($port)
	  or die "pgbouncer did not start:\n" . slurp_file("$dir/stderr");
	return $p;
}

# Start pgpool-II in streaming-replication mode with load balancing on:
# backend 0 is $primary, backend 1 $replica, and every read of a session
# balanced to a server goes to the replica (weights 0 and 1).  $extra is
# appended to pgpool.conf.  Returns a handle with port, dir, log.
sub start_pgpool
{
	my ($name, $primary, $replica, $extra) = @_;
	my $bin = find_pooler('pgpool') or die 'pgpool is not installed';
	my $dir = PostgreSQL::Test::Utils::tempdir("pgpool_$name");
	my $port = PostgreSQL::Test::Cluster::get_free_port();
	my $pcp_port = PostgreSQL::Test::Cluster::get_free_port();
	my $user = $ENV{USER} // getpwuid($>);
	my ($h0, $p0, $h1, $p1) =
	  ($primary->host, $primary->port, $replica->host, $replica->port);

	write_file("$dir/pcp.conf", '');
	write_file("$dir/pool_hba.conf", "host all all 127.0.0.1/32 trust\n");
	write_file(
		"$dir/pgpool.conf", qq(
backend_clustering_mode = 'streaming_replication'
listen_addresses = '127.0.0.1'
port = $port
socket_dir = '$dir'
pcp_listen_addresses = ''
pcp_port = $pcp_port
pcp_socket_dir = '$dir'
pid_file_name = '$dir/pgpool.pid'
logdir = '$dir'
log_destination = 'stderr'
num_init_children = 8
max_pool = 2
enable_pool_hba = off
backend_hostname0 = '$h0'
backend_port0 = $p0
backend_weight0 = 0
backend_flag0 = 'ALWAYS_PRIMARY|DISALLOW_TO_FAILOVER'
backend_application_name0 = 'primary'
backend_hostname1 = '$h1'
backend_port1 = $p1
backend_weight1 = 1
backend_flag1 = 'DISALLOW_TO_FAILOVER'
backend_application_name1 = 'replica'
load_balance_mode = on
sr_check_period = 0
sr_check_user = '$user'
health_check_period = 0
failover_on_backend_error = off
use_watchdog = off
delay_threshold = 0
memory_cache_enabled = off
) . ($extra // ''));

	# pgpool logs to stderr: a file, not a pipe (see start_pgbouncer).
	my $h = IPC::Run::start(
		[
			$bin, '-n', '-f', "$dir/pgpool.conf", '-F', "$dir/pcp.conf",
			'-a', "$dir/pool_hba.conf"
		],
		'<' => '/dev/null',
		'>' => "$dir/stdout",
		'2>' => "$dir/pgpool.log");
	my $p = {
		kind => 'pgpool',
		h => $h,
		port => $port,
		dir => $dir,
		log => "$dir/pgpool.log",
	};
	push @started, $p;
	wait_port($port)
	  or die "pgpool did not start:\n" . slurp_file("$dir/pgpool.log");
	return $p;
}

# A libpq connection string for database $db through pooler $p.
sub pooler_dsn
{
	my ($p, $db) = @_;
	return "host=127.0.0.1 port=$p->{port} dbname=$db connect_timeout=10";
}

# Run the psql script $sql in one session on $dsn (each statement its own
# round trip); errors do not stop it.  Returns (stdout, stderr), chomped.
sub psql_dsn
{
	my ($dsn, $sql) = @_;
	my ($out, $err) = ('', '');
	IPC::Run::run(
		[ 'psql', '-XAtq', '-v', 'VERBOSITY=verbose', '-d', $dsn, '-f', '-' ],
		'<' => \"$sql\n",
		'>' => \$out,
		'2>' => \$err,
		IPC::Run::timeout(120));
	chomp $out;
	chomp $err;
	return ($out, $err);
}

# As RRTest::bg_psql, on a connection string: psql runs $sql in the
# background; RRTest::bg_finish collects it.
sub bg_psql_dsn
{
	my ($dsn, $sql) = @_;
	return RRTest::bg_psql(undef, $sql, dsn => $dsn);
}

# Stop pooler $p: SIGINT (fast shutdown for both), then SIGKILL.
sub stop_pooler
{
	my ($p) = @_;
	return if $p->{stopped};
	$p->{stopped} = 1;
	eval {
		$p->{h}->signal('INT');
		my $deadline = time() + 10;
		while (time() < $deadline)
		{
			$p->{h}->pump_nb;
			last unless $p->{h}->pumpable;
			usleep(50_000);
		}
		$p->{h}->kill_kill if $p->{h}->pumpable;
		$p->{h}->finish;
		1;
	};
	return;
}

END
{
	stop_pooler($_) for @started;
}

1;
