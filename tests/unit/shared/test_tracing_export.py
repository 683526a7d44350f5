"""Tracing exports to an OpenTelemetry collector with spans for database calls (issue 15),
checked against a local OTLP/HTTP receiver; the probe runs in a process of its own."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kglab_shared.settings import ConfigurationError, ServiceSettings, load_settings
from tests.otlp_receiver import OtlpReceiver, ReceivedSpan, otlp_receiver

ROOT = Path(__file__).resolve().parents[3]
SERVER, CLIENT, PRODUCER = 2, 3, 4  # OTLP span kinds


def run_probe(receiver: OtlpReceiver, **env: str) -> None:
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith("KGLAB_")
    } | {"KGLAB_ENVIRONMENT": "test", "PROBE_ENDPOINT": receiver.url, **env}
    done = subprocess.run(
        [sys.executable, "-m", "tests.tracing_probe"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]


def request_span(receiver: OtlpReceiver) -> ReceivedSpan:
    servers = [s for s in receiver.spans if s.kind == SERVER and s.service == "trace-probe"]
    assert len(servers) == 1, receiver.spans
    return servers[0]


def children_of(receiver: OtlpReceiver, parent: ReceivedSpan) -> list[ReceivedSpan]:
    """Every span below ``parent`` in its trace."""
    found: list[ReceivedSpan] = []
    frontier = {parent.span_id}
    while frontier:
        step = [s for s in receiver.spans if s.parent_span_id in frontier]
        found += step
        frontier = {s.span_id for s in step}
    return found


def test_a_request_s_sql_call_is_a_span_of_its_trace_exported_over_otlp() -> None:
    with otlp_receiver() as receiver:
        run_probe(receiver)
    assert receiver.paths
    assert set(receiver.paths) == {"/v1/traces"}
    request = request_span(receiver)
    below = children_of(receiver, request)
    sql = [s for s in below if s.kind == CLIENT and "sqlite" in str(s.attributes.values())]
    assert sql, [(s.name, s.attributes) for s in receiver.spans]
    assert {s.trace_id for s in sql} == {request.trace_id}
    statements = [s for s in sql if "SELECT 41 + 1" in str(s.attributes.values())]
    assert statements, sql


def test_tracing_is_off_unless_an_endpoint_is_configured(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert ServiceSettings().otel_exporter == "none"
    monkeypatch.setenv("KGLAB_OTEL_EXPORTER", "otlp")
    monkeypatch.delenv("KGLAB_OTEL_ENDPOINT", raising=False)
    with pytest.raises(ConfigurationError, match="KGLAB_OTEL_ENDPOINT"):
        load_settings(ServiceSettings)
    monkeypatch.setenv("KGLAB_OTEL_EXPORTER", "jaeger")
    with pytest.raises(ConfigurationError, match="none, console or otlp"):
        load_settings(ServiceSettings)
