# One image recipe for every service of the workspace (ADR 0004). Pick the service at build time:
#
#   docker build --build-arg SERVICE=auth --build-arg PORT=8001 -t kglab/auth .
#
# SERVICE is the workspace member (`kglab-$SERVICE`, module `kglab_$SERVICE`), PORT the port it
# listens on (gateway 8000, auth 8001, ingestion 8002, graph 8003, document 8004, vector 8005).
# The image carries no secret: configuration comes from KGLAB_* variables at run time.

# No BuildKit-only syntax (cache mounts, heredocs), so any builder, including the classic one,
# can build it.
#
# The base image is a build argument. The default is the official Python image; CI builds on a
# Debian bookworm image of its own (`deploy/containers/images.sh`: mmdebstrap + podman import),
# whose interpreter is Debian's python3 at /usr/bin/python3.11, without pip:
#
#   podman build --build-arg PYTHON_IMAGE=localhost/kglab-base:bookworm \
#                --build-arg PYTHON=/usr/bin/python3.11 --build-arg SERVICE=auth --build-arg PORT=8001 .
#
# Both stages use the same base, because the virtual environment's interpreter is a symlink to
# the base image's python3.11 (PYTHON).
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# ---------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS builder

ARG UV_VERSION=0.13.9
# The base image's interpreter: /usr/local/bin/python3.11 in the official image,
# /usr/bin/python3.11 in Debian's python3.
ARG PYTHON=/usr/local/bin/python3.11
# A CA bundle for a TLS-intercepting proxy, at build time only: the builder mounts the host's
# bundle over the base image's own (`podman build --volume
# /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro --build-arg
# BUILD_CA_FILE=/etc/ssl/certs/ca-certificates.crt`; deploy/containers/images.sh does). A mount
# over a file the base already has leaves no trace in any layer (a new mount point would leave an
# empty file), and pip and uv read it only through this variable, in the builder stage.
ARG BUILD_CA_FILE=

ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_NO_CACHE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

# uv from PyPI with the base image's pip; a base without pip (Debian's python3) gets Debian's
# python3-pip first, in this stage only. --break-system-packages: this stage is thrown away.
# Nothing here depends on SERVICE, so the six images share this layer. python3-pip is not pinned
# (DL3008): it must be the one of the base's own Debian release, and it stays in this stage.
# hadolint ignore=DL3008
RUN if [ -n "${BUILD_CA_FILE}" ]; then export SSL_CERT_FILE="${BUILD_CA_FILE}" PIP_CERT="${BUILD_CA_FILE}"; fi \
    && if ! "${PYTHON}" -m pip --version >/dev/null 2>&1; then \
         apt-get update && apt-get install -y --no-install-recommends python3-pip \
         && rm -rf /var/lib/apt/lists/*; \
       fi \
    && "${PYTHON}" -m pip install --break-system-packages "uv==${UV_VERSION}"

WORKDIR /src

# uv is told the interpreter explicitly: UV_PYTHON would also make `uv pip install` target the
# base image's own Python instead of the virtual environment. --no-sources: the members' `kglab-shared =
# { workspace = true }` needs the workspace root; here ./shared on the same command line is it.
# requirements.lock pins every third-party package (the workspace's lock, exported by
# `make lock`); it constrains this service's install to exactly the versions CI tested. The
# workspace packages are installed non-editable, so the runtime stage needs the environment only.
# The shared library and its dependencies first, in a layer every service's build reuses.
COPY requirements.lock ./
COPY shared/ shared/
RUN if [ -n "${BUILD_CA_FILE}" ]; then export SSL_CERT_FILE="${BUILD_CA_FILE}"; fi \
    && uv venv --python "${PYTHON}" /app/.venv \
    && uv pip install --python /app/.venv/bin/python --no-sources --constraint requirements.lock ./shared

COPY gateway/ gateway/
COPY services/ services/
ARG SERVICE
RUN test -n "${SERVICE}" || { echo "build arg SERVICE is required (gateway, auth, ingestion, graph, document, vector)" >&2; exit 1; } \
    && if [ -n "${BUILD_CA_FILE}" ]; then export SSL_CERT_FILE="${BUILD_CA_FILE}"; fi \
    && if [ "${SERVICE}" = gateway ]; then package=./gateway; else package="./services/${SERVICE}"; fi \
    && uv pip install --python /app/.venv/bin/python --no-sources --constraint requirements.lock ./shared "${package}" \
    && /app/.venv/bin/python -c "import importlib; importlib.import_module('kglab_${SERVICE}.main')"

# ---------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

# Before SERVICE and PORT are declared, so the six images share this layer.
# /var/lib/kglab: the service user's directory for data that must outlive the container (a
# volume mounted there takes its owner from the image: compose keeps ingestion's tus uploads in
# it, ADR 0027).
RUN groupadd --system --gid 10001 kglab \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin kglab \
    && mkdir -p /var/lib/kglab && chown 10001:10001 /var/lib/kglab

ARG SERVICE
ARG PORT

RUN test -n "${SERVICE}" && test -n "${PORT}" \
    || { echo "build args SERVICE and PORT are required" >&2; exit 1; }

LABEL org.opencontainers.image.title="kglab-${SERVICE}" \
      org.opencontainers.image.description="Knowledge Graph Lab: ${SERVICE} service"

# Production, stated: it refuses the stand-ins (embedded stores, the in-process bus, the embedded
# virus scanner) and the development secrets, so a container missing a variable stops at start
# with a message naming it. Running an image on stand-ins needs KGLAB_ENVIRONMENT=development.
ENV PATH=/app/.venv/bin:${PATH} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    KGLAB_ENVIRONMENT=production \
    KGLAB_SERVICE=${SERVICE} \
    KGLAB_PORT=${PORT} \
    KGLAB_DATA_DIR=/tmp/kglab

# The root filesystem is read-only at run time (compose and the chart): local files a service
# may write (KGLAB_DATA_DIR) go to /tmp, a tmpfs or emptyDir there.
WORKDIR /app
# Owned by root and read-only for the service user: the code cannot be changed at run time.
COPY --from=builder /app/.venv /app/.venv

USER 10001:10001
EXPOSE ${PORT}

# Liveness only (/health); readiness (/ready, which checks the backends) is for the orchestrator.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ['KGLAB_PORT'], timeout=4)"]

# A shell is needed to put SERVICE and PORT into the command; `exec` leaves uvicorn as PID 1 so
# it receives SIGTERM directly and shuts down gracefully. --no-proxy-headers: uvicorn would
# believe X-Forwarded-For from any loopback peer; the gateway alone decides which proxies to
# trust (KGLAB_GATEWAY_TRUSTED_PROXIES). --http: uvicorn's protocol with a deadline for a
# request's headers (KGLAB_HTTP_HEADER_TIMEOUT_S); --limit-concurrency bounds the connections
# and requests in progress (KGLAB_HTTP_LIMIT_CONCURRENCY; beyond it uvicorn answers 503).
CMD ["/bin/sh", "-c", "exec uvicorn --factory \"kglab_${KGLAB_SERVICE}.main:create_app\" --host \"${KGLAB_HOST:-0.0.0.0}\" --port \"${KGLAB_PORT}\" --no-server-header --no-proxy-headers --http kglab_shared.serving:GuardedHttpProtocol --limit-concurrency \"${KGLAB_HTTP_LIMIT_CONCURRENCY:-2048}\""]
