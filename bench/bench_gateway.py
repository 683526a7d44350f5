"""Gateway benchmarks (issue 3): auth middleware cost, gateway overhead, and load.

Real processes on loopback, as in production: the auth service (real PostgreSQL in a fresh
database, real Redis) and the gateway, each a uvicorn process; load from ``wrk`` (a C load
generator, so the client does not eat the Python processes' CPU). Every run is bounded in time.

- auth middleware cost: the same public request through the gateway with and without a bearer
  token (the only difference is verifying it), sequential, medians of interleaved rounds;
  plus the in-process cost of verifying a token cold (signature) and warm (cache).
- gateway overhead: the same request straight to the auth service and through the gateway.
- load: 100 connections, 100 distinct users, GET /api/v1/auth/me (protected, reads PostgreSQL)
  through the gateway for 20 s.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import AsyncExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
from machine import save

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.isolation import free_port, fresh_postgres_database  # noqa: E402

SECRET = "bench-internal-secret-0123456789"
USERS = 100
LOAD_SECONDS = int(os.environ.get("KGLAB_BENCH_LOAD_S", "20"))
PASSWORD = "a long enough passphrase"

WRK_SCRIPT = r"""
local tokens = {}
for line in io.lines(os.getenv("KGLAB_TOKENS")) do tokens[#tokens + 1] = line end
local counter = 0
request = function()
  counter = counter + 1
  local token = tokens[(counter % #tokens) + 1]
  return wrk.format("GET", os.getenv("KGLAB_PATH"), {["Authorization"] = "Bearer " .. token})
end
done = function(summary, latency, requests)
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "errors": %d, "p50_us": %d, "p95_us": %d, ' ..
    '"p99_us": %d, "max_us": %d, "non_2xx": %d}\n',
    summary.requests, summary.duration,
    summary.errors.connect + summary.errors.read + summary.errors.write +
    summary.errors.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max,
    summary.errors.status))
end
"""


@contextmanager
def serve(app: str, port: int, env: dict[str, str]):  # type: ignore[no-untyped-def]
    log = tempfile.NamedTemporaryFile("w+", suffix=".log", delete=False)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            app,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        env={**os.environ, **env},
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            log.seek(0)
            raise RuntimeError(f"{app} did not start:\n{log.read()[-2000:]}")
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=20)


def sequential_median_ms(url: str, headers: dict[str, str], seconds: float) -> float:
    """Median latency of back-to-back requests on one kept-alive connection (Python client)."""
    samples = []
    with httpx.Client(timeout=5) as client:
        for _ in range(50):
            client.get(url, headers=headers)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and len(samples) < 20_000:
            started = time.perf_counter()
            response = client.get(url, headers=headers)
            samples.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, response.text
    return statistics.median(samples)


def interleaved(pairs: dict[str, tuple[str, dict[str, str]]], rounds: int = 5) -> dict[str, float]:
    """Alternate the variants in short rounds so machine noise hits them alike; median of rounds."""
    results: dict[str, list[float]] = {name: [] for name in pairs}
    for _ in range(rounds):
        for name, (url, headers) in pairs.items():
            results[name].append(sequential_median_ms(url, headers, 1.5))
    return {name: statistics.median(values) for name, values in results.items()}


def wrk(url: str, path: str, tokens: list[str], connections: int, seconds: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp, "load.lua")
        script.write_text(WRK_SCRIPT)
        token_file = Path(tmp, "tokens")
        token_file.write_text("\n".join(tokens) + "\n")
        completed = subprocess.run(
            [
                "wrk",
                "-t2",
                f"-c{connections}",
                f"-d{seconds}s",
                "--timeout",
                "5s",
                "-s",
                str(script),
                url,
            ],
            env={**os.environ, "KGLAB_TOKENS": str(token_file), "KGLAB_PATH": path},
            capture_output=True,
            text=True,
            timeout=seconds + 60,
            check=True,
        )
    line = [ln for ln in completed.stdout.splitlines() if ln.startswith("{")][-1]
    stats: dict[str, Any] = json.loads(line)
    stats["rps"] = round(stats["requests"] / (stats["duration_us"] / 1e6), 1)
    return stats


async def verify_costs(gateway_module: Any, token: str, jwks: dict[str, Any]) -> dict[str, float]:
    from kglab_gateway.tokens import CredentialVerifier

    async def fetch() -> dict[str, Any]:
        return jwks

    async def no_keys(_: str) -> None:
        return None

    verifier = CredentialVerifier(fetch, no_keys, issuer="kglab-auth", audience="kglab")
    await verifier.verify(token)
    n = 2000
    started = time.perf_counter()
    for _ in range(n):
        await verifier.verify(token)
    warm_us = (time.perf_counter() - started) / n * 1e6
    started = time.perf_counter()
    for _ in range(n):
        verifier._verified.clear()
        await verifier.verify(token)
    cold_us = (time.perf_counter() - started) / n * 1e6
    return {"verify_cold_us": round(cold_us, 1), "verify_cached_us": round(warm_us, 2)}


async def main() -> int:
    postgres = os.environ.get("KGLAB_POSTGRES_URL")
    redis = os.environ.get("KGLAB_REDIS_URL")
    if not postgres or not redis:
        print("bench_gateway needs KGLAB_POSTGRES_URL and KGLAB_REDIS_URL (make servers).")
        return 2
    if shutil.which("wrk") is None:
        print("bench_gateway needs wrk (apt-get install wrk).")
        return 2
    prefix = f"bench:{uuid.uuid4().hex}:"
    async with AsyncExitStack() as stack:
        database = await stack.enter_async_context(fresh_postgres_database(postgres, "kglab_bench"))
        common = {
            "KGLAB_ENVIRONMENT": "test",
            "KGLAB_STORES": "real",
            "KGLAB_BUS": "memory",
            "KGLAB_POSTGRES_URL": database,
            "KGLAB_REDIS_URL": redis,
            "KGLAB_INTERNAL_TOKEN_SECRET": SECRET,
            "KGLAB_LOG_LEVEL": "WARNING",
            "KGLAB_DATA_DIR": tempfile.mkdtemp(prefix="kglab-bench-"),
            "KGLAB_AUTH_REDIS_KEY_PREFIX": prefix,
            "KGLAB_GATEWAY_REDIS_KEY_PREFIX": prefix,
        }
        auth_port, gateway_port = free_port(), free_port()
        auth = stack.enter_context(serve("kglab_auth.main:create_app", auth_port, common))
        gateway = stack.enter_context(
            serve(
                "kglab_gateway.main:create_app",
                gateway_port,
                {**common, "KGLAB_GATEWAY_AUTH_URL": auth, "KGLAB_PORT": str(gateway_port)},
            )
        )
        print(f"auth at {auth}, gateway at {gateway}; signing up {USERS} users ...", flush=True)
        tokens = []
        async with httpx.AsyncClient(base_url=gateway, timeout=30) as client:
            for i in range(USERS):
                email = f"bench-{i}-{uuid.uuid4().hex[:6]}@example.com"
                r = await client.post(
                    "/api/v1/auth/register",
                    json={"email": email, "password": PASSWORD},
                    headers={"X-Forwarded-For": f"10.0.0.{i}"},
                )
                if r.status_code == 429:
                    await asyncio.sleep(float(r.headers.get("retry-after", "1")))
                    r = await client.post(
                        "/api/v1/auth/register", json={"email": email, "password": PASSWORD}
                    )
                assert r.status_code == 201, r.text
                login = await client.post(
                    "/api/v1/auth/login", data={"username": email, "password": PASSWORD}
                )
                if login.status_code == 429:
                    await asyncio.sleep(float(login.headers.get("retry-after", "1")))
                    login = await client.post(
                        "/api/v1/auth/login", data={"username": email, "password": PASSWORD}
                    )
                assert login.status_code == 200, login.text
                tokens.append(login.json()["access_token"])
            jwks = (await client.get("/.well-known/jwks.json")).json()

        token_header = {"Authorization": f"Bearer {tokens[0]}"}
        latency = interleaved(
            {
                "direct_public": (f"{auth}/.well-known/jwks.json", {}),
                "gateway_public": (f"{gateway}/.well-known/jwks.json", {}),
                "gateway_public_with_token": (f"{gateway}/.well-known/jwks.json", token_header),
                "direct_me_with_identity": (
                    f"{auth}/api/v1/auth/me",
                    {"X-KGLab-Identity": _identity_for(tokens[0])},
                ),
                "gateway_me": (f"{gateway}/api/v1/auth/me", token_header),
            }
        )
        costs = await verify_costs(None, tokens[0], jwks)
        print(f"load: {USERS} users, 100 connections, {LOAD_SECONDS} s ...", flush=True)
        load = wrk(gateway, "/api/v1/auth/me", tokens, connections=100, seconds=LOAD_SECONDS)
        direct_load = wrk(
            auth, "/health", tokens, connections=100, seconds=max(5, LOAD_SECONDS // 4)
        )

    results = {
        "sequential_median_ms": {k: round(v, 3) for k, v in latency.items()},
        "auth_middleware_cost_ms": round(
            latency["gateway_public_with_token"] - latency["gateway_public"], 3
        ),
        "gateway_overhead_ms": round(latency["gateway_public"] - latency["direct_public"], 3),
        "gateway_overhead_me_ms": round(
            latency["gateway_me"] - latency["direct_me_with_identity"], 3
        ),
        "token_verification": costs,
        "load_me_through_gateway": load,
        "load_health_direct_to_auth_reference": direct_load,
        "targets": {
            "auth_middleware_cost_ms": 0.5,
            "load_rps": 1000,
            "load_p95_ms": 100,
        },
    }
    path = save("gateway", results)
    rows = [(f"sequential median {name} (ms)", f"{value:.3f}") for name, value in latency.items()]
    rows += [
        ("auth middleware cost, median (ms) [<0.5]", f"{results['auth_middleware_cost_ms']:.3f}"),
        (
            "token verify cold / cached (us)",
            f"{costs['verify_cold_us']} / {costs['verify_cached_us']}",
        ),
        ("gateway overhead, public route (ms)", f"{results['gateway_overhead_ms']:.3f}"),
        ("gateway overhead, /me (ms)", f"{results['gateway_overhead_me_ms']:.3f}"),
        ("load /me via gateway: requests/s [>=1000]", f"{load['rps']:.1f}"),
        (
            "load /me via gateway: p50 / p95 / p99 (ms) [p95<100]",
            " / ".join(f"{load[k] / 1000:.1f}" for k in ("p50_us", "p95_us", "p99_us")),
        ),
        ("load /me via gateway: socket errors / non-2xx", f"{load['errors']} / {load['non_2xx']}"),
        ("reference: /health straight to auth (rps)", f"{direct_load['rps']:.1f}"),
    ]
    print()
    for label, value in rows:
        print(f"{label:56} {value:>20}")
    print(f"\nwritten to {path}")
    return 0


def _identity_for(token: str) -> str:
    """The assertion the gateway would forward for this token (for the direct comparison)."""
    import base64

    from kglab_shared.identity import Identity, IdentityCodec

    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    identity = Identity(claims["sub"], claims.get("role", "user"), frozenset({"*"}))
    return IdentityCodec(SECRET).mint(identity, lifetime_s=3600)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
