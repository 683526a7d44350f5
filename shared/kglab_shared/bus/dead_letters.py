"""Dead letters for an administrator: which consumer groups exist, listing and replaying what
is parked in their ``<group>.dlq`` (the route ``/api/v1/admin/dead-letters/{group}`` and
``python -m kglab_shared.bus.dead_letters {list,replay} GROUP``).

The groups are a fixed list: browsing declares the group's dead-letter queue, so an unknown
name must be refused before it reaches the broker, not create a queue.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys

from kglab_shared.bus.port import DeadLetter, EventBus
from kglab_shared.errors import NotFoundError

#: Every consumer group of the system (a queue each, adr/0002). tests/unit checks it against
#: the groups the services subscribe with.
CONSUMER_GROUPS: tuple[str, ...] = (
    "ingestion",
    "ingestion.deletions",
    "ingestion.indexing",
    "document",
    "vector",
    "graph",
)


def check_group(group: str) -> str:
    if group not in CONSUMER_GROUPS:
        raise NotFoundError(
            f"There is no consumer group '{group}'; the groups are {', '.join(CONSUMER_GROUPS)}."
        )
    return group


def describe(letter: DeadLetter) -> dict[str, object]:
    """A dead letter as the route and the command show it."""
    return {
        "event_id": letter.envelope.id,
        "type": letter.envelope.type,
        "subject": letter.envelope.subject,
        "correlation_id": letter.envelope.correlation_id,
        "attempts": letter.attempts,
        "error": letter.error,
        "dead_at": letter.dead_at.isoformat(),
    }


async def _run(command: str, group: str, limit: int) -> int:
    from kglab_shared.bus.factory import create_bus

    url = os.environ.get("KGLAB_RABBITMQ_URL")
    if not url:
        print("Set KGLAB_RABBITMQ_URL (dead letters live in RabbitMQ).", file=sys.stderr)
        return 2
    bus: EventBus = create_bus("rabbitmq", url, source="kglab/admin")
    await bus.start()
    try:
        if command == "list":
            letters = await bus.dead_letters(group, limit)
            for letter in letters:
                print(json.dumps(describe(letter)))
            print(f"{len(letters)} dead letters in {group}", file=sys.stderr)
        else:
            replayed = await bus.replay_dead_letters(group)
            print(f"replayed {replayed} dead letters to {group}")
    finally:
        await bus.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m kglab_shared.bus.dead_letters",
        description="List (as JSON lines) or replay the events parked in a group's dead-letter "
        "queue, on the RabbitMQ of KGLAB_RABBITMQ_URL.",
    )
    parser.add_argument("command", choices=("list", "replay"))
    parser.add_argument("group", choices=CONSUMER_GROUPS)
    parser.add_argument("--limit", type=int, default=100)
    args = parser.parse_args(argv)
    return asyncio.run(_run(args.command, args.group, args.limit))


if __name__ == "__main__":
    sys.exit(main())
