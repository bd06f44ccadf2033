
# Copyright (c) 2026, rr_router contributors
#
# The token reported the way core reports settings (SPEC section 1), seen on
# the wire with the raw protocol client RRWire.pm, since libpq keeps only
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

# One round trip: every message up to ReadyForQuery.
sub query
{
	my ($conn, $sql) = @_;
	$conn->send_query($sql);
	return [ $conn->read_until_ready ];
}

# An extended-protocol pipeline: Parse, Bind, Execute per statement, then
# one Sync.
sub pipeline
{
	my ($conn, @statements) = @_;
	$conn->send_parse_bind_execute($_) for @statements;
	$conn->send_sync;
	return [ $conn->read_until_ready ];
}

# The first row of $sql's result; dies on an error.
sub row
{
	my ($conn, $sql) = @_;
	my $msgs = query($conn, $sql);
	die "query failed: $sql" if defined RRWire::sqlstate(@$msgs);
	my ($first) = RRWire::rows(@$msgs);
	return @$first;
}

# The values of the ParameterStatus messages named $name.
sub reports
{
	my ($msgs, $name) = @_;
	return map { $_->[1] }
	  grep { $_->[0] eq $name } RRWire::parameter_statuses(@$msgs);
}

# The message types of a round trip as one string, e.g. "CCCSSZ".
sub types
{
	my ($msgs) = @_;
	return join '', map { $_->[0] } @$msgs;
}

# "SQLSTATE: message" of each ErrorResponse.
sub errors
{
	my ($msgs) = @_;
	return map {
		my $f = RRWire::error_fields($_);
		"$f->{C}: $f->{M}"
	} grep { $_->[0] eq 'E' } @$msgs;
}

# What core reported when the connection started.
sub startup_params
{
	my ($conn) = @_;
	return { map { @$_ } RRWire::parameter_statuses(@{ $conn->{startup} }) };
}

my $node = rr_primary('primary', conf => 'max_prepared_transactions = 2');
$node->safe_psql('postgres', 'CREATE TABLE t(id serial, v text)');
my $tli = $node->safe_psql('postgres',
	'SELECT timeline_id FROM pg_control_checkpoint()');

my $c = RRWire->connect($node,
	options => { options => '-c rr_router.report_commit_lsn=on' });

is(startup_params($c)->{$LSN}, '',
	'at connection start core reports rr_router.last_commit_lsn, empty');
is(startup_params($c)->{$TOKEN}, '',
	'... and rr_router.last_commit_token, empty');

# What the session's functions say now (a round trip of its own, which
# must report nothing).
sub current_token
{
	my ($conn) = @_;
	my $msgs = query($conn, 'SELECT rr_last_commit_lsn()');
	my @r = reports($msgs, $LSN);
	die "a read reported @r" if @r;
	my ($lsn) = row($conn, 'SELECT rr_last_commit_lsn()');
	return $lsn;
}

# Check one round trip that committed (or did not: $lsn_before equals the
# token after): one report of each setting, just before ReadyForQuery,
# carrying the newest token -- or none at all.
sub check_round_trip
{
	my ($label, $msgs, $lsn_before, $want_commit) = @_;
	my $lsn_after = current_token($c);
	my @lsn = reports($msgs, $LSN);
	my @token = reports($msgs, $TOKEN);
	if ($want_commit)
	{
		ok(defined $lsn_after && (!defined $lsn_before
			  || lsn_cmp($lsn_after, $lsn_before) > 0),
			"$label: the token moved");
		is_deeply(\@lsn, [$lsn_after],
			"$label: exactly one ParameterStatus $LSN, the newest token");
		is_deeply(\@token, ["$tli:$lsn_after"],
			"$label: exactly one ParameterStatus $TOKEN, 'TLI:LSN'");
		like(types($msgs), qr/SSZ$/,
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
	query($c, "INSERT INTO t(v) VALUES ('one')"), $lsn, 1);

# Ten commits in one simple Query.
my $ten = join ' ',
  map { "BEGIN; INSERT INTO t(v) VALUES ('ten $_'); COMMIT;" } 1 .. 10;
my $msgs = query($c, $ten);
is(scalar(grep { $_->[0] eq 'C' } @$msgs), 30,
	'ten commits in one Query: all thirty statements ran');
$lsn = check_round_trip('ten commits in one Query', $msgs, $lsn, 1);

# Several commits in an extended-protocol pipeline before one Sync.
$msgs = pipeline($c, 
	map { ('BEGIN', "INSERT INTO t(v) VALUES ('pipelined $_')", 'COMMIT') }
	  1 .. 3);
is(scalar(grep { $_->[0] eq 'C' } @$msgs), 9,
	'pipeline: all nine statements ran before the Sync');
$lsn = check_round_trip('three commits in one pipeline', $msgs, $lsn, 1);

# Autocommit statements in a pipeline form one implicit transaction.
$lsn = check_round_trip(
	'pipelined autocommit INSERTs',
	pipeline($c, map { "INSERT INTO t(v) VALUES ('implicit $_')" } 1 .. 3),
	$lsn, 1);

# Round trips without a commit record report nothing.
$lsn = check_round_trip('a read', query($c, 'SELECT count(*) FROM t'), $lsn, 0);
$lsn = check_round_trip('a rolled-back write',
	query($c, "BEGIN; INSERT INTO t(v) VALUES ('no'); ROLLBACK;"), $lsn, 0);
$lsn = check_round_trip('an empty transaction',
	query($c, 'BEGIN; COMMIT;'), $lsn, 0);
$msgs = query($c, "INSERT INTO t(v) VALUES ('no'); SELECT 1/0;");
is_deeply([ errors($msgs) ], ['22012: division by zero'],
	'an error in an implicit transaction block ...');
$lsn = check_round_trip('... rolls its write back', $msgs, $lsn, 0);

# Savepoints: the transaction commits, with what survived.
$lsn = check_round_trip(
	'a commit after ROLLBACK TO SAVEPOINT',
	query($c, 
		"BEGIN; SAVEPOINT a; INSERT INTO t(v) VALUES ('sp'); "
		  . "ROLLBACK TO a; INSERT INTO t(v) VALUES ('kept'); COMMIT;"),
	$lsn, 1);

# An error after a commit in the same query: the commit stands and is
# reported, with the error, before ReadyForQuery.
$msgs = query($c, 
	"BEGIN; INSERT INTO t(v) VALUES ('then error'); COMMIT; SELECT 1/0; SELECT 2;");
is_deeply([ errors($msgs) ], ['22012: division by zero'],
	'a query that fails after a COMMIT ...');
like(types($msgs), qr/E.*SSZ$/,
	'... reports after the error, with ReadyForQuery');
$lsn = check_round_trip('... and reports the committed token', $msgs, $lsn, 1);

# A procedure that commits twice: one report, the second commit's.
$node->safe_psql('postgres', q{
CREATE PROCEDURE two_commits() LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO t(v) VALUES ('proc 1');
	COMMIT;
	INSERT INTO t(v) VALUES ('proc 2');
	COMMIT;
END $$});
$lsn = check_round_trip('CALL of a procedure that commits twice',
	query($c, 'CALL two_commits()'), $lsn, 1);

# PREPARE TRANSACTION commits nothing; COMMIT PREPARED writes the commit
# record.
$lsn = check_round_trip('PREPARE TRANSACTION',
	query($c, "BEGIN; INSERT INTO t(v) VALUES ('2pc'); PREPARE TRANSACTION 'p1';"),
	$lsn, 0);
$lsn = check_round_trip('COMMIT PREPARED',
	query($c, "COMMIT PREPARED 'p1'"), $lsn, 1);
# ROLLBACK PREPARED writes an abort record: nothing to report.
$lsn = check_round_trip('PREPARE TRANSACTION again',
	query($c, "BEGIN; INSERT INTO t(v) VALUES ('2pc no'); PREPARE TRANSACTION 'p2';"),
	$lsn, 0);
$lsn = check_round_trip('ROLLBACK PREPARED',
	query($c, "ROLLBACK PREPARED 'p2'"), $lsn, 0);

# A commit that fails at COMMIT itself (a deferred constraint checked
# there) wrote no commit record: nothing to report.
$node->safe_psql('postgres',
	'CREATE TABLE deferred(i int UNIQUE DEFERRABLE INITIALLY DEFERRED)');
$msgs = query($c, 'BEGIN; INSERT INTO deferred VALUES (1), (1); COMMIT;');
is_deeply([ map { substr($_, 0, 5) } errors($msgs) ], ['23505'],
	'a COMMIT that fails on a deferred unique constraint ...');
$lsn = check_round_trip('... reports nothing', $msgs, $lsn, 0);

# A pooler replays reported parameters with SET: it must work, and it
# changes what is shown and reported, not the session's token.
my $real = $lsn;
$msgs = query($c, qq{SET "$LSN" TO '0/DEADBEEF'});
is_deeply([ errors($msgs) ], [], 'SET rr_router.last_commit_lsn works');
is_deeply([ reports($msgs, $LSN) ], ['0/DEADBEEF'],
	'... and core reports the value SET, once');
$msgs = query($c, qq{SET "$TOKEN" TO '7:0/DEADBEEF'});
is_deeply([ errors($msgs) ], [], 'SET rr_router.last_commit_token works');
is_deeply([ row($c, "SELECT current_setting('$LSN'), current_setting('$TOKEN')") ],
	[ '0/DEADBEEF', '7:0/DEADBEEF' ], '... SHOW shows the values SET');
is(current_token($c), $real, '... rr_last_commit_lsn() is unaffected');
$msgs = query($c, qq{SET "$LSN" TO '0/DEADBEEF'});
is(scalar(reports($msgs, $LSN)), 0,
	'SET to the value already reported reports nothing');
$lsn = check_round_trip('the next commit after a SET',
	query($c, "INSERT INTO t(v) VALUES ('after set')"), $lsn, 1);
is_deeply([ row($c, "SHOW \"$LSN\"") ], [$lsn], '... shows the real token again');

# A SET inside the committing transaction is overridden by the commit.
$lsn = check_round_trip('SET LOCAL, then a commit',
	query($c, 
		qq{BEGIN; SET LOCAL "$LSN" TO 'x'; INSERT INTO t(v) VALUES ('local'); COMMIT;}),
	$lsn, 1);

# RESET ALL / DISCARD ALL return the display to its default.
$msgs = query($c, 'RESET ALL');
is_deeply([ reports($msgs, $LSN), reports($msgs, $TOKEN) ],
	[ '', '' ], 'RESET ALL reports both settings empty again');
is(current_token($c), $lsn, '... without forgetting the token');
$lsn = check_round_trip('a commit after RESET ALL',
	query($c, "INSERT INTO t(v) VALUES ('after reset all')"), $lsn, 1);
$msgs = query($c, 'DISCARD ALL');
is_deeply([ reports($msgs, $LSN), reports($msgs, $TOKEN) ],
	[ '', '' ], 'DISCARD ALL reports both settings empty again');
is(current_token($c), $lsn, '... without forgetting the token');
is_deeply([ row($c, 'SHOW rr_router.report_commit_lsn') ], ['on'],
	'... and reporting stays on (set at connection start)');

# Reporting turned off in the session: commits report nothing more.
query($c, 'SET rr_router.report_commit_lsn = off');
for my $case (
	[ 'reporting off: one INSERT', sub { query($c, "INSERT INTO t(v) VALUES ('off')") } ],
	[ 'reporting off: ten commits', sub { query($c, $ten) } ],
	[ 'reporting off: a pipeline', sub {
		pipeline($c, map { ('BEGIN', "INSERT INTO t(v) VALUES ('off')", 'COMMIT') } 1 .. 3) } ])
{
	my ($label, $run) = @$case;
	my $m = $run->();
	my $after = current_token($c);
	ok(lsn_cmp($after, $lsn) > 0, "$label: the token moved");
	is(scalar(reports($m, $LSN)) + scalar(reports($m, $TOKEN)),
		0, "$label: nothing is reported");
	$lsn = $after;
}
$c->close;

# A session that never turns reporting on: the startup report, then
# nothing, whatever it commits.
my $d = RRWire->connect($node);
is_deeply(
	[ startup_params($d)->{$LSN}, startup_params($d)->{$TOKEN} ],
	[ '', '' ],
	'reporting off: core reports both settings empty at connection start');
my $reported = 0;
for my $sql ("INSERT INTO t(v) VALUES ('default')", $ten, 'SELECT 1')
{
	my $m = query($d, $sql);
	$reported += reports($m, $LSN) + reports($m, $TOKEN);
}
$reported += reports(pipeline($d, 'BEGIN', "INSERT INTO t(v) VALUES ('p')", 'COMMIT'), $LSN);
is($reported, 0, 'reporting off: commits report nothing');
ok(defined((row($d, 'SELECT rr_last_commit_lsn()'))[0]),
	'... while rr_last_commit_lsn() follows them');
$d->close;

done_testing();
