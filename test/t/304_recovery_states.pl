
# Copyright (c) 2026, rr_router contributors
#
# Servers in recovery that must not be read from, and replicas that do not
# know where their primary is.  The HTTP endpoint's /replica and /read-only
# answer 200 only when the server accepts read-only connections now, however
# fresh its data looks:
#  - a streaming standby with hot_standby = off;
#  - a hot standby still before consistency (a base backup whose WAL up to
#    the end of the backup is withheld);
#  - a primary in crash recovery (held there by a WAL segment that is a FIFO
#    nobody writes to, so the startup process blocks opening it).
# Each replays heartbeats first, so its staleness is known and small.  Then
# the withheld WAL arrives and the second standby becomes an archive-only
# replica (restore_command, no primary_conninfo): it has no walreceiver, so
# the primary's position is unknown: rr_status.primary_lsn and lag_bytes are
# NULL, rr_lag_history and rr_lag_stats have no lag, /metrics has no lag
# gauge, and a max_lag_bytes bound fails (503) while a staleness bound alone
# still passes.

use strict;
use warnings FATAL => 'all';
use FindBin;
use lib $FindBin::RealBin;
use lib "$FindBin::RealBin/../http";

use File::Copy qw(copy);
use File::Path qw(make_path);
use POSIX qw(mkfifo);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::RecursiveCopy;
use PostgreSQL::Test::Utils;
use RRHttp;
use RRTest;
use Test::More;
use Time::HiRes qw(time usleep);

my $archive = "${PostgreSQL::Test::Utils::tmp_check}/304_archive";
my $withheld = "${PostgreSQL::Test::Utils::tmp_check}/304_restore";
make_path($archive, $withheld);

my %port = map { $_ => PostgreSQL::Test::Cluster::get_free_port() }
  qw(primary nohot early crash);

# A primary that archives every segment and writes a heartbeat every 100 ms,
# so every segment replayed proves a recent primary time.
my $primary = rr_primary(
	'primary',
	conf => qq(
archive_mode = on
archive_command = 'cp "%p" "$archive/%f"'
checkpoint_timeout = '1h'
rr_router.heartbeat_interval = '100ms'
rr_router.http_port = $port{primary}
));

# Start $node without waiting for it to accept connections (it never will
# while these tests need it).
sub start_nowait
{
	my ($node) = @_;
	local %ENV = $node->_get_env(PGAPPNAME => undef);
	PostgreSQL::Test::Utils::system_or_bail('pg_ctl', '-W', '-D',
		$node->data_dir, '-l', $node->logfile, '-o',
		'--cluster-name=' . $node->name, 'start');
	# (the postmaster creates its pid file, then writes it: wait for a PID)
	my $t0 = time();
	usleep(50_000)
	  until -s $node->data_dir . '/postmaster.pid' || time() - $t0 > 30;
	$node->_update_pid(1);
	return;
}

# Wait until $port's /health reports a known staleness below 5 s, i.e. the
# server has replayed a recent heartbeat.  Returns its state line.
sub fresh_state
{
	my ($port, $what) = @_;
	my ($ok, $secs, $code, $st) = http_poll($port, '/health',
		sub { $_[0] eq '200' && $_[1] && defined $_[1]{staleness} && $_[1]{staleness} < 5 },
		60);
	ok($ok, "$what: /health answers with a known staleness below 5 s")
	  or diag "last: $code";
	return $st;
}

# GET $target on $port must answer $status.
sub expect
{
	my ($port, $target, $status, $what) = @_;
	my ($code, $st, $r) = http_state($port, $target);
	is($code, $status, "$what: GET $target -> $status")
	  or diag 'body: ' . ($r->{body} // '');
	return $st;
}

# --- a streaming standby with hot_standby = off ---------------------------

my $nohot = rr_replica($primary, 'nohot',
	conf => "hot_standby = off\nrr_router.http_port = $port{nohot}");
my $st = fresh_state($port{nohot}, 'hot_standby = off');
is($st->{role}, 'replica', 'hot_standby = off: role=replica');
note "hot_standby = off: staleness $st->{staleness} s, lag_bytes "
  . ($st->{lag_bytes} // 'unknown');
expect($port{nohot}, '/replica?max_staleness=1h', 503, 'hot_standby = off');
expect($port{nohot}, '/read-only?max_staleness=1h', 503, 'hot_standby = off');
expect($port{nohot}, '/replica', 503, 'hot_standby = off');
expect($port{nohot}, '/primary', 503, 'hot_standby = off');
my ($m) = parse_metrics(http_request($port{nohot}, 'GET', '/metrics')->{body} // '');
is($m->{rr_router_is_replica}, 1, 'hot_standby = off: /metrics still answers');
$nohot->stop('fast');

# --- a hot standby before consistency ---------------------------------------

# A low-level base backup with two segment switches inside it: the standby
# gets the segments before the one that holds the end of the backup, which
# carry heartbeats but cannot make it consistent.
my $ps = session($primary);
$ps->q('SET client_min_messages = warning');
my $start_seg = $ps->q(
	"SELECT pg_walfile_name(pg_backup_start('rr304', true))");
my $early = PostgreSQL::Test::Cluster->new('early');
PostgreSQL::Test::RecursiveCopy::copypath(
	$primary->data_dir,
	$early->data_dir,
	filterfn => sub {
		my ($path) = @_;
		return $path !~ m{^(?:pg_wal/.+|postmaster\.(?:pid|opts)|pg_replslot/.+)$};
	});
chmod(0700, $early->data_dir);
for (1 .. 2)
{
	usleep(300_000);    # a few heartbeats
	$ps->q('SELECT pg_switch_wal()');
}
usleep(300_000);
my ($end_seg, $label) = split /\|/,
  $ps->q('SELECT pg_walfile_name(lsn), labelfile FROM pg_backup_stop(true)'), 2;
$ps->quit;
open my $fh, '>', $early->data_dir . '/backup_label' or die $!;
print $fh "$label\n";
close $fh;

# the segments from the start of the backup up to, not including, the one
# holding its end
my @before = sort grep { $_ ge $start_seg && $_ lt $end_seg }
  map { s{.*/}{}r } glob("$archive/0*");
note "backup from $start_seg, ends in $end_seg; the standby gets @before";
cmp_ok(scalar @before, '>=', 2, 'two segments of heartbeats before the end of the backup');
copy("$archive/$_", "$withheld/$_") or die "copy $_: $!" for @before;

$early->append_conf(
	'postgresql.conf', qq(
port = ${\ $early->port}
archive_mode = off
hot_standby = on
restore_command = 'cp "$withheld/%f" "%p"'
wal_retrieve_retry_interval = '100ms'
rr_router.http_port = $port{early}
));
$early->set_standby_mode;
start_nowait($early);

$st = fresh_state($port{early}, 'before consistency');
is($st->{role}, 'replica', 'before consistency: role=replica');
isnt($early->psql('postgres', 'SELECT 1'), 0, 'before consistency: it refuses connections');
unlike(slurp_file($early->logfile), qr/consistent recovery state reached/,
	'before consistency: not consistent');
expect($port{early}, '/replica?max_staleness=1h', 503, 'before consistency');
expect($port{early}, '/read-only?max_staleness=1h', 503, 'before consistency');
expect($port{early}, '/replica', 503, 'before consistency');

# --- the same standby, consistent, archive-only -------------------------------

# Every archived segment arrives: it reaches consistency and catches up
# through restore_command; it never streams.
copy($_, $withheld) or die "copy $_: $!" for glob("$archive/0*");
ok( poll_until($early, 'SELECT pg_is_in_recovery()', 't', 60),
	'archive-only: consistent, it accepts connections');
ok( poll_until($early,
		"SELECT role = 'replica' AND staleness IS NOT NULL FROM rr_status", 't', 30),
	'archive-only: a replica with a known staleness');
my $row = $early->safe_psql('postgres',
	'SELECT receiver_state, primary_lsn IS NULL, lag_bytes IS NULL, replay_lsn IS NOT NULL '
	  . 'FROM rr_status');
note "archive-only: receiver_state, primary_lsn null, lag_bytes null, replay_lsn known: $row";
is($row, 'stopped|t|t|t',
	'archive-only: no walreceiver, primary_lsn and lag_bytes NULL (unknown), replay_lsn known');

# the primary writes on; the replica cannot know (nothing is archived yet)
$primary->safe_psql('postgres',
	'CREATE TABLE big AS SELECT g, repeat(\'x\', 100) AS v FROM generate_series(1, 20000) g');
usleep(300_000);
is($early->safe_psql('postgres', 'SELECT lag_bytes IS NULL FROM rr_status'),
	't', 'archive-only, primary far ahead: lag_bytes stays unknown, not 0');

($st) = (http_state($port{early}, '/health'))[1];
ok($st && !defined $st->{lag_bytes}, 'archive-only: /health says lag_bytes=unknown')
  or diag explain $st;
expect($port{early}, '/replica?max_staleness=1h', 200,
	'archive-only, staleness bound only');
expect($port{early}, '/read-only?max_staleness=1h', 200,
	'archive-only, staleness bound only');
expect($port{early}, '/replica?max_staleness=1h&max_lag_bytes=1000000000', 503,
	'archive-only, lag bound: fails closed');
expect($port{early}, '/read-only?max_staleness=1h&max_lag_bytes=1000000000', 503,
	'archive-only, lag bound: fails closed');

my $r = http_request($port{early}, 'GET', '/metrics');
my ($metrics, $errors) = parse_metrics($r->{body} // '');
is_deeply($errors, [], 'archive-only: /metrics is valid exposition');
ok(!exists $metrics->{rr_router_lag_bytes}, 'archive-only: no rr_router_lag_bytes gauge');
ok(!exists $metrics->{rr_router_primary_lsn}, 'archive-only: no rr_router_primary_lsn gauge');
ok(exists $metrics->{rr_router_replay_lsn}, 'archive-only: rr_router_replay_lsn is there');
ok(!exists $metrics->{'rr_router_lag_bytes_window_max{period="1m"}'},
	'archive-only: no lag window maximum');

is( $early->safe_psql('postgres',
		'SELECT count(*) > 0, count(lag_bytes) FROM rr_lag_history WHERE replay_lsn IS NOT NULL'),
	't|0', 'archive-only: rr_lag_history has samples, none with a lag');
is( $early->safe_psql('postgres',
		"SELECT samples > 0, lag_bytes_max IS NULL FROM rr_lag_stats WHERE period = '1 min'"),
	't|t', 'archive-only: rr_lag_stats has samples and no lag maximum');
$early->stop('fast');

# a streaming replica knows: its lag is a number
my $streamer = rr_replica($primary, 'streamer');
is($streamer->safe_psql('postgres',
		'SELECT primary_lsn IS NOT NULL AND lag_bytes >= 0 FROM rr_status'),
	't', 'a streaming replica knows the primary position and its lag');
$streamer->stop('fast');

# --- a primary in crash recovery ----------------------------------------------

# (without recovery_prefetch the startup process reads no further ahead than
# the record it replays, so it replays the heartbeats before it blocks)
my $crash = rr_primary(
	'crash',
	conf => qq(
checkpoint_timeout = '1h'
recovery_prefetch = off
rr_router.heartbeat_interval = '100ms'
rr_router.http_port = $port{crash}
));
$crash->safe_psql('postgres', 'CHECKPOINT');
usleep(300_000);    # heartbeats after the redo point
$crash->safe_psql('postgres', 'SELECT pg_switch_wal()');
usleep(300_000);    # heartbeats in the next segment
# the segment after the switch: replay must open it to go on
my $seg = $crash->safe_psql('postgres',
	'SELECT pg_walfile_name(pg_current_wal_insert_lsn())');
note "crash recovery will block opening $seg";
$crash->stop('immediate');
my $fifo = $crash->data_dir . "/pg_wal/$seg";
unlink $fifo or die "unlink $fifo: $!";
mkfifo($fifo, 0600) or die "mkfifo $fifo: $!";

start_nowait($crash);
$st = fresh_state($port{crash}, 'crash recovery');
like(slurp_file($crash->logfile), qr/database system was not properly shut down; automatic recovery in progress/,
	'crash recovery: the server is in crash recovery');
isnt($crash->psql('postgres', 'SELECT 1'), 0, 'crash recovery: it refuses connections');
is($st->{role}, 'replica', 'crash recovery: role=replica (in recovery)');
expect($port{crash}, '/read-only?max_staleness=1h', 503, 'crash recovery');
expect($port{crash}, '/read-only', 503, 'crash recovery');
expect($port{crash}, '/replica?max_staleness=1h', 503, 'crash recovery');
expect($port{crash}, '/primary', 503, 'crash recovery');

# Without the FIFO, recovery ends at the switch and the primary serves.
$crash->stop('immediate');
unlink $fifo or die "unlink $fifo: $!";
$crash->start;
my ($ok) = http_poll($port{crash}, '/read-only', sub { $_[0] eq '200' }, 30);
ok($ok, 'after crash recovery: /read-only -> 200');
expect($port{crash}, '/primary', 200, 'after crash recovery');

done_testing();
