"""The gateway's rate-limit check (two windows per request: the user's and the address's),
side by side in one run (adr/0018):

- ``limits_redis`` / ``limits_memory``: ``kglab_shared.ratelimit`` on the ``limits`` library,
  as the gateway, auth and the fetcher run now;
- ``handmade_redis`` / ``handmade_memory``: the gateway's hand-written limiters it replaced (a
  batched Lua script for Redis, a dict for memory), loaded from the commit before their removal
  when git history is at hand (else reported as skipped).

Each variant checks ``--checks`` requests with ``--concurrency`` callers, ``--rounds`` times,
interleaved round by round. Reported: medians of wall and CPU (this process's) microseconds per
checked request, and ratios to ``limits_redis``. The load average is recorded beside them.

    .venv/bin/python bench/bench_ratelimit.py [--checks 4000] [--rounds 5] [--concurrency 50]

Redis variants need ``KGLAB_REDIS_URL`` (``make servers``). Writes
``bench/results/ratelimit.json``.
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
from pathlib import Path
from types import ModuleType
from typing import Any

from machine import module_at_commit, save

ROOT = Path(__file__).resolve().parents[1]
HANDMADE_COMMIT = "e4319dd"
HANDMADE_PATH = "gateway/kglab_gateway/ratelimit.py"

Check = Callable[[int], Awaitable[Any]]


def _handmade_module() -> ModuleType | None:
    return module_at_commit(HANDMADE_COMMIT, HANDMADE_PATH, "handmade_ratelimit")


async def _round(check: Check, checks: int, concurrency: int) -> tuple[float, float]:
    left = list(range(checks))

    async def caller() -> None:
        while left:
            await check(left.pop())

    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    return time.perf_counter() - wall, time.process_time() - cpu


async def main(args: argparse.Namespace) -> int:
    sys.path.insert(0, str(ROOT))
    from kglab_shared.ratelimit import Quota, memory_rate_limiter, redis_rate_limiter

    redis_url = os.environ.get("KGLAB_REDIS_URL")
    prefix = f"bench:{uuid.uuid4().hex[:8]}"
    users = [f"user:{n}" for n in range(200)]
    # As the gateway counts: clock-aligned windows.
    quota_user, quota_ip = Quota(10**9, 60, aligned=True), Quota(10**9, 60, aligned=True)

    def limits_check(limiter: Any) -> Check:
        async def check(n: int) -> Any:
            return await limiter.hit_many(
                [(quota_user, f"/api/:{users[n % 200]}"), (quota_ip, f"/api/:ip:{n % 50}")]
            )

        return check

    def handmade_check(limiter: Any) -> Check:
        async def check(n: int) -> Any:
            return await limiter.hit_many(
                [(f"/api/:{users[n % 200]}", 10**9, 60), (f"/api/:ip:{n % 50}", 10**9, 60)]
            )

        return check

    variants: dict[str, Check] = {}
    closers: list[Callable[[], Awaitable[Any]]] = []
    skipped: dict[str, str] = {}
    memory = memory_rate_limiter()
    variants["limits_memory"] = limits_check(memory)
    handmade = _handmade_module()
    if handmade is not None:
        variants["handmade_memory"] = handmade_check(handmade.MemoryRateLimiter())
    else:
        skipped["handmade_memory"] = skipped["handmade_redis"] = "no git history at hand"
    if redis_url:
        shared = redis_rate_limiter(redis_url, prefix=f"{prefix}:new")
        variants["limits_redis"] = limits_check(shared)
        closers.append(shared.close)
        if handmade is not None:
            from redis.asyncio import Redis

            old = handmade.RedisRateLimiter(Redis.from_url(redis_url), prefix=f"{prefix}:old:")
            variants["handmade_redis"] = handmade_check(old)
            closers.append(old.close)
    else:
        skipped["limits_redis"] = skipped["handmade_redis"] = "KGLAB_REDIS_URL is not set"
    try:
        for check in variants.values():
            await _round(check, args.concurrency * 4, args.concurrency)
        walls: dict[str, list[float]] = {name: [] for name in variants}
        cpus: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(args.rounds):
            for name, check in variants.items():
                wall, cpu = await _round(check, args.checks, args.concurrency)
                walls[name].append(wall / args.checks * 1e6)
                cpus[name].append(cpu / args.checks * 1e6)
    finally:
        for close in closers:
            await close()
        if redis_url:
            from redis.asyncio import Redis

            client = Redis.from_url(redis_url)
            keys = [k async for k in client.scan_iter(match=f"{prefix}*", count=1000)]
            if keys:
                await client.delete(*keys)
            await client.aclose()

    base = "limits_redis" if "limits_redis" in variants else "limits_memory"
    base_wall, base_cpu = statistics.median(walls[base]), statistics.median(cpus[base])
    table: dict[str, Any] = dict.fromkeys(skipped)
    for name, reason in skipped.items():
        table[name] = {"skipped": reason}
    print(f"{'variant':<16} {'wall us/check':>14} {'cpu us/check':>13} {'wall x':>7} {'cpu x':>6}")
    for name in variants:
        wall, cpu = statistics.median(walls[name]), statistics.median(cpus[name])
        table[name] = {
            "wall_us_per_check_median": round(wall, 1),
            "cpu_us_per_check_median": round(cpu, 1),
            f"wall_ratio_to_{base}": round(wall / base_wall, 3),
            f"cpu_ratio_to_{base}": round(cpu / base_cpu, 3),
        }
        print(
            f"{name:<16} {wall:>14.1f} {cpu:>13.1f} {wall / base_wall:>7.2f} {cpu / base_cpu:>6.2f}"
        )
    path = save(
        "ratelimit",
        {
            "what": "one gateway rate-limit check (two windows) per request, client side",
            "checks_per_round": args.checks,
            "rounds": args.rounds,
            "concurrency": args.concurrency,
            "loadavg_before_after": [list(LOAD_BEFORE), list(os.getloadavg())],
            "note": (
                "shared 2-core machine with the Redis server and other engineers' work: wall "
                "times are inflated; CPU is this process's (client side) only"
            ),
            "variants": table,
        },
    )
    print(f"wrote {path}")
    return 0


LOAD_BEFORE = os.getloadavg()

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checks", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=50)
    sys.exit(asyncio.run(main(parser.parse_args())))
