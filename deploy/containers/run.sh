#!/usr/bin/env bash
# The whole system as containers of the project's images (`make images`), on the servers of
# `make servers`:
#
#   deploy/containers/run.sh up   [NAME] [PORT]   start, wait for every /ready, print seconds
#   deploy/containers/run.sh down [NAME]          stop and remove the containers (data stays;
#                                                 `python deploy/stack/run.py purge --name NAME`)
#
# NAME (default `containers`) is the stack's name (topology.py: its own databases, virtual host
# and key prefixes); PORT (default 8000) the gateway's, the services on the five after it. Each
# service runs as container kglab-NAME-SERVICE: host network (the servers listen on 127.0.0.1),
# user 10001, read-only root filesystem, tmpfs /tmp, no capabilities, no-new-privileges, an init
# as PID 1, restart policy unless-stopped, and exactly the variables `deploy/stack/run.py env`
# gives the same service in `make stack`. KGLAB_DATA_DIR is a bind mount of the stack's data
# folder (.kglab/stack/NAME/data/SERVICE), so what a service keeps on disk (the vector service's
# Qdrant local mode, when there is no Qdrant server) survives a restart of its container.
#
# The server URLs come from the environment: eval "$(bash deploy/local/servers.sh env)".
# Writes .kglab/stack/NAME/ready.json (as `make stack` does) with each service's seconds from
# `run` to its first 200 on /ready.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=deploy/containers/common.sh
source deploy/containers/common.sh

action=${1:-}
name=${2:-containers}
port=${3:-8000}
READY_TIMEOUT_S=${KGLAB_STACK_READY_TIMEOUT:-180}
PYTHON=${PYTHON:-.venv/bin/python}
state=.kglab/stack/$name

pick_engine

down() {
    local ids
    ids=$("$ENGINE" ps -aq --filter "label=org.kglab.stack=$name")
    if [[ -n $ids ]]; then
        # shellcheck disable=SC2086  # one id per word
        "$ENGINE" rm --force --time 15 $ids >/dev/null
    fi
    rm -f "$state/ready.json"
    say "stack $name: containers removed"
}

up() {
    "$PYTHON" deploy/stack/run.py provision --name "$name" --port "$port"
    mkdir -p "$state/containers"
    chmod 700 "$state/containers"
    local service started start_ns env_file data
    declare -A started_at data_dirs
    # Each service's variables, as `make stack` gives them; the files hold the stack's secret
    # (mode 0600).
    "$PYTHON" deploy/stack/run.py env --env-dir "$state/containers" --name "$name" --port "$port"
    for service in "${SERVICES[@]}"; do
        "$ENGINE" image exists "$(image_name "$service")" 2>/dev/null \
            || "$ENGINE" image inspect "$(image_name "$service")" >/dev/null 2>&1 \
            || die "no image $(image_name "$service"): run \`make images\` first"
        env_file=$state/containers/$service.env
        data=$(sed -n 's/^KGLAB_DATA_DIR=//p' "$env_file")
        sed -i 's|^KGLAB_DATA_DIR=.*|KGLAB_DATA_DIR=/var/lib/kglab|' "$env_file"
        mkdir -p "$data"
        chown 10001:10001 "$data" 2>/dev/null || as_root chown 10001:10001 "$data"
        chmod 700 "$data"
        data_dirs[$service]=$(realpath "$data")
        "$ENGINE" rm --force --time 5 "kglab-$name-$service" >/dev/null 2>&1 || true
    done
    # All six at once (one after the other, `run` alone took 13 s on a loaded 2-core machine);
    # each service's start-up is counted from here.
    local launches=() failed=0 load_start
    load_start=$(cut -d' ' -f1 /proc/loadavg)
    start_ns=$(date +%s%N)
    started=$SECONDS
    for service in "${SERVICES[@]}"; do
        started_at[$service]=$start_ns
        # HEALTHCHECK off: podman runs it from systemd timers, which these machines lack;
        # readiness is checked below, on /ready.
        "$ENGINE" run --detach --name "kglab-$name-$service" \
            --label "org.kglab.stack=$name" \
            --network host --user 10001:10001 --read-only --tmpfs /tmp \
            --cap-drop ALL --security-opt no-new-privileges --init \
            --restart unless-stopped --no-healthcheck \
            --env-file "$state/containers/$service.env" \
            --volume "${data_dirs[$service]}:/var/lib/kglab" \
            "$(image_name "$service")" >/dev/null &
        launches+=($!)
    done
    for pid in "${launches[@]}"; do wait "$pid" || failed=1; done
    ((failed == 0)) || die "a container did not start (see above)"
    say "stack $name: 6 containers started in $((SECONDS - started)) s; waiting for /ready"
    local offset=0 pending=("${SERVICES[@]}") json="" now
    declare -A ports
    for service in "${SERVICES[@]}"; do ports[$service]=$((port + offset)); offset=$((offset + 1)); done
    local deadline=$((SECONDS + READY_TIMEOUT_S))
    while ((${#pending[@]})); do
        local still=()
        for service in "${pending[@]}"; do
            if curl -fs -o /dev/null --max-time 2 "http://127.0.0.1:${ports[$service]}/ready"; then
                now=$(date +%s%N)
                local took
                took=$(awk -v a="${started_at[$service]}" -v b="$now" 'BEGIN { printf "%.2f", (b - a) / 1e9 }')
                say "$service ready at http://127.0.0.1:${ports[$service]} (${took} s)"
                json+="${json:+, }\"$service\": $took"
            else
                still+=("$service")
            fi
        done
        pending=("${still[@]}")
        ((${#pending[@]})) || break
        if ((SECONDS > deadline)); then
            for service in "${pending[@]}"; do
                say "--- $service, not ready; its last log lines:"
                "$ENGINE" logs --tail 20 "kglab-$name-$service" >&2 || true
            done
            die "not ready after ${READY_TIMEOUT_S} s: ${pending[*]}"
        fi
        sleep 0.2
    done
    local total
    total=$(awk -v a="${started_at[gateway]}" -v b="$(date +%s%N)" 'BEGIN { printf "%.2f", (b - a) / 1e9 }')
    printf '{"gateway_url": "http://127.0.0.1:%s", "kind": "containers", "engine": "%s", "ready_s": %s, "load_1m_start": %s, "services": {%s}}\n' \
        "$port" "$ENGINE" "$total" "$load_start" "$json" >"$state/ready.json"
    say "stack $name ready in ${total} s: gateway at http://127.0.0.1:$port; logs: $ENGINE logs kglab-$name-SERVICE"
}

case $action in
    up) up ;;
    down) down ;;
    *) echo "usage: $0 up|down [NAME] [PORT]" >&2; exit 2 ;;
esac
