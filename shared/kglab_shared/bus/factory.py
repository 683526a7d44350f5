"""Choose the event bus adapter from settings: the one place that knows both adapters."""

from __future__ import annotations

from kglab_shared.bus.memory import InProcessBroker, InProcessBus
from kglab_shared.bus.port import EventBus

BUS_KINDS = ("memory", "rabbitmq")

_process_broker: InProcessBroker | None = None


def process_broker() -> InProcessBroker:
    """The broker every in-process bus of this process shares unless given its own.

    ``make dev`` runs every service in one process, each with its own bus; they must reach the
    same queues, as separate processes reach the same RabbitMQ.
    """
    global _process_broker
    if _process_broker is None:
        _process_broker = InProcessBroker()
    return _process_broker


def create_bus(
    kind: str,
    url: str | None,
    source: str,
    *,
    broker: InProcessBroker | None = None,
) -> EventBus:
    """An unstarted bus: ``memory`` (in-process) or ``rabbitmq`` (needs ``url``)."""
    if kind == "memory":
        return InProcessBus(source, broker=broker or process_broker())
    if kind == "rabbitmq":
        if not url:
            raise ValueError(
                "The rabbitmq bus needs a URL such as amqp://user:password@host:5672/ "
                "(KGLAB_RABBITMQ_URL)."
            )
        # Imported here so the embedded setup does not load aio-pika.
        from kglab_shared.bus.rabbitmq import RabbitMQBus

        return RabbitMQBus(url, source)
    raise ValueError(f"The bus kind must be one of {', '.join(BUS_KINDS)}, not {kind!r}.")
