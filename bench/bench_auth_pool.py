"""Auth's hot read (a user by id, every GET /me) on three ways to hold its connections, side by
side in one run against one PostgreSQL database (adr/0018):

- ``asyncpg_pool``: asyncpg's own pool, ``create_pool(reset=...)``, as auth runs now
  (``kglab_auth.store.user_reads.PgUserReader``);
- ``handmade_pool``: the hand-made pool it replaced (``lean_pg.LeanUserReader``), loaded from
  the commit before its removal when git history is at hand (else reported as skipped);
- ``sqlalchemy``: the same read through the SQL adapter's SQLAlchemy engine (what the hot path
  exists to avoid).

Each variant reads ``--reads`` users with ``--concurrency`` callers on ``--size`` connections,
``--rounds`` times, the variants interleaved round by round so that the machine's load falls on
all of them alike. Reported: per variant the median of the rounds' wall time per read and CPU
time per read (this process's, from ``time.process_time``: the client-side cost), and the
ratios to ``asyncpg_pool``. On a shared machine the wall clock mostly measures the neighbours;
the load average is recorded beside the numbers.

    .venv/bin/python bench/bench_auth_pool.py [--reads 2000] [--rounds 7] [--concurrency 16]

Needs ``KGLAB_POSTGRES_URL`` (``make servers``). Writes ``bench/results/auth_pool.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

from machine import module_at_commit, save

ROOT = Path(__file__).resolve().parents[1]
#: The last commit that has the hand-made pool.
HANDMADE_COMMIT = "e4319dd"
HANDMADE_PATH = "services/auth/kglab_auth/store/lean_pg.py"

Reader = Callable[[str], Awaitable[Any]]


def _handmade_module() -> ModuleType | None:
    return module_at_commit(HANDMADE_COMMIT, HANDMADE_PATH, "handmade_lean_pg")


async def _round(read: Reader, ids: list[str], concurrency: int) -> tuple[float, float]:
    queue = list(ids)

    async def caller() -> None:
        while queue:
            found = await read(queue.pop())
            assert found is not None

    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    return time.perf_counter() - wall, time.process_time() - cpu


async def main(args: argparse.Namespace) -> int:
    url = os.environ.get("KGLAB_POSTGRES_URL")
    if not url:
        print("KGLAB_POSTGRES_URL is not set: skipped (make servers)")
        save("auth_pool", {"skipped": "KGLAB_POSTGRES_URL is not set"})
        return 0
    sys.path.insert(0, str(ROOT))
    from kglab_auth.domain import Role, User
    from kglab_auth.store.sql import SqlAuthStore, create_engine
    from kglab_auth.store.user_reads import PgUserReader
    from tests.isolation import fresh_postgres_database

    async with fresh_postgres_database(url, prefix="kglab_bench") as database:
        store = SqlAuthStore(create_engine(database), hot_read_connections=args.size)
        await store.migrate()
        now = datetime.now(UTC)
        ids = [f"user-{uuid.uuid4().hex[:12]}" for _ in range(200)]
        async with store.transaction() as repo:
            for user_id in ids:
                await repo.add_user(
                    User(user_id, f"{user_id}@example.com", None, Role.USER, False, now, now)
                )
        reads = [ids[i % len(ids)] for i in range(args.reads)]

        async def through_sqlalchemy(user_id: str) -> Any:
            async with store.reader() as repo:
                return await repo.user_by_id(user_id)

        pool = PgUserReader.for_engine(store.engine, size=args.size)
        variants: dict[str, Reader] = {
            "asyncpg_pool": pool.user_by_id,
            "sqlalchemy": through_sqlalchemy,
        }
        closers: list[Callable[[], Awaitable[None]]] = [pool.close]
        handmade = _handmade_module()
        if handmade is not None:
            old = handmade.LeanUserReader.for_engine(store.engine, size=args.size)
            variants["handmade_pool"] = old.user_by_id
            closers.append(old.close)
        try:
            for read in variants.values():  # warm: connections opened, statements prepared
                await _round(read, reads[: args.concurrency * 4], args.concurrency)
            walls: dict[str, list[float]] = {name: [] for name in variants}
            cpus: dict[str, list[float]] = {name: [] for name in variants}
            for _ in range(args.rounds):
                for name, read in variants.items():
                    wall, cpu = await _round(read, reads, args.concurrency)
                    walls[name].append(wall / len(reads) * 1e6)
                    cpus[name].append(cpu / len(reads) * 1e6)
        finally:
            for close in closers:
                await close()
            await store.close()

    base_wall = statistics.median(walls["asyncpg_pool"])
    base_cpu = statistics.median(cpus["asyncpg_pool"])
    table: dict[str, Any] = {}
    print(f"{'variant':<15} {'wall µs/read':>13} {'cpu µs/read':>12} {'wall x':>7} {'cpu x':>6}")
    for name in variants:
        wall, cpu = statistics.median(walls[name]), statistics.median(cpus[name])
        table[name] = {
            "wall_us_per_read_median": round(wall, 1),
            "cpu_us_per_read_median": round(cpu, 1),
            "wall_ratio_to_asyncpg_pool": round(wall / base_wall, 3),
            "cpu_ratio_to_asyncpg_pool": round(cpu / base_cpu, 3),
            "wall_us_per_read_rounds": [round(v, 1) for v in walls[name]],
            "cpu_us_per_read_rounds": [round(v, 1) for v in cpus[name]],
        }
        print(
            f"{name:<15} {wall:>13.1f} {cpu:>12.1f} {wall / base_wall:>7.2f} {cpu / base_cpu:>6.2f}"
        )
    if handmade is None:
        table["handmade_pool"] = {"skipped": f"git history without {HANDMADE_COMMIT} at hand"}
    path = save(
        "auth_pool",
        {
            "what": "auth's GET /me user read, per read, three connection holders side by side",
            "reads_per_round": args.reads,
            "rounds": args.rounds,
            "concurrency": args.concurrency,
            "connections": args.size,
            "loadavg_before_after": [list(LOAD_BEFORE), list(os.getloadavg())],
            "note": (
                "shared 2-core machine with the PostgreSQL server and other engineers' work: "
                "wall times are inflated; CPU is this process's (client side) only"
            ),
            "variants": table,
        },
    )
    print(f"wrote {path}")
    return 0


LOAD_BEFORE = os.getloadavg()

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reads", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--size", type=int, default=4)
    sys.exit(asyncio.run(main(parser.parse_args())))
