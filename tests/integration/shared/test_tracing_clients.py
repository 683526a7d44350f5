"""Spans for broker and cache calls (issue 15): a request that touches Redis and publishes to
RabbitMQ through aio-pika exports a span for each, in the request's trace, to a local OTLP/HTTP
receiver (the probe runs in a process of its own)."""

from __future__ import annotations

from tests.otlp_receiver import otlp_receiver
from tests.unit.shared.test_tracing_export import (
    CLIENT,
    PRODUCER,
    children_of,
    request_span,
    run_probe,
)


def test_redis_and_rabbitmq_calls_are_spans_of_the_request_s_trace(
    redis_url: str, rabbitmq_url: str
) -> None:
    with otlp_receiver() as receiver:
        run_probe(receiver, PROBE_REDIS_URL=redis_url, PROBE_RABBITMQ_URL=rabbitmq_url)
    request = request_span(receiver)
    below = children_of(receiver, request)
    redis = [s for s in below if s.kind == CLIENT and "redis" in str(s.attributes.values())]
    assert redis, [(s.name, s.kind, s.attributes) for s in below]
    published = [s for s in below if s.kind == PRODUCER]
    assert published, [(s.name, s.kind, s.attributes) for s in below]
    assert "rabbitmq" in str(published[0].attributes.values()), published[0]
    assert {s.trace_id for s in [*redis, *published]} == {request.trace_id}
