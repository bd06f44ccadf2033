
# Copyright (c) 2026, rr_router contributors
#
# The token reported the way core reports settings (SPEC section 1), seen on
# the wire with a raw protocol client (RRWire.pm), since libpq keeps only
# the last value of each parameter:
# - with rr_router.report_commit_lsn on, a round trip that commits any
#   number of times (ten commits in one simple Query, several commits in an
#   extended-protocol pipeline before one Sync) carries exactly one
#   ParameterStatus per setting, just before its ReadyForQuery, with the
#   newest token; a round trip that commits nothing carries none;
# - rollbacks, savepoints, PREPARE / COMMIT PREPARED and an error after a
#   commit in the same query report exactly what rr_last_commit_lsn() says;
# - SET "rr_router.last_commit_lsn" TO '...' (as a pooler replays it) works
#   and changes the display only, never rr_last_commit_lsn();
# - with reporting off, commits report nothing; at connection start core
#   reports both settings empty, as it reports every GUC_REPORT setting.

use strict;
use warnings FATAL => 'all';
use FindBin;
use lib $FindBin::RealBin;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use RRTest;
use RRWire;
use Test::More;

my $LSN = 'rr_router.last_commit_lsn';
my $TOKEN = 'rr_router.last_commit_token';

my $node = rr_primary('primary', conf => 'max_prepared_transactions = 2');
$node->safe_psql('postgres', 'CREATE TABLE t(id serial, v text)');
my $tli = $node->safe_psql('postgres',
	'SELECT timeline_id FROM pg_control_checkpoint()');

my $c = RRWire->connect($node,
	options => '-c rr_router.report_commit_lsn=on');

is($c->{startup_params}{$LSN}, '',
	'at connection start core reports rr_router.last_commit_lsn, empty');
is($c->{startup_params}{$TOKEN}, '',
	'... and rr_router.last_commit_token, empty');

# What the session's functions say now (a round trip of its own, which
# must report nothing).
sub current_token
{
	my ($conn) = @_;
	my $msgs = $conn->query('SELECT rr_last_commit_lsn()');
	my @r = RRWire::reports($msgs, $LSN);
	die "a read reported @r" if @r;
	my ($lsn) = $conn->row('SELECT rr_last_commit_lsn()');
	return $lsn;
}

# Check one round trip that committed (or did not: $lsn_before equals the
# token after): one report of each setting, just before ReadyForQuery,
# carrying the newest token -- or none at all.
sub check_round_trip
{
	my ($label, $msgs, $lsn_before, $want_commit) = @_;
	my $lsn_after = current_token($c);
	my @lsn = RRWire::reports($msgs, $LSN);
	my @token = RRWire::reports($msgs, $TOKEN);
	if ($want_commit)
	{
		ok(defined $lsn_after && (!defined $lsn_before
			  || lsn_cmp($lsn_after, $lsn_before) > 0),
			"$label: the token moved");
		is_deeply(\@lsn, [$lsn_after],
			"$label: exactly one ParameterStatus $LSN, the newest token");
		is_deeply(\@token, ["$tli:$lsn_after"],
			"$label: exactly one ParameterStatus $TOKEN, 'TLI:LSN'");
		like(RRWire::types($msgs), qr/SSZ$/,
			"$label: both come with the ReadyForQuery that ends the round trip");
	}
	else
	{
		is($lsn_after, $lsn_before, "$label: the token did not move");
		is(scalar(@lsn) + scalar(@token), 0, "$label: nothing is reported");
	}
	return $lsn_after;
}

my $lsn = current_token($c);
is($lsn, undef, 'a new session has no token');

# One autocommit write.
$lsn = check_round_trip('one INSERT',
	$c->query("INSERT INTO t(v) VALUES ('one')"), $lsn, 1);

# Ten commits in one simple Query.
my $ten = join ' ',
  map { "BEGIN; INSERT INTO t(v) VALUES ('ten $_'); COMMIT;" } 1 .. 10;
my $msgs = $c->query($ten);
is(scalar(grep { $_->[0] eq 'C' } @$msgs), 30,
	'ten commits in one Query: all thirty statements ran');
$lsn = check_round_trip('ten commits in one Query', $msgs, $lsn, 1);

# Several commits in an extended-protocol pipeline before one Sync.
$msgs = $c->pipeline(
	map { ('BEGIN', "INSERT INTO t(v) VALUES ('pipelined $_')", 'COMMIT') }
	  1 .. 3);
is(scalar(grep { $_->[0] eq 'C' } @$msgs), 9,
	'pipeline: all nine statements ran before the Sync');
$lsn = check_round_trip('three commits in one pipeline', $msgs, $lsn, 1);

# Autocommit statements in a pipeline form one implicit transaction.
$lsn = check_round_trip(
	'pipelined autocommit INSERTs',
	$c->pipeline(map { "INSERT INTO t(v) VALUES ('implicit $_')" } 1 .. 3),
	$lsn, 1);

# Round trips without a commit record report nothing.
$lsn = check_round_trip('a read', $c->query('SELECT count(*) FROM t'), $lsn, 0);
$lsn = check_round_trip('a rolled-back write',
	$c->query("BEGIN; INSERT INTO t(v) VALUES ('no'); ROLLBACK;"), $lsn, 0);
$lsn = check_round_trip('an empty transaction',
	$c->query('BEGIN; COMMIT;'), $lsn, 0);
$msgs = $c->query("INSERT INTO t(v) VALUES ('no'); SELECT 1/0;");
is_deeply([ RRWire::errors($msgs) ], ['22012: division by zero'],
	'an error in an implicit transaction block ...');
$lsn = check_round_trip('... rolls its write back', $msgs, $lsn, 0);

# Savepoints: the transaction commits, with what survived.
$lsn = check_round_trip(
	'a commit after ROLLBACK TO SAVEPOINT',
	$c->query(
		"BEGIN; SAVEPOINT a; INSERT INTO t(v) VALUES ('sp'); "
		  . "ROLLBACK TO a; INSERT INTO t(v) VALUES ('kept'); COMMIT;"),
	$lsn, 1);

# An error after a commit in the same query: the commit stands and is
# reported, with the error, before ReadyForQuery.
$msgs = $c->query(
	"BEGIN; INSERT INTO t(v) VALUES ('then error'); COMMIT; SELECT 1/0; SELECT 2;");
is_deeply([ RRWire::errors($msgs) ], ['22012: division by zero'],
	'a query that fails after a COMMIT ...');
like(RRWire::types($msgs), qr/E.*SSZ$/,
	'... reports after the error, with ReadyForQuery');
$lsn = check_round_trip('... and reports the committed token', $msgs, $lsn, 1);

# PREPARE TRANSACTION commits nothing; COMMIT PREPARED writes the commit
# record.
$lsn = check_round_trip('PREPARE TRANSACTION',
	$c->query("BEGIN; INSERT INTO t(v) VALUES ('2pc'); PREPARE TRANSACTION 'p1';"),
	$lsn, 0);
$lsn = check_round_trip('COMMIT PREPARED',
	$c->query("COMMIT PREPARED 'p1'"), $lsn, 1);

# A pooler replays reported parameters with SET: it must work, and it
# changes what is shown and reported, not the session's token.
my $real = $lsn;
$msgs = $c->query(qq{SET "$LSN" TO '0/DEADBEEF'});
is_deeply([ RRWire::errors($msgs) ], [], 'SET rr_router.last_commit_lsn works');
is_deeply([ RRWire::reports($msgs, $LSN) ], ['0/DEADBEEF'],
	'... and core reports the value SET, once');
$msgs = $c->query(qq{SET "$TOKEN" TO '7:0/DEADBEEF'});
is_deeply([ RRWire::errors($msgs) ], [], 'SET rr_router.last_commit_token works');
is_deeply([ $c->row("SELECT current_setting('$LSN'), current_setting('$TOKEN')") ],
	[ '0/DEADBEEF', '7:0/DEADBEEF' ], '... SHOW shows the values SET');
is(current_token($c), $real, '... rr_last_commit_lsn() is unaffected');
$msgs = $c->query(qq{SET "$LSN" TO '0/DEADBEEF'});
is(scalar(RRWire::reports($msgs, $LSN)), 0,
	'SET to the value already reported reports nothing');
$lsn = check_round_trip('the next commit after a SET',
	$c->query("INSERT INTO t(v) VALUES ('after set')"), $lsn, 1);
is_deeply([ $c->row("SHOW \"$LSN\"") ], [$lsn], '... shows the real token again');

# A SET inside the committing transaction is overridden by the commit.
$lsn = check_round_trip('SET LOCAL, then a commit',
	$c->query(
		qq{BEGIN; SET LOCAL "$LSN" TO 'x'; INSERT INTO t(v) VALUES ('local'); COMMIT;}),
	$lsn, 1);

# RESET ALL / DISCARD ALL return the display to its default.
$msgs = $c->query('DISCARD ALL');
is_deeply([ RRWire::reports($msgs, $LSN), RRWire::reports($msgs, $TOKEN) ],
	[ '', '' ], 'DISCARD ALL reports both settings empty again');
is(current_token($c), $lsn, '... without forgetting the token');
is_deeply([ $c->row('SHOW rr_router.report_commit_lsn') ], ['on'],
	'... and reporting stays on (set at connection start)');

# Reporting turned off in the session: commits report nothing more.
$c->query('SET rr_router.report_commit_lsn = off');
for my $case (
	[ 'reporting off: one INSERT', sub { $c->query("INSERT INTO t(v) VALUES ('off')") } ],
	[ 'reporting off: ten commits', sub { $c->query($ten) } ],
	[ 'reporting off: a pipeline', sub {
		$c->pipeline(map { ('BEGIN', "INSERT INTO t(v) VALUES ('off')", 'COMMIT') } 1 .. 3) } ])
{
	my ($label, $run) = @$case;
	my $m = $run->();
	my $after = current_token($c);
	ok(lsn_cmp($after, $lsn) > 0, "$label: the token moved");
	is(scalar(RRWire::reports($m, $LSN)) + scalar(RRWire::reports($m, $TOKEN)),
		0, "$label: nothing is reported");
	$lsn = $after;
}
$c->close;

# A session that never turns reporting on: the startup report, then
# nothing, whatever it commits.
my $d = RRWire->connect($node);
is_deeply(
	[ $d->{startup_params}{$LSN}, $d->{startup_params}{$TOKEN} ],
	[ '', '' ],
	'reporting off: core reports both settings empty at connection start');
my $reported = 0;
for my $sql ("INSERT INTO t(v) VALUES ('default')", $ten, 'SELECT 1')
{
	my $m = $d->query($sql);
	$reported += RRWire::reports($m, $LSN) + RRWire::reports($m, $TOKEN);
}
$reported += RRWire::reports($d->pipeline('BEGIN', "INSERT INTO t(v) VALUES ('p')", 'COMMIT'), $LSN);
is($reported, 0, 'reporting off: commits report nothing');
ok(defined(($d->row('SELECT rr_last_commit_lsn()'))[0]),
	'... while rr_last_commit_lsn() follows them');
$d->close;

done_testing();
