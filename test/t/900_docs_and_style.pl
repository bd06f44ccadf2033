# Keeps the README's reference tables and the code's error messages honest:
# - every setting, function and view column the server reports appears in the
#   README with the same context, default, return type or column type, in
#   the same order, and the README lists nothing the server does not have;
# - every ereport() in src/ carries an errcode, at every level (LOG lines go
#   to log collectors that filter on SQLSTATE too), primary messages are
#   lower case without a trailing period, details and hints are full
#   sentences;
# - no Linux-only send() flag (MSG_NOSIGNAL): SIGPIPE is ignored in the
#   worker anyway.
use strict;
use warnings;

use File::Basename qw(dirname);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $top = dirname(__FILE__) . '/../..';

my $readme = slurp_file("$top/README.md");
my @lines = split /\n/, $readme;

# --- the README's tables ---------------------------------------------------

# Rows "| `name` | ... |" of the first table after the line matching $start.
sub table_after
{
	my ($start) = @_;
	my @rows;
	my $seen = 0;
	my $in_table = 0;
	for my $line (@lines)
	{
		if (!$seen)
		{
			$seen = 1 if $line =~ $start;
			next;
		}
		if ($line =~ /^\|/)
		{
			$in_table = 1;
			next if $line =~ /^\|\s*-/;
			my @cells = map { s/^\s+|\s+$//gr } split /\|/, $line;
			shift @cells;
			push @rows, \@cells;
		}
		elsif ($in_table)
		{
			last;
		}
	}
	return @rows;
}

sub strip_ticks { return $_[0] =~ s/`//gr; }

my $node = PostgreSQL::Test::Cluster->new('docs');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'rr_router'");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION rr_router');

# Settings: name, context and default, both ways.
my %doc_settings;
for my $row (table_after(qr/^### Settings/))
{
	next unless $row->[0] =~ /^`(rr_router\.[a-z_]+)`$/;
	my $default = strip_ticks($row->[2]);
	$default = '' if $default eq "''";    # an empty string, written ''
	$doc_settings{$1} = { context => $row->[1], default => $default };
}
my %server_settings;
for my $line (split /\n/, $node->safe_psql('postgres',
	"SELECT name, context, current_setting(name) FROM pg_settings
	  WHERE name LIKE 'rr\\_router.%' ORDER BY name"))
{
	my ($name, $context, $value) = split /\|/, $line, 3;
	$server_settings{$name} = 1;
	ok(exists $doc_settings{$name}, "README documents setting $name");
	next unless exists $doc_settings{$name};
	is($doc_settings{$name}{context}, $context, "... with context $context");
	is($doc_settings{$name}{default}, $value, "... and default $value");
}
for my $name (sort keys %doc_settings)
{
	ok($server_settings{$name}, "README setting $name exists on the server");
}

# Functions: name and return type, both ways.
my %doc_functions;
for my $row (table_after(qr/^### Functions/))
{
	next unless $row->[0] =~ /^`(rr_[a-z_]+)\(/;
	$doc_functions{$1} = strip_ticks($row->[1]);
}
my %server_functions;
for my $line (split /\n/, $node->safe_psql('postgres',
	"SELECT p.proname, pg_catalog.format_type(p.prorettype, NULL)
	   FROM pg_proc p
	   JOIN pg_depend d ON d.objid = p.oid AND d.classid = 'pg_proc'::regclass
	   JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'rr_router'
	  WHERE p.proname NOT LIKE '%\\_data'
	  ORDER BY 1"))
{
	my ($name, $type) = split /\|/, $line;
	$server_functions{$name} = 1;
	ok(exists $doc_functions{$name}, "README documents function $name");
	is($doc_functions{$name}, $type, "... returning $type")
	  if exists $doc_functions{$name};
}
for my $name (sort keys %doc_functions)
{
	ok($server_functions{$name}, "README function $name exists on the server");
}

# Views: every column, in order, with its type.
for my $view (qw(rr_status rr_waiters rr_lag_history rr_lag_stats))
{
	my @doc;
	for my $row (table_after(qr/^\*\*`\Q$view\E`\*\*/))
	{
		my $type = strip_ticks($row->[1]);
		push @doc, map { "$_:$type" } ($row->[0] =~ /`([a-z_0-9]+)`/g);
	}
	my @server = split /\n/, $node->safe_psql('postgres',
		"SELECT attname || ':' || pg_catalog.format_type(atttypid, atttypmod)
		   FROM pg_attribute
		  WHERE attrelid = '$view'::regclass AND attnum > 0 AND NOT attisdropped
		  ORDER BY attnum");
	s/timestamp with time zone/timestamptz/ for @server;
	is_deeply(\@doc, \@server, "README columns of $view match the view");
}

$node->stop;

# --- message style -----------------------------------------------------------

for my $file (glob("$top/src/*.c"))
{
	my $src = slurp_file($file);
	my $short = $file =~ s{.*/}{}r;

	while ($src =~ /\bereport\(\s*(\w+)\s*,(.*?)\)\s*\)\s*;/gs)
	{
		my ($level, $body) = ($1, $2);
		# "...LSN is " RR_LSN_FORMAT "." reads as one string
		$body =~ s/"\s*RR_LSN_FORMAT\s*"/%X\/%X/g;
		my $line = 1 + (() = substr($src, 0, $-[0]) =~ /\n/g);
		my $where = "$short:$line";

		ok($body =~ /\berrcode(?:_for_socket_access|_for_file_access)?\(/,
			"$where: ereport($level) has an errcode")
		  unless $level =~ /^DEBUG\d?$/;

		if ($body =~ /\berrmsg\(\s*"((?:[^"\\]|\\.)*)"/)
		{
			my $msg = $1;
			unlike($msg, qr/^[A-Z][a-z]/, "$where: primary message starts lower case");
			unlike($msg, qr/\.$/, "$where: primary message has no trailing period");
		}
		while ($body =~ /\berr(detail|hint)\(\s*"((?:[^"\\]|\\.)*)"/g)
		{
			my ($kind, $text) = ($1, $2);
			like($text, qr/^[A-Z"]/, "$where: $kind starts with a capital");
			like($text, qr/\.$/, "$where: $kind ends with a period");
		}
	}
	unlike($src, qr/\belog\(\s*ERROR\s*,\s*"[^"]*(?:must|cannot|invalid)/,
		"$short: user-facing errors use ereport, not elog");
	unlike($src, qr/\bMSG_NOSIGNAL\b/,
		"$short: no MSG_NOSIGNAL (Linux-only; SIGPIPE is ignored in the worker)");
}

# --- includes and versions ---------------------------------------------------

for my $file (glob("$top/src/*.c"), glob("$top/src/*.h"))
{
	my $src = slurp_file($file);
	my $short = $file =~ s{.*/}{}r;
	my ($first) = $src =~ /^#include\s+(\S+)/m;

	if ($short =~ /\.c$/)
	{
		is($first, '"postgres.h"', "$short: includes postgres.h first");
	}
	else
	{
		unlike($src, qr/^#include\s+"postgres\.h"/m,
			"$short: a header leaves postgres.h to the .c file");
	}
	unlike($src, qr/PG_VERSION_NUM/,
		"$short: version differences live in compat.h")
	  unless $short eq 'compat.h';
}

done_testing();
