#!/usr/bin/env bash
# `make images`: the six service images (kglab/SERVICE:${KGLAB_IMAGE_TAG:-dev}) from the one
# Dockerfile, with docker or podman, whichever works here (deploy/containers/common.sh).
#
# docker builds on the Dockerfile's default base (the official Python image), as users do.
# podman builds on a Debian bookworm base made here from Debian packages (mmdebstrap, then
# `podman import`), once: no image registry is needed, only the Debian archive and PyPI.
# KGLAB_BASE_IMAGE (with KGLAB_BASE_PYTHON, the interpreter's path in it) overrides the choice.
#
# Prints each step's seconds and each image's size, and writes them to
# .kglab/containers/images.json.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=deploy/containers/common.sh
source deploy/containers/common.sh

STATE=.kglab/containers
mkdir -p "$STATE"
pick_engine
say "engine: $ENGINE"

base_s=null
load_start=$(cut -d' ' -f1 /proc/loadavg)
all_started=$SECONDS
# Make the Debian base (podman only, and only if it is not there yet).
make_debian_base() {
    if podman image exists "$DEBIAN_BASE"; then
        say "base $DEBIAN_BASE exists"
        return
    fi
    command -v mmdebstrap >/dev/null 2>&1 || apt_install mmdebstrap
    local started=$SECONDS tar=$STATE/base.tar mirror=()
    # The host's own Debian sources when it runs bookworm (its mirror, security updates
    # included); otherwise mmdebstrap's default mirror.
    # shellcheck disable=SC1091
    if [[ $(. /etc/os-release && echo "${VERSION_CODENAME:-}") == bookworm ]]; then
        for sources in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list; do
            if [[ -s $sources ]]; then mirror=("$sources"); break; fi
        done
    fi
    say "making $DEBIAN_BASE with mmdebstrap (Debian bookworm: python3, ca-certificates)"
    # Without documentation, manual pages and translations (52 MB of the 214 MB base; the
    # copyright files stay): nothing in a service container reads them.
    mmdebstrap --quiet --variant=apt --include=python3,ca-certificates \
        --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
        --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
        --dpkgopt='path-exclude=/usr/share/locale/*' \
        bookworm "$tar" "${mirror[@]}" </dev/null
    podman import --quiet --change 'CMD ["/bin/sh"]' \
        --change 'LABEL org.opencontainers.image.description="Debian bookworm, python3 and ca-certificates (mmdebstrap)"' \
        "$tar" "$DEBIAN_BASE" >/dev/null
    rm -f "$tar"
    base_s=$((SECONDS - started))
    say "base $DEBIAN_BASE made in ${base_s} s"
}

build_args=()
if [[ -n ${KGLAB_BASE_IMAGE:-} ]]; then
    build_args+=(--build-arg "PYTHON_IMAGE=$KGLAB_BASE_IMAGE")
    [[ -n ${KGLAB_BASE_PYTHON:-} ]] && build_args+=(--build-arg "PYTHON=$KGLAB_BASE_PYTHON")
    base=$KGLAB_BASE_IMAGE
elif [[ $ENGINE == podman ]]; then
    make_debian_base
    build_args+=(--build-arg "PYTHON_IMAGE=$DEBIAN_BASE" --build-arg PYTHON=/usr/bin/python3.11)
    base=$DEBIAN_BASE
else
    base=$(sed -n 's/^ARG PYTHON_IMAGE=//p' Dockerfile)  # the Dockerfile's default
fi
if [[ $ENGINE == podman ]]; then
    # --format docker keeps the HEALTHCHECK (OCI images have none). The host's CA bundle is
    # mounted over the base's for the build steps only (a TLS-intercepting proxy re-signs PyPI's
    # certificate here); it ends up in no layer (Dockerfile, BUILD_CA_FILE).
    build_args+=(--format docker --network host)
    bundle=/etc/ssl/certs/ca-certificates.crt
    if [[ -s $bundle ]]; then
        build_args+=(--volume "$bundle:$bundle:ro" --build-arg "BUILD_CA_FILE=$bundle")
    fi
fi

entries=()
for service in "${SERVICES[@]}"; do
    started=$SECONDS
    say "building $(image_name "$service") on $base"
    "$ENGINE" build --quiet "${build_args[@]}" \
        --build-arg "SERVICE=$service" --build-arg "PORT=${IMAGE_PORTS[$service]}" \
        --tag "$(image_name "$service")" . >/dev/null
    took=$((SECONDS - started))
    size=$("$ENGINE" image inspect --format '{{.Size}}' "$(image_name "$service")")
    say "$(image_name "$service"): $((size / 1000000)) MB, built in ${took} s"
    entries+=("\"$service\": {\"build_s\": $took, \"size_bytes\": $size}")
done

base_size=$("$ENGINE" image inspect --format '{{.Size}}' "$base" 2>/dev/null || echo null)
{
    printf '{"engine": "%s", "engine_version": "%s", "base": "%s", "base_size_bytes": %s, "base_build_s": %s, ' \
        "$ENGINE" "$("$ENGINE" --version)" "$base" "$base_size" "$base_s"
    printf '"total_s": %s, "load_1m_start": %s, "load_1m_end": %s, "images": {' \
        "$((SECONDS - all_started))" "$load_start" "$(cut -d' ' -f1 /proc/loadavg)"
    (IFS=,; printf '%s' "${entries[*]}")
    printf '}}\n'
} >"$STATE/images.json"
say "all built in $((SECONDS - all_started)) s; wrote $STATE/images.json"
