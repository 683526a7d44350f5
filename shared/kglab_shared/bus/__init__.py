"""The event bus port and its adapters (in-process and RabbitMQ)."""

from kglab_shared.bus.port import (
    DeadLetter,
    EventBus,
    EventHandler,
    PublishError,
    RetryLater,
    RetryPolicy,
    failure_log_fields,
)

__all__ = [
    "DeadLetter",
    "EventBus",
    "EventHandler",
    "PublishError",
    "RetryLater",
    "RetryPolicy",
    "failure_log_fields",
]
