
# Copyright (c) 2026, rr_router contributors
#
# Failover-safe causality tokens (issue 12), with real failovers.
#
# Primary P archives its WAL; replicas R1, R2 and S stream from it; A is a
# standby that only restores from the archive, and C cascades from A.
# A write W0 reaches everyone.  Then R1 and R2 stop receiving, P commits W
# (token T) and dies, and R1 is promoted: W is lost, but R1's new timeline
# soon passes W's LSN, so a plain LSN wait would answer true for it.  S
# stops receiving too, and is promoted later onto a sibling timeline.
#
# - R1: rr_wait_for_token(T) raises RR001 at once; rr_wait_for_lsn of T's
#   LSN answers true.
# - R2, still on the old timeline with a waiter asleep on T and another on
#   T2 (a write on R1's new timeline), is re-pointed at R1: the T waiter is
#   woken by the timeline switch and gets RR001, not a timeout, before
#   replay on the new timeline has passed T's LSN; the T2 waiter answers
#   true.  Side by side on R2: rr_wait_for_lsn of T's LSN answers false,
#   then true once R1 has written past it, while rr_wait_for_token(T)
#   raises RR001 throughout.
# - P, rewound with pg_rewind and started as a replica of R1: RR001 for T.
# - A follows the new timeline from the archive (history file restored from
#   there) and C through A: RR001 for T, true for T2.
# - W0's token answers true on R1, R2, the rewound P, A, C and S.
# - A token of S's sibling timeline waits on R2 and answers false at the
#   timeout, queued where replay never wakes it; R1 raises RR001 for it.
# - The reference Python router raises WriteLostError for T and reads W0
#   from a replica.

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

# The history of timeline 1 ends where R1 was promoted: every timed
# checkpoint on P could recycle the WAL pg_rewind needs, so none happens.
my $primary = rr_primary(
	'primary',
	has_archiving => 1,
	conf => "checkpoint_timeout = '1h'");
my $archive = $primary->archive_dir;
$primary->safe_psql('postgres',
	'CREATE TABLE t(id serial, v text); CREATE TABLE filler(v text)');

# R1 archives into the same archive once promoted (a standby does not).
my $r1 = rr_replica(
	$primary, 'r1',
	conf => qq(archive_mode = on
archive_command = 'cp "%p" "$archive/%f"'
));
my $r2 = rr_replica($primary, 'r2');
# S will be promoted too, on a branch of its own.
my $sib = rr_replica($primary, 'sibling', conf => "archive_mode = off\n");

# A restores from the archive only; C streams from A.
$primary->backup('bk_archive');
my $a = PostgreSQL::Test::Cluster->new('archive_only');
$a->init_from_backup($primary, 'bk_archive', has_restoring => 1, standby => 1);
$a->append_conf('postgresql.conf', "archive_mode = off\n");
$a->start;
my $c = PostgreSQL::Test::Cluster->new('cascade');
$c->init_from_backup($primary, 'bk_archive', has_streaming => 1);
$c->append_conf('postgresql.conf',
	"archive_mode = off\nprimary_conninfo = '" . $a->connstr . "'\n");
$c->start;

# W0: committed before the failover, received by everyone.
my $t0 = $primary->safe_psql('postgres',
	"INSERT INTO t(v) VALUES ('survives');\nSELECT rr_last_commit_token()");
like($t0, qr{^1:[0-9A-F]+/[0-9A-F]+$}, "W0's token names timeline 1: $t0");
$primary->safe_psql('postgres', 'SELECT pg_switch_wal()');    # to the archive
$primary->wait_for_catchup($_) for ($r1, $r2, $sib);
ok(poll_until($_, "SELECT rr_wait_for_token('$t0', 0)", 't', 120),
	$_->name . ' has W0')
  for ($a, $c);

# R2, S and then R1 stop receiving.  R1 stops last, once it has all that
# R2 has: R2 can follow R1's new timeline only if it has replayed nothing
# that R1 never had.
sub stop_receiving
{
	my ($r) = @_;
	$r->append_conf('postgresql.conf', "primary_conninfo = ''\n");
	$r->reload;
	poll_until($r, 'SELECT count(*) FROM pg_stat_wal_receiver', '0')
	  or die $r->name . "'s walreceiver did not stop";
	return $r->safe_psql('postgres', 'SELECT pg_last_wal_receive_lsn()');
}
my $r2_has = stop_receiving($r2);
stop_receiving($sib);
poll_until($r1, "SELECT pg_last_wal_receive_lsn() >= '$r2_has'")
  or die 'R1 did not receive what R2 has';
stop_receiving($r1);

# W, after some 4 MB of WAL the new timeline will take a while to pass.
$primary->safe_psql('postgres',
	"INSERT INTO filler SELECT repeat('x', 1000) FROM generate_series(1, 4000)");
my ($tok, $lsn) = split /\|/,
  $primary->safe_psql('postgres',
	"INSERT INTO t(v) VALUES ('lost');\n"
	  . 'SELECT rr_last_commit_token(), rr_last_commit_lsn()');
is($tok, "1:$lsn", "W's token is timeline 1 and its LSN: $tok");
$primary->stop('immediate');

for my $r ($r1, $r2)
{
	is($r->safe_psql('postgres',
			"SELECT coalesce(pg_last_wal_receive_lsn() < '$lsn', true)"),
		't', $r->name . ' never received W');
}

# Failover: R1 becomes the primary of timeline 2.
$r1->promote;
poll_until($r1, 'SELECT pg_is_in_recovery()', 'f') or die 'R1 not promoted';
my $switch = $r1->safe_psql('postgres',
	"SELECT split_part(pg_read_file('pg_wal/00000002.history'), E'\\t', 2)");
note "timeline 1 ends at $switch in R1's history; W ended at $lsn";
ok(lsn_cmp($switch, $lsn) < 0, 'R1 forked timeline 2 before W');

my $r = timed_sql($r1, "SELECT rr_wait_for_token('$tok', 10000)");
is(sqlstate_of($r->{err}), 'RR001', 'R1: rr_wait_for_token(T) raises RR001');
cmp_ok($r->{ms}, '<', 1000, '... at once');
like($r->{err}, qr/timeline 1 ended at \Q$switch\E, before the LSN of the token "\Q$tok\E"/,
	'... with the switch point in the detail');
like($r->{err}, qr/HINT:  Tell the user that the write may have been lost: the primary's history does not contain it\./,
	'... and the hint of a primary');
is($r1->safe_psql('postgres', "SELECT rr_wait_for_lsn('$lsn', 10000)"),
	't', "R1: rr_wait_for_lsn(T's LSN) answers true (timeline-blind)");
is($r1->safe_psql('postgres', "SELECT rr_wait_for_token('$t0', 10000)"),
	't', 'R1: W0 answers true');
is($r1->safe_psql('postgres', "SELECT count(*) FROM t WHERE v = 'lost'"),
	'0', '... and W is indeed not there');

# S is promoted as well, having seen timeline 2 in the archive: timeline 3,
# a sibling of timeline 2 (both fork from timeline 1), with a write T3.
ok(poll_until($r1, "SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name = '00000002.history.done'", '1', 60),
	'R1 archived the history of timeline 2');
$sib->append_conf('postgresql.conf',
	qq(restore_command = 'cp "$archive/%f" "%p"'\n));
$sib->reload;
$sib->promote;
poll_until($sib, 'SELECT pg_is_in_recovery()', 'f') or die 'S not promoted';
my $tok3 = $sib->safe_psql('postgres',
	"INSERT INTO t(v) VALUES ('sibling');\nSELECT rr_last_commit_token()");
like($tok3, qr/^3:/, "S writes on timeline 3: $tok3");

# T2: a write on the new timeline, still below T's LSN.
my ($tok2, $lsn2) = split /\|/,
  $r1->safe_psql('postgres',
	"INSERT INTO t(v) VALUES ('new timeline');\n"
	  . 'SELECT rr_last_commit_token(), rr_last_commit_lsn()');
is($tok2, "2:$lsn2", "T2 names timeline 2: $tok2");
ok(lsn_cmp($lsn2, $lsn) < 0, "... and R1 has not passed W's LSN yet");

# R2 has not followed yet: T2's timeline is unknown to it.
$r = timed_sql($r2, "SELECT rr_wait_for_token('$tok2', 300)");
is($r->{out}, 'f', 'R2 before following: T2 waits and answers false at timeout');
cmp_ok($r->{ms}, '>=', 250, '... after waiting');
my $w_new = bg_psql($r2,
	"SELECT rr_wait_for_token('$tok2', 300000);\nSELECT 'next statement';",
	app => 'new', verbose => 1);
ok(wait_waiters($r2, 1), 'R2: a session waits for T2');

# And one for T, which R2's history (timeline 1) still holds.
my $t_lost = time();
my $w_lost = bg_psql($r2,
	"SELECT rr_wait_for_token('$tok', 300000);\nSELECT 'next statement';",
	app => 'lost', verbose => 1);
ok(wait_waiters($r2, 2), 'R2: a second session waits for T');

# R2 follows R1.
$r2->append_conf('postgresql.conf',
	"primary_conninfo = '" . $r1->connstr . "'\n");
$r2->reload;

my $res = bg_finish($w_lost, 120);
my $lost_secs = time() - $t_lost;
note "T waiter on R2: out '$res->{out}', err '$res->{err}', "
  . sprintf('%.1f s after it began', $lost_secs);
is(sqlstate_of($res->{err}), 'RR001',
	'R2: the session asleep on T is woken by the timeline switch: RR001');
like($res->{out}, qr/^next statement$/m, '... not a timeout, and it goes on');
# A waiter also looks again every 10 s on its own; this one must not have
# needed that.
cmp_ok($lost_secs, '<', 8, '... soon after R2 follows R1');
is($r2->safe_psql('postgres', "SELECT pg_last_wal_replay_lsn() < '$lsn'"),
	't', "... while replay on timeline 2 is still short of T's LSN");
$res = bg_finish($w_new, 120);
is($res->{out}, "t\nnext statement",
	'R2: the session asleep on T2 answers true once it follows timeline 2');
is($r2->safe_psql('postgres', 'SELECT received_tli FROM pg_stat_wal_receiver'),
	'2', 'R2 is on timeline 2');

# Side by side on R2: the LSN wait is fooled once R1 passes T's LSN.
my $s = session($r2);
my ($out, $err) = $s->q_err("SELECT rr_wait_for_lsn('$lsn', 0)");
is($out, 'f', "R2: rr_wait_for_lsn(T's LSN) is false while timeline 2 is short of it");
($out, $err) = $s->q_err("SELECT rr_wait_for_token('$tok', 0)");
is(sqlstate_of($err), 'RR001', '... and rr_wait_for_token(T) raises RR001');

my $passed = 0;
for (1 .. 20)
{
	$r1->safe_psql('postgres',
		"INSERT INTO filler SELECT repeat('y', 1000) FROM generate_series(1, 2000)");
	$passed = $r1->safe_psql('postgres', "SELECT pg_current_wal_lsn() > '$lsn'")
	  eq 't';
	last if $passed;
}
ok($passed, "R1 has written past T's LSN on timeline 2");
($out, $err) = $s->q_err("SELECT rr_wait_for_lsn('$lsn', 30000)");
is($out, 't', "R2: now rr_wait_for_lsn(T's LSN) answers true, for a lost write");
($out, $err) = $s->q_err("SELECT rr_wait_for_token('$tok', 30000)");
is(sqlstate_of($err), 'RR001', '... while rr_wait_for_token(T) still raises RR001');
is($s->q("SELECT rr_wait_for_token('$t0', 10000)"), 't', 'R2: W0 answers true');
is($s->q("SELECT rr_wait_for_token('$tok2', 10000)"), 't', 'R2: T2 answers true');
$s->quit;

# The archive-only standby and its cascade follow timeline 2 through the
# archive.
my $seg = $r1->safe_psql('postgres', 'SELECT pg_walfile_name(pg_current_wal_lsn())');
$r1->safe_psql('postgres', 'SELECT pg_switch_wal()');
ok(poll_until($r1, "SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name = '$seg.done'", '1', 60),
	"R1 archived $seg");
for my $n ($a, $c)
{
	my $name = $n->name;
	ok(poll_until($n, "SELECT rr_wait_for_token('$tok2', 0)", 't', 120),
		"$name follows timeline 2 and has T2");
	$r = timed_sql($n, "SELECT rr_wait_for_token('$tok', 10000)");
	is(sqlstate_of($r->{err}), 'RR001', "$name: rr_wait_for_token(T) raises RR001");
	cmp_ok($r->{ms}, '<', 1000, '... at once');
	is($n->safe_psql('postgres', "SELECT rr_wait_for_token('$t0', 10000)"),
		't', "$name: W0 answers true");
}
is($a->safe_psql('postgres',
		"SELECT count(*) FROM pg_stat_wal_receiver"),
	'0', 'the archive-only standby never streamed');
is($a->safe_psql('postgres',
		"SELECT count(*) FROM pg_ls_waldir() WHERE name = '00000002.history'"),
	'1', '... and keeps the history it restored from the archive in pg_wal');

# P comes back as a replica of R1, rewound.
# The crash recovery pg_rewind runs first recycles the segment where the
# histories last shared a checkpoint: pg_rewind fetches it from the archive.
# P must not archive again: its timeline 1 went on past the switch point.
$primary->append_conf('postgresql.conf',
	qq(restore_command = 'cp "$archive/%f" "%p"'\n));
my $pconf = slurp_file($primary->data_dir . '/postgresql.conf');
command_ok(
	[
		$primary->installed_command('pg_rewind'),
		'--target-pgdata=' . $primary->data_dir,
		'--source-server=' . $r1->connstr('postgres'),
		'--write-recovery-conf', '--restore-target-wal'
	],
	'pg_rewind of P onto R1');
# pg_rewind copied R1's configuration: P keeps its own (port included).
open my $fh, '>', $primary->data_dir . '/postgresql.conf' or die $!;
print $fh $pconf, "archive_mode = off\n";
close $fh;
$primary->start;
ok(poll_until($primary, "SELECT rr_wait_for_token('$tok2', 0)", 't', 120),
	'the rewound P follows timeline 2');
$r = timed_sql($primary, "SELECT rr_wait_for_token('$tok', 10000)");
is(sqlstate_of($r->{err}), 'RR001', 'the rewound P: rr_wait_for_token(T) raises RR001');
cmp_ok($r->{ms}, '<', 1000, '... at once');
is($primary->safe_psql('postgres', "SELECT rr_wait_for_token('$t0', 10000)"),
	't', 'the rewound P: W0 answers true');

# A replica made from a backup of R1 after the failover judges tokens too.
my $late = rr_replica($r1, 'late');
$r = timed_sql($late, "SELECT rr_wait_for_token('$tok', 10000)");
is(sqlstate_of($r->{err}), 'RR001',
	'a replica cloned from R1 after the failover: T raises RR001');
is($late->safe_psql('postgres',
		"SELECT rr_wait_for_token('$t0', 10000);\nSELECT rr_wait_for_token('$tok2', 10000)"),
	"t\nt", '... W0 and T2 answer true');

# A sibling timeline: no server of timeline 2 will ever have T3.  A
# replica waits and answers false at its timeout (it cannot tell a sibling
# from a timeline it has not reached yet); as replay has passed T3's LSN,
# the waiter is queued where replay never wakes it.
$r = timed_sql($r2, "SELECT rr_wait_for_token('$tok3', 500)");
is($r->{out}, 'f', 'R2: a token of sibling timeline 3 answers false at the timeout');
cmp_ok($r->{ms}, '>=', 450, '... after waiting');
my $w_sib = bg_psql($r2, "SELECT rr_wait_for_token('$tok3', 3000);", app => 'sibling');
ok(poll_until($r2, 'SELECT target_lsn FROM rr_waiters', 'FFFFFFFF/FFFFFFFE', 10),
	'... queued for a position replay never reaches');
is(bg_finish($w_sib, 30)->{out}, 'f', '... and false at the timeout');
$r = timed_sql($r1, "SELECT rr_wait_for_token('$tok3', 10000)");
is(sqlstate_of($r->{err}), 'RR001', 'R1 (primary): T3 raises RR001');
like($r->{err}, qr/Timeline 3 of the token "\Q$tok3\E" is not in the history of this server's timeline 2/,
	'... as its timeline is not in its history');
$r = timed_sql($sib, "SELECT rr_wait_for_token('$tok', 10000)");
is(sqlstate_of($r->{err}), 'RR001', 'S (primary of timeline 3): T raises RR001');
is($sib->safe_psql('postgres', "SELECT rr_wait_for_token('$t0', 10000)"),
	't', 'S: W0 answers true');

# The reference Python router: the lost write is reported, W0 is read from
# a replica.
my ($python) = grep { -x $_ } ('/usr/bin/python3', 'python3');
my $clients = "$FindBin::RealBin/../clients/python";
my $py = <<'PY';
import sys
sys.path.insert(0, sys.argv[1])
from rr_router_client import Router, Session, WriteLostError

primary, replicas, lost, kept = sys.argv[2], sys.argv[3:5], sys.argv[5], sys.argv[6]
with Router(primary, replicas, wait_timeout_ms=2000) as router:
    user = Session(token=lost)
    try:
        router.read_your_writes(user, "SELECT count(*) FROM t WHERE v = 'lost'")
        print("lost=read", flush=True)
    except WriteLostError as e:
        print("lost=WriteLostError", flush=True)
        print("lost_token_cleared=%s" % (user.token is None), flush=True)
        print("lost_detail=%s" % e.detail, flush=True)
    user = Session(token=kept)
    r = router.read_your_writes(user, "SELECT count(*) FROM t WHERE v = 'survives'")
    print("kept=%s %s" % (r.rows[0][0], r.role), flush=True)
PY
my ($pyout, $pyerr) = ('', '');
IPC::Run::run(
	[
		$python, '-c', $py, $clients,
		$r1->connstr('postgres'), $r2->connstr('postgres'),
		$primary->connstr('postgres'), $tok, $t0
	],
	'>' => \$pyout,
	'2>' => \$pyerr);
note "python router:\n$pyout$pyerr";
my %py = map { split /=/, $_, 2 } grep { /=/ } split /\n/, $pyout;
is($py{lost}, 'WriteLostError',
	'the Python router raises WriteLostError for T');
is($py{lost_token_cleared}, 'True', '... and forgets the token');
like($py{lost_detail} // '', qr/timeline 1 ended at/, '... with the detail');
is($py{kept}, '1 replica', '... and reads W0 from a replica');

done_testing();
