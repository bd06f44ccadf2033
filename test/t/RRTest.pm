
# Copyright (c) 2025, rr_router contributors
#
# RRTest.pm
#	  Shared helpers for the rr_router TAP tests in test/t.
#
# Every node preloads rr_router unless told otherwise; the extension is
# created on the primary and reaches the replicas through replication.
# Times are measured on the server (clock_timestamp()) where possible, so a
# slow psql start does not count against the feature.

package RRTest;

use strict;
use warnings FATAL => 'all';

use Exporter 'import';
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

our @EXPORT = qw(
  rr_primary rr_replica
  bg_psql bg_finish bg_alive
  poll_until wait_waiters timed_sql
  rr_counters pause_replay resume_replay
  write_token far_lsn lsn_cmp lsn_bytes bytes_lsn sqlstate_of wait_pid_gone
  session quiet_primary conflict_pair
);

# Default settings for every node.  The framework's 10 connections are too
# few for background waiters; autovacuum is off so an idle primary makes no
# WAL that could hide a stall.
# wal_keep_size: a backup's checkpoint may otherwise recycle the segment a
# replica's walsender is still reading (seen under load in 001: the
# replica then never reconnects, having no slot).
my $base_conf = qq(
max_connections = 40
autovacuum = off
wal_keep_size = '256MB'
);

# Create and start a primary.  Options: preload (default 1) puts rr_router
# in shared_preload_libraries, extension (default 1) runs CREATE EXTENSION,
# has_archiving (default 0) archives WAL to $node->archive_dir, conf adds
# postgresql.conf lines.
sub rr_primary
{
	my ($name, %opt) = @_;
	my $preload = exists $opt{preload} ? $opt{preload} : 1;
	my $ext = exists $opt{extension} ? $opt{extension} : 1;

	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init(allows_streaming => 1,
		has_archiving => $opt{has_archiving} // 0);
	$node->append_conf('postgresql.conf', $base_conf);
	$node->append_conf('postgresql.conf',
		"shared_preload_libraries = 'rr_router'")
	  if $preload;
	$node->append_conf('postgresql.conf', $opt{conf}) if defined $opt{conf};
	$node->start;
	$node->safe_psql('postgres', 'CREATE EXTENSION rr_router') if $ext;
	return $node;
}

# Create and start a streaming replica of $primary from a fresh backup.
# Options: preload (default 1), conf (postgresql.conf lines, added last).
sub rr_replica
{
	my ($primary, $name, %opt) = @_;
	my $preload = exists $opt{preload} ? $opt{preload} : 1;
	my $backup = "bk_$name";

	$primary->backup($backup);
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init_from_backup($primary, $backup, has_streaming => 1);
	$node->append_conf('postgresql.conf',
		$preload
		? "shared_preload_libraries = 'rr_router'"
		: "shared_preload_libraries = ''");
	$node->append_conf('postgresql.conf', $opt{conf}) if defined $opt{conf};
	$node->start;
	catch_up_seen_by_primary($primary, $node);
	return $node;
}

# Wait until $primary's pg_stat_replication shows $standby replayed all WAL
# written so far.  Unlike wait_for_catchup(), which PostgreSQL 19's test
# framework answers with WAIT FOR LSN on the standby, this never connects
# to the standby, so it works with hot_standby = off too.
sub catch_up_seen_by_primary
{
	my ($primary, $standby) = @_;
	my $lsn = $primary->safe_psql('postgres', 'SELECT pg_current_wal_insert_lsn()');
	my $name = $standby->name;
	poll_until($primary,
		"SELECT coalesce(bool_or(replay_lsn >= '$lsn'), false) FROM pg_stat_replication "
		  . "WHERE application_name IN ('$name', 'walreceiver')", 't', 180)
	  or die "$name did not catch up to $lsn";
	return;
}

# If this build has rr_router.heartbeat_interval, turn the heartbeat off on
# $primary, so that nothing but the test writes WAL there (a heartbeat would
# hide a waiter that waits for WAL no record will ever end at).
sub quiet_primary
{
	my ($primary) = @_;
	my $has = $primary->safe_psql('postgres',
		"SELECT count(*) FROM pg_settings WHERE name = 'rr_router.heartbeat_interval'"
	);
	return 0 unless $has;
	$primary->safe_psql('postgres',
		"ALTER SYSTEM SET rr_router.heartbeat_interval = 0;\n"
		  . 'SELECT pg_reload_conf()');
	poll_until($primary, 'SHOW rr_router.heartbeat_interval', '0', 10);
	return 1;
}

# Start psql in the background on $node running $sql (a script; errors do
# not stop it).  Options: dsn (a connection string instead of $node's, e.g.
# a pooler's; $node may then be undef), app (application_name), verbose (1 sets
# VERBOSITY verbose so errors show their SQLSTATE).  Returns a handle for
# bg_finish.
sub bg_psql
{
	my ($node, $sql, %opt) = @_;
	my $bg = { out => '', err => '', started => time() };
	# a node, or (undef and) a connection string of its own in dsn
	my $connstr = $opt{dsn} // $node->connstr('postgres');
	my $psql = defined $node ? $node->installed_command('psql') : 'psql';
	$connstr .= " application_name=$opt{app}" if defined $opt{app};
	$sql = "\\set VERBOSITY verbose\n$sql" if $opt{verbose};
	# psql reads the script from a pipe IPC::Run keeps open: \q ends it.
	$bg->{in} = "$sql\n\\q\n";
	$bg->{h} = IPC::Run::start(
		[ $psql, '-XAtq', '-d', $connstr, '-f', '-' ],
		'<' => \$bg->{in},
		'>' => \$bg->{out},
		'2>' => \$bg->{err});
	# IPC::Run feeds stdin only when pumped: hand psql the whole script now.
	my $deadline = time() + 10;
	while (length $bg->{in} && time() < $deadline)
	{
		eval { $bg->{h}->pump_nb; 1 } or last;
		usleep(1_000) if length $bg->{in};
	}
	return $bg;
}

# True while the background psql has not exited.
sub bg_alive
{
	my ($bg) = @_;
	return 0 if $bg->{done} || !$bg->{h}->pumpable;
	eval { $bg->{h}->pump_nb; 1 } or return 0;
	return $bg->{h}->pumpable ? 1 : 0;
}

# Wait up to $timeout_s seconds for a background psql to exit (kill it
# then).  Returns a hash: out (without its final newline), err, rc (exit
# code, undef if it was killed), secs (seconds from this call until it
# exited).
sub bg_finish
{
	my ($bg, $timeout_s) = @_;
	$timeout_s //= 60;
	if (!$bg->{done})
	{
		my $t0 = time();
		my $deadline = $t0 + $timeout_s;
		usleep(2_000) while bg_alive($bg) && time() < $deadline;
		$bg->{secs} = time() - $t0;
		if (bg_alive($bg))
		{
			$bg->{h}->kill_kill;
			$bg->{rc} = undef;
		}
		else
		{
			$bg->{h}->finish;
			$bg->{rc} = $? >> 8;
		}
		$bg->{done} = 1;
		chomp $bg->{out};
	}
	return {
		out => $bg->{out},
		err => $bg->{err},
		rc => $bg->{rc},
		secs => $bg->{secs}
	};
}

# Run $sql on $node every 50ms until it prints $expected or $timeout_s
# (default 30) seconds pass.  Returns true on success; in list context also
# the elapsed seconds.  A true $quiet skips the diagnostic on giving up (for
# polls that are expected to give up).
sub poll_until
{
	my ($node, $sql, $expected, $timeout_s, $quiet) = @_;
	$expected //= 't';
	$timeout_s //= 30;
	my $t0 = time();
	my ($out, $err) = ('', '');
	while (1)
	{
		$node->psql(
			'postgres', $sql,
			stdout => \$out,
			stderr => \$err,
			on_error_stop => 1);
		chomp $out;
		my $ok = ($out eq $expected);
		if ($ok || time() - $t0 > $timeout_s)
		{
			diag "poll_until gave up after ${timeout_s}s: $sql\n"
			  . "expected '$expected', got '$out', stderr '$err'"
			  unless $ok || $quiet;
			return wantarray ? ($ok, time() - $t0) : $ok;
		}
		usleep(50_000);
	}
}

# Wait until rr_waiters on $node has $n rows matching $where.
sub wait_waiters
{
	my ($node, $n, $where, $timeout_s) = @_;
	$where //= 'true';
	return poll_until($node,
		"SELECT count(*) FROM rr_waiters WHERE $where",
		"$n", $timeout_s // 60);
}

# Run $sql in one psql session on $node and time it on the server.
# Returns a hash: out (what $sql printed), ms (server-side elapsed
# milliseconds; undef if the timing line is missing), err (stderr; errors
# do not stop the script and show their SQLSTATE).  Option setup: statements
# run first, outside the timing.
sub timed_sql
{
	my ($node, $sql, %opt) = @_;
	my $setup = $opt{setup} // '';
	my $script = qq(\\set VERBOSITY verbose
$setup
SELECT extract(epoch FROM clock_timestamp()) AS rr_t0 \\gset
$sql;
\\echo RR_TIMING
SELECT round((extract(epoch FROM clock_timestamp()) - :rr_t0) * 1000, 1);
);
	my ($out, $err) = ('', '');
	$node->psql(
		'postgres', $script,
		stdout => \$out,
		stderr => \$err,
		on_error_stop => 0);
	my ($res, $ms) = split /^RR_TIMING\n/m, $out, 2;
	$res //= '';
	chomp $res;
	chomp $ms if defined $ms;
	return { out => $res, ms => $ms, err => $err };
}

# The wait counters of rr_status as a hash.
sub rr_counters
{
	my ($node) = @_;
	my @cols = qw(waits waits_immediate waits_woken waits_timed_out
	  waits_cancelled);
	my $row = $node->safe_psql('postgres',
		'SELECT ' . join(', ', @cols) . ' FROM rr_status');
	my %c;
	@c{@cols} = split /\|/, $row;
	return \%c;
}

# Pause replay on $node and wait until it is really paused.
sub pause_replay
{
	my ($node) = @_;
	$node->safe_psql('postgres', 'SELECT pg_wal_replay_pause()');
	poll_until($node, 'SELECT pg_get_wal_replay_pause_state()', 'paused')
	  or die 'replay did not pause';
	return;
}

# Resume replay on $node; returns the server time (epoch seconds) of the
# resume.
sub resume_replay
{
	my ($node) = @_;
	return $node->safe_psql('postgres',
		"SELECT pg_wal_replay_resume();\n"
		  . 'SELECT extract(epoch FROM clock_timestamp())');
}

# Insert a row into $table (a text column v) on $primary and return the
# causality token rr_last_commit_lsn() taken in the same session.
sub write_token
{
	my ($primary, $table, $value) = @_;
	$value //= 'x';
	return $primary->safe_psql('postgres',
		"INSERT INTO $table(v) VALUES ('$value');\n"
		  . 'SELECT rr_last_commit_lsn()');
}

# An LSN about 1 GB ahead of $primary's current position: never reached.
sub far_lsn
{
	my ($primary) = @_;
	return $primary->safe_psql('postgres',
		'SELECT pg_current_wal_lsn() + 1073741824::numeric');
}

# An LSN in text form as a byte position, and back.
sub lsn_bytes
{
	my ($lsn) = @_;
	my ($hi, $lo) = map { hex } split m{/}, $lsn;
	return $hi * 4294967296 + $lo;
}

sub bytes_lsn
{
	my ($b) = @_;
	return sprintf('%X/%X', int($b / 4294967296), $b % 4294967296);
}

# Compare two LSNs given as text: -1, 0 or 1.
sub lsn_cmp
{
	my ($x, $y) = @_;
	return lsn_bytes($x) <=> lsn_bytes($y);
}

# Wait up to $timeout_s seconds for process $pid to be gone (reaped, not
# a zombie); true if it is.
sub wait_pid_gone
{
	my ($pid, $timeout_s) = @_;
	my $deadline = time() + ($timeout_s // 30);
	usleep(50_000) while kill(0, $pid) && time() < $deadline;
	return !kill(0, $pid);
}

# The SQLSTATE of the first ERROR or FATAL in psql's verbose stderr, or ''.
sub sqlstate_of
{
	my ($err) = @_;
	return $1 if defined $err && $err =~ /(?:ERROR|FATAL):\s+([0-9A-Z]{5}):/;
	return '';
}

# A quiet persistent psql session on $node (unlike BackgroundPsql it does
# not log every query, so loops of thousands of statements stay cheap).
# $s->q($sql) returns the output and dies on an error; $s->q_err($sql)
# returns (output, stderr); $s->quit ends it.
sub session
{
	my ($node, %opt) = @_;
	return RRTest::Session->new($node, %opt);
}

# A primary with a table 'c' of 5000 rows (autovacuum off, so cleanup
# happens only when a test asks) and a table 't' for tokens, and a replica
# where that cleanup conflicts with snapshots: hot_standby_feedback off,
# max_standby_streaming_delay = $delay.  Returns ($primary, $replica).
sub conflict_pair
{
	my ($delay) = @_;
	my $primary = rr_primary('primary');
	$primary->safe_psql(
		'postgres', q{
CREATE TABLE c(id int PRIMARY KEY, v text) WITH (autovacuum_enabled = off);
INSERT INTO c SELECT i, 'v' FROM generate_series(1, 5000) i;
CREATE TABLE t(id serial, v text);
});
	my $replica = rr_replica(
		$primary, 'replica',
		conf => qq(
hot_standby_feedback = off
max_standby_streaming_delay = $delay
));
	return ($primary, $replica);
}


package RRTest::Session;

use strict;
use warnings FATAL => 'all';
use IPC::Run;

sub new
{
	my ($class, $node, %opt) = @_;
	my $self = bless { in => '', out => '', err => '', n => 0 }, $class;
	my $connstr = $node->connstr('postgres');
	$connstr .= " application_name=$opt{app}" if defined $opt{app};
	$self->{timer} = IPC::Run::timeout(60);
	$self->{h} = IPC::Run::start(
		[ $node->installed_command('psql'), '-XAtq', '-d', $connstr, '-f', '-' ],
		'<' => \$self->{in},
		'>' => \$self->{out},
		'2>' => \$self->{err},
		$self->{timer});
	$self->q("\\set VERBOSITY verbose");
	return $self;
}

sub q_err
{
	my ($self, $sql, $timeout_s) = @_;
	my $n = ++$self->{n};
	my $mark = "RR_END_$n";
	$self->{timer}->start($timeout_s // 60);
	$self->{in} .= "$sql\n;\n\\echo $mark\n\\warn $mark\n";
	$self->{h}->pump
	  until $self->{out} =~ /^$mark\n/m && $self->{err} =~ /^$mark\n/m;
	$self->{timer}->reset;
	my ($out, $err) = ($self->{out}, $self->{err});
	$self->{out} = '';
	$self->{err} = '';
	$out =~ s/^$mark\n//m;
	$err =~ s/^$mark\n//m;
	chomp $out;
	return ($out, $err);
}

sub q
{
	my ($self, $sql, $timeout_s) = @_;
	my ($out, $err) = $self->q_err($sql, $timeout_s);
	die "query failed: $sql\n$err" if $err ne '';
	return $out;
}

sub quit
{
	my ($self) = @_;
	$self->{in} .= "\\q\n";
	$self->{h}->finish;
	return;
}

1;
