"""The gateway's upstream client (adr/0017): CPU per proxied request, latency added, replicas.

Side by side in one run, every gateway a uvicorn process started as the image starts it, all in
front of the same minimal upstream (a Python process answering JWKS and a small JSON body, so
the gateway, not the service, is the work measured):

- ``chosen``: this tree (aiohttp behind httpx's transport interface, FastAPI routing).
- ``httpx``: this tree with httpx's own transport (``httpx.AsyncHTTPTransport``: httpcore)
  in place of the aiohttp one, the only change.
- ``own_client_fastpath``: the tree before adr/0017 (``BEFORE``, from git): the hand-written
  HTTP/1.1 client and the ProxyFastPath ASGI layer.
- ``own_client``: the same without the fast path (its one ``user_middleware`` line removed).
- ``aiohttp_before``: the same without the fast path, on aiohttp (its ``upstream_client``
  setting).

For each: latency through the gateway at a fixed, moderate rate (open loop, bench/loadgen),
minus the same load straight to the upstream, and the gateway's CPU seconds per request (from
/proc) at that rate and in a closed loop at saturation. Then two replicas of the httpx gateway
(``chosen``) on two ports, the load generator sharing its users between them round robin,
against one;
and the clients alone (httpx, httpcore, aiohttp: bench_gateway.compare_clients).

A request is an authenticated ``GET /api/v1/documents/{id}`` (token verified from the cache,
identity signed, forwarded, answer relayed). Rate limits are off: another change is replacing
the limiter, and its cost is not the client's. Bounded: every load has a duration and a request
cap, every process a timeout. Knobs: KGLAB_BENCH_LOAD_S (seconds per load, default 8),
KGLAB_BENCH_ROUNDS (interleaved rounds, default 2), KGLAB_BENCH_RATE (open-loop rate, 200).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from contextlib import ExitStack, contextmanager
from io import BytesIO
from pathlib import Path
from typing import Any

import httpx
from bench_gateway import compare_clients
from joserfc import jwt
from joserfc.jwk import OKPKey
from machine import save

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.isolation import free_port  # noqa: E402

#: The last commit with the own client, aiohttp and the fast paths.
BEFORE = os.environ.get("KGLAB_BENCH_BEFORE", "e4319dd")
LOAD_S = int(os.environ.get("KGLAB_BENCH_LOAD_S", "8"))
ROUNDS = int(os.environ.get("KGLAB_BENCH_ROUNDS", "2"))
RATE = int(os.environ.get("KGLAB_BENCH_RATE", "200"))
USERS = 20
CLOSED_USERS = 32
MAX_REQUESTS = 200_000
CLIENT_CALLS = 3200
PATH = "/api/v1/documents/0b5f6a52-4f7e-4a0e-9c52-3f1d2a7c9e11"

UPSTREAM = r"""
import asyncio, json, sys
import uvloop
JWKS = open(sys.argv[2], "rb").read()
BODY = json.dumps({"id": "0b5f6a52", "title": "A document", "owner": "user-1",
                   "chunks": 12, "status": "stored", "tags": ["bench"]}).encode()
def answer(body):
    return (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
            % len(body)) + body
KEYS, DOC = answer(JWKS), answer(BODY)
class Answer(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport, self.buffer = transport, b""
    def data_received(self, data):
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
            self.transport.write(KEYS if b"jwks" in head.split(b"\r\n", 1)[0] else DOC)
async def main():
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Answer, "127.0.0.1", int(sys.argv[1]))
    print("ready", flush=True)
    await server.serve_forever()
uvloop.run(main())
"""


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def process(command: list[str], env: dict[str, str], health: str | None) -> Any:
    log = tempfile.NamedTemporaryFile("w+", suffix=".log", delete=False)
    proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        deadline = time.monotonic() + 60
        while health is not None:
            try:
                if httpx.get(health, timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"{command} did not start:\n{log.read()[-3000:]}")
            time.sleep(0.2)
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def before_tree(tmp: Path) -> tuple[Path, Path]:
    """The gateway and shared packages as of BEFORE, and a copy without the fast path."""
    archive = subprocess.run(
        ["git", "archive", BEFORE, "gateway", "shared"],
        cwd=ROOT,
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    trees = []
    for name in ("with_fastpath", "without_fastpath"):
        tree = tmp / name
        with tarfile.open(fileobj=BytesIO(archive)) as tar:
            tar.extractall(tree, filter="data")
        trees.append(tree)
    main = trees[1] / "gateway/kglab_gateway/main.py"
    text = main.read_text()
    line = "    app.user_middleware.append(Middleware(ProxyFastPath))\n"
    assert line in text, "the BEFORE tree has no fast path line to remove"
    main.write_text(text.replace(line, ""))
    for tree in trees:
        imported_from(tree, "kglab_gateway.upstream_http")
    return trees[0], trees[1]


def imported_from(tree: Path, module: str) -> None:
    """Check that ``tree`` is imported instead of the installed (editable) packages."""
    found = subprocess.run(
        [sys.executable, "-c", f"import {module} as m; print(m.__file__)"],
        env={**os.environ, "PYTHONPATH": old_path(tree)},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert found.startswith(str(tree)), found


def httpx_tree(tmp: Path) -> Path:
    """This tree's gateway and shared packages with httpx's own transport in the pool."""
    tree = tmp / "httpx_transport"
    for package in ("gateway", "shared"):
        shutil.copytree(ROOT / package, tree / package, ignore=shutil.ignore_patterns("*.pyc"))
    proxy = tree / "gateway/kglab_gateway/proxy.py"
    text = proxy.read_text()
    chosen = "AiohttpTransport(max_connections=max_connections)"
    assert chosen in text, "this tree's pool no longer builds AiohttpTransport"
    proxy.write_text(
        text.replace(
            chosen,
            "httpx.AsyncHTTPTransport(limits=httpx.Limits(max_connections=max_connections, "
            "max_keepalive_connections=max_connections, keepalive_expiry=_KEEPALIVE_EXPIRY_S))",
        )
    )
    imported_from(tree, "kglab_gateway.proxy")
    return tree


def old_path(tree: Path) -> str:
    return f"{tree / 'gateway'}{os.pathsep}{tree / 'shared'}"


def gateway_command(port: int) -> list[str]:
    # As the image runs it (Dockerfile CMD), on loopback.
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "kglab_gateway.main:create_app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-server-header",
        "--no-proxy-headers",
        "--http",
        "kglab_shared.serving:GuardedHttpProtocol",
        "--limit-concurrency",
        "2048",
        "--log-level",
        "warning",
        "--no-access-log",
    ]


def loadgen(binary: Path, tokens: Path, urls: list[str], *, closed: bool) -> dict[str, Any]:
    command = [str(binary), "-url", ",".join(urls), "-tokens", str(tokens)]
    command += ["-duration", f"{LOAD_S}s"]
    command += ["-closed", "-max", str(MAX_REQUESTS)] if closed else ["-rate", str(RATE)]
    completed = subprocess.run(
        command,
        env={**os.environ, "GOMAXPROCS": "1"},
        capture_output=True,
        text=True,
        check=True,
        timeout=LOAD_S + 60,
    )
    result: dict[str, Any] = json.loads(completed.stdout)
    return result


def measured(
    binary: Path, tokens: Path, urls: list[str], pids: list[int], *, closed: bool
) -> dict[str, Any]:
    before = sum(cpu_seconds(pid) for pid in pids)
    load_before = os.getloadavg()
    stats = loadgen(binary, tokens, urls, closed=closed)
    spent = sum(cpu_seconds(pid) for pid in pids) - before
    answered = max(1, stats["ok"] + stats["non_2xx"])
    return {
        "ok_rps": round(stats["achieved_ok_rps"], 1),
        "p50_ms": stats["p50_ms"],
        "p95_ms": stats["p95_ms"],
        "p99_ms": stats["p99_ms"],
        "errors": stats["errors"],
        "non_2xx": stats["non_2xx"],
        "requests": answered,
        "gateway_cpu_ms_per_request": round(spent * 1000 / answered, 3) if pids else None,
        "gateway_cores_busy": round(spent / stats["seconds"], 2) if pids else None,
        "loadavg_before_after": [round(v, 2) for v in (*load_before, *os.getloadavg())],
    }


def token_file(tmp: Path, key: OKPKey) -> Path:
    now = int(time.time())
    lines = []
    for i in range(max(USERS, CLOSED_USERS)):
        claims = {
            "iss": "kglab-auth",
            "aud": "kglab",
            "sub": f"user-{i}",
            "role": "user",
            "scope": "*",
            "typ": "access",
            "iat": now,
            "exp": now + 3600,
        }
        header = {"alg": "Ed25519", "kid": "bench"}
        lines.append(jwt.encode(header, claims, key, algorithms=["Ed25519"]))
    path = tmp / "tokens"
    path.write_text("\n".join(lines) + "\n")
    return path


def main() -> int:
    if shutil.which("go") is None:
        print("bench_gateway_upstream needs Go for bench/loadgen.")
        return 2
    with tempfile.TemporaryDirectory() as name, ExitStack() as stack:
        tmp = Path(name)
        binary = tmp / "loadgen"
        subprocess.run(
            ["go", "build", "-o", str(binary), "."],
            cwd=ROOT / "bench/loadgen",
            check=True,
            timeout=300,
        )
        key = OKPKey.generate_key("Ed25519", parameters={"kid": "bench"})
        (tmp / "jwks.json").write_text(json.dumps({"keys": [key.as_dict(private=False)]}))
        tokens = token_file(tmp, key)
        closed_tokens = tmp / "closed_tokens"
        closed_tokens.write_text("\n".join(tokens.read_text().split()[:CLOSED_USERS]) + "\n")
        few_tokens = tmp / "few_tokens"
        few_tokens.write_text("\n".join(tokens.read_text().split()[:USERS]) + "\n")

        upstream_port = free_port()
        upstream = f"http://127.0.0.1:{upstream_port}"
        stack.enter_context(
            process(
                [sys.executable, "-c", UPSTREAM, str(upstream_port), str(tmp / "jwks.json")],
                dict(os.environ),
                f"{upstream}/health",
            )
        )
        env = {
            **os.environ,
            "KGLAB_ENVIRONMENT": "test",
            "KGLAB_STORES": "embedded",
            "KGLAB_LOG_LEVEL": "WARNING",
            "KGLAB_INTERNAL_TOKEN_SECRET": "bench-internal-secret-0123456789",
            "KGLAB_GATEWAY_RATE_LIMIT_ENABLED": "false",
            **{
                f"KGLAB_GATEWAY_{service.upper()}_URL": upstream
                for service in ("auth", "ingestion", "graph", "document", "vector")
            },
        }
        with_fastpath, without_fastpath = before_tree(tmp)

        variants: dict[str, dict[str, str]] = {
            "chosen": {},
            "httpx": {"PYTHONPATH": old_path(httpx_tree(tmp))},
            "own_client_fastpath": {"PYTHONPATH": old_path(with_fastpath)},
            "own_client": {"PYTHONPATH": old_path(without_fastpath)},
            "aiohttp_before": {
                "PYTHONPATH": old_path(without_fastpath),
                "KGLAB_GATEWAY_UPSTREAM_CLIENT": "aiohttp",
            },
        }
        gateways: dict[str, tuple[str, int]] = {}
        for variant, extra in variants.items():
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            proc = stack.enter_context(
                process(
                    gateway_command(port),
                    {**env, **extra, "KGLAB_PORT": str(port)},
                    f"{url}/health",
                )
            )
            gateways[variant] = (url + PATH, proc.pid)
            check = httpx.get(f"{url}{PATH}", headers={"Authorization": f"Bearer {_first(tokens)}"})
            assert check.status_code == 200, (variant, check.status_code, check.text)
        print(f"gateways up: {', '.join(gateways)}; {ROUNDS} rounds of {LOAD_S} s", flush=True)

        rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in [*variants, "direct"]}
        saturation: dict[str, list[dict[str, Any]]] = {name: [] for name in variants}
        for number in range(ROUNDS):
            rounds["direct"].append(
                measured(binary, few_tokens, [upstream + PATH], [], closed=False)
            )
            for variant, (url, pid) in gateways.items():
                # A second of warm-up opens every connection and caches every token.
                loadgen_warm(binary, few_tokens, url)
                rounds[variant].append(measured(binary, few_tokens, [url], [pid], closed=False))
                saturation[variant].append(
                    measured(binary, closed_tokens, [url], [pid], closed=True)
                )
                print(
                    f"round {number + 1} {variant}: at {RATE}/s p50 "
                    f"{rounds[variant][-1]['p50_ms']} ms, CPU "
                    f"{rounds[variant][-1]['gateway_cpu_ms_per_request']} ms/req; saturated "
                    f"{saturation[variant][-1]['ok_rps']} rps, CPU "
                    f"{saturation[variant][-1]['gateway_cpu_ms_per_request']} ms/req",
                    flush=True,
                )

        # Two replicas of the chosen gateway (the one above and one more), against one.
        port = free_port()
        second = stack.enter_context(
            process(
                gateway_command(port),
                {**env, "KGLAB_PORT": str(port)},
                f"http://127.0.0.1:{port}/health",
            )
        )
        first_url, first_pid = gateways["chosen"]
        second_url = f"http://127.0.0.1:{port}{PATH}"
        loadgen_warm(binary, closed_tokens, second_url)
        replicas: dict[str, list[dict[str, Any]]] = {"one": [], "two": []}
        for _ in range(ROUNDS):
            replicas["one"].append(
                measured(binary, closed_tokens, [first_url], [first_pid], closed=True)
            )
            replicas["two"].append(
                measured(
                    binary,
                    closed_tokens,
                    [first_url, second_url],
                    [first_pid, second.pid],
                    closed=True,
                )
            )

    # The clients alone, outside the gateway: CPU per call of this process only.
    clients = asyncio.run(compare_clients(CLIENT_CALLS, concurrency=CLOSED_USERS))
    results = summarise(rounds, saturation, replicas)
    results["summary"]["client_alone_cpu_ms_per_call"] = {
        name: figures["cpu_ms_per_request"] for name, figures in clients.items()
    }
    path = save("gateway_upstream", results)
    print(json.dumps(results["summary"], indent=2))
    print(f"written to {path}")
    return 0


def _first(tokens: Path) -> str:
    return tokens.read_text().split()[0]


def loadgen_warm(binary: Path, tokens: Path, url: str) -> None:
    subprocess.run(
        [str(binary), "-url", url, "-tokens", str(tokens), "-rate", "100", "-duration", "1s"],
        capture_output=True,
        check=True,
        timeout=60,
    )


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return round(statistics.median(run[key] for run in runs), 3)


def summarise(
    rounds: dict[str, list[dict[str, Any]]],
    saturation: dict[str, list[dict[str, Any]]],
    replicas: dict[str, list[dict[str, Any]]],
) -> dict[str, Any]:
    direct = {q: _median(rounds["direct"], q) for q in ("p50_ms", "p95_ms")}
    summary: dict[str, Any] = {"direct_to_upstream": direct, "variants": {}}
    for variant, runs in saturation.items():
        at_rate = rounds[variant]
        summary["variants"][variant] = {
            "added_p50_ms": round(_median(at_rate, "p50_ms") - direct["p50_ms"], 3),
            "added_p95_ms": round(_median(at_rate, "p95_ms") - direct["p95_ms"], 3),
            "cpu_ms_per_request_at_rate": _median(at_rate, "gateway_cpu_ms_per_request"),
            "cpu_ms_per_request_saturated": _median(runs, "gateway_cpu_ms_per_request"),
            "saturated_ok_rps": _median(runs, "ok_rps"),
            "saturated_gateway_cores_busy": _median(runs, "gateway_cores_busy"),
        }
    base = summary["variants"]["chosen"]
    for variant in summary["variants"].values():
        variant["cpu_ratio_to_chosen"] = round(
            variant["cpu_ms_per_request_saturated"] / base["cpu_ms_per_request_saturated"], 2
        )
    one, two = replicas["one"], replicas["two"]
    summary["replicas"] = {
        "one_ok_rps": _median(one, "ok_rps"),
        "two_ok_rps": _median(two, "ok_rps"),
        "rps_ratio_two_to_one": round(_median(two, "ok_rps") / _median(one, "ok_rps"), 2),
        "one_cpu_ms_per_request": _median(one, "gateway_cpu_ms_per_request"),
        "two_cpu_ms_per_request": _median(two, "gateway_cpu_ms_per_request"),
        "one_gateway_cores_busy": _median(one, "gateway_cores_busy"),
        "two_gateway_cores_busy": _median(two, "gateway_cores_busy"),
    }
    return {
        "note": (
            "2 shared cores (8 engineers' work on them): figures are inflated and the replica "
            "ratio is bounded by the cores left; see loadavg per run."
        ),
        "load_seconds": LOAD_S,
        "rounds": ROUNDS,
        "open_loop_rate": RATE,
        "users_open_loop": USERS,
        "users_closed_loop": CLOSED_USERS,
        "before_commit": BEFORE,
        "summary": summary,
        "runs": {"at_rate": rounds, "saturated": saturation, "replicas": replicas},
    }


if __name__ == "__main__":
    sys.exit(main())
