"""Gateway benchmarks (issue 3): auth middleware cost, gateway overhead, and load.

Real processes on loopback, as in production: the auth service (real PostgreSQL in a fresh
database, real Redis) and the gateway, each a uvicorn process; load from ``wrk`` (a C load
generator, so the client does not eat the Python processes' CPU: its own CPU is reported).
Every run is bounded in time.

- auth middleware cost: the same public request through the gateway with and without a bearer
  token (the only difference is verifying it), sequential, medians of interleaved rounds;
  plus the in-process cost of verifying a token cold (signature) and warm (cache).
- gateway overhead: the same request straight to the auth service and through the gateway.
- load: 100 connections, 100 distinct users, GET /api/v1/auth/me (protected, reads PostgreSQL)
  through the gateway for 20 s, with the CPU each process spent per request (gateway, auth,
  wrk) read from /proc: on a 2-core machine that budget, not the gateway alone, bounds rps.
- load at a fixed rate: the same 100 users calling on a schedule that adds up to 1,000
  requests/s (KGLAB_BENCH_RATE), open loop, latency counted from each request's due time, so
  queueing is not hidden; the generator is bench/loadgen (Go, one OS thread) and its CPU is
  reported. The wrk
  run above is closed loop: 100 connections always busy measure the most the stack can serve,
  and at saturation its latency is mostly queueing (100 connections / rps).
- upstream clients: the CPU an asyncio HTTP client spends per request (httpx, httpcore
  directly, aiohttp), 50 concurrent requests to a minimal loopback server in another process,
  measured in this process alone (getrusage). The gateway forwards with httpx (adr/0017,
  where bench_gateway_upstream.py compares the gateway's own CPU per request side by side).

Knobs: KGLAB_BENCH_LOAD_S (load seconds, default 20), KGLAB_BENCH_GATEWAY_WORKERS (uvicorn
workers of the gateway, default 1; the 2 cores are shared with auth, the servers and wrk),
KGLAB_BENCH_ONLY_LOAD=1 (only the load on /me, written to results/gateway_load.json: for
before/after comparisons of the load path), KGLAB_BENCH_PROFILE=<dir> (run the gateway and auth
under cProfile and write <dir>/gateway.prof and <dir>/auth.prof; CPU figures are then inflated).
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import shutil
import signal
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
GATEWAY_WORKERS = int(os.environ.get("KGLAB_BENCH_GATEWAY_WORKERS", "1"))
CLIENT_REQUESTS = int(os.environ.get("KGLAB_BENCH_CLIENT_REQUESTS", "3000"))
ONLY_LOAD = os.environ.get("KGLAB_BENCH_ONLY_LOAD", "") == "1"
PROFILE_DIR = os.environ.get("KGLAB_BENCH_PROFILE", "")
PASSWORD = "a long enough passphrase"

WRK_SCRIPT = r"""
local tokens = {}
for line in io.lines(os.getenv("KGLAB_TOKENS")) do tokens[#tokens + 1] = line end
local counter = 0
request = function()
  counter = counter + 1
  local index = (counter % #tokens) + 1
  -- Each user calls from an address of its own (uvicorn trusts X-Forwarded-For from loopback),
  -- as 100 users would: from one address they would all share the per-IP limit and be answered
  -- 429 once the run passes 12,000 requests a minute.
  return wrk.format("GET", os.getenv("KGLAB_PATH"), {
    ["Authorization"] = "Bearer " .. tokens[index],
    ["X-Forwarded-For"] = "10.1.0." .. index,
  })
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


# uvicorn with cProfile switched on by SIGUSR1 and off (profile written) by SIGUSR2, so the
# profile covers the measured load only, not start-up and sign-up.
PROFILED_UVICORN = r"""
import cProfile, signal, sys, time
import uvicorn
out = sys.argv.pop(1)
# CPU time, not wall time: on a busy machine a wall-clock profile charges preemption (a write
# that wakes the reader, say) to whatever function was running.
profile = cProfile.Profile(time.process_time)
def start(*_):
    profile.enable()
def stop(*_):
    profile.disable()
    profile.dump_stats(out)
signal.signal(signal.SIGUSR1, start)
signal.signal(signal.SIGUSR2, stop)
uvicorn.main()
"""

SERVED: dict[str, subprocess.Popen[str]] = {}


@contextmanager
def serve(app: str, port: int, env: dict[str, str], workers: int = 1):  # type: ignore[no-untyped-def]
    log = tempfile.NamedTemporaryFile("w+", suffix=".log", delete=False)
    launch = ["-m", "uvicorn"]
    if PROFILE_DIR:
        Path(PROFILE_DIR).mkdir(parents=True, exist_ok=True)
        name = app.split(".")[0].removeprefix("kglab_")
        launch = ["-c", PROFILED_UVICORN, str(Path(PROFILE_DIR, f"{name}.prof"))]
    process = subprocess.Popen(
        [
            sys.executable,
            *launch,
            "--factory",
            app,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
            *(["--workers", str(workers)] if workers > 1 else []),
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
        SERVED[app] = process
        yield f"http://127.0.0.1:{port}"
    finally:
        SERVED.pop(app, None)
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


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its children (uvicorn workers), from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / ticks
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return total
    return total + sum(_cpu_seconds(int(child)) for child in children)


def _machine_busy_seconds() -> float:
    """CPU time of the whole machine that was not idle or waiting for I/O, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    busy = sum(fields[:8]) - fields[3] - fields[4]  # all but idle and iowait (no guest twice)
    return busy / os.sysconf("SC_CLK_TCK")


def _kernel_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[12]) / os.sysconf("SC_CLK_TCK")


def wrk(
    url: str,
    path: str,
    tokens: list[str],
    connections: int,
    seconds: int,
    watch: dict[str, int] | None = None,
) -> dict[str, Any]:
    """Load ``url + path`` with wrk; with ``watch`` (name -> pid), the CPU each process spent
    per request, and wrk's own."""
    watch = watch or {}
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp, "load.lua")
        script.write_text(WRK_SCRIPT)
        token_file = Path(tmp, "tokens")
        token_file.write_text("\n".join(tokens) + "\n")
        before = {name: _cpu_seconds(pid) for name, pid in watch.items()}
        kernel_before = {name: _kernel_seconds(pid) for name, pid in watch.items()}
        children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        machine_before = _machine_busy_seconds()
        completed = subprocess.run(
            [
                "wrk",
                "-t1",
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
        children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
        machine_busy = _machine_busy_seconds() - machine_before
        spent = {name: _cpu_seconds(pid) - before[name] for name, pid in watch.items()}
        kernel = {name: _kernel_seconds(pid) - kernel_before[name] for name, pid in watch.items()}
    line = [ln for ln in completed.stdout.splitlines() if ln.startswith("{")][-1]
    stats: dict[str, Any] = json.loads(line)
    duration_s = stats["duration_us"] / 1e6
    # Only successful answers count: a 429 or 503 costs far less than the real work.
    stats["rps"] = round((stats["requests"] - stats["non_2xx"]) / duration_s, 1)
    stats["rps_all_answers"] = round(stats["requests"] / duration_s, 1)
    spent["wrk"] = (children_after.ru_utime - children_before.ru_utime) + (
        children_after.ru_stime - children_before.ru_stime
    )
    requests = max(1, stats["requests"])
    stats["cpu_ms_per_request"] = {name: round(v * 1000 / requests, 3) for name, v in spent.items()}
    stats["kernel_ms_per_request"] = {
        name: round(v * 1000 / requests, 3) for name, v in kernel.items()
    }
    stats["cpu_cores_busy"] = {name: round(v / duration_s, 2) for name, v in spent.items()}
    # Every process on the machine (PostgreSQL, Redis, other work): what the 2 cores did.
    stats["machine_cores_busy"] = round(machine_busy / duration_s, 2)
    stats["loadavg_after"] = Path("/proc/loadavg").read_text().split()[:3]
    return stats


TINY_SERVER = r"""
import asyncio, sys
BODY = b'{"status":"ok"}'
ANSWER = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (
    len(BODY), BODY)
class Answer(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport, self.buffer = transport, b""
    def data_received(self, data):
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            _, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
            self.transport.write(ANSWER)
async def main():
    server = await asyncio.get_running_loop().create_server(Answer, "127.0.0.1", int(sys.argv[1]))
    print("ready", flush=True)
    await server.serve_forever()
asyncio.run(main())
"""


async def compare_clients(requests: int, concurrency: int = 50) -> dict[str, dict[str, float]]:
    """CPU per request of each candidate upstream client, in this process only, against a
    minimal HTTP/1.1 server in another process (so the server's cost is not counted)."""
    import aiohttp
    import httpcore

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-c", TINY_SERVER, str(port)], stdout=subprocess.PIPE, text=True
    )
    url = f"http://127.0.0.1:{port}/api/v1/auth/me"
    try:
        assert server.stdout is not None
        server.stdout.readline()

        async def drive(one: Any) -> dict[str, float]:
            await one()
            per_worker = requests // concurrency

            async def worker() -> None:
                for _ in range(per_worker):
                    await one()

            usage = resource.getrusage(resource.RUSAGE_SELF)
            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            elapsed = time.perf_counter() - started
            after = resource.getrusage(resource.RUSAGE_SELF)
            cpu = (after.ru_utime - usage.ru_utime) + (after.ru_stime - usage.ru_stime)
            done = per_worker * concurrency
            return {
                "cpu_ms_per_request": round(cpu * 1000 / done, 3),
                "requests_per_s": round(done / elapsed, 1),
            }

        results: dict[str, dict[str, float]] = {}
        limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
        async with httpx.AsyncClient(limits=limits) as client:

            async def via_httpx() -> None:
                async with client.stream("GET", url) as response:
                    async for _ in response.aiter_raw():
                        pass

            results["httpx"] = await drive(via_httpx)
        # As the gateway calls it (kglab_gateway.proxy): the transport, without the client layer.
        transport = httpx.AsyncHTTPTransport(limits=limits)
        timeout = httpx.Timeout(10.0, connect=2.0).as_dict()

        async def via_httpx_transport() -> None:
            request = httpx.Request("GET", url, extensions={"timeout": timeout})
            response = await transport.handle_async_request(request)
            async for _ in response.aiter_raw():
                pass
            await response.aclose()

        results["httpx_transport"] = await drive(via_httpx_transport)
        await transport.aclose()
        # The gateway's own transport: aiohttp behind httpx's interface (adr/0017).
        from kglab_gateway.proxy import AiohttpTransport

        gateway_transport = AiohttpTransport(max_connections=32)

        async def via_gateway_transport() -> None:
            request = httpx.Request("GET", url, extensions={"timeout": timeout})
            response = await gateway_transport.handle_async_request(request)
            async for _ in response.aiter_raw():
                pass
            await response.aclose()

        results["aiohttp_behind_httpx_interface"] = await drive(via_gateway_transport)
        await gateway_transport.aclose()
        async with httpcore.AsyncConnectionPool(max_connections=32) as pool:

            async def via_httpcore() -> None:
                async with pool.stream("GET", url) as response:
                    async for _ in response.aiter_stream():
                        pass

            results["httpcore"] = await drive(via_httpcore)
        connector = aiohttp.TCPConnector(limit=32, limit_per_host=32)
        async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as session:

            async def via_aiohttp() -> None:
                async with session.get(url) as response:
                    async for _ in response.content.iter_any():
                        pass

            results["aiohttp"] = await drive(via_aiohttp)
        return results
    finally:
        server.terminate()
        server.wait(timeout=10)


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


RATE = int(os.environ.get("KGLAB_BENCH_RATE", "1000"))
#: When the open loop at RATE does not finish (the machine cannot serve it), it runs again at
#: this rate, so the CPU per request at a rate that is served is still measured.
FALLBACK_RATE = int(os.environ.get("KGLAB_BENCH_FALLBACK_RATE", str(max(1, RATE // 4))))
#: Seconds an open-loop run may outlast its schedule before it counts as not finished.
LATE_S = 30


def open_loop(url: str, tokens: list[str], watch: dict[str, int]) -> dict[str, Any]:
    """The open loop at RATE, and at FALLBACK_RATE when RATE was not finished."""
    at_rate = load_at_rate(url, tokens, RATE, LOAD_SECONDS, watch)
    runs = {"load_me_at_fixed_rate": at_rate}
    if at_rate.get("finished") is False:
        print(f"  not finished; again at {FALLBACK_RATE} requests/s ...", flush=True)
        runs["load_me_at_fallback_rate"] = load_at_rate(
            url, tokens, FALLBACK_RATE, LOAD_SECONDS, watch
        )
    return runs


def load_at_rate(
    url: str, tokens: list[str], rate: int, seconds: int, watch: dict[str, int]
) -> dict[str, Any]:
    """Open-loop load from bench/loadgen (Go, standard library only): each of the
    ``len(tokens)`` users calls ``url`` on a fixed schedule (together ``rate`` requests/s), one
    keep-alive connection each, from an address of its own; latency is counted from the moment a
    request was *due*, not sent, so a server falling behind shows its queueing in full (no
    coordinated omission). Bounded: ``rate * seconds`` requests, each with a 5 s timeout."""
    if shutil.which("go") is None:
        return {"skipped": "the open-loop generator needs Go (bench/loadgen)"}
    with tempfile.TemporaryDirectory() as tmp:
        binary = Path(tmp, "loadgen")
        subprocess.run(
            ["go", "build", "-o", str(binary), "."],
            cwd=ROOT / "bench" / "loadgen",
            check=True,
            timeout=300,
        )
        token_file = Path(tmp, "tokens")
        token_file.write_text("\n".join(tokens) + "\n")
        command = [str(binary), "-url", url, "-tokens", str(token_file), "-rate", str(rate)]
        # Warm-up: a second at the same rate opens every user's connection.
        subprocess.run([*command, "-duration", "1s"], check=True, capture_output=True, timeout=60)
        before = {name: _cpu_seconds(pid) for name, pid in watch.items()}
        children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        machine_before = _machine_busy_seconds()
        try:
            completed = subprocess.run(
                [*command, "-duration", f"{seconds}s"],
                env={**os.environ, "GOMAXPROCS": "1"},
                capture_output=True,
                text=True,
                check=True,
                timeout=seconds + LATE_S,
            )
        except subprocess.TimeoutExpired:
            # Open loop: every scheduled request is sent, so a server that falls behind makes
            # the run outlast its schedule. That is the result, recorded, not a crash.
            return {
                "offered_rps": rate,
                "users": len(tokens),
                "finished": False,
                "note": f"not finished {seconds + LATE_S} s after a {seconds} s schedule began: "
                "the gateway and auth fell behind the offered rate",
                "loadavg_after": [round(value, 2) for value in os.getloadavg()],
            }
        children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
        spent = {name: _cpu_seconds(pid) - before[name] for name, pid in watch.items()}
        machine_busy = _machine_busy_seconds() - machine_before
    stats: dict[str, Any] = json.loads(completed.stdout)
    spent["load_generator"] = (children_after.ru_utime - children_before.ru_utime) + (
        children_after.ru_stime - children_before.ru_stime
    )
    answered = max(1, stats["ok"] + stats["non_2xx"])
    stats["cpu_ms_per_request"] = {k: round(v * 1000 / answered, 3) for k, v in spent.items()}
    stats["machine_cores_busy"] = round(machine_busy / stats["seconds"], 2)
    for key in ("seconds", "achieved_ok_rps"):
        stats[key] = round(stats[key], 2)
    return stats


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
    # The machine is shared: its load when the run starts goes into the JSON beside the figures.
    load_at_start = [round(value, 2) for value in os.getloadavg()]
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
                workers=GATEWAY_WORKERS,
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
                    "/api/v1/auth/login",
                    data={"username": email, "password": PASSWORD},
                    headers={"X-Forwarded-For": f"10.0.0.{i}"},
                )
                if login.status_code == 429:
                    await asyncio.sleep(float(login.headers.get("retry-after", "1")))
                    login = await client.post(
                        "/api/v1/auth/login", data={"username": email, "password": PASSWORD}
                    )
                assert login.status_code == 200, login.text
                tokens.append(login.json()["access_token"])
            jwks = (await client.get("/.well-known/jwks.json")).json()

        if ONLY_LOAD:
            return await _load_only(gateway, tokens, load_at_start)
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
        watch = {
            "gateway": SERVED["kglab_gateway.main:create_app"].pid,
            "auth": SERVED["kglab_auth.main:create_app"].pid,
        }
        load = wrk(
            gateway,
            "/api/v1/auth/me",
            tokens,
            connections=100,
            seconds=LOAD_SECONDS,
            watch=watch,
        )
        print(f"load at a fixed {RATE} requests/s from {USERS} users ...", flush=True)
        open_runs = open_loop(f"{gateway}/api/v1/auth/me", tokens, watch)
        direct_load = wrk(
            auth, "/health", tokens, connections=100, seconds=max(5, LOAD_SECONDS // 4)
        )

    print(f"upstream clients: {CLIENT_REQUESTS} requests each, 50 concurrent ...", flush=True)
    clients = await compare_clients(CLIENT_REQUESTS)
    results = {
        "loadavg_at_start": load_at_start,
        "loadavg_at_end": [round(value, 2) for value in os.getloadavg()],
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
        **open_runs,
        "load_health_direct_to_auth_reference": direct_load,
        "gateway_workers": GATEWAY_WORKERS,
        "upstream_clients": clients,
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
        (
            "load: CPU ms per request gateway / auth / wrk",
            " / ".join(f"{load['cpu_ms_per_request'][k]:.2f}" for k in ("gateway", "auth", "wrk")),
        ),
        (
            "load: cores busy gateway / auth / wrk",
            " / ".join(f"{load['cpu_cores_busy'][k]:.2f}" for k in ("gateway", "auth", "wrk")),
        ),
        (
            "load: gateway workers; load average after",
            f"{GATEWAY_WORKERS}; {load['loadavg_after']}",
        ),
        *_open_loop_rows(open_runs),
        ("reference: /health straight to auth (rps)", f"{direct_load['rps']:.1f}"),
    ]
    rows += [
        (
            f"upstream client {name}: CPU ms/request, req/s",
            f"{v['cpu_ms_per_request']:.3f}, {v['requests_per_s']:.0f}",
        )
        for name, v in clients.items()
    ]
    print()
    for label, value in rows:
        print(f"{label:56} {value:>20}")
    print(f"\nwritten to {path}")
    return 0


async def _load_only(gateway: str, tokens: list[str], load_at_start: list[float]) -> int:
    """The load on /me alone (KGLAB_BENCH_ONLY_LOAD=1), for before/after comparisons."""
    watch = {
        "gateway": SERVED["kglab_gateway.main:create_app"].pid,
        "auth": SERVED["kglab_auth.main:create_app"].pid,
    }
    # A second of warm-up (connections opened, tokens verified once), then the measured run.
    wrk(gateway, "/api/v1/auth/me", tokens, connections=100, seconds=1)
    print(f"load: {USERS} users, 100 connections, {LOAD_SECONDS} s ...", flush=True)
    _signal_served(signal.SIGUSR1)
    load = wrk(
        gateway, "/api/v1/auth/me", tokens, connections=100, seconds=LOAD_SECONDS, watch=watch
    )
    _signal_served(signal.SIGUSR2)
    print(f"load at a fixed {RATE} requests/s from {USERS} users, {LOAD_SECONDS} s ...", flush=True)
    open_runs = open_loop(f"{gateway}/api/v1/auth/me", tokens, watch)
    print(f"  {open_runs}", flush=True)
    path = save(
        "gateway_load_profiled" if PROFILE_DIR else "gateway_load",
        {
            "loadavg_at_start": load_at_start,
            "loadavg_at_end": [round(value, 2) for value in os.getloadavg()],
            "load_me_through_gateway": load,
            **open_runs,
            "gateway_workers": GATEWAY_WORKERS,
        },
    )
    cpu = load["cpu_ms_per_request"]
    print(
        f"rps {load['rps']:.1f}; p50/p95/p99 ms "
        + " / ".join(f"{load[k] / 1000:.1f}" for k in ("p50_us", "p95_us", "p99_us"))
        + f"; errors {load['errors']}, non-2xx {load['non_2xx']}; CPU ms/request gateway "
        f"{cpu['gateway']:.3f} auth {cpu['auth']:.3f} wrk {cpu['wrk']:.3f}; "
        f"machine cores busy {load['machine_cores_busy']}; "
        f"load average {load['loadavg_after']}\nwritten to {path}"
    )
    return 0


def _open_loop_rows(runs: dict[str, dict[str, Any]]) -> list[tuple[str, str]]:
    rows = []
    for run in runs.values():
        rate = run.get("offered_rps", "?")
        if run.get("finished") is False or "achieved_ok_rps" not in run:
            rows.append((f"open loop at {rate}/s", str(run.get("note") or run.get("skipped"))))
            continue
        rows += [
            (
                f"open loop at {rate}/s: ok rps; p50 / p95 / p99 (ms) [p95<100]",
                f"{run['achieved_ok_rps']}; {run['p50_ms']} / {run['p95_ms']} / {run['p99_ms']}",
            ),
            (f"open loop at {rate}/s: errors / non-2xx", f"{run['errors']} / {run['non_2xx']}"),
        ]
    return rows


def _signal_served(signum: int) -> None:
    """Start or stop the profilers (KGLAB_BENCH_PROFILE), and let them write their files."""
    if not PROFILE_DIR:
        return
    for process in SERVED.values():
        process.send_signal(signum)
    if signum == signal.SIGUSR2:
        for name in ("gateway", "auth"):
            path = Path(PROFILE_DIR, f"{name}.prof")
            deadline = time.monotonic() + 30
            while not path.exists() and time.monotonic() < deadline:
                time.sleep(0.2)
            print(f"profile written to {path}")


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
