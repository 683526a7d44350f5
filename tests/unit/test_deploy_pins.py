"""The backing servers' versions agree wherever they are named, and the locked clients support
them (ADR 0004, "Server versions").

docker-compose.yml is the reference: the GitHub Actions workflow's service containers and the
chart's ``servers`` block name the same images (testcontainers read compose itself, see
``tests.backends.server_image``), and each image's version is one that its client, at the version
in requirements.lock, supports. Every rule is also shown to fail on a copy that breaks it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]

#: The stores and the scanner: every one runs in compose, as a service container of the
#: workflow, and is named in the chart's ``servers`` block.
SERVERS = ("postgres", "redis", "rabbitmq", "neo4j", "mongo", "qdrant", "clamav")
#: Servers compose runs that are not part of the deployed system: a mail catcher for the stack,
#: and what an on-call engineer looks at (metrics, dashboards, traces; ADR 0027).
COMPOSE_ONLY = ("mailpit", "prometheus", "grafana", "otel-collector", "jaeger")

Version = tuple[int, ...]


@dataclass(frozen=True)
class Sources:
    compose: str
    workflow: str
    chart_values: str
    lock: str

    @classmethod
    def read(cls) -> Sources:
        return cls(
            compose=(ROOT / "docker-compose.yml").read_text(),
            workflow=(ROOT / ".github/workflows/ci.yml").read_text(),
            chart_values=(ROOT / "k8s/kglab/values.yaml").read_text(),
            lock=(ROOT / "requirements.lock").read_text(),
        )


@dataclass(frozen=True)
class ServerRule:
    """Which server versions one series of a client supports, and where that is written."""

    package: str
    #: The client series the rule was checked for (major, or major.minor for 0.x releases).
    series: str
    supports: Callable[[Version, Version], bool]
    says: str


def _between(low: Version, high: Version) -> Callable[[Version, Version], bool]:
    return lambda server, _client: low <= server[: len(low)] and server[: len(high)] <= high


def _within_one_minor(server: Version, client: Version) -> bool:
    # qdrant_client.common.version_check.is_compatible: same major, minors at most one apart.
    return server[0] == client[0] and abs(server[1] - client[1]) <= 1


SERVER_RULES: dict[str, ServerRule] = {
    "qdrant": ServerRule(
        "qdrant-client",
        "1",
        _within_one_minor,
        "servers of its own major within one minor version of it (it warns otherwise)",
    ),
    "mongo": ServerRule(
        "pymongo",
        "4",
        _between((4, 4), (8, 99)),
        "MongoDB 4.4 to 8.x (pymongo.common.MIN_SUPPORTED_SERVER_VERSION; its table)",
    ),
    "redis": ServerRule(
        "redis",
        "8",
        _between((7, 2), (8, 99)),
        "Redis 7.2 to 8.x (its README: redis-py 6 and later, Redis 7.2 to current)",
    ),
    "neo4j": ServerRule(
        "neo4j",
        "5",
        _between((4, 4), (5, 99)),
        "Neo4j 4.4 and 5.x (Neo4j's supported-versions table for 5.x drivers)",
    ),
    "postgres": ServerRule(
        "asyncpg",
        "0.32",
        _between((9, 5), (19,)),
        "PostgreSQL 9.5 to 19 (its README)",
    ),
    "rabbitmq": ServerRule(
        "aiormq",
        "7",
        _between((3, 8), (4, 99)),
        "any AMQP 0-9-1 broker; the bus declares quorum queues, RabbitMQ 3.8 and later",
    ),
}
#: clamd is spoken to over its INSTREAM protocol by code of ours: no client library to ask.
NO_CLIENT = ("clamav",)


def compose_servers(text: str) -> dict[str, str]:
    """Compose's services that run a published image rather than one built from the repo."""
    services: dict[str, dict[str, Any]] = yaml.safe_load(text)["services"]
    return {name: str(spec["image"]) for name, spec in services.items() if "build" not in spec}


def workflow_servers(text: str) -> dict[str, dict[str, str]]:
    """Each job's service containers: job -> service -> image."""
    jobs: dict[str, dict[str, Any]] = yaml.safe_load(text)["jobs"]
    return {
        job: {name: str(spec["image"]) for name, spec in spec_.get("services", {}).items()}
        for job, spec_ in jobs.items()
        if spec_.get("services")
    }


def chart_servers(text: str) -> dict[str, str]:
    return {name: str(image) for name, image in yaml.safe_load(text)["servers"].items()}


def locked_versions(text: str) -> dict[str, str]:
    pins = re.findall(r"^([A-Za-z0-9_.\-]+)==([^\s;\\]+)", text, flags=re.MULTILINE)
    return {re.sub(r"[-_.]+", "-", name).lower(): version for name, version in pins}


def image_version(image: str) -> Version | None:
    """The version in an image's tag (``v1.20.3`` -> 1.20.3, ``15-alpine`` -> 15), or None."""
    tag = image.rpartition(":")[2] if ":" in image.rpartition("/")[2] else ""
    found = re.match(r"v?(\d+(?:\.\d+)*)", tag)
    return tuple(int(part) for part in found.group(1).split(".")) if found else None


def series_of(version: Version) -> str:
    return ".".join(map(str, version[:2] if version[0] == 0 else version[:1]))


def _dotted(version: Version) -> str:
    return ".".join(map(str, version))


def pin_problems(sources: Sources) -> list[str]:
    """Everything that disagrees, as sentences; empty when the pins agree."""
    problems: list[str] = []
    compose = compose_servers(sources.compose)
    for name in sorted(set(compose) - set(SERVERS) - set(COMPOSE_ONLY)):
        problems.append(
            f"docker-compose.yml runs {name} ({compose[name]}), which this test does not know: "
            "add it to SERVERS (and to the workflow and the chart) or to COMPOSE_ONLY"
        )
    named_elsewhere: list[tuple[str, dict[str, str]]] = [
        (f"the workflow's job {job!r}", images)
        for job, images in workflow_servers(sources.workflow).items()
    ]
    if not named_elsewhere:
        problems.append("the workflow has no job with service containers")
    named_elsewhere.append(("the chart's values (servers)", chart_servers(sources.chart_values)))
    for name in SERVERS:
        if name not in compose:
            problems.append(f"docker-compose.yml has no {name} server")
            continue
        for where, images in named_elsewhere:
            if name not in images:
                problems.append(f"{where} has no {name} server ({compose[name]} in compose)")
            elif images[name] != compose[name]:
                problems.append(
                    f"{where} runs {name} as {images[name]}, docker-compose.yml as {compose[name]}"
                )
    problems.extend(_unsupported(compose, locked_versions(sources.lock)))
    return problems


def _unsupported(compose: dict[str, str], locked: dict[str, str]) -> list[str]:
    problems: list[str] = []
    for name in SERVERS:
        if name not in compose or name in NO_CLIENT:
            continue
        image = compose[name]
        server = image_version(image)
        if server is None:
            problems.append(f"{name}: {image} has no version in its tag")
            continue
        rule = SERVER_RULES[name]
        if rule.package not in locked:
            problems.append(f"{name}: requirements.lock has no {rule.package}")
            continue
        client = tuple(int(part) for part in re.findall(r"\d+", locked[rule.package])[:3])
        if series_of(client) != rule.series:
            problems.append(
                f"{name}: the locked {rule.package} {locked[rule.package]} is not the "
                f"{rule.series} series SERVER_RULES was checked for; find which {name} "
                "servers it supports and update the rule"
            )
        elif not rule.supports(server, client):
            problems.append(
                f"{name}: {image} is {name} {_dotted(server)}; the locked {rule.package} "
                f"{locked[rule.package]} supports {rule.says}"
            )
    return problems


def test_server_versions_agree_and_the_locked_clients_support_them() -> None:
    assert pin_problems(Sources.read()) == []


def test_every_server_has_a_rule_or_no_client() -> None:
    assert sorted([*SERVER_RULES, *NO_CLIENT]) == sorted(SERVERS)


# --- each rule bites ---------------------------------------------------------------------------


def _swap(text: str, old: str, new: str) -> str:
    assert old in text, f"the mutation no longer applies: {old!r} is gone"
    return text.replace(old, new)


def _swap_value(text: str, old: str, new: str) -> str:
    """``old`` replaced where it is a whole YAML value (after a space, at the end of a line)."""
    pattern = re.compile(rf"(?<= ){re.escape(old)}$", flags=re.MULTILINE)
    assert pattern.search(text), f"the mutation no longer applies: no value {old!r}"
    return pattern.sub(new, text)


def _everywhere(sources: Sources, old: str, new: str) -> Sources:
    """The same image changed in compose, the workflow and the chart: they still agree."""
    return replace(
        sources,
        compose=_swap_value(sources.compose, old, new),
        workflow=_swap_value(sources.workflow, old, new),
        chart_values=_swap_value(sources.chart_values, old, new),
    )


def _without_workflow_service(sources: Sources, name: str) -> Sources:
    workflow = yaml.safe_load(sources.workflow)
    for job in workflow["jobs"].values():
        job.get("services", {}).pop(name, None)
    return replace(sources, workflow=yaml.safe_dump(workflow))


def _without_chart_server(sources: Sources, name: str) -> Sources:
    values = yaml.safe_load(sources.chart_values)
    del values["servers"][name]
    return replace(sources, chart_values=yaml.safe_dump(values))


def _relock(sources: Sources, package: str, version: str) -> Sources:
    pin = re.compile(rf"^{re.escape(package)}==\S+", flags=re.MULTILINE)
    assert pin.search(sources.lock), f"{package} is not in requirements.lock"
    return replace(sources, lock=pin.sub(f"{package}=={version}", sources.lock))


def _image(sources: Sources, name: str) -> str:
    return compose_servers(sources.compose)[name]


def _retag(sources: Sources, name: str, tag: str) -> Sources:
    image = _image(sources, name)
    return _everywhere(sources, image, f"{image.rpartition(':')[0]}:{tag}")


Mutation = Callable[[Sources], Sources]

MUTATIONS: dict[str, tuple[Mutation, str]] = {
    "the workflow runs another Qdrant than compose": (
        lambda s: replace(
            s, workflow=_swap_value(s.workflow, _image(s, "qdrant"), "qdrant/qdrant:v1.20.2")
        ),
        "the workflow's job 'test' runs qdrant as qdrant/qdrant:v1.20.2, docker-compose.yml as",
    ),
    "the chart names another MongoDB than compose": (
        lambda s: replace(
            s, chart_values=_swap_value(s.chart_values, _image(s, "mongo"), "mongo:8.0")
        ),
        "the chart's values (servers) runs mongo as mongo:8.0, docker-compose.yml as",
    ),
    "compose runs another PostgreSQL than the others": (
        lambda s: replace(
            s, compose=_swap_value(s.compose, _image(s, "postgres"), "postgres:16-alpine")
        ),
        "runs postgres as postgres:15-alpine, docker-compose.yml as postgres:16-alpine",
    ),
    "the workflow has no ClamAV": (
        lambda s: _without_workflow_service(s, "clamav"),
        "the workflow's job 'test' has no clamav server",
    ),
    "the chart has no Redis": (
        lambda s: _without_chart_server(s, "redis"),
        "the chart's values (servers) has no redis server",
    ),
    "compose runs a store nobody else knows": (
        lambda s: replace(
            s,
            compose=_swap(
                s.compose, "  mailpit:\n", "  minio:\n    image: minio/minio:1\n  mailpit:\n"
            ),
        ),
        "docker-compose.yml runs minio (minio/minio:1), which this test does not know",
    ),
    "Qdrant 1.18 everywhere, two minors behind qdrant-client 1.20": (
        lambda s: _retag(s, "qdrant", "v1.18.3"),
        "qdrant: qdrant/qdrant:v1.18.3 is qdrant 1.18.3; the locked qdrant-client",
    ),
    "qdrant-client locked two minors ahead of the server": (
        lambda s: _relock(s, "qdrant-client", "1.22.0"),
        "the locked qdrant-client 1.22.0 supports servers of its own major within one minor",
    ),
    "Qdrant of another major": (
        lambda s: _retag(s, "qdrant", "v2.20.0"),
        "qdrant: qdrant/qdrant:v2.20.0 is qdrant 2.20.0",
    ),
    "Redis 7.0, older than redis-py 8 supports": (
        lambda s: _retag(s, "redis", "7.0-alpine"),
        "redis: redis:7.0-alpine is redis 7.0; the locked redis",
    ),
    "a Redis tag without its minor (7 may be 7.0)": (
        lambda s: _retag(s, "redis", "7-alpine"),
        "redis: redis:7-alpine is redis 7; the locked redis",
    ),
    "MongoDB 4.2, older than pymongo supports": (
        lambda s: _retag(s, "mongo", "4.2"),
        "mongo: mongo:4.2 is mongo 4.2; the locked pymongo",
    ),
    "a Qdrant image without a version": (
        lambda s: _retag(s, "qdrant", "latest"),
        "qdrant: qdrant/qdrant:latest has no version in its tag",
    ),
    "a client series the rules were not checked for": (
        lambda s: _relock(s, "neo4j", "6.0.0"),
        "the locked neo4j 6.0.0 is not the 5 series SERVER_RULES was checked for",
    ),
}


@pytest.mark.parametrize("mutation", MUTATIONS.keys())
def test_a_copy_that_breaks_the_pins_is_refused(mutation: str) -> None:
    mutate, expected = MUTATIONS[mutation]
    problems = pin_problems(mutate(Sources.read()))
    assert any(expected in problem for problem in problems), problems


@pytest.mark.parametrize(
    ("image", "version"),
    [
        ("qdrant/qdrant:v1.20.3", (1, 20, 3)),
        ("postgres:15-alpine", (15,)),
        ("neo4j:5.26-community", (5, 26)),
        ("rabbitmq:3.13-management-alpine", (3, 13)),
        ("registry.example:5000/mongo:7", (7,)),
        ("registry.example:5000/mongo", None),
        ("qdrant/qdrant:latest", None),
    ],
)
def test_image_version_reads_the_tag(image: str, version: Version | None) -> None:
    assert image_version(image) == version
