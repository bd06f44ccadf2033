
# Copyright (c) 2026, rr_router contributors
#
# Failover-safe causality tokens on servers that a failover left behind.
#
# Primary P archives its WAL; R1 and R3 stream from it; A is a standby that
# only restores from the archive.  R1 stops receiving, P commits W (token
# T) and switches WAL, so R3 and A replay W; then P dies and R1, the LESS
# advanced replica, is promoted: timeline 2 forks off timeline 1 before
# W's LSN.  R3 and A cannot follow timeline 2 ("forked off current database
# system timeline 1 before current recovery point") and stay hot standbys
# on timeline 1, with W replayed -- a write no other server has.  Judged by
# the history of their own timeline 1 alone, T would answer true for ever.
#
# - R3, re-pointed at R1 (its walreceiver fetches 00000002.history, then
#   cannot stream): rr_wait_for_token(T) raises RR001, judged by the
#   history of timeline 2, the newest that descends from its timeline 1;
#   W0 (before the failover) answers true; T2 (a write on timeline 2)
#   waits and answers false at the timeout, not RR001.
# - A restores 00000002.history from the archive, cannot follow either:
#   RR001 for T, true for W0.
# - D, a standby restored on timeline 2 from a backup of R1 with
#   recovery_target_timeline = '3', restores only the history of timeline
#   3 (its archive of history files has no other, and its backup's copy of
#   00000002.history is gone): it judges by that descendant's history
#   rather than raise 58P01 for its own missing one.

use strict;
use warnings FATAL => 'all';
use FindBin;
use lib $FindBin::RealBin;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use RRTest;
use Test::More;

my $primary = rr_primary(
	'primary',
	has_archiving => 1,
	conf => "checkpoint_timeout = '1h'");
my $archive = $primary->archive_dir;
$primary->safe_psql('postgres', 'CREATE TABLE t(id serial, v text)');

# R1 archives into the same archive once promoted (a standby does not).
my $r1 = rr_replica(
	$primary, 'r1',
	conf => qq(archive_mode = on
archive_command = 'cp "%p" "$archive/%f"'
));
my $r3 = rr_replica($primary, 'r3');

$primary->backup('bk_archive');
my $a = PostgreSQL::Test::Cluster->new('archive_only');
$a->init_from_backup($primary, 'bk_archive', has_restoring => 1, standby => 1);
$a->append_conf('postgresql.conf', "archive_mode = off\n");
$a->start;

# W0: committed before the failover, received by everyone.
my $t0 = $primary->safe_psql('postgres',
	"INSERT INTO t(v) VALUES ('survives');\nSELECT rr_last_commit_token()");
$primary->safe_psql('postgres', 'SELECT pg_switch_wal()');
$primary->wait_for_catchup($_) for ($r1, $r3);
ok(poll_until($a, "SELECT rr_wait_for_token('$t0', 0)", 't', 120),
	'A has W0');

# R1 stops receiving; W reaches R3 and, through the archive, A.
$r1->append_conf('postgresql.conf', "primary_conninfo = ''\n");
$r1->reload;
poll_until($r1, 'SELECT count(*) FROM pg_stat_wal_receiver', '0')
  or die "R1's walreceiver did not stop";
my ($tok, $lsn) = split /\|/,
  $primary->safe_psql('postgres',
	"INSERT INTO t(v) VALUES ('only on the old timeline');\n"
	  . 'SELECT rr_last_commit_token(), rr_last_commit_lsn()');
$primary->safe_psql('postgres', 'SELECT pg_switch_wal()');
$primary->wait_for_catchup($r3);
ok(poll_until($a, "SELECT rr_wait_for_token('$tok', 0)", 't', 120),
	"A restored W: $tok");
is($r3->safe_psql('postgres', "SELECT rr_wait_for_token('$tok', 0)"),
	't', 'R3 replayed W');
$primary->stop('immediate');
is($r1->safe_psql('postgres',
		"SELECT coalesce(pg_last_wal_receive_lsn() < '$lsn', true)"),
	't', 'R1 never received W');

# The less advanced R1 becomes the primary of timeline 2.
$r1->promote;
poll_until($r1, 'SELECT pg_is_in_recovery()', 'f') or die 'R1 not promoted';
my $switch = $r1->safe_psql('postgres',
	"SELECT split_part(pg_read_file('pg_wal/00000002.history'), E'\\t', 2)");
note "timeline 1 ends at $switch in R1's history; W ended at $lsn";
ok(lsn_cmp($switch, $lsn) < 0, 'R1 forked timeline 2 before W');
my ($tok2, $lsn2) = split /\|/,
  $r1->safe_psql('postgres',
	"INSERT INTO t(v) VALUES ('new timeline');\n"
	  . 'SELECT rr_last_commit_token(), rr_last_commit_lsn()');
like($tok2, qr/^2:/, "T2 names timeline 2: $tok2");

# R3 is re-pointed at R1: its walreceiver fetches the history of timeline 2
# and cannot stream; the startup process refuses the switch.
my $r3_log_offset = -s $r3->logfile;
$r3->append_conf('postgresql.conf',
	"primary_conninfo = '" . $r1->connstr . "'\n");
$r3->reload;
$r3->wait_for_log(
	qr/new timeline 2 forked off current database system timeline 1 before current recovery point/,
	$r3_log_offset);
ok(poll_until($r3,
		"SELECT count(*) FROM pg_ls_waldir() WHERE name = '00000002.history'", '1', 60),
	'R3 has the history of timeline 2 in pg_wal');
is($r3->safe_psql('postgres',
		"SELECT pg_is_in_recovery() AND pg_last_wal_replay_lsn() > '$switch'"),
	't', 'R3 stays a standby on timeline 1, past the switch point');

my $r = timed_sql($r3, "SELECT rr_wait_for_token('$tok', 10000)");
is(sqlstate_of($r->{err}), 'RR001',
	'R3 (diverged): rr_wait_for_token(T) raises RR001, not true');
cmp_ok($r->{ms}, '<', 1000, '... at once');
like($r->{err},
	qr/In the history of timeline 2, the newest that descends from this server's timeline 1, timeline 1 ended at \Q$switch\E, before the LSN of the token "\Q$tok\E"/,
	'... judged by the history of timeline 2');
like($r->{err}, qr/HINT:.*Read from the primary, and tell the user/,
	'... with the replica hint');
is($r3->safe_psql('postgres', "SELECT rr_wait_for_lsn('$lsn', 0)"),
	't', "R3: rr_wait_for_lsn(T's LSN) answers true (timeline-blind)");
is($r3->safe_psql('postgres', "SELECT rr_wait_for_token('$t0', 10000)"),
	't', 'R3: W0 answers true');
$r = timed_sql($r3, "SELECT rr_wait_for_token('$tok2', 300)");
is($r->{out}, 'f', 'R3: T2 waits and answers false at the timeout');
cmp_ok($r->{ms}, '>=', 250, '... after waiting');

# A restores the history of timeline 2 from the archive and cannot follow.
ok(poll_until($r1, "SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name = '00000002.history.done'", '1', 60),
	'R1 archived the history of timeline 2');
ok(poll_until($a,
		"SELECT count(*) FROM pg_ls_waldir() WHERE name = '00000002.history'", '1', 120),
	'A restored the history of timeline 2 into pg_wal');
$a->wait_for_log(
	qr/new timeline 2 forked off current database system timeline 1 before current recovery point/);
is($a->safe_psql('postgres', 'SELECT pg_is_in_recovery()'),
	't', '... and stays a standby on timeline 1');
$r = timed_sql($a, "SELECT rr_wait_for_token('$tok', 10000)");
is(sqlstate_of($r->{err}), 'RR001',
	'A (archive-only, diverged): rr_wait_for_token(T) raises RR001');
cmp_ok($r->{ms}, '<', 1000, '... at once');
is($a->safe_psql('postgres', "SELECT rr_wait_for_token('$t0', 10000)"),
	't', 'A: W0 answers true');

# D: restored on timeline 2 with recovery_target_timeline = '3'.  Timeline
# 3 here is only a history file (a later failover's, whose WAL D never
# gets): timeline 2 ends far ahead in it, so D stays on timeline 2.
$r1->backup('bk_r1');
my $hist = PostgreSQL::Test::Utils::tempdir();
my $end2 = $r1->safe_psql('postgres',
	"SELECT pg_current_wal_lsn() + 1024 * 1024 * 1024");
PostgreSQL::Test::Utils::append_to_file("$hist/00000003.history",
	"1\t$switch\tno recovery target specified\n"
	  . "2\t$end2\tno recovery target specified\n");
my $d = PostgreSQL::Test::Cluster->new('no_own_history');
$d->init_from_backup($r1, 'bk_r1');
$d->set_standby_mode;
unlink $d->data_dir . '/pg_wal/00000002.history'
  or die "no 00000002.history in the backup: $!";
$d->append_conf('postgresql.conf', qq{archive_mode = off
primary_conninfo = ''
recovery_target_timeline = '3'
restore_command = 'case "%f" in *.history) cp "$hist/%f" "%p";; *) cp "$archive/%f" "%p";; esac'
});
$d->start;
my $seg = $r1->safe_psql('postgres', 'SELECT pg_walfile_name(pg_current_wal_lsn())');
$r1->safe_psql('postgres', 'SELECT pg_switch_wal()');
ok(poll_until($r1, "SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name = '$seg.done'", '1', 60),
	"R1 archived $seg");
is($d->safe_psql('postgres',
		"SELECT string_agg(name, ',' ORDER BY name) FROM pg_ls_waldir() WHERE name LIKE '%.history'"),
	'00000003.history', 'D has the history of timeline 3 only');
ok(poll_until($d, "SELECT rr_wait_for_token('$tok2', 0)", 't', 120),
	'D: T2 answers true, judged by the history of timeline 3');
is($d->safe_psql('postgres', 'SELECT timeline FROM rr_status'),
	'2', '... while D is on timeline 2');
$r = timed_sql($d, "SELECT rr_wait_for_token('$tok', 10000)");
is(sqlstate_of($r->{err}), 'RR001', 'D: T raises RR001 (not 58P01)');
like($r->{err}, qr/In the history of timeline 3, the newest that descends from this server's timeline 2, timeline 1 ended at \Q$switch\E/,
	'... by the history of timeline 3');
is($d->safe_psql('postgres', "SELECT rr_wait_for_token('$t0', 10000)"),
	't', 'D: W0 answers true');

done_testing();
