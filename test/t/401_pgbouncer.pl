
# Copyright (c) 2026, rr_router contributors
#
# Tokens through a real PgBouncer, in session and in transaction pooling, in
# front of the primary and of a replica that applies WAL 10 ms late
# (recovery_min_apply_delay), so that every wait really waits.  8 clients
# run 1000 write -> token -> wait -> read cycles each
# (test/clients/poolers/token_cycles.py); the primary's pools hold 3 server
# connections, fewer than the clients, so every server connection carries
# the commits of several clients (the test checks it).
#
# - Session pooling: a client's session keeps its server connection, so
#   rr_last_commit_lsn() as a second statement is right (each write has a
#   session of its own, so each server connection serves all clients in
#   turn); no missed write.
# - Transaction pooling: the token must be read in the round trip that
#   committed ("BEGIN; ...; COMMIT; SELECT rr_last_commit_lsn()" as one
#   simple Query), or be pg_current_wal_lsn() taken on the primary after the
#   commit; both: no missed write.  The naive recipe (rr_last_commit_lsn() as
#   a second round trip) is answered by whichever server connection PgBouncer
#   picks: the test shows it missing writes.
# - The ParameterStatus route: rr_router.report_commit_lsn on for every
#   server connection (ALTER ROLE ... SET), the token read with
#   conn.info.parameter_status("rr_router.last_commit_lsn") after the round
#   trip that committed.  It arrives in that round trip, so it is the
#   client's own token under transaction pooling too: no missed write.

use strict;
use warnings FATAL => 'all';
use FindBin;
use lib $FindBin::RealBin;

use IPC::Run;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use RRPoolers;
use RRTest;
use Test::More;
use Time::HiRes qw(time);

plan skip_all => 'pgbouncer is not installed (apt-get install pgbouncer)'
  unless find_pooler('pgbouncer');
my ($python, $pyerr) = python3_with('psycopg');
plan skip_all => "python3 with psycopg 3 is needed: $pyerr" unless $python;

my $CLIENTS = 8;
my $CYCLES = $ENV{RR_POOLER_CYCLES} // 1000;
my $client = "$FindBin::RealBin/../clients/poolers/token_cycles.py";

my $primary = rr_primary('primary');
$primary->safe_psql(
	'postgres', q{
CREATE TABLE rr_pool_t(run text, client int, seq int,
                       PRIMARY KEY (run, client, seq));
});
my $replica = rr_replica($primary, 'replica',
	conf => "recovery_min_apply_delay = '10ms'");

# The ParameterStatus route needs rr_router.report_commit_lsn.
my $can_report = $primary->safe_psql('postgres',
	"SELECT count(*) FROM pg_settings WHERE name = 'rr_router.report_commit_lsn'");

# Pools: 3 server connections to the primary, fewer than the 8 clients;
# as many as clients to the replica, where waits hold a connection.
my $pgb = start_pgbouncer(
	'main',
	{
		p_session => { node => $primary, mode => 'session', size => 3 },
		p_tx => { node => $primary, mode => 'transaction', size => 3 },
		r_session => { node => $replica, mode => 'session', size => $CLIENTS },
		r_tx => { node => $replica, mode => 'transaction', size => $CLIENTS },
	});
note "pgbouncer on port $pgb->{port}";

# Through PgBouncer, the aliases reach the right servers.
for my $alias (qw(p_session p_tx r_session r_tx))
{
	my ($out, $err) = ('', '');
	IPC::Run::run(
		[
			$primary->installed_command('psql'), '-XAtq',
			'-d', pooler_dsn($pgb, $alias),
			'-c', 'SELECT pg_is_in_recovery()'
		],
		'>' => \$out,
		'2>' => \$err);
	chomp $out;
	is($out, ($alias =~ /^r_/ ? 't' : 'f'),
		"pgbouncer alias $alias reaches the " . ($alias =~ /^r_/ ? 'replica' : 'primary'))
	  or diag $err;
}

# Run the cycles; returns the counts as a hash.
sub cycles
{
	my ($mode, $recipe, %opt) = @_;
	my ($p, $r) = $mode eq 'session' ? qw(p_session r_session) : qw(p_tx r_tx);
	my $run = "$mode-$recipe";
	my @cmd = (
		$python, $client,
		'--write' => pooler_dsn($pgb, $p),
		'--read' => pooler_dsn($pgb, $r),
		'--recipe' => $recipe,
		'--run' => $run,
		'--clients' => $CLIENTS,
		'--cycles' => $CYCLES,
		($opt{close_writer} ? ('--close-writer') : ()),
		'--deadline' => $ENV{RR_POOLER_DEADLINE} // 600);
	my $before = rr_counters($replica);
	my ($out, $err) = ('', '');
	my $t0 = time();
	IPC::Run::run(\@cmd, '>' => \$out, '2>' => \$err, IPC::Run::timeout(($ENV{RR_POOLER_DEADLINE} // 600) + 60));
	my ($json) = $out =~ /^RESULT (.*)$/m;
	my $res = $json ? decode_json($json) : { errors => ["no result: $err"] };
	my $after = rr_counters($replica);
	$res->{waits_woken} = $after->{waits_woken} - $before->{waits_woken};
	$res->{secs} = sprintf('%.1f', time() - $t0);
	diag sprintf(
		'%-11s %-16s %d cycles: %d missed reads, %d tokens older than the '
		  . 'own write, %d waits false, %d waits slept (server: %d woken), '
		  . '%d server connections for the writes, up to %d clients on one; %s s',
		$mode, $recipe, $res->{cycles} // 0, $res->{missed} // -1,
		$res->{stale_tokens} // -1, $res->{wait_false} // -1,
		$res->{waits_over_5ms} // -1, $res->{waits_woken},
		$res->{server_connections} // 0,
		$res->{max_clients_per_connection} // 0, $res->{secs});
	is_deeply($res->{errors}, [], "$run: every client finished")
	  or diag $err;
	is($res->{cycles}, $CLIENTS * $CYCLES,
		"$run: $CLIENTS clients x $CYCLES cycles ran");
	return $res;
}

# A correct recipe: no missed write, no stale token, and the setup really
# shared server connections between clients and really waited.
sub correct
{
	my ($mode, $recipe, %opt) = @_;
	my $res = cycles($mode, $recipe, %opt);
	my $run = "$mode-$recipe";
	is($res->{missed}, 0, "$run: zero missed writes");
	is($res->{wait_false}, 0, "$run: every wait answered true");
	is($res->{no_token}, 0, "$run: every write had a token");
	is($res->{stale_tokens}, 0,
		"$run: no token older than the client's own write");
	ok($res->{server_connections} <= 3,
		"$run: the writes went through at most 3 server connections");
	ok($res->{max_clients_per_connection} >= 2,
		"$run: server connections carried several clients' commits");
	ok($res->{waits_woken} >= $CLIENTS * $CYCLES / 10,
		"$run: the replica woke sleeping waiters ($res->{waits_woken})");
	return $res;
}

# Session pooling: a new session for every write (as a web request would
# have), so each of the 3 server connections serves every client in turn.
correct('session', 'naive', close_writer => 1);
correct('session', 'same_trip', close_writer => 1);

# Transaction pooling.
correct('transaction', 'same_trip');
correct('transaction', 'wal_lsn');

# The naive recipe under transaction pooling is wrong.
my $naive = cycles('transaction', 'naive');
ok($naive->{stale_tokens} > 0,
	"transaction-naive: tokens older than the client's own write "
	  . "($naive->{stale_tokens} of " . $CLIENTS * $CYCLES . ')');
ok($naive->{missed} > 0,
	"transaction-naive: missed writes ($naive->{missed} of "
	  . $CLIENTS * $CYCLES . ')');

# The ParameterStatus route.  The setting must be on for every server
# connection (a SET from one client would land on one server connection):
# ALTER ROLE ... SET, or postgresql.conf.
SKIP:
{
	skip 'this build has no rr_router.report_commit_lsn', 1
	  unless $can_report;

	my $user = $primary->safe_psql('postgres', 'SELECT current_user');
	$primary->safe_psql('postgres',
		qq{ALTER ROLE "$user" SET rr_router.report_commit_lsn = on});
	# New server connections pick the role setting up.
	$primary->safe_psql('postgres',
		"SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		  WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()");
	correct('session', 'parameter_status', close_writer => 1);
	correct('transaction', 'parameter_status');
	$primary->safe_psql('postgres',
		qq{ALTER ROLE "$user" RESET rr_router.report_commit_lsn});
}

stop_pooler($pgb);
done_testing();
