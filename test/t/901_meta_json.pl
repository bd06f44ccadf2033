
# Copyright (c) 2026, rr_router contributors
#
# META.json is valid PGXN metadata (meta-spec 1.0.0: the required keys and
# the type, pattern and allowed value of every key it uses, no unknown
# keys), and its versions follow the extension: the distribution and the
# provided extension carry rr_router.control's default_version ('1.1' is
# SemVer '1.1.0'), the file it names exists, and so does the README
# section that says how to build the Debian package.  Also checks that
# debian/changelog's version is the same release.

use strict;
use warnings FATAL => 'all';

use File::Basename qw(dirname);
use JSON::PP;
use PostgreSQL::Test::Utils;
use Test::More;

my $top = dirname(__FILE__) . '/../..';

my $meta = eval { JSON::PP->new->relaxed(0)->decode(slurp_file("$top/META.json")) };
ok($meta, 'META.json is JSON') or diag $@;
$meta //= {};

# --- the spec: https://pgxn.org/spec/ (PGXN Meta Spec 1.0.0) --------------

my $semver = qr/^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)
	(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?
	(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$/x;
# A Term: at least two characters, no slash, backslash, space or control.
my $term = qr{^[^/\\\s[:cntrl:]]{2,}$};
my %licenses = map { $_ => 1 } qw(agpl_3 apache_1_1 apache_2_0 artistic_1
  artistic_2 bsd freebsd gfdl_1_2 gfdl_1_3 gpl_1 gpl_2 gpl_3 lgpl_2_1
  lgpl_3_0 mit mozilla_1_0 mozilla_1_1 openssl perl_5 postgresql qpl_1_0
  ssleay sun zlib open_source restricted unrestricted unknown);
my %known = map { $_ => 1 } qw(name version abstract maintainer license
  provides meta-spec description generated_by tags no_index prereqs
  release_status resources);
my $str = sub { defined $_[0] && !ref $_[0] && length $_[0] >= ($_[1] // 1) };

for my $key (qw(name version abstract maintainer license provides meta-spec))
{
	ok(exists $meta->{$key}, "required key $key");
}
for my $key (sort keys %$meta)
{
	ok($known{$key} || $key =~ /^[xX]_./, "key $key is defined by the spec");
}

is(ref $meta->{'meta-spec'}, 'HASH', 'meta-spec is an object');
like($meta->{'meta-spec'}{version} // '', qr/^1\.0\.\d+$/,
	'meta-spec version is 1.0.x');
is($meta->{'meta-spec'}{version}, '1.0.0', '... 1.0.0');
ok(!defined $meta->{'meta-spec'}{url}
	  || $meta->{'meta-spec'}{url} =~ m{^https?://pgxn\.org/meta/spec\.txt$},
	'meta-spec url is the spec');

like($meta->{name} // '', $term, 'name is a Term');
like($meta->{version} // '', $semver, 'version is SemVer');
ok($str->($meta->{abstract}), 'abstract is a non-empty string');
ok(!exists $meta->{description} || $str->($meta->{description}),
	'description is a non-empty string');
ok(!exists $meta->{generated_by} || $str->($meta->{generated_by}),
	'generated_by is a non-empty string');
my $m = $meta->{maintainer};
ok($str->($m) || (ref $m eq 'ARRAY' && @$m && !grep { !$str->($_) } @$m),
	'maintainer is a string or a list of strings');
my $l = $meta->{license};
ok((!ref $l && defined $l && $licenses{$l})
	  || (ref $l eq 'ARRAY' && @$l && !grep { ref $_ || !$licenses{$_} } @$l)
	  || (ref $l eq 'HASH' && %$l && !grep { !$str->($_) } values %$l),
	'license is a known license name (or a list, or name => URL)');
ok(!exists $meta->{release_status}
	  || ($meta->{release_status} // '') =~ /^(stable|testing|unstable)$/,
	'release_status is stable, testing or unstable');
if (exists $meta->{tags})
{
	my $t = $meta->{tags};
	ok(ref $t eq 'ARRAY' && @$t
		  && !grep { ref $_ || !/^[^\/\\[:cntrl:]]{2,255}$/ } @$t,
		'tags are 2 to 255 characters, no slash, backslash or control');
	my %seen;
	ok(!(grep { $seen{$_}++ } @$t), '... and unique');
}
if (exists $meta->{prereqs})
{
	my $ok = ref $meta->{prereqs} eq 'HASH';
	for my $phase (keys %{ $ok ? $meta->{prereqs} : {} })
	{
		$ok &&= $phase =~ /^(configure|build|test|runtime|develop)$/;
		my $rels = $meta->{prereqs}{$phase};
		$ok &&= ref $rels eq 'HASH';
		for my $rel (keys %{ ref $rels eq 'HASH' ? $rels : {} })
		{
			$ok &&= $rel =~ /^(requires|recommends|suggests|conflicts)$/;
			my $deps = $rels->{$rel};
			$ok &&= ref $deps eq 'HASH' && %$deps;
			for my $dep (keys %{ ref $deps eq 'HASH' ? $deps : {} })
			{
				my $v = $deps->{$dep};
				$ok &&= $dep =~ $term;
				$ok &&= !ref $v && ($v eq '0'
					|| $v =~ /^((?:[=!]=|[<>]=?)\s*)?\d+\.\d+\.\d+/);
			}
		}
	}
	ok($ok, 'prereqs: phases, relationships, Terms and version ranges');
}

my $p = $meta->{provides};
ok(ref $p eq 'HASH' && %$p, 'provides names at least one extension');
for my $ext (sort keys %{ ref $p eq 'HASH' ? $p : {} })
{
	my $e = $p->{$ext};
	like($ext, $term, "provides: $ext is a Term");
	ok(ref $e eq 'HASH', "provides: $ext is an object");
	next unless ref $e eq 'HASH';
	ok($str->($e->{file}, 2), "provides: $ext has a file");
	like($e->{version} // '', $semver, "provides: $ext version is SemVer");
	ok(!(grep { !/^(file|version|abstract|docfile|[xX]_.+)$/ } keys %$e),
		"provides: $ext has only keys the spec defines");
	ok(-f "$top/$e->{file}", "provides: $ext file $e->{file} exists")
	  if defined $e->{file};
	ok(-f "$top/$e->{docfile}", "provides: $ext docfile $e->{docfile} exists")
	  if defined $e->{docfile};
}

# --- versions follow the control file ----------------------------------------

my ($default_version) =
  slurp_file("$top/rr_router.control") =~ /^default_version\s*=\s*'([^']+)'/m;
ok(defined $default_version, "rr_router.control has a default_version");
$default_version //= '';
# '1.1' is SemVer '1.1.0'.
my $want = $default_version =~ /^\d+\.\d+$/ ? "$default_version.0" : $default_version;
is($meta->{version}, $want,
	"META.json version is the control file's default_version ($default_version)");
is($p->{rr_router}{version}, $want,
	'... and so is the version of the extension it provides')
  if ref $p eq 'HASH';
ok(ref $p eq 'HASH' && exists $p->{rr_router},
	'META.json provides the extension rr_router.control names');

my ($deb_version) = slurp_file("$top/debian/changelog") =~ /^rr-router \(([^)]+)\)/;
is(($deb_version // '') =~ s/-[^-]+$//r, $want,
	"debian/changelog's newest entry is the same release");

ok(slurp_file("$top/README.md") =~ /^## Install.*?dpkg-buildpackage/ms,
	'the README says how to build the Debian package');

done_testing();
