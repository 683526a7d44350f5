"""Apply the auth database's migrations, then exit: `python -m kglab_auth.migrate`
(``kglab_shared.sql.migrate_and_exit`` says when and why)."""

from __future__ import annotations

import asyncio

from kglab_auth.config import AuthSettings
from kglab_auth.main import database_url
from kglab_auth.store.sql import create_engine, run_migrations
from kglab_shared.settings import load_settings
from kglab_shared.sql import migrate_and_exit


async def migrate() -> None:
    settings = load_settings(AuthSettings)
    await migrate_and_exit(settings, database_url(settings), create_engine, run_migrations)


if __name__ == "__main__":
    asyncio.run(migrate())
