# shellcheck shell=bash disable=SC2034
# test/pg-versions.sh
#     Which PostgreSQL versions rr_router is tested on, and where Debian
#     ships each one.  Sourced by test/deps.sh, test/chroot.sh,
#     test/run-tests.sh and test/demo/demo.sh: it only defines lookups.
#
# Each version is tested on Debian's own packages: 15 on the host (Debian
# 12, bookworm), the others in a chroot of the Debian suite that ships
# them.  16 has no Debian package in any suite, so it is not tested.

# Every version the full test run covers, in the order it runs them.
RR_PG_ALL_VERSIONS="15 17 18 19"

# The Debian suites a chroot for version $1 is built from (the first is the
# base), or nothing for an unknown version.
rr_pg_suites()
{
	case "$1" in
	15) echo bookworm ;;
	17) echo trixie ;;
	18) echo sid ;;
	19) echo sid experimental ;;
	esac
}

# The release that version $1's PostgreSQL packages must come from when it is
# not the base suite's (apt's "package/release" syntax), else nothing.
# postgresql-19 is only in experimental, which apt never picks by itself;
# its libpq5 and libpq-dev must come from there too.
rr_pg_release()
{
	case "$1" in
	19) echo experimental ;;
	esac
}

# Is version $1 a version this project tests?
rr_pg_known()
{
	[ -n "$(rr_pg_suites "$1")" ]
}

# Does version $1 run on this machine itself rather than in a chroot?  Yes
# when this machine's Debian release is the suite that ships it.
rr_pg_native()
{
	local codename=
	[ -r /etc/os-release ] && codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
	[ -n "$codename" ] && [ "$(rr_pg_suites "$1")" = "$codename" ]
}

# apt's own complaint in the apt or mmdebstrap output in file $1, on one
# line (its first few distinct error lines), or nothing when nothing there
# is apt's: "the archive cannot satisfy this" rather than a failure of ours.
rr_apt_reason()
{
	grep -E '^(E|Err):| : (Pre-)?Depends: |has no installation candidate' "$1" |
		grep -vE '^E: (mmdebstrap|apt-get .* failed|run_chroot|setup failed|chroot|mkdir|mount|umount|cannot)' |
		sed -e 's/^[[:space:]]*//' | awk '!seen[$0]++' | head -n 4 |
		paste -sd'|' - | sed 's/|/ | /g'
}
