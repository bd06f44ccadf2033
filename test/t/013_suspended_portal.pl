
# Copyright (c) 2026, rr_router developers
#
# A wait must never drop the xmin of a snapshot that can still read.
#
# The extended protocol can leave a portal suspended (Execute with a row
# limit) and run more statements before Sync.  If rr_wait_for_lsn() dropped
# the backend's xmin while such a portal is alive, the startup process would
# replay VACUUM's removal of rows the portal's snapshot still sees without
# any recovery conflict, and the portal would then silently return too few
# rows.  The wait must be refused (0A000) instead, under READ COMMITTED and
# under REPEATABLE READ in autocommit, and the portal must then either
# return every row its snapshot sees or fail -- never lose rows quietly.

use strict;
use warnings FATAL => 'all';

use FindBin;
use lib $FindBin::RealBin;

use PostgreSQL::Test::Utils;
use Test::More;
use RRTest;
use RRWire;

my $nrows = 40000;
my $kept = 20000;

my $primary = rr_primary('primary');
my $replica = rr_replica($primary, 'replica',
	conf => "max_standby_streaming_delay = -1\n");

$primary->safe_psql('postgres',
	"CREATE TABLE big (g int) WITH (autovacuum_enabled = off);
	 INSERT INTO big SELECT g FROM generate_series(1, $nrows) g;
	 VACUUM (FREEZE) big;");
$primary->wait_for_catchup($replica);

for my $iso ('read committed', 'repeatable read')
{
	my $what = "$iso, autocommit";

	pause_replay($replica);

	# Rows past the first pages die on the primary; VACUUM removes them, but
	# its records wait on the paused replica.
	$primary->safe_psql('postgres',
		"DELETE FROM big WHERE g > $kept; VACUUM big;");
	my $token = $primary->safe_psql('postgres',
		'SELECT pg_current_wal_flush_lsn()');
	my $c = RRWire->connect($replica,
		options => { default_transaction_isolation => $iso });

	# P1: a scan whose snapshot sees all $nrows rows, suspended after one.
	$c->send_parse_bind_execute('SELECT g FROM big',
		portal => 'p1', max_rows => 1);
	$c->send_flush;
	my @m = $c->read_until('s');
	is(scalar(RRWire::rows(@m)), 1, "$what: P1 suspended after one row");

	# Before Sync, a wait that could drop the backend's xmin.
	$c->send_parse_bind_execute("SELECT rr_wait_for_lsn('$token', 20000)");
	$c->send_flush;

	# Let replay run: with the xmin dropped, VACUUM's removals replay
	# without a conflict while P1 is alive.
	resume_replay($replica);
	@m = ();
	for (;;)
	{
		my $msg = $c->read_message;
		die 'no answer to the wait' unless defined $msg;
		push @m, $msg;
		last if $msg->[0] eq 'C' || $msg->[0] eq 'E';
	}
	my $state = RRWire::sqlstate(@m);
	is($state, '0A000', "$what: wait refused while a suspended portal is alive");
	like(RRWire::error_fields($m[-1])->{M} // '',
		qr/cannot wait while another portal or snapshot/,
		"$what: the message says why");

	# Whatever happened, P1 must not lose rows: it returns all the rows its
	# snapshot sees or fails.  (After the refusal the server skips every
	# message up to Sync, so P1 returns nothing; a build that let the wait
	# drop xmin returns fewer rows here.)
	$c->send_execute('p1', 0);
	$c->send_sync;
	my @rest = $c->read_until_ready;
	my $got = scalar RRWire::rows(@rest);
	my $failed = defined $state || defined RRWire::sqlstate(@rest);
	ok($failed || $got == $nrows - 1,
		"$what: P1 returns every row its snapshot sees or fails "
		  . "(got $got of " . ($nrows - 1) . ($failed ? ', then an error' : '') . ')');

	# The session is still usable after Sync.
	$c->send_query('SELECT 1');
	@m = $c->read_until_ready;
	is_deeply([ RRWire::rows(@m) ], [ ['1'] ], "$what: session usable after Sync");
	$c->close;

	# Nothing is left in the waiter queue.
	is($replica->safe_psql('postgres', 'SELECT count(*) FROM rr_waiters'),
		'0', "$what: no waiter left behind");

	# Put the deleted rows back for the next round.
	$primary->safe_psql('postgres',
		"INSERT INTO big SELECT g FROM generate_series($kept + 1, $nrows) g;");
	$primary->wait_for_catchup($replica);
}

# Without a suspended portal the same wait in the same protocol flow works.
my $c = RRWire->connect($replica);
my $token = $primary->safe_psql('postgres', 'SELECT pg_current_wal_flush_lsn()');
$c->send_parse_bind_execute("SELECT rr_wait_for_lsn('$token', 20000)");
$c->send_sync;
my @m = $c->read_until_ready;
is_deeply([ RRWire::rows(@m) ], [ ['t'] ],
	'extended protocol without another portal: the wait answers true');
$c->close;

done_testing();
