"""What every adapter does around a publish and around a handler, so both behave the same.

On publish the envelope gets the current correlation id and trace context when it has none.
Around a handler the correlation id of the event is set and a consumer span is started as a
child of the publisher's span, so logs and traces of the consumer join those of the producer.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass

from opentelemetry import trace

from kglab_shared.bus.port import EventHandler
from kglab_shared.correlation import get_correlation_id, set_correlation_id
from kglab_shared.events import EventEnvelope
from kglab_shared.tracing import context_from_headers, current_trace_headers, tracer

#: Longest handler error kept with a dead letter; the full traceback is in the logs.
MAX_ERROR_CHARS = 2000

_tracer = tracer("kglab_shared.bus")


@dataclass(frozen=True, slots=True)
class Delivery:
    """Which attempt at an event the running handler is (attempts count from 1)."""

    attempt: int = 1
    max_attempts: int = 1

    @property
    def is_last(self) -> bool:
        """No retry follows if this attempt raises: the event is parked as a dead letter."""
        return self.attempt >= self.max_attempts


_OUTSIDE = Delivery()
_delivery: ContextVar[Delivery | None] = ContextVar("kglab_delivery", default=None)


def current_delivery() -> Delivery:
    """The delivery the current handler runs for (outside a handler: a single last attempt).

    A handler that must tell someone its work failed for good (a part of a document that
    could not be indexed) does so on its last attempt, instead of leaving only a dead letter.
    """
    return _delivery.get() or _OUTSIDE


def prepare_for_publish(event: EventEnvelope) -> EventEnvelope:
    """Fill in the correlation id and trace context of the caller when the envelope has none."""
    update: dict[str, object] = {}
    if event.correlation_id is None:
        correlation_id = get_correlation_id()
        if correlation_id is not None:
            update["correlation_id"] = correlation_id
    # Only a valid (sampled or not) current span has a context worth carrying.
    if not event.trace and trace.get_current_span().get_span_context().is_valid:
        headers = current_trace_headers()
        if headers:
            update["trace"] = headers
    return event.model_copy(update=update) if update else event


def _tracing_off() -> bool:
    # Without an SDK provider (KGLAB_OTEL_EXPORTER=none) the API hands out a proxy provider
    # whose spans record nothing.
    return isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


async def run_handler(
    handler: EventHandler,
    envelope: EventEnvelope,
    group: str,
    *,
    attempt: int = 1,
    max_attempts: int = 1,
) -> None:
    """Run ``handler`` with the event's correlation id and delivery attempt set and inside a
    consumer span.

    With tracing off and no trace context on the event the span would record and carry
    nothing (the handler sees the same invalid current span either way), so it is skipped:
    ``bench/bench_bus.py`` measures what that saves per event.
    """
    token = _delivery.set(Delivery(attempt, max_attempts))
    try:
        if envelope.trace or not _tracing_off():
            await _run_in_span(handler, envelope, group)
            return
        previous = get_correlation_id()
        set_correlation_id(envelope.correlation_id)
        try:
            await handler(envelope)
        finally:
            set_correlation_id(previous)
    finally:
        _delivery.reset(token)


async def _run_in_span(handler: EventHandler, envelope: EventEnvelope, group: str) -> None:
    previous = get_correlation_id()
    set_correlation_id(envelope.correlation_id)
    try:
        with _tracer.start_as_current_span(
            f"{envelope.type} process",
            context=context_from_headers(envelope.trace) if envelope.trace else None,
            kind=trace.SpanKind.CONSUMER,
            attributes={
                "messaging.system": "kglab",
                "messaging.operation": "process",
                "messaging.destination.name": envelope.type,
                "messaging.consumer.group.name": group,
                "messaging.message.id": envelope.id,
            },
        ):
            await handler(envelope)
    finally:
        set_correlation_id(previous)


def describe_error(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"
