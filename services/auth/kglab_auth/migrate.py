"""Apply the auth database's migrations, then exit: `python -m kglab_auth.migrate`.

The chart runs it as a pre-install and pre-upgrade hook Job (ADR 0027), so a migration that
fails stops the release before any new pod starts; the service's own start-up migrates too
(a no-op once the database is at head, serialised by a lock), for compose and `make stack`.
Reads the same settings as the service.
"""

from __future__ import annotations

import asyncio

from kglab_auth.config import AuthSettings
from kglab_auth.main import database_url
from kglab_auth.store.sql import create_engine, run_migrations
from kglab_shared.logging import configure_logging, get_logger
from kglab_shared.settings import load_settings


async def migrate() -> None:
    settings = load_settings(AuthSettings)
    configure_logging(settings.service_name, settings.log_level, settings.log_json)
    engine = create_engine(database_url(settings))
    try:
        await run_migrations(engine)
    finally:
        await engine.dispose()
    get_logger(__name__).info("migrations_applied", service=settings.service_name)


if __name__ == "__main__":
    asyncio.run(migrate())
