"""Prometheus metrics: HTTP requests, the event bus, the process, each service's domain and its
dependencies, served at ``/metrics`` and, when ``KGLAB_METRICS_PORT`` is set, on a port of their
own that needs no token (ADR 0027).

Every metric is defined here, once, so the dashboards and alert rules in
``deploy/observability`` have one list to name (``deploy/validate.sh`` checks that every series
they use is defined here or by a collector registered here).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from fastapi import Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)

REGISTRY = CollectorRegistry(auto_describe=True)
# The process (resident and virtual memory, CPU seconds, open and maximum file descriptors,
# start time: process_*), the interpreter (python_info) and the garbage collector (python_gc_*):
# prometheus_client's own collectors, on our registry as on its default one.
for _collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
    REGISTRY.register(_collector)

# --- HTTP -----------------------------------------------------------------------------------

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

# --- the event bus --------------------------------------------------------------------------

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
DEAD_LETTERS_WAITING = Gauge(
    "kglab_dead_letter_messages",
    "Messages parked in a consumer group's dead-letter queue (<group>.dlq).",
    ["group"],
    registry=REGISTRY,
)

# --- ingestion ------------------------------------------------------------------------------

INGESTION_JOBS = Gauge(
    "kglab_ingestion_jobs",
    "Jobs not yet finished, by status (pending, processing); read from the jobs table.",
    ["status"],
    registry=REGISTRY,
)
INGESTION_JOBS_FINISHED = Counter(
    "kglab_ingestion_jobs_finished_total",
    "Jobs that reached a final status (completed, failed).",
    ["status"],
    registry=REGISTRY,
)
INGESTION_OLDEST_PENDING = Gauge(
    "kglab_ingestion_oldest_pending_job_age_seconds",
    "Age of the oldest job waiting for a worker (0 when none waits).",
    registry=REGISTRY,
)
INGESTION_OLDEST_UNCHANGED = Gauge(
    "kglab_ingestion_processing_job_unchanged_seconds_max",
    "Longest time a job in processing has gone without any change (0 when none is).",
    registry=REGISTRY,
)
INGESTION_STAGE_DURATION = Histogram(
    "kglab_ingestion_stage_duration_seconds",
    "Time a job spent in each stage: queued and extracting (the worker), storing, embedding "
    "and graphing (from the end of extraction to that part's acknowledgement).",
    ["stage"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900),
    registry=REGISTRY,
)
INGESTION_JOBS_REQUEUED = Counter(
    "kglab_ingestion_jobs_requeued_total",
    "Jobs taken up again by the sweeper (an expired lease, or pending with nobody taking it).",
    registry=REGISTRY,
)
INGESTION_JOBS_TIMED_OUT = Counter(
    "kglab_ingestion_jobs_timed_out_total",
    "Jobs failed because their parts did not all report within the indexing timeout.",
    registry=REGISTRY,
)

# --- documents, caches, dependencies --------------------------------------------------------

DOCUMENTS_STORED = Counter(
    "kglab_documents_stored_total", "Documents stored by the document service.", registry=REGISTRY
)
CHUNKS_STORED = Counter(
    "kglab_chunks_stored_total",
    "Chunks stored with those documents.",
    registry=REGISTRY,
)
DOCUMENTS_DELETED = Counter(
    "kglab_documents_deleted_total",
    "Documents deleted by the document service.",
    registry=REGISTRY,
)
CACHE_REQUESTS = Counter(
    "kglab_cache_requests_total",
    "Cache look-ups by cache and result (hit, miss).",
    ["cache", "result"],
    registry=REGISTRY,
)
DEPENDENCY_UP = Gauge(
    "kglab_dependency_up",
    "Whether a dependency answered the service's last readiness check (1) or not (0).",
    ["service", "dependency"],
    registry=REGISTRY,
)
DEPENDENCY_LATENCY = Gauge(
    "kglab_dependency_check_seconds",
    "How long the dependency took to answer the last readiness check.",
    ["service", "dependency"],
    registry=REGISTRY,
)


def metrics_response() -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


@dataclass(slots=True)
class MetricsServer:
    """The metrics port: prometheus_client's own HTTP server, on a thread of its own."""

    server: WSGIServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


_servers: dict[tuple[str, int], MetricsServer] = {}
_servers_lock = threading.Lock()


def serve_metrics(host: str, port: int) -> MetricsServer:
    """Serve the registry at ``http://host:port/metrics`` (any path answers) until closed.

    One per address per process: ``make dev`` runs every service's lifespan in one process,
    and they share the registry, so the second asking gets the first's server.
    """
    with _servers_lock:
        running = _servers.get((host, port))
        if running is not None and running.thread.is_alive():
            return running
        server, thread = start_http_server(port, addr=host, registry=REGISTRY)
        started = MetricsServer(server, thread)
        _servers[(host, started.port)] = started
        return started


def stop_metrics_server(server: MetricsServer) -> None:
    with _servers_lock:
        for key, running in list(_servers.items()):
            if running is server:
                del _servers[key]
    server.close()
