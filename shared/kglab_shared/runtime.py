"""What every service's lifespan sets up the same way: identity verification and the bus."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import FastAPI

from kglab_shared.bus.port import EventBus
from kglab_shared.identity import IdentityCodec, codec_from_settings
from kglab_shared.settings import BusKind, ServiceSettings


@dataclass(slots=True)
class ServiceRuntime:
    settings: ServiceSettings
    bus: EventBus
    identity_codec: IdentityCodec


@asynccontextmanager
async def service_runtime(
    app: FastAPI, settings: ServiceSettings, *, bus: EventBus | None = None
) -> AsyncIterator[ServiceRuntime]:
    """Wire the shared clients into ``app.state``; an injected ``bus`` is used, not owned."""
    from kglab_shared.bus.factory import create_bus

    owns_bus = bus is None
    if bus is None:
        url = settings.secret("rabbitmq_url") if settings.bus is BusKind.RABBITMQ else None
        bus = create_bus(settings.bus.value, url, source=f"kglab/{settings.service_name}")
    await bus.start()
    codec = codec_from_settings(
        settings.identity_public_keys, settings.internal_token_secret.get_secret_value()
    )
    app.state.bus = bus
    app.state.identity_codec = codec
    app.state.readiness.add("bus", bus.ping)
    try:
        yield ServiceRuntime(settings=settings, bus=bus, identity_codec=codec)
    finally:
        if owns_bus:
            await bus.close()
