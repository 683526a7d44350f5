#!/usr/bin/env bash
# Real backend servers for local development and CI on a machine without Docker.
#
#   bash deploy/local/servers.sh up       install what is missing, start everything, print the env
#   bash deploy/local/servers.sh down     stop everything this script started (safe when nothing runs)
#   bash deploy/local/servers.sh status   which servers answer
#   bash deploy/local/servers.sh env      print the export lines only (no checks)
#   bash deploy/local/servers.sh restart  down + up
#
# All servers listen on 127.0.0.1 only; data and logs live under <repo>/.kglab/servers/.
# Progress goes to stderr; with `up` and `env` only the export lines go to stdout, so
#   eval "$(bash deploy/local/servers.sh up)"
# works. See deploy/local/README.md.
set -Eeuo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"
KGLAB_DIR="$REPO_ROOT/.kglab"
STATE="$KGLAB_DIR/servers"
LOGS="$STATE/logs"
BIN_DIR="$KGLAB_DIR/bin"
BUILD_DIR="$KGLAB_DIR/build"

HOST=127.0.0.1
PG_PORT=5432
REDIS_PORT=6379
RABBIT_PORT=5672
RABBIT_MGMT_PORT=15672
RABBIT_DIST_PORT=25672
NEO4J_PORT=7687
MONGO_PORT=27017
CLAMD_PORT=3310

NEO4J_VERSION="$(sed -n 's:.*<neo4j.version>\(.*\)</neo4j.version>.*:\1:p' "$SCRIPT_DIR/neo4j/pom.xml")"
NEO4J_PASSWORD=kglab-neo4j
# The MongoDB-wire server: SecantusDB's Rust server (WiredTiger underneath), from crates.io
# (adr/0015). Pinned: it is a pre-release, and --locked keeps its dependency set.
SECANTUS_CRATE=secantus-mdb
SECANTUS_VERSION=0.5.3-beta.196

TIMEOUT="${KGLAB_SERVERS_TIMEOUT:-180}" # seconds to wait for each server to answer

if [[ $EUID -eq 0 ]]; then IS_ROOT=1; else IS_ROOT=0; fi

# ---------------------------------------------------------------------------- helpers

log() { printf '[servers] %s\n' "$*" >&2; }
warn() { printf '[servers] WARNING: %s\n' "$*" >&2; }
die() {
    printf '[servers] ERROR: %s\n' "$*" >&2
    exit 1
}

print_env() {
    cat <<EOF
export KGLAB_POSTGRES_URL=postgresql://kglab:kglab@$HOST:$PG_PORT/kglab
export KGLAB_REDIS_URL=redis://$HOST:$REDIS_PORT/0
export KGLAB_RABBITMQ_URL=amqp://kglab:kglab@$HOST:$RABBIT_PORT/
export KGLAB_RABBITMQ_MANAGEMENT_URL=http://kglab:kglab@$HOST:$RABBIT_MGMT_PORT
export KGLAB_NEO4J_URL=bolt://neo4j:$NEO4J_PASSWORD@$HOST:$NEO4J_PORT
export KGLAB_MONGO_URL=mongodb://$HOST:$MONGO_PORT/
export KGLAB_CLAMD_URL=tcp://$HOST:$CLAMD_PORT
EOF
}

# Fail naming the server and showing the end of its log(s).
fail_server() {
    local name="$1" msg="$2"
    shift 2
    printf '[servers] ERROR: %s did not come up: %s\n' "$name" "$msg" >&2
    local f
    for f in "$@"; do
        if [[ -f "$f" ]]; then
            printf '[servers] ---- last lines of %s ----\n' "$f" >&2
            tail -n 40 "$f" >&2 || true
            printf '[servers] ----\n' >&2
        fi
    done
    exit 1
}

port_open() { # port -> 0 when something accepts TCP connections on 127.0.0.1:port
    timeout 2 bash -c "exec 3<>/dev/tcp/$HOST/$1" 2>/dev/null
}

pid_alive() { [[ -n "${1:-}" ]] && kill -0 "$1" 2>/dev/null; }

pid_from() { # pidfile -> pid on stdout (first line), empty when absent
    if [[ -f "$1" ]]; then head -n1 "$1" 2>/dev/null | tr -dc '0-9' || true; fi
}

# Run a command as a system user when we are root (servers that refuse root, least privilege);
# as ourselves otherwise.
as_user() {
    local user="$1"
    shift
    if [[ $IS_ROOT -eq 1 ]]; then
        runuser -u "$user" -- "$@"
    else
        "$@"
    fi
}

own_dir() { # user dir... : create and hand to a system user (when root)
    local user="$1"
    shift
    mkdir -p "$@"
    if [[ $IS_ROOT -eq 1 ]]; then chown "$user:" "$@"; fi
}

# wait_until NAME TIMEOUT PID CHECK_FN [LOG...]: poll CHECK_FN until it succeeds; fail if the
# process PID (when given) dies or the timeout passes.
wait_until() {
    local name="$1" limit="$2" pid="$3" check="$4"
    shift 4
    local start=$SECONDS
    until "$check"; do
        if [[ -n "$pid" ]] && ! pid_alive "$pid"; then
            fail_server "$name" "its process ($pid) exited" "$@"
        fi
        if ((SECONDS - start >= limit)); then
            fail_server "$name" "no answer within ${limit}s" "$@"
        fi
        sleep 1
    done
}

# Stop a process by pid file: SIGTERM, wait, then SIGKILL.
stop_pid() {
    local name="$1" pidfile="$2" limit="${3:-60}"
    local pid
    pid="$(pid_from "$pidfile")"
    if ! pid_alive "$pid"; then
        rm -f "$pidfile"
        return 0
    fi
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    local start=$SECONDS
    while pid_alive "$pid"; do
        if ((SECONDS - start >= limit)); then
            warn "$name did not stop within ${limit}s; killing it"
            kill -KILL "$pid" 2>/dev/null || true
            sleep 1
            break
        fi
        sleep 0.5
    done
    rm -f "$pidfile"
}

trap 'printf "[servers] ERROR: command failed (exit %s) at line %s: %s\n" "$?" "$LINENO" "$BASH_COMMAND" >&2' ERR

# ---------------------------------------------------------------------------- installation

APT_UPDATED=0

wait_for_apt() {
    local start=$SECONDS
    while pgrep -x 'apt-get|apt|dpkg|unattended-upgr' >/dev/null 2>&1; do
        if ((SECONDS - start == 0)); then log "waiting for another apt/dpkg run to finish"; fi
        if ((SECONDS - start > 900)); then die "another apt/dpkg process has been running for 15 minutes"; fi
        sleep 3
    done
}

apt_install() { # packages...
    [[ $# -gt 0 ]] || return 0
    [[ $IS_ROOT -eq 1 ]] || die "missing packages ($*) and not root: install them with apt-get first"
    command -v apt-get >/dev/null || die "missing packages ($*) and no apt-get on this machine"
    wait_for_apt
    if [[ $APT_UPDATED -eq 0 ]]; then
        log "apt-get update"
        apt-get -o DPkg::Lock::Timeout=600 update -qq >&2 || die "apt-get update failed"
        APT_UPDATED=1
    fi
    # Keep the packages' maintainer scripts from starting the Debian default instances
    # (they would take our ports, RabbitMQ on every interface): the usual policy-rc.d trick,
    # only when the machine has none already.
    local made_policy=0
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        made_policy=1
    fi
    log "apt-get install $*"
    local rc=0
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "$@" >&2 || rc=$?
    if [[ $made_policy -eq 1 ]]; then rm -f /usr/sbin/policy-rc.d; fi
    [[ $rc -eq 0 ]] || die "apt-get install $* failed (exit $rc)"
}

pg_bindir() {
    local d
    for d in /usr/lib/postgresql/15/bin /usr/lib/postgresql/*/bin; do
        if [[ -x "$d/initdb" && -x "$d/postgres" ]]; then
            echo "$d"
            return 0
        fi
    done
    return 1
}

ensure_packages() {
    local pkgs=()
    pg_bindir >/dev/null || pkgs+=(postgresql)
    command -v psql >/dev/null || pkgs+=(postgresql-client)
    command -v redis-server >/dev/null || pkgs+=(redis-server)
    command -v redis-cli >/dev/null || pkgs+=(redis-tools)
    [[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ]] || pkgs+=(rabbitmq-server)
    command -v curl >/dev/null || pkgs+=(curl)
    command -v javac >/dev/null || pkgs+=(openjdk-17-jdk-headless)
    command -v mvn >/dev/null || pkgs+=(maven)
    command -v flock >/dev/null || pkgs+=(util-linux)
    [[ -x /usr/sbin/clamd ]] || pkgs+=(clamav-daemon)
    # SecantusDB's crate builds WiredTiger (C) with cmake and make.
    command -v cmake >/dev/null || pkgs+=(cmake)
    { command -v cc >/dev/null && command -v make >/dev/null; } || pkgs+=(build-essential)
    if [[ ${#pkgs[@]} -gt 0 ]]; then
        apt_install "${pkgs[@]}"
    fi
    cargo_bin >/dev/null || die "Rust's cargo is required to build SecantusDB (crates.io) and is not on PATH or in ~/.cargo/bin"
}

# --- Neo4j launcher jar (Maven) ---

NEO4J_SRC="$SCRIPT_DIR/neo4j"
NEO4J_JAR="$NEO4J_SRC/target/kglab-neo4j.jar"
# Built artefacts are also kept per user outside the work tree, so a fresh clone (CI) on the same
# machine copies them instead of building again.
ARTEFACT_CACHE="${KGLAB_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kglab}"

neo4j_src_hash() {
    (
        cd "$NEO4J_SRC"
        find pom.xml src -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum
    ) | sha256sum | cut -c1-16
}

neo4j_jar_fresh() {
    [[ -f "$NEO4J_JAR" && -f "$NEO4J_SRC/target/lib/neo4j-$NEO4J_VERSION.jar" ]] || return 1
    [[ "$(cat "$NEO4J_SRC/target/.src-hash" 2>/dev/null)" == "$(neo4j_src_hash)" ]]
}

# Build (or copy from the cache) target/kglab-neo4j.jar + target/lib/.
build_neo4j() {
    local hash cached
    hash="$(neo4j_src_hash)"
    cached="$ARTEFACT_CACHE/neo4j-launcher-$hash"
    rm -rf "$NEO4J_SRC/target"
    if [[ -f "$cached/kglab-neo4j.jar" && -f "$cached/lib/neo4j-$NEO4J_VERSION.jar" ]]; then
        log "neo4j launcher: copying the build from $cached"
        mkdir -p "$NEO4J_SRC/target"
        cp -R "$cached/kglab-neo4j.jar" "$cached/lib" "$NEO4J_SRC/target/"
    else
        log "building the Neo4j $NEO4J_VERSION launcher (mvn package; log: $LOGS/build-neo4j.log)"
        (cd "$NEO4J_SRC" && mvn -q -B package) >"$LOGS/build-neo4j.log" 2>&1
        rm -rf "$cached.tmp"
        if mkdir -p "$cached.tmp" && cp -R "$NEO4J_JAR" "$NEO4J_SRC/target/lib" "$cached.tmp/"; then
            rm -rf "$cached" && mv "$cached.tmp" "$cached" || true
        fi
    fi
    echo "$hash" >"$NEO4J_SRC/target/.src-hash"
}

# --- SecantusDB binary (Rust) ---

SECANTUS_BIN="$BIN_DIR/secantusd-rs"

cargo_bin() {
    if command -v cargo >/dev/null; then
        command -v cargo
    elif [[ -x "$HOME/.cargo/bin/cargo" ]]; then
        echo "$HOME/.cargo/bin/cargo"
    else
        return 1
    fi
}

secantus_version_ok() { # binary
    [[ -x "$1" ]] || return 1
    local out
    out="$("$1" --version 2>/dev/null)" || return 1
    [[ "$out" == "secantusd-rs $SECANTUS_VERSION"* ]]
}

secantus_bin_ok() { secantus_version_ok "$SECANTUS_BIN"; }

# `cargo install` from crates.io builds WiredTiger (C, cmake) and the server: about 13 minutes on
# 2 busy cores, once; the binary is then kept in the artefact cache. The crate declares
# rust-version 1.98 but builds with older stable compilers (1.95 here), hence
# --ignore-rust-version; --locked uses the crate's own Cargo.lock.
build_secantus() {
    local cached="$ARTEFACT_CACHE/secantus-$SECANTUS_VERSION/secantusd-rs"
    mkdir -p "$BIN_DIR"
    if secantus_version_ok "$cached"; then
        log "secantusdb: copying the build from $cached"
        cp "$cached" "$SECANTUS_BIN.tmp" && mv -f "$SECANTUS_BIN.tmp" "$SECANTUS_BIN"
        return 0
    fi
    log "building SecantusDB $SECANTUS_VERSION (cargo install; log: $LOGS/build-secantus.log)"
    (
        set -Eeuo pipefail
        root="$BUILD_DIR/secantus"
        "$(cargo_bin)" install "$SECANTUS_CRATE" --version "$SECANTUS_VERSION" --locked \
            --ignore-rust-version --root "$root" --target-dir "$BUILD_DIR/secantus-target"
        mv -f "$root/bin/secantusd-rs" "$SECANTUS_BIN"
        rm -rf "$root" "$BUILD_DIR/secantus-target"
    ) >"$LOGS/build-secantus.log" 2>&1
    if mkdir -p "$(dirname "$cached")" && cp "$SECANTUS_BIN" "$cached.tmp"; then
        mv -f "$cached.tmp" "$cached" || true
    fi
}

NEO4J_BUILD_PID=""
SECANTUS_BUILD_PID=""

# Put artefacts built before the cache existed into it (cheap; skipped when already there).
seed_artefact_cache() {
    local cached="$ARTEFACT_CACHE/secantus-$SECANTUS_VERSION/secantusd-rs"
    if secantus_bin_ok && ! secantus_version_ok "$cached"; then
        mkdir -p "$(dirname "$cached")" && cp "$SECANTUS_BIN" "$cached.tmp" && mv -f "$cached.tmp" "$cached" || true
    fi
    if neo4j_jar_fresh; then
        cached="$ARTEFACT_CACHE/neo4j-launcher-$(neo4j_src_hash)"
        if [[ ! -f "$cached/kglab-neo4j.jar" ]]; then
            rm -rf "$cached.tmp"
            mkdir -p "$cached.tmp" && cp -R "$NEO4J_JAR" "$NEO4J_SRC/target/lib" "$cached.tmp/" &&
                mv "$cached.tmp" "$cached" || true
        fi
    fi
}

# Start the builds in the background (they then overlap apt-get and the packaged servers);
# a build whose toolchain is not there yet is started after ensure_packages.
start_builds() {
    if [[ -z "$NEO4J_BUILD_PID" ]] && command -v mvn >/dev/null && command -v javac >/dev/null && ! neo4j_jar_fresh; then
        if [[ -f "$NEO4J_JAR" ]] && pid_alive "$(pid_from "$NEO4J_PID")"; then
            # Never pull the jars from under a running JVM.
            warn "neo4j launcher sources changed but Neo4j is running: 'servers.sh restart' to rebuild"
        else
            build_neo4j &
            NEO4J_BUILD_PID=$!
        fi
    fi
    if [[ -z "$SECANTUS_BUILD_PID" ]] && cargo_bin >/dev/null && command -v cmake >/dev/null &&
        command -v cc >/dev/null && ! secantus_bin_ok; then
        build_secantus &
        SECANTUS_BUILD_PID=$!
    fi
}

# ---------------------------------------------------------------------------- PostgreSQL

PG_DIR="$STATE/postgres"
PG_DATA="$PG_DIR/data"
PG_SOCK="$PG_DIR/run"
PG_LOG="$LOGS/postgres.log"
# Every finished WAL segment is copied here (archive_command): with a base backup
# (`make backup` takes one, deploy/backup) PostgreSQL can be restored to any moment since it.
PG_WAL_ARCHIVE="$PG_DIR/wal-archive"

pg_ready() { pg_isready -q -h "$HOST" -p "$PG_PORT" -t 2 >/dev/null 2>&1; }
pg_ours_pid() { # postmaster pid of our cluster if it runs
    local pid
    pid="$(pid_from "$PG_DATA/postmaster.pid")"
    if pid_alive "$pid"; then echo "$pid"; fi
}

pg_psql() { # socket_dir sql -> runs as the postgres superuser over the unix socket
    local sock="$1" sql="$2"
    as_user postgres psql -X -q -A -t -v ON_ERROR_STOP=1 -h "$sock" -p "$PG_PORT" -U postgres -d postgres -c "$sql"
}

pg_ensure_role_db() {
    local sock="$1"
    pg_psql "$sock" "DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'kglab') THEN
    CREATE ROLE kglab LOGIN SUPERUSER PASSWORD 'kglab';
  ELSE
    ALTER ROLE kglab LOGIN SUPERUSER PASSWORD 'kglab';
  END IF;
END \$\$;" >/dev/null
    if [[ "$(pg_psql "$sock" "SELECT 1 FROM pg_database WHERE datname = 'kglab'")" != "1" ]]; then
        pg_psql "$sock" "CREATE DATABASE kglab OWNER kglab" >/dev/null
    fi
}

pg_write_conf() {
    cat >"$PG_DATA/kglab.conf" <<EOF
# written by deploy/local/servers.sh on every start
listen_addresses = '$HOST'
port = $PG_PORT
unix_socket_directories = '$PG_SOCK'
max_connections = 200
shared_buffers = 128MB
# throw-away development data: trade durability for speed
fsync = off
synchronous_commit = off
full_page_writes = off
log_timezone = 'UTC'
timezone = 'UTC'
# WAL archiving (adr/0021): each finished segment is copied to the archive, and a segment is
# finished at least every 5 minutes, so a point-in-time restore loses at most 5 minutes (RPO).
# archive_mode takes effect when the server starts; an older running server keeps going
# without it until its next restart.
wal_level = replica
archive_mode = on
# Bounded on a development machine: each archived segment also removes those older than
# KGLAB_WAL_ARCHIVE_MINUTES (2 days by default), and a failed cleanup never fails the archiving.
archive_command = '(test ! -f "$PG_WAL_ARCHIVE/%f" && cp %p "$PG_WAL_ARCHIVE/%f") && (find "$PG_WAL_ARCHIVE" -type f -mmin +${KGLAB_WAL_ARCHIVE_MINUTES:-2880} -delete || true)'
archive_timeout = 300
EOF
    if [[ $IS_ROOT -eq 1 ]]; then chown postgres: "$PG_DATA/kglab.conf"; fi
}

up_postgres() {
    local bindir
    bindir="$(pg_bindir)" || die "PostgreSQL server binaries not found under /usr/lib/postgresql"
    if [[ -n "$(pg_ours_pid)" ]] && pg_ready; then
        log "postgres: already running (pid $(pg_ours_pid))"
        pg_ensure_role_db "$PG_SOCK"
        return 0
    fi
    if port_open "$PG_PORT" && [[ -z "$(pg_ours_pid)" ]]; then
        # Something else (e.g. the Debian cluster started with pg_ctlcluster) has the port.
        if pg_ready && psql -X -q -A -t "postgresql://kglab:kglab@$HOST:$PG_PORT/kglab" -c 'SELECT 1' >/dev/null 2>&1; then
            warn "postgres: port $PG_PORT is served by another PostgreSQL (not started from this work tree) that accepts kglab/kglab; using it"
            return 0
        fi
        if pg_ready && [[ -S /var/run/postgresql/.s.PGSQL.$PG_PORT ]] && pg_ensure_role_db /var/run/postgresql 2>/dev/null; then
            warn "postgres: port $PG_PORT is served by another PostgreSQL (not started from this work tree); using it (role and database kglab ensured)"
            return 0
        fi
        die "postgres: port $HOST:$PG_PORT is taken by another process; stop it (e.g. pg_ctlcluster 15 main stop) and retry"
    fi
    own_dir postgres "$PG_DIR" "$PG_SOCK"
    if [[ ! -f "$PG_DATA/PG_VERSION" ]]; then
        log "postgres: initdb $PG_DATA"
        rm -rf "$PG_DATA"
        own_dir postgres "$PG_DATA"
        chmod 700 "$PG_DATA"
        as_user postgres "$bindir/initdb" -D "$PG_DATA" -U postgres -E UTF8 --locale=C.UTF-8 \
            --auth-local=trust --auth-host=scram-sha-256 >"$LOGS/postgres-initdb.log" 2>&1 ||
            fail_server postgres "initdb failed" "$LOGS/postgres-initdb.log"
        echo "include_if_exists = 'kglab.conf'" >>"$PG_DATA/postgresql.conf"
    fi
    own_dir postgres "$PG_WAL_ARCHIVE"
    chmod 700 "$PG_WAL_ARCHIVE"
    pg_write_conf
    touch "$PG_LOG"
    if [[ $IS_ROOT -eq 1 ]]; then chown postgres: "$PG_LOG"; fi
    log "postgres: starting on $HOST:$PG_PORT"
    as_user postgres "$bindir/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t "$TIMEOUT" start >/dev/null 2>>"$PG_LOG" 9>&- ||
        fail_server postgres "pg_ctl start failed" "$PG_LOG"
    wait_until postgres "$TIMEOUT" "$(pg_ours_pid)" pg_ready "$PG_LOG"
    pg_ensure_role_db "$PG_SOCK" || fail_server postgres "could not create role/database kglab" "$PG_LOG"
    log "postgres: up"
}

down_postgres() {
    local bindir pid
    pid="$(pg_ours_pid || true)"
    if [[ -z "$pid" ]]; then
        rm -f "$PG_DATA/postmaster.pid" 2>/dev/null || true
        return 0
    fi
    bindir="$(pg_bindir)"
    log "stopping postgres (pid $pid)"
    as_user postgres "$bindir/pg_ctl" -D "$PG_DATA" -m fast -w -t 60 stop >/dev/null 2>&1 ||
        stop_pid postgres "$PG_DATA/postmaster.pid" 30
}

# ---------------------------------------------------------------------------- Redis

REDIS_DIR="$STATE/redis"
REDIS_PID="$REDIS_DIR/redis.pid"
REDIS_LOG="$LOGS/redis.log"

redis_ready() { [[ "$(redis-cli -h "$HOST" -p "$REDIS_PORT" ping 2>/dev/null)" == "PONG" ]]; }

up_redis() {
    local pid
    pid="$(pid_from "$REDIS_PID")"
    if pid_alive "$pid" && redis_ready; then
        log "redis: already running (pid $pid)"
        return 0
    fi
    if port_open "$REDIS_PORT"; then
        if redis_ready; then
            warn "redis: port $REDIS_PORT is served by another Redis (not started from this work tree); using it"
            return 0
        fi
        die "redis: port $HOST:$REDIS_PORT is taken by another process"
    fi
    own_dir redis "$REDIS_DIR"
    touch "$REDIS_LOG"
    if [[ $IS_ROOT -eq 1 ]]; then chown redis: "$REDIS_LOG"; fi
    rm -f "$REDIS_PID"
    log "redis: starting on $HOST:$REDIS_PORT (no persistence)"
    as_user redis redis-server --daemonize yes --bind "$HOST" --port "$REDIS_PORT" --protected-mode yes \
        --save "" --appendonly no --dir "$REDIS_DIR" --pidfile "$REDIS_PID" --logfile "$REDIS_LOG" \
        >>"$REDIS_LOG" 2>&1 9>&- || fail_server redis "redis-server failed to start" "$REDIS_LOG"
    wait_until redis "$TIMEOUT" "" redis_ready "$REDIS_LOG"
    log "redis: up"
}

down_redis() {
    local pid
    pid="$(pid_from "$REDIS_PID")"
    pid_alive "$pid" || {
        rm -f "$REDIS_PID"
        return 0
    }
    log "stopping redis (pid $pid)"
    redis-cli -h "$HOST" -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
    local start=$SECONDS
    while pid_alive "$pid" && ((SECONDS - start < 20)); do sleep 0.3; done
    stop_pid redis "$REDIS_PID" 10
}

# ---------------------------------------------------------------------------- RabbitMQ

RABBIT_DIR="$STATE/rabbitmq"
RABBIT_PID="$RABBIT_DIR/rabbitmq.pid"
RABBIT_LOG_DIR="$LOGS/rabbitmq"
RABBIT_STDOUT="$LOGS/rabbitmq-stdout.log"
RABBIT_BIN=/usr/lib/rabbitmq/bin

rabbit_home() {
    # As root the node runs as the rabbitmq user with its usual home and Erlang cookie, under the
    # default node name: the plain `rabbitmqctl` command then reaches it too.
    if [[ $IS_ROOT -eq 1 ]]; then
        getent passwd rabbitmq | cut -d: -f6
    else
        echo "$RABBIT_DIR/home"
    fi
}

rabbit_nodename() {
    local h
    h="$(hostname -s 2>/dev/null || true)"
    if [[ -n "$h" ]] && getent hosts "$h" >/dev/null 2>&1; then
        echo "rabbit@$h"
    else
        echo "rabbit@localhost"
    fi
}

rabbit_env() {
    local home
    home="$(rabbit_home)"
    # The -kernel flags keep Erlang distribution on loopback too; epmd is told by ERL_EPMD_ADDRESS.
    echo "HOME=$home"
    echo "RABBITMQ_NODENAME=$(rabbit_nodename)"
    echo "RABBITMQ_NODE_IP_ADDRESS=$HOST"
    echo "RABBITMQ_NODE_PORT=$RABBIT_PORT"
    echo "RABBITMQ_DIST_PORT=$RABBIT_DIST_PORT"
    echo "RABBITMQ_CONFIG_FILE=$RABBIT_DIR/rabbitmq.conf"
    echo "RABBITMQ_ENABLED_PLUGINS_FILE=$RABBIT_DIR/enabled_plugins"
    echo "RABBITMQ_MNESIA_BASE=$RABBIT_DIR/mnesia"
    echo "RABBITMQ_LOG_BASE=$RABBIT_LOG_DIR"
    echo "RABBITMQ_PID_FILE=$RABBIT_PID"
    echo "RABBITMQ_ADVANCED_CONFIG_FILE=$RABBIT_DIR/advanced.config"
    # +sbwt none (and its dirty-scheduler twins): schedulers sleep instead of busy-waiting when
    # idle. On a 2-core host shared with the services, busy-waiting shows up as broker CPU taken
    # from the very processes that publish and consume (RabbitMQ's runtime-tuning guide).
    echo "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-kernel inet_dist_use_interface {127,0,0,1} +sbwt none +sbwtdcpu none +sbwtdio none"
    echo "ERL_EPMD_ADDRESS=$HOST"
}

as_rabbit() { # command... with the node's environment, as the rabbitmq user when root
    local -a envs=()
    local line
    while IFS= read -r line; do envs+=("$line"); done < <(rabbit_env)
    if [[ $IS_ROOT -eq 1 ]]; then
        (cd "$(rabbit_home)" && runuser -u rabbitmq -- env "${envs[@]}" "$@")
    else
        env "${envs[@]}" "$@"
    fi
}

rabbitctl() { as_rabbit "$RABBIT_BIN/rabbitmqctl" "$@"; }

# The node itself: exec'd (no shell or runuser left waiting as its parent), in its own session.
rabbit_spawn_server() {
    local -a envs=()
    local line
    while IFS= read -r line; do envs+=("$line"); done < <(rabbit_env)
    if [[ $IS_ROOT -eq 1 ]]; then
        cd "$(rabbit_home)"
        exec setsid setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups \
            env USER=rabbitmq LOGNAME=rabbitmq "${envs[@]}" nohup "$RABBIT_BIN/rabbitmq-server"
    else
        exec setsid env "${envs[@]}" nohup "$RABBIT_BIN/rabbitmq-server"
    fi
}

rabbit_mgmt_ok() {
    curl -fsS -m 3 -u kglab:kglab "http://$HOST:$RABBIT_MGMT_PORT/api/whoami" 2>/dev/null | grep -q '"administrator"'
}

rabbit_started() {
    port_open "$RABBIT_PORT" && rabbitctl -q await_startup --timeout 5 >/dev/null 2>&1
}

rabbit_ours_pid() {
    local pid
    pid="$(pid_from "$RABBIT_PID")"
    if pid_alive "$pid"; then echo "$pid"; fi
}

rabbit_write_conf() {
    cat >"$RABBIT_DIR/rabbitmq.conf" <<EOF
# written by deploy/local/servers.sh on every start
listeners.tcp.default = $HOST:$RABBIT_PORT
management.tcp.ip = $HOST
management.tcp.port = $RABBIT_MGMT_PORT
# first boot only (the user is also ensured with rabbitmqctl after every start)
default_user = kglab
default_pass = kglab
default_user_tags.administrator = true
default_permissions.configure = .*
default_permissions.read = .*
default_permissions.write = .*
loopback_users = none
disk_free_limit.absolute = 50MB
log.console = false
log.file.level = info
EOF
    echo '[rabbitmq_management].' >"$RABBIT_DIR/enabled_plugins"
    echo '[].' >"$RABBIT_DIR/advanced.config"
    if [[ $IS_ROOT -eq 1 ]]; then
        chown rabbitmq: "$RABBIT_DIR/rabbitmq.conf" "$RABBIT_DIR/enabled_plugins" "$RABBIT_DIR/advanced.config"
    fi
}

rabbit_ensure_user() {
    if rabbit_mgmt_ok; then return 0; fi
    rabbitctl -q add_user kglab kglab >/dev/null 2>&1 || rabbitctl -q change_password kglab kglab >/dev/null
    rabbitctl -q set_user_tags kglab administrator >/dev/null
    rabbitctl -q set_permissions -p / kglab '.*' '.*' '.*' >/dev/null
}

ensure_epmd() {
    # Erlang's port mapper: start it ourselves bound to loopback before anything Erlang runs
    # (rabbitmqctl would otherwise start one on every interface).
    if port_open 4369; then return 0; fi
    if [[ $IS_ROOT -eq 1 ]]; then
        runuser -u rabbitmq -- env ERL_EPMD_ADDRESS="$HOST" epmd -daemon 9>&-
    else
        ERL_EPMD_ADDRESS="$HOST" epmd -daemon 9>&-
    fi
}

up_rabbitmq() {
    local pid
    pid="$(rabbit_ours_pid || true)"
    if [[ -n "$pid" ]] && port_open "$RABBIT_PORT"; then
        if rabbit_mgmt_ok || rabbit_started; then
            log "rabbitmq: already running (pid $pid)"
            rabbit_ensure_user
            return 0
        fi
    fi
    if [[ -z "$pid" ]] && port_open "$RABBIT_PORT"; then
        if rabbit_mgmt_ok; then
            warn "rabbitmq: port $RABBIT_PORT is served by another RabbitMQ (not started from this work tree) that knows kglab/kglab; using it"
            return 0
        fi
        die "rabbitmq: port $HOST:$RABBIT_PORT is taken by another process (a RabbitMQ started by the Debian package? stop it with 'rabbitmqctl shutdown')"
    fi
    if [[ -z "$pid" ]]; then
        own_dir rabbitmq "$RABBIT_DIR" "$RABBIT_DIR/mnesia" "$RABBIT_LOG_DIR"
        if [[ $IS_ROOT -eq 0 ]]; then mkdir -p "$RABBIT_DIR/home"; fi
        rabbit_write_conf
        ensure_epmd
        rm -f "$RABBIT_PID"
        log "rabbitmq: starting $(rabbit_nodename) on $HOST:$RABBIT_PORT (management on $HOST:$RABBIT_MGMT_PORT)"
        : >"$RABBIT_STDOUT"
        rabbit_spawn_server >>"$RABBIT_STDOUT" 2>&1 </dev/null 9>&- &
        local start=$SECONDS
        while [[ -z "$(rabbit_ours_pid || true)" ]] && ((SECONDS - start < 30)); do sleep 0.5; done
        pid="$(rabbit_ours_pid || true)"
        [[ -n "$pid" ]] || fail_server rabbitmq "no pid file after 30s" "$RABBIT_STDOUT" "$RABBIT_LOG_DIR/$(rabbit_nodename).log"
    fi
    wait_until rabbitmq "$TIMEOUT" "$pid" rabbit_started "$RABBIT_STDOUT" "$RABBIT_LOG_DIR/$(rabbit_nodename).log"
    rabbit_ensure_user || fail_server rabbitmq "could not create user kglab" "$RABBIT_LOG_DIR/$(rabbit_nodename).log"
    wait_until "rabbitmq management API" 60 "$pid" rabbit_mgmt_ok "$RABBIT_LOG_DIR/$(rabbit_nodename).log"
    log "rabbitmq: up"
}

down_rabbitmq() {
    local pid
    pid="$(rabbit_ours_pid || true)"
    if [[ -n "$pid" ]]; then
        log "stopping rabbitmq (pid $pid)"
        rabbitctl -q shutdown --timeout 60 >/dev/null 2>&1 || stop_pid rabbitmq "$RABBIT_PID" 30
        local start=$SECONDS
        while pid_alive "$pid" && ((SECONDS - start < 30)); do sleep 0.5; done
        stop_pid rabbitmq "$RABBIT_PID" 5
    fi
    rm -f "$RABBIT_PID"
    # epmd: stop it when no Erlang node is registered any more.
    if port_open 4369 && command -v epmd >/dev/null; then
        if ! epmd -names 2>/dev/null | grep -q '^name '; then
            epmd -kill >/dev/null 2>&1 || true
        fi
    fi
}

# ---------------------------------------------------------------------------- Neo4j

NEO4J_DIR="$STATE/neo4j"
NEO4J_PID="$NEO4J_DIR/neo4j.pid"
NEO4J_READY="$NEO4J_DIR/ready"
NEO4J_LOG="$LOGS/neo4j.log"

# Bolt handshake: magic 0x6060B017 + four version proposals (5.8..5.0, 4.4); a server answers
# with the chosen version (non-zero).
bolt_handshake() {
    local resp
    resp="$(timeout 3 bash -c "exec 3<>/dev/tcp/$HOST/$NEO4J_PORT || exit 1
        printf '\\x60\\x60\\xb0\\x17\\x00\\x08\\x08\\x05\\x00\\x00\\x04\\x04\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00' >&3
        head -c 4 <&3 | od -An -tx1" 2>/dev/null)" || return 1
    resp="${resp//[[:space:]]/}"
    [[ ${#resp} -eq 8 && "$resp" != "00000000" ]]
}

neo4j_ready() { [[ -f "$NEO4J_READY" ]] && bolt_handshake; }

up_neo4j() {
    local pid
    pid="$(pid_from "$NEO4J_PID")"
    if pid_alive "$pid" && neo4j_ready; then
        log "neo4j: already running (pid $pid)"
        return 0
    fi
    if ! pid_alive "$pid" && port_open "$NEO4J_PORT"; then
        if bolt_handshake; then
            warn "neo4j: port $NEO4J_PORT is served by another Bolt server (not started from this work tree); using it"
            return 0
        fi
        die "neo4j: port $HOST:$NEO4J_PORT is taken by another process"
    fi
    if ! pid_alive "$pid"; then
        [[ -f "$NEO4J_JAR" ]] || fail_server neo4j "launcher jar missing ($NEO4J_JAR)" "$LOGS/build-neo4j.log"
        mkdir -p "$NEO4J_DIR"
        rm -f "$NEO4J_READY" "$NEO4J_PID"
        log "neo4j: starting Neo4j $NEO4J_VERSION (embedded) with Bolt on $HOST:$NEO4J_PORT"
        : >"$NEO4J_LOG"
        # JVM flags: those of Neo4j's own neo4j.conf that matter on Java 17, and a small heap,
        # fixed (-Xms = -Xmx, as Neo4j's memory guide advises, so write batches do not run while
        # the heap resizes), and a page cache holding the 100k/500k benchmark graph (adr/0006).
        setsid nohup java -Xms"${KGLAB_NEO4J_HEAP:-1g}" -Xmx"${KGLAB_NEO4J_HEAP:-1g}" -XX:+UseG1GC -XX:-OmitStackTraceInFastThrow \
            -XX:+DisableExplicitGC -Djdk.nio.maxCachedBufferSize=1024 -Dio.netty.tryReflectionSetAccessible=true \
            -Dlog4j2.disable.jmx=true \
            --add-opens=java.base/java.nio=ALL-UNNAMED --add-opens=java.base/java.io=ALL-UNNAMED \
            --add-opens=java.base/sun.nio.ch=ALL-UNNAMED --add-opens=java.base/java.lang=ALL-UNNAMED \
            -jar "$NEO4J_JAR" --home "$NEO4J_DIR" --listen "$HOST:$NEO4J_PORT" \
            --password "$NEO4J_PASSWORD" --pid-file "$NEO4J_PID" --ready-file "$NEO4J_READY" \
            --pagecache "${KGLAB_NEO4J_PAGECACHE:-512m}" \
            >>"$NEO4J_LOG" 2>&1 </dev/null 9>&- &
        pid=$!
        echo "$pid" >"$NEO4J_PID"
    fi
    wait_until neo4j "$TIMEOUT" "$pid" neo4j_ready "$NEO4J_LOG" "$NEO4J_DIR/logs/debug.log"
    log "neo4j: up"
}

down_neo4j() {
    stop_pid neo4j "$NEO4J_PID" 90
    rm -f "$NEO4J_READY"
}

# ---------------------------------------------------------------------------- SecantusDB

# The MongoDB wire protocol (documents, GridFS) in WiredTiger files under
# .kglab/servers/secantus/data. Why: adr/0015.
SECANTUS_DIR="$STATE/secantus"
SECANTUS_PID="$SECANTUS_DIR/secantus.pid"
SECANTUS_LOG="$LOGS/secantus.log"
# The FerretDB 1.24 an earlier servers.sh started on the same port: stopped by up and down.
FERRET_PID="$STATE/ferretdb/ferretdb.pid"

secantus_ready() { port_open "$MONGO_PORT"; }

up_secantus() {
    local pid
    if pid_alive "$(pid_from "$FERRET_PID")"; then
        log "ferretdb: stopping it, SecantusDB takes $HOST:$MONGO_PORT now (adr/0015)"
        stop_pid ferretdb "$FERRET_PID" 30
    fi
    pid="$(pid_from "$SECANTUS_PID")"
    if pid_alive "$pid" && secantus_ready; then
        log "secantusdb: already running (pid $pid)"
        return 0
    fi
    if ! pid_alive "$pid" && port_open "$MONGO_PORT"; then
        warn "secantusdb: port $MONGO_PORT is served by another process (not started from this work tree); using it"
        return 0
    fi
    if ! pid_alive "$pid"; then
        secantus_bin_ok || fail_server secantusdb "binary missing or not $SECANTUS_VERSION ($SECANTUS_BIN)" "$LOGS/build-secantus.log"
        mkdir -p "$SECANTUS_DIR/data"
        rm -f "$SECANTUS_PID"
        log "secantusdb: starting SecantusDB $SECANTUS_VERSION on $HOST:$MONGO_PORT"
        : >"$SECANTUS_LOG"
        # A bounded WiredTiger cache and a small preallocated log file: throw-away data on a
        # shared 2-core machine.
        setsid nohup "$SECANTUS_BIN" --host "$HOST" --port "$MONGO_PORT" \
            --storage-path "$SECANTUS_DIR/data" --cache-size "${KGLAB_SECANTUS_CACHE:-512M}" \
            --log-file-max 32MB --log-level WARNING \
            >>"$SECANTUS_LOG" 2>&1 </dev/null 9>&- &
        pid=$!
        echo "$pid" >"$SECANTUS_PID"
    fi
    wait_until secantusdb "$TIMEOUT" "$pid" secantus_ready "$SECANTUS_LOG"
    log "secantusdb: up"
}

down_secantus() {
    stop_pid secantusdb "$SECANTUS_PID" 30
    stop_pid ferretdb "$FERRET_PID" 30
}

# ---------------------------------------------------------------------------- ClamAV (clamd)

# clamd with only the project's own signatures (the EICAR test string): signature downloads are
# impossible here, so freshclam never runs. Its config is written by us on every start; the
# Debian one (/etc/clamav/clamd.conf, a local socket) is not used.
CLAMD_DIR="$STATE/clamav"
CLAMD_DB="$CLAMD_DIR/db"
CLAMD_TMP="$CLAMD_DIR/tmp"
CLAMD_CONF="$CLAMD_DIR/clamd.conf"
CLAMD_PID="$CLAMD_DIR/clamd.pid"
CLAMD_LOG="$LOGS/clamd.log"
CLAMD_SIGNATURES="$REPO_ROOT/services/ingestion/kglab_ingestion/scanning/signatures"

clamd_command() { # command -> clamd's answer (NUL stripped) on stdout
    timeout 3 bash -c "exec 3<>/dev/tcp/$HOST/$CLAMD_PORT || exit 1
        printf 'z%s\\0' '$1' >&3
        head -c 200 <&3 | tr -d '\\000'" 2>/dev/null
}

clamd_ready() { [[ "$(clamd_command PING)" == PONG ]]; }

clamd_user() { if [[ $IS_ROOT -eq 1 ]]; then echo clamav; else id -un; fi; }

clamd_write_conf() {
    cat >"$CLAMD_CONF" <<EOF
# written by deploy/local/servers.sh on every start
TCPSocket $CLAMD_PORT
TCPAddr $HOST
DatabaseDirectory $CLAMD_DB
TemporaryDirectory $CLAMD_TMP
PidFile $CLAMD_PID
LogFile $CLAMD_LOG
LogTime yes
Foreground no
# Uploads go up to 50 MB (tus); past StreamMaxLength clamd answers "size limit exceeded".
StreamMaxLength 64M
MaxFileSize 64M
MaxScanSize 256M
MaxThreads 4
# our signatures only: no bytecode database, and no periodic database re-check
Bytecode no
SelfCheck 3600
EOF
}

# Copy the project's signatures into clamd's database directory; 0 when something changed.
clamd_sync_signatures() {
    local changed=1 f
    mkdir -p "$CLAMD_DB"
    for f in "$CLAMD_SIGNATURES"/*.ndb "$CLAMD_SIGNATURES"/*.hdb; do
        [[ -f "$f" ]] || continue
        if ! cmp -s "$f" "$CLAMD_DB/$(basename "$f")"; then
            cp "$f" "$CLAMD_DB/"
            changed=0
        fi
    done
    for f in "$CLAMD_DB"/*; do
        [[ -f "$f" ]] || continue
        if [[ ! -f "$CLAMD_SIGNATURES/$(basename "$f")" ]]; then
            rm -f "$f"
            changed=0
        fi
    done
    return $changed
}

up_clamav() {
    local pid user
    [[ -x /usr/sbin/clamd ]] || die "clamd is not installed (apt-get install clamav-daemon)"
    ls "$CLAMD_SIGNATURES"/*.ndb >/dev/null 2>&1 || die "no signature file in $CLAMD_SIGNATURES"
    user="$(clamd_user)"
    pid="$(pid_from "$CLAMD_PID")"
    if pid_alive "$pid" && clamd_ready; then
        if clamd_sync_signatures; then
            log "clamd: the project's signatures changed; reloading them"
            clamd_command RELOAD >/dev/null || true
        fi
        log "clamd: already running (pid $pid)"
        return 0
    fi
    if ! pid_alive "$pid" && port_open "$CLAMD_PORT"; then
        if clamd_ready; then
            warn "clamd: port $CLAMD_PORT is served by another clamd (not started from this work tree); using it"
            return 0
        fi
        die "clamd: port $HOST:$CLAMD_PORT is taken by another process"
    fi
    if ! pid_alive "$pid"; then
        own_dir "$user" "$CLAMD_DIR" "$CLAMD_DB" "$CLAMD_TMP"
        clamd_sync_signatures || true
        clamd_write_conf
        touch "$CLAMD_LOG"
        if [[ $IS_ROOT -eq 1 ]]; then
            chown "$user:" "$CLAMD_LOG" "$CLAMD_CONF" "$CLAMD_DB"/*
            # A work tree under a directory the clamav user cannot enter (say /root): run as root.
            if ! runuser -u "$user" -- test -r "$CLAMD_CONF" -a -r "$CLAMD_DB" 2>/dev/null; then
                warn "clamd: the clamav user cannot read $CLAMD_DIR; running clamd as root"
                user=root
            fi
        fi
        rm -f "$CLAMD_PID"
        log "clamd: starting on $HOST:$CLAMD_PORT with the project's signatures only"
        # Foreground no: clamd loads the database, binds, then detaches and writes its pid file.
        as_user "$user" /usr/sbin/clamd -c "$CLAMD_CONF" >>"$CLAMD_LOG" 2>&1 </dev/null 9>&- ||
            fail_server clamd "clamd failed to start" "$CLAMD_LOG"
        pid="$(pid_from "$CLAMD_PID")"
    fi
    wait_until clamd "$TIMEOUT" "$pid" clamd_ready "$CLAMD_LOG"
    log "clamd: up"
}

down_clamav() { stop_pid clamd "$CLAMD_PID" 20; }

# ---------------------------------------------------------------------------- commands

with_lock() {
    mkdir -p "$STATE"
    exec 9>"$STATE/.lock"
    if ! flock -w 900 9; then die "another servers.sh holds $STATE/.lock"; fi
}

prepare_dirs() {
    mkdir -p "$STATE" "$LOGS" "$BIN_DIR"
    chmod 755 "$KGLAB_DIR" "$STATE" "$LOGS"
}

cmd_up() {
    local t0=$SECONDS
    with_lock
    prepare_dirs
    start_builds
    ensure_packages
    start_builds

    up_postgres
    up_redis
    up_rabbitmq

    if [[ -n "$NEO4J_BUILD_PID" ]]; then
        wait "$NEO4J_BUILD_PID" || fail_server neo4j "the launcher build (mvn package) failed" "$LOGS/build-neo4j.log"
        log "neo4j launcher built"
    fi
    up_neo4j
    if [[ -n "$SECANTUS_BUILD_PID" ]]; then
        wait "$SECANTUS_BUILD_PID" || fail_server secantusdb "the SecantusDB build failed" "$LOGS/build-secantus.log"
        log "secantusdb built"
    fi
    up_secantus
    up_clamav

    seed_artefact_cache
    log "all servers up in $((SECONDS - t0))s (data: $STATE, logs: $LOGS)"
    print_env
}

cmd_down() {
    with_lock
    down_clamav
    down_secantus
    down_neo4j
    down_rabbitmq
    down_redis
    down_postgres
    log "all servers stopped"
}

cmd_status() {
    local rc=0 pid
    owner() { if [[ -n "$1" ]]; then echo "pid $1"; else echo "(not started by this script)"; fi; }
    report() { # name ok detail
        if [[ "$2" == 1 ]]; then printf '%-9s up    %s\n' "$1" "$3"; else
            printf '%-9s down  %s\n' "$1" "$3"
            rc=1
        fi
    }
    pid="$(pg_ours_pid || true)"
    if pg_ready; then report postgres 1 "$HOST:$PG_PORT $(owner "$pid")"; else report postgres 0 "$HOST:$PG_PORT"; fi
    pid="$(pid_from "$REDIS_PID")"
    pid_alive "$pid" || pid=""
    if redis_ready; then report redis 1 "$HOST:$REDIS_PORT $(owner "$pid")"; else report redis 0 "$HOST:$REDIS_PORT"; fi
    pid="$(rabbit_ours_pid || true)"
    if port_open "$RABBIT_PORT" && rabbit_mgmt_ok; then
        report rabbitmq 1 "$HOST:$RABBIT_PORT (management $HOST:$RABBIT_MGMT_PORT) $(owner "$pid")"
    else report rabbitmq 0 "$HOST:$RABBIT_PORT"; fi
    pid="$(pid_from "$NEO4J_PID")"
    pid_alive "$pid" || pid=""
    if bolt_handshake; then report neo4j 1 "$HOST:$NEO4J_PORT $(owner "$pid")"; else report neo4j 0 "$HOST:$NEO4J_PORT"; fi
    pid="$(pid_from "$SECANTUS_PID")"
    pid_alive "$pid" || pid=""
    if secantus_ready; then report secantus 1 "$HOST:$MONGO_PORT $(owner "$pid")"; else report secantus 0 "$HOST:$MONGO_PORT"; fi
    pid="$(pid_from "$CLAMD_PID")"
    pid_alive "$pid" || pid=""
    if clamd_ready; then report clamd 1 "$HOST:$CLAMD_PORT $(owner "$pid")"; else report clamd 0 "$HOST:$CLAMD_PORT"; fi
    return $rc
}

usage() {
    cat >&2 <<EOF
usage: bash deploy/local/servers.sh {up|down|restart [SERVER]|status|env}
  up       install what is missing, start PostgreSQL, Redis, RabbitMQ, Neo4j, SecantusDB, clamd on $HOST,
           then print the export lines (stdout)
  down     stop them (only what this script started)
  restart  down, then up; with a SERVER (postgres, redis, rabbitmq, neo4j, secantus, clamav) only
           that one, its data kept
  status   one line per server; exit 1 when any is down
  env      print the export lines only
environment: KGLAB_SERVERS_TIMEOUT (seconds per server, default 180), KGLAB_NEO4J_HEAP (default 1g),
  KGLAB_SECANTUS_CACHE (SecantusDB's WiredTiger cache, default 512M), KGLAB_WAL_ARCHIVE_MINUTES
  (how long PostgreSQL's archived WAL is kept, default 2880)
EOF
}

case "${1:-}" in
up) cmd_up ;;
down) cmd_down ;;
restart)
    if [[ -n "${2:-}" ]]; then
        # One server, in place (its data kept): the deployed suite's fault tests use it.
        case "$2" in
        postgres | redis | rabbitmq | neo4j | secantus | clamav) ;;
        *) die "restart: unknown server '$2' (postgres, redis, rabbitmq, neo4j, secantus, clamav)" ;;
        esac
        with_lock
        prepare_dirs
        "down_$2"
        "up_$2"
    else
        cmd_down
        exec 9>&-
        cmd_up
    fi
    ;;
status) cmd_status || exit 1 ;;
env) print_env ;;
-h | --help | help) usage ;;
*)
    usage
    exit 2
    ;;
esac
