# Shared by images.sh and run.sh (sourced): which engine, and podman's setup on these machines.
# shellcheck shell=bash
# shellcheck disable=SC2034  # the variables are for the scripts that source this file

SERVICES=(gateway auth ingestion graph document vector)
# The compose ports (the image's PORT build arg and default KGLAB_PORT); a stack sets its own.
declare -A IMAGE_PORTS=([gateway]=8000 [auth]=8001 [ingestion]=8002 [graph]=8003 [document]=8004 [vector]=8005)
IMAGE_TAG=${KGLAB_IMAGE_TAG:-dev}
# The base CI builds on when there is no Docker engine (images.sh makes it with mmdebstrap).
DEBIAN_BASE=localhost/kglab-base:bookworm

say() { echo "[containers] $*" >&2; }
die() { say "ERROR: $*"; exit 1; }

as_root() { if [[ $(id -u) == 0 ]]; then "$@"; else sudo "$@"; fi; }

apt_install() {
    command -v apt-get >/dev/null 2>&1 || die "missing: $*; install it with your package manager"
    say "installing $* (apt)"
    local install=(env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install
        -y -qq --no-install-recommends "$@")
    # A machine whose package lists are missing or stale needs an update first.
    if ! as_root "${install[@]}" >/dev/null; then
        as_root apt-get -o DPkg::Lock::Timeout=600 update -qq >/dev/null
        as_root "${install[@]}" >/dev/null || die "apt-get install $* failed"
    fi
}

# docker when its engine answers (a docker CLI without an engine does not count), else podman
# (installed with apt if missing). KGLAB_CONTAINER_ENGINE=docker|podman chooses explicitly.
pick_engine() {
    if [[ -n ${KGLAB_CONTAINER_ENGINE:-} ]]; then
        ENGINE=$KGLAB_CONTAINER_ENGINE
    elif command -v docker >/dev/null 2>&1 && timeout 20 docker info >/dev/null 2>&1; then
        ENGINE=docker
    else
        ENGINE=podman
    fi
    if [[ $ENGINE == podman ]]; then
        command -v podman >/dev/null 2>&1 || apt_install podman catatonit
        podman_setup
    fi
    export ENGINE
}

# podman's own settings for these machines, as a containers.conf drop-in where podman reads it
# (/etc/containers/containers.conf.d for root; ~/.config/containers/containers.conf.d rootless):
# - default_ulimits = []: the default RLIMIT_NOFILE cannot be set in this sandbox (crun: setrlimit
#   "Operation not permitted");
# - runtime = "runc" on a host with cgroups v1 and v2 mounted side by side ("hybrid"), which crun
#   refuses ("cgroups in hybrid mode not supported").
podman_setup() {
    local dir
    if [[ $(id -u) == 0 ]]; then dir=/etc/containers/containers.conf.d; else dir=$HOME/.config/containers/containers.conf.d; fi
    local conf="[containers]\ndefault_ulimits = []\n"
    if [[ $(stat -fc %T /sys/fs/cgroup 2>/dev/null) == tmpfs && $(stat -fc %T /sys/fs/cgroup/unified 2>/dev/null) == cgroup2fs ]]; then
        command -v runc >/dev/null 2>&1 || apt_install runc
        conf+="\n[engine]\nruntime = \"runc\"\n"
    fi
    if [[ ! -f $dir/kglab.conf || $(cat "$dir/kglab.conf") != "$(printf '%b' "$conf")" ]]; then
        mkdir -p "$dir"
        printf '%b' "$conf" >"$dir/kglab.conf"
        say "wrote $dir/kglab.conf"
    fi
}

image_name() { echo "kglab/$1:$IMAGE_TAG"; }
