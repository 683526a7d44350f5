"""Rebuild the derived stores from the documents: announce every stored document again.

The vector and graph services index what ``document.stored`` carries; announcing each stored
document once more (with an event id of the rebuild's own, so the consumers that remember
handled ids do not skip it) re-embeds and re-extracts it into Qdrant and Neo4j through the same
consumers that indexed it first, whatever their model is now. It is the restore path when
either store is lost, or when its model changes (adr/0021).

A rebuild walks the stored documents in id order, records its checkpoint (the last document
announced) after each page and resumes after it when the service starts again. Progress is
what has been announced; the consumers' queues hold what is still to index (their depth is on
RabbitMQ's management API and in each service's ``/metrics``).

    python -m kglab_document.rebuild [--owner USER_ID] [--resume REBUILD_ID]

runs one in the foreground with the document service's settings (RabbitMQ bus: the in-process
bus of ``make dev`` reaches no other process, so there use ``POST /api/v1/admin/rebuilds``).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

from kglab_document.domain import (
    Rebuild,
    RebuildNotFoundError,
    RebuildStatus,
    utc_millis,
)
from kglab_document.messaging.publish import DocumentEventPublisher
from kglab_document.store.port import DocumentStore
from kglab_shared.claims import claim_digest, new_claim
from kglab_shared.logging import get_logger

_log = get_logger(__name__)
Clock = Callable[[], datetime]
Progress = Callable[[Rebuild], None]
#: Documents per page of the walk: the checkpoint is written after each.
PAGE_SIZE = 100
_CHUNK_PAGE = 100


def _now() -> datetime:
    return datetime.now(UTC)


class Rebuilder:
    """Starts, runs, resumes and reports rebuilds; one task per running rebuild."""

    def __init__(
        self,
        store: DocumentStore,
        events: DocumentEventPublisher,
        clock: Clock = _now,
        *,
        page_size: int = PAGE_SIZE,
    ) -> None:
        self._store = store
        self._events = events
        self._source_clock = clock
        self._page_size = page_size
        self._tasks: dict[str, asyncio.Task[Rebuild]] = {}

    def _clock(self) -> datetime:
        # What the stores keep (milliseconds, UTC): a returned record equals the stored one.
        return utc_millis(self._source_clock())

    async def create(self, owner_id: str | None) -> Rebuild:
        """Record a new rebuild (not yet running) of one owner's documents or everyone's."""
        now = self._clock()
        rebuild = Rebuild(
            id=uuid.uuid4().hex,
            owner_id=owner_id,
            status=RebuildStatus.RUNNING,
            total=await self._store.count_stored(owner_id),
            published=0,
            checkpoint=None,
            started_at=now,
            updated_at=now,
        )
        await self._store.save_rebuild(rebuild)
        _log.info("rebuild_started", rebuild_id=rebuild.id, owner_id=owner_id, total=rebuild.total)
        return rebuild

    async def start(self, owner_id: str | None) -> Rebuild:
        """Create a rebuild and run it in the background."""
        rebuild = await self.create(owner_id)
        self._spawn(rebuild)
        return rebuild

    async def get(self, rebuild_id: str) -> Rebuild:
        rebuild = await self._store.get_rebuild(rebuild_id)
        if rebuild is None:
            raise RebuildNotFoundError(rebuild_id)
        return rebuild

    async def reopen(self, rebuild_id: str) -> Rebuild:
        """The rebuild, marked running again from its checkpoint (a failed or stopped one)."""
        rebuild = await self.get(rebuild_id)
        if rebuild.status is RebuildStatus.COMPLETED:
            return rebuild
        rebuild = replace(
            rebuild,
            status=RebuildStatus.RUNNING,
            error=None,
            finished_at=None,
            updated_at=self._clock(),
        )
        await self._store.save_rebuild(rebuild)
        return rebuild

    async def resume(self, rebuild_id: str) -> Rebuild:
        """Go on after the checkpoint in the background; a completed or running one is left."""
        if rebuild_id in self._tasks:
            return await self.get(rebuild_id)
        rebuild = await self.reopen(rebuild_id)
        if rebuild.status is RebuildStatus.RUNNING:
            self._spawn(rebuild)
        return rebuild

    async def resume_unfinished(self) -> int:
        """Resume every rebuild recorded as running (the service stopped during it)."""
        resumed = 0
        for rebuild in await self._store.running_rebuilds():
            if rebuild.id not in self._tasks:
                _log.info("rebuild_resumed", rebuild_id=rebuild.id, checkpoint=rebuild.checkpoint)
                self._spawn(rebuild)
                resumed += 1
        return resumed

    def _spawn(self, rebuild: Rebuild) -> None:
        task = asyncio.create_task(self.run(rebuild), name=f"kglab-rebuild-{rebuild.id}")
        self._tasks[rebuild.id] = task
        task.add_done_callback(lambda _: self._tasks.pop(rebuild.id, None))

    async def run(self, rebuild: Rebuild, on_progress: Progress | None = None) -> Rebuild:
        """Announce every stored document after the checkpoint; the rebuild as it ended.

        A failure (the bus or the store away) records the rebuild failed with the reason, at
        its last checkpoint, to be resumed; a cancellation (the service stopping) leaves it
        running, so the next start resumes it.
        """
        try:
            while True:
                page = await self._store.stored_documents(
                    owner_id=rebuild.owner_id, after=rebuild.checkpoint, limit=self._page_size
                )
                if not page:
                    break
                for document in page:
                    # A claim of its own: the stored digest is all that is kept of the last one.
                    claim = new_claim()
                    await self._store.set_claim(document.owner_id, document.id, claim_digest(claim))
                    await self._events.stored(document, claim, rebuild_id=rebuild.id)
                    rebuild = replace(
                        rebuild, published=rebuild.published + 1, checkpoint=document.id
                    )
                rebuild = replace(rebuild, updated_at=self._clock())
                await self._store.save_rebuild(rebuild)
                if on_progress is not None:
                    on_progress(rebuild)
            now = self._clock()
            rebuild = replace(
                rebuild,
                status=RebuildStatus.COMPLETED,
                total=max(rebuild.total, rebuild.published),
                updated_at=now,
                finished_at=now,
            )
            _log.info("rebuild_completed", rebuild_id=rebuild.id, published=rebuild.published)
        except Exception as exc:
            _log.warning("rebuild_failed", rebuild_id=rebuild.id, error=str(exc))
            rebuild = replace(
                rebuild,
                status=RebuildStatus.FAILED,
                error=f"Stopped after {rebuild.published} documents: {exc}. Resume it to go on.",
                updated_at=self._clock(),
            )
        await self._store.save_rebuild(rebuild)
        return rebuild

    async def close(self) -> None:
        """Stop the running rebuilds (they stay recorded as running and resume next start)."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _run_cli(owner_id: str | None, resume: str | None) -> int:
    from kglab_document.config import DocumentSettings
    from kglab_document.main import open_document_store
    from kglab_shared.bus.factory import create_bus
    from kglab_shared.health import Readiness
    from kglab_shared.settings import BusKind, load_settings

    settings = load_settings(DocumentSettings)
    if settings.bus is not BusKind.RABBITMQ:
        print(
            "A rebuild from the command line needs KGLAB_BUS=rabbitmq: the in-process bus "
            "reaches no other process. In `make dev` use POST /api/v1/admin/rebuilds.",
            file=sys.stderr,
        )
        return 2
    source = f"kglab/{settings.service_name}"
    bus = create_bus(settings.bus.value, settings.secret("rabbitmq_url"), source=source)
    await bus.start()
    try:
        async with open_document_store(settings, Readiness()) as store:
            rebuilder = Rebuilder(store, DocumentEventPublisher(bus, source))
            rebuild = await (rebuilder.reopen(resume) if resume else rebuilder.create(owner_id))
            print(f"rebuild {rebuild.id}: {rebuild.total} documents", flush=True)

            def report(progress: Rebuild) -> None:
                print(
                    f"rebuild {progress.id}: {progress.published}/{progress.total} announced "
                    f"(checkpoint {progress.checkpoint})",
                    flush=True,
                )

            if rebuild.status is RebuildStatus.RUNNING:
                rebuild = await rebuilder.run(rebuild, on_progress=report)
    finally:
        await bus.close()
    print(f"rebuild {rebuild.id}: {rebuild.status.value}, {rebuild.published} announced")
    if rebuild.error:
        print(rebuild.error, file=sys.stderr)
    return 0 if rebuild.status is RebuildStatus.COMPLETED else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m kglab_document.rebuild",
        description="Announce every stored document again so the vector and graph services "
        "re-index it (resumable; progress on stdout).",
    )
    parser.add_argument("--owner", help="only this user's documents")
    parser.add_argument("--resume", help="go on with this rebuild from its checkpoint")
    args = parser.parse_args(argv)
    if args.owner and args.resume:
        parser.error("--owner and --resume do not go together: a rebuild keeps its owner")
    return asyncio.run(_run_cli(args.owner, args.resume))


if __name__ == "__main__":
    sys.exit(main())
