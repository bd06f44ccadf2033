#!/usr/bin/env bash
#
# test/package/installed-check.sh
#     Tests an installed rr_router package, nothing from a build tree: the
#     pg_regress suite (the REGRESS list of the Makefile) on a throwaway
#     instance, then a primary and a streaming replica started from the
#     installed binaries: a token written on the primary, rr_wait_for_lsn on
#     the replica (which applies WAL 500 ms late, so the wait really waits)
#     answers true and the row is visible, and rr_status shows each role.
#
# Usage (as an ordinary user: initdb refuses to run as root):
#     installed-check.sh PG_MAJOR INPUT_DIR [OUTPUT_DIR]
# INPUT_DIR holds the test inputs only: Makefile (for its REGRESS list),
# sql/, expected/ and test/regress.conf.  Results and logs go to OUTPUT_DIR
# (default: a new temporary directory).  The servers listen on Unix sockets
# in OUTPUT_DIR only, so several runs cannot collide on a port.
#
# test/package/test-package.sh runs it in a clean chroot after installing the
# .deb; debian/tests/installcheck runs it for every installed version.

set -euo pipefail

PG_MAJOR=${1:?usage: installed-check.sh PG_MAJOR INPUT_DIR [OUTPUT_DIR]}
INPUT=$(cd "${2:?usage: installed-check.sh PG_MAJOR INPUT_DIR [OUTPUT_DIR]}" && pwd)
OUT=${3:-$(mktemp -d "${TMPDIR:-/tmp}/rr-installed-check.XXXXXX")}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

BINDIR=/usr/lib/postgresql/$PG_MAJOR/bin
PG_REGRESS=/usr/lib/postgresql/$PG_MAJOR/lib/pgxs/src/test/regress/pg_regress

npass=0
nfail=0
ok() { npass=$((npass + 1)); printf 'ok %d - %s\n' $((npass + nfail)) "$1"; }
not_ok() { nfail=$((nfail + 1)); printf 'not ok %d - %s\n' $((npass + nfail)) "$1"; }
check() {	# check DESCRIPTION EXPECTED ACTUAL
	if [ "$2" = "$3" ]; then
		ok "$1"
	else
		not_ok "$1"
		printf '#   expected: %s\n#        got: %s\n' "$2" "$3"
	fi
}
die() { printf 'installed-check: %s\n' "$*" >&2; exit 2; }

[ "$(id -u)" -ne 0 ] || die "run as an ordinary user (initdb refuses root)"
[ -x "$BINDIR/postgres" ] || die "PostgreSQL $PG_MAJOR is not installed ($BINDIR/postgres)"
[ -x "$PG_REGRESS" ] || die "no pg_regress at $PG_REGRESS (package postgresql-client-$PG_MAJOR)"

# The files the package must have put in place, named by pg_config.
PKGLIBDIR=$("$BINDIR/pg_config" --pkglibdir)
SHAREDIR=$("$BINDIR/pg_config" --sharedir)
for f in "$PKGLIBDIR/rr_router.so" "$SHAREDIR/extension/rr_router.control"; do
	if [ -f "$f" ]; then ok "installed: $f"; else not_ok "installed: $f"; fi
done

# --- pg_regress ---------------------------------------------------------------

# The REGRESS list of the Makefile, continuation lines included.
REGRESS=$(awk '
	/^REGRESS[ \t]*[:+]?=/ { sub(/^REGRESS[ \t]*[:+]?=[ \t]*/, ""); on = 1 }
	on { line = $0; more = sub(/\\[ \t]*$/, "", line); printf "%s ", line; if (!more) on = 0 }
' "$INPUT/Makefile")
read -r -a tests <<<"$REGRESS"
[ ${#tests[@]} -gt 0 ] || die "no REGRESS list in $INPUT/Makefile"

echo "# pg_regress (PostgreSQL $PG_MAJOR): ${tests[*]}"
set +e
(cd "$OUT" && "$PG_REGRESS" \
	--bindir="$BINDIR" \
	--inputdir="$INPUT" \
	--outputdir="$OUT" \
	--temp-instance="$OUT/tmp_check" \
	--temp-config="$INPUT/test/regress.conf" \
	--dbname=contrib_regression \
	"${tests[@]}") >"$OUT/pg_regress.out" 2>&1
rc=$?
set -e
sed 's/^/# /' "$OUT/pg_regress.out"
if [ "$rc" -eq 0 ]; then
	ok "pg_regress: ${#tests[@]} tests against the installed package"
else
	not_ok "pg_regress: ${#tests[@]} tests against the installed package"
	[ -f "$OUT/regression.diffs" ] && sed 's/^/# /' "$OUT/regression.diffs" | head -n 300
fi

# --- primary and replica ------------------------------------------------------

PRIMARY=$OUT/primary
REPLICA=$OUT/replica
SOCK=$OUT/sock
mkdir -p "$SOCK"
PPORT=5432
RPORT=5433

# Stop both servers on every exit path.
stop_servers() {
	local d
	for d in "$REPLICA" "$PRIMARY"; do
		[ -f "$d/postmaster.pid" ] &&
			"$BINDIR/pg_ctl" -D "$d" stop -m immediate >/dev/null 2>&1
	done
	return 0
}
trap stop_servers EXIT

p_sql() { "$BINDIR/psql" -XAtq -v ON_ERROR_STOP=1 -h "$SOCK" -p "$PPORT" -d postgres -c "$1"; }
r_sql() { "$BINDIR/psql" -XAtq -v ON_ERROR_STOP=1 -h "$SOCK" -p "$RPORT" -d postgres -c "$1"; }

"$BINDIR/initdb" -D "$PRIMARY" -A trust -U postgres --no-sync >"$OUT/initdb.log" 2>&1
cat >>"$PRIMARY/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$SOCK'
port = $PPORT
shared_preload_libraries = 'rr_router'
wal_level = replica
max_wal_senders = 4
fsync = off
CONF
echo "local replication all trust" >>"$PRIMARY/pg_hba.conf"
"$BINDIR/pg_ctl" -D "$PRIMARY" -l "$OUT/primary.log" -w start >/dev/null
p_sql 'CREATE EXTENSION rr_router'
p_sql 'CREATE TABLE smoke(id int PRIMARY KEY, v text)'

"$BINDIR/pg_basebackup" -h "$SOCK" -p "$PPORT" -U postgres -D "$REPLICA" -R -X stream --no-sync
cat >>"$REPLICA/postgresql.conf" <<CONF
port = $RPORT
recovery_min_apply_delay = '500ms'
CONF
"$BINDIR/pg_ctl" -D "$REPLICA" -l "$OUT/replica.log" -w start >/dev/null

check 'primary: rr_status.role' primary "$(p_sql 'SELECT role FROM rr_status')"
check 'replica: rr_status.role' replica "$(r_sql 'SELECT role FROM rr_status')"
# The library the running primary has mapped is the packaged one.
pm_pid=$(head -n 1 "$PRIMARY/postmaster.pid")
check 'primary: the postmaster has mapped the installed rr_router.so' "$PKGLIBDIR/rr_router.so" \
	"$(awk '$6 ~ /rr_router\.so$/ { print $6; exit }' "/proc/$pm_pid/maps")"
if owner=$(dpkg -S "$PKGLIBDIR/rr_router.so" 2>/dev/null); then
	check 'rr_router.so belongs to the package' "postgresql-$PG_MAJOR-rr-router" "${owner%%:*}"
else
	echo "# dpkg does not know $PKGLIBDIR/rr_router.so (not installed from a package)"
fi
check 'extension version = default_version of the installed control file' \
	"$(sed -n "s/^default_version *= *'\(.*\)'/\1/p" "$SHAREDIR/extension/rr_router.control")" \
	"$(p_sql "SELECT extversion FROM pg_extension WHERE extname = 'rr_router'")"

token=$("$BINDIR/psql" -XAtq -v ON_ERROR_STOP=1 -h "$SOCK" -p "$PPORT" -d postgres <<'SQL'
INSERT INTO smoke VALUES (1, 'written on the primary');
SELECT rr_last_commit_lsn();
SQL
)
if [[ $token =~ ^[0-9A-F]+/[0-9A-F]+$ ]]; then ok "primary: token $token"; else not_ok "primary: token '$token'"; fi
check 'replica: the row is not there yet (replay is 500 ms late)' 0 \
	"$(r_sql 'SELECT count(*) FROM smoke')"
result=$("$BINDIR/psql" -XAtq -v ON_ERROR_STOP=1 -h "$SOCK" -p "$RPORT" -d postgres <<SQL
SELECT clock_timestamp() AS t0 \\gset
SELECT rr_wait_for_lsn('$token', 10000);
SELECT round(extract(epoch FROM clock_timestamp() - :'t0') * 1000);
SELECT v FROM smoke WHERE id = 1;
SQL
)
mapfile -t r <<<"$result"
check 'replica: rr_wait_for_lsn(token) answers true' t "${r[0]:-}"
if [ "${r[1]:-0}" -ge 100 ] 2>/dev/null; then
	ok "replica: ... after waiting ${r[1]} ms for replay"
else
	not_ok "replica: ... after waiting for replay (waited '${r[1]:-}' ms)"
fi
check 'replica: the write is visible after the wait' 'written on the primary' "${r[2]:-}"
check 'replica: rr_status counts the wait' 1 "$(r_sql 'SELECT waits FROM rr_status')"

stop_servers
trap - EXIT

echo "# output and logs in $OUT"
echo "$npass passed, $nfail failed"
[ "$nfail" -eq 0 ]
