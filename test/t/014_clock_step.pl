
# Copyright (c) 2026, rr_router developers
#
# A wait's budget is measured on the monotonic clock: the wall clock
# stepping back (NTP, a VM restored from a snapshot) must neither lengthen
# nor shorten it.  The replica runs under libfaketime with only the wall
# clock faked, and the clock is stepped back an hour while a session waits
# with a 3 s timeout: the wait must still answer false after about 3 s, not
# after an hour and 3 s.

use strict;
use warnings FATAL => 'all';

use FindBin;
use lib $FindBin::RealBin;

use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);
use RRTest;

my ($libfaketime) = grep { -e $_ } (
	'/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1',
	glob('/usr/lib/*/faketime/libfaketime.so.1'));
plan skip_all => 'libfaketime is not installed (Debian package libfaketime)'
  unless defined $libfaketime;

my $primary = rr_primary('primary');
$primary->safe_psql('postgres', 'CREATE TABLE t(v text)');

# The replica's processes read the wall clock through libfaketime, whose
# offset they re-read from a file at every call; the monotonic clock stays
# real.
my $rc = "${PostgreSQL::Test::Utils::tmp_check}/faketime.rc";

# Set the replica's clock offset.  Replace the file whole (rename): with
# FAKETIME_NO_CACHE every clock read re-reads it, and libfaketime exits the
# process when it reads a half-written file (trixie's does).
sub set_offset
{
	my ($offset) = @_;
	open(my $fh, '>', "$rc.new") or die "cannot write $rc.new: $!";
	print $fh "$offset\n";
	close $fh;
	rename("$rc.new", $rc) or die "cannot rename $rc.new: $!";
}
set_offset('+0');
{
	local $ENV{LD_PRELOAD} = $libfaketime;
	local $ENV{FAKETIME_TIMESTAMP_FILE} = $rc;
	local $ENV{FAKETIME_NO_CACHE} = '1';
	local $ENV{FAKETIME_DONT_FAKE_MONOTONIC} = '1';
	our $replica = rr_replica($primary, 'replica');
}
our $replica;

# Nothing to wait for will arrive: replay is paused.
pause_replay($replica);
my $token = write_token($primary, 't');

my $w = bg_psql($replica,
	"SELECT rr_wait_for_lsn('$token', 3000) AS answered;");
ok(wait_waiters($replica, 1), 'the session is waiting');

# Step the replica's wall clock back by an hour.
set_offset('-1h');
my $t0 = time();
my $replica_now = $replica->safe_psql('postgres',
	'SELECT extract(epoch FROM clock_timestamp())');
cmp_ok($t0 - $replica_now, '>', 3000, "the replica's wall clock went back an hour");

# The wait ends on its own monotonic budget (3 s from its start), not an
# hour later.
my $r = bg_finish($w, 20);
ok(defined $r->{rc},
	sprintf('the wait ended %.1f s after the clock stepped back', time() - $t0));
is($r->{out}, 'f', 'and answered false (timed out)');

# Put the clock back and make sure the replica still works.
set_offset('+0');
$replica->safe_psql('postgres',
	'SELECT pg_cancel_backend(pid) FROM rr_waiters');
resume_replay($replica);
is($replica->safe_psql('postgres', "SELECT rr_wait_for_lsn('$token', 10000)"),
	't', 'after the clock is back the same token is honoured');

done_testing();
