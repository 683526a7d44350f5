"""Prometheus metrics: HTTP requests and the event bus, served at ``/metrics``."""

from __future__ import annotations

from fastapi import Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

REGISTRY = CollectorRegistry(auto_describe=True)

HTTP_REQUESTS = Counter(
    "kglab_http_requests_total",
    "HTTP requests answered.",
    ["service", "method", "route", "status"],
    registry=REGISTRY,
)
HTTP_LATENCY = Histogram(
    "kglab_http_request_duration_seconds",
    "HTTP request latency.",
    ["service", "method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)
EVENTS_PUBLISHED = Counter(
    "kglab_events_published_total", "Events confirmed by the bus.", ["type"], registry=REGISTRY
)
EVENTS_CONSUMED = Counter(
    "kglab_events_consumed_total",
    "Events handled and acknowledged.",
    ["group", "type"],
    registry=REGISTRY,
)
EVENTS_RETRIED = Counter(
    "kglab_events_retried_total",
    "Events scheduled for another attempt.",
    ["group", "type"],
    registry=REGISTRY,
)
EVENTS_DEAD_LETTERED = Counter(
    "kglab_events_dead_lettered_total",
    "Events parked in a dead-letter queue.",
    ["group", "type"],
    registry=REGISTRY,
)
CONSUMER_LAG = Gauge(
    "kglab_consumer_lag_messages",
    "Messages waiting in a consumer group's queue.",
    ["group"],
    registry=REGISTRY,
)


def metrics_response() -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
