#!/usr/bin/env bash
# Throwaway check of the WAL archiving servers.sh configures (adr/0021), never on the shared
# server: a cluster of its own on port 55433 with the same archive settings, a base backup,
# rows written after it, the server stopped, a point-in-time restore on 55434 to a moment
# between two batches of rows. Prints each step's time. Run as root (initdb runs as postgres):
#   bash deploy/backup/pitr_check.sh
set -Eeuo pipefail
B=/usr/lib/postgresql/15/bin
W=/tmp/kglab-pitr; rm -rf $W; mkdir -p $W/archive; chown -R postgres: $W
as() { runuser -u postgres -- "$@"; }
as $B/initdb -D $W/data -U postgres -E UTF8 --locale=C.UTF-8 --auth-local=trust >/dev/null
cat >> $W/data/postgresql.conf <<CONF
listen_addresses = '127.0.0.1'
port = 55433
unix_socket_directories = '$W'
fsync = off
synchronous_commit = off
full_page_writes = off
wal_level = replica
archive_mode = on
archive_command = '(test ! -f "$W/archive/%f" && cp %p "$W/archive/%f") && (find "$W/archive" -type f -mmin +2880 -delete || true)'
archive_timeout = 300
CONF
as $B/pg_ctl -D $W/data -l $W/log -w start >/dev/null
P="as psql -X -q -A -t -h $W -p 55433 -U postgres"
$P -c "CREATE TABLE t (id int, at timestamptz default now())" -c "INSERT INTO t (id) SELECT generate_series(1, 1000)"
t0=$(date +%s.%N)
as $B/pg_basebackup -h $W -p 55433 -U postgres -D $W/base -Ft -z --wal-method=fetch
echo "pg_basebackup: $(echo "$(date +%s.%N) - $t0" | bc) s, $(du -sh $W/base | cut -f1)"
$P -c "INSERT INTO t (id) SELECT generate_series(1001, 1500)"
sleep 1
TARGET=$($P -c "SELECT now()")
sleep 1
$P -c "INSERT INTO t (id) SELECT generate_series(1501, 2000)"
$P -c "SELECT pg_switch_wal()" >/dev/null
for _ in $(seq 1 30); do [[ "$($P -c "SELECT last_archived_wal IS NOT NULL AND last_archived_wal >= pg_walfile_name(pg_current_wal_lsn() - 1) FROM pg_stat_archiver")" == t ]] && break; sleep 0.5; done
$P -c "SELECT archived_count, failed_count FROM pg_stat_archiver"
as $B/pg_ctl -D $W/data -m fast -w stop >/dev/null
t0=$(date +%s.%N)
mkdir -p $W/restored && chown postgres: $W/restored && chmod 700 $W/restored
as tar -xzf $W/base/base.tar.gz -C $W/restored
sed -i 's/^port = 55433/port = 55434/' $W/restored/postgresql.conf
cat >> $W/restored/postgresql.conf <<CONF
archive_mode = off
restore_command = 'cp "$W/archive/%f" %p'
recovery_target_time = '$TARGET'
recovery_target_action = 'promote'
CONF
as touch $W/restored/recovery.signal
as $B/pg_ctl -D $W/restored -l $W/log2 -w -t 120 start >/dev/null
for _ in $(seq 1 60); do [[ "$(as psql -X -A -t -h $W -p 55434 -U postgres -c 'SELECT pg_is_in_recovery()')" == f ]] && break; sleep 0.5; done
echo "PITR restore to $TARGET: $(echo "$(date +%s.%N) - $t0" | bc) s"
as psql -X -A -t -h $W -p 55434 -U postgres -c "SELECT count(*), max(id) FROM t"
as $B/pg_ctl -D $W/restored -m fast -w stop >/dev/null
rm -rf $W
