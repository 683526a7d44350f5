"""Serve the five endpoints in each framework, check they behave alike, read their OpenAPI
documents, count their code, and load them side by side with the same open-loop generator the
gateway benchmark uses (``bench/loadgen``: 50 users, a fixed rate, latency from the moment a
request was due)."""

from __future__ import annotations

import ast
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from research.api import common

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
PATHS = ("/health", "/auth/login", "/upload", "/documents", "/search")


@dataclass(frozen=True)
class Framework:
    name: str
    app_file: str
    server: str
    command: tuple[str, ...]
    async_support: str
    openapi_steps: tuple[str, ...]


def _gunicorn(target: str) -> tuple[str, ...]:
    # One process with 8 threads: the same single process uvicorn gets.
    return (
        "gunicorn",
        "-w",
        "1",
        "-k",
        "gthread",
        "--threads",
        "8",
        "-b",
        "127.0.0.1:{port}",
        "--access-logfile",
        "-",
        "--log-level",
        "warning",
        target,
    )


FRAMEWORKS = (
    Framework(
        "FastAPI",
        "fastapi_app.py",
        "uvicorn (1 process, event loop)",
        (
            "uvicorn",
            "research.api.fastapi_app:app",
            "--host",
            "127.0.0.1",
            "--port",
            "{port}",
            "--log-level",
            "warning",
            "--no-access-log",
        ),
        "native: async handlers on one event loop, WebSockets built in",
        (),
    ),
    Framework(
        "Flask",
        "flask_app.py",
        "gunicorn (1 process, 8 threads)",
        _gunicorn("research.api.flask_app:app"),
        "partial: `async def` views run each in a thread of their own (asgiref); WSGI, "
        "no WebSockets without an extension",
        (
            "install flask-smorest (marshmallow, apispec)",
            "set API_TITLE, API_VERSION and OPENAPI_VERSION",
            "create Api(app) and register a Blueprint",
            "write a marshmallow schema for every request and answer",
            "decorate every view with @arguments and @response",
        ),
    ),
    Framework(
        "Django REST Framework",
        "drf_app.py",
        "gunicorn (1 process, 8 threads)",
        _gunicorn("research.api.drf_app:application"),
        "none in DRF: APIView is synchronous (Django's own async views do not carry DRF); "
        "WebSockets need Channels",
        (
            "install drf-spectacular",
            "add it to INSTALLED_APPS",
            "set DEFAULT_SCHEMA_CLASS",
            "route a schema view",
            "write serializers and @extend_schema on every APIView method",
        ),
    ),
)


def code_lines(path: Path) -> int:
    """Lines of code: not blank, not a comment, not a docstring."""
    source = path.read_text()
    docstrings: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            value = body[0].value
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                docstrings.update(range(body[0].lineno, (body[0].end_lineno or 0) + 1))
    return sum(
        1
        for number, line in enumerate(source.splitlines(), 1)
        if line.strip() and not line.strip().startswith("#") and number not in docstrings
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _cpu_seconds(pid: int) -> float:
    ticks = os.sysconf("SC_CLK_TCK")
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return 0.0
    own = (int(fields[11]) + int(fields[12])) / ticks
    return own + sum(_cpu_seconds(int(child)) for child in children)


class Served:
    """One framework's app in a server process of its own, on a free port."""

    def __init__(self, framework: Framework) -> None:
        self.framework = framework
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.NamedTemporaryFile(prefix="study-", suffix=".log", delete=False)
        binary = Path(sys.executable).parent / framework.command[0]
        command = [str(binary), *(part.format(port=self.port) for part in framework.command[1:])]
        self.process = subprocess.Popen(
            command,
            cwd=REPO,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{framework.name} exited: {Path(self.log.name).read_text()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"{framework.name} did not answer /health within 60 s")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        Path(self.log.name).unlink(missing_ok=True)


def behaviour(url: str) -> dict[str, Any]:
    """The same calls on each app; every answer recorded, for the side-by-side check."""
    with httpx.Client(base_url=url, timeout=10) as client:
        bad_login = client.post("/auth/login", json={"email": "user1@example.com", "password": "x"})
        token = client.post(
            "/auth/login", json={"email": "user1@example.com", "password": "password-1"}
        ).json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        blob = os.urandom(4096)
        uploaded = client.post("/upload", files={"file": ("a.bin", blob)}, headers=auth)
        too_big = client.post(
            "/upload", files={"file": ("b.bin", b"x" * (common.MAX_UPLOAD + 1))}, headers=auth
        )
        first = client.get("/documents", params={"limit": 20}, headers=auth).json()
        second = client.get(
            "/documents", params={"limit": 20, "cursor": first["next_cursor"]}, headers=auth
        ).json()
        found = client.get("/search", params={"q": "graph note"}, headers=auth).json()
        return {
            "wrong_password_status": bad_login.status_code,
            "unauthenticated_status": client.get("/documents").status_code,
            "bad_limit_status": client.get(
                "/documents", params={"limit": 0}, headers=auth
            ).status_code,
            "upload_checksum_matches": uploaded.json().get("sha256")
            == hashlib.sha256(blob).hexdigest(),
            "too_big_status": too_big.status_code,
            "pages_do_not_overlap": not {d["id"] for d in first["items"]}
            & {d["id"] for d in second["items"]},
            "page_sizes": [len(first["items"]), len(second["items"])],
            "search_hits": len(found["items"]),
            "search_owner_only": all(h["owner"] == "user1@example.com" for h in found["items"]),
        }


def openapi_quality(url: str) -> dict[str, Any]:
    """What the served OpenAPI document says about the five endpoints."""
    document = httpx.get(f"{url}/openapi.json", timeout=10).json()
    paths = document.get("paths", {})
    operations = [
        (path, method, op)
        for path, item in paths.items()
        if path.rstrip("/") in PATHS
        for method, op in item.items()
        if method in ("get", "post")
    ]

    def typed_answer(op: dict[str, Any]) -> bool:
        ok = op.get("responses", {}).get("200", {})
        return any("schema" in media for media in ok.get("content", {}).values())

    def typed_input(path: str, op: dict[str, Any]) -> bool:
        if path in ("/auth/login", "/upload"):
            return bool(op.get("requestBody", {}).get("content"))
        if path in ("/documents", "/search"):
            return bool(op.get("parameters"))
        return True

    return {
        "openapi": document.get("openapi"),
        "documented_paths": sorted(p for p in paths if p.rstrip("/") in PATHS),
        "operations": len(operations),
        "typed_answers": sum(typed_answer(op) for _, _, op in operations),
        "typed_inputs": sum(typed_input(p.rstrip("/"), op) for p, _, op in operations),
        "error_answers_documented": sum(
            any(code.startswith(("4", "default")) for code in op.get("responses", {}))
            for _, _, op in operations
        ),
    }


def _loadgen(binary: Path, url: str, tokens: Path, rate: int, seconds: int) -> dict[str, Any]:
    command = [str(binary), "-url", url, "-tokens", str(tokens), "-rate", str(rate)]
    subprocess.run([*command, "-duration", "1s"], check=True, capture_output=True, timeout=60)
    done = subprocess.run(
        [*command, "-duration", f"{seconds}s"],
        env={**os.environ, "GOMAXPROCS": "1"},
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 60,
    )
    stats: dict[str, Any] = json.loads(done.stdout)
    return stats


def run(rate: int = 200, seconds: int = 10, users: int = 50) -> dict[str, Any]:
    """Everything above, for every framework, in one run."""
    go = shutil.which("go")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        binary = Path(tmp, "loadgen")
        if go:
            subprocess.run(
                [go, "build", "-o", str(binary), "."],
                cwd=REPO / "bench" / "loadgen",
                check=True,
                timeout=300,
            )
        tokens = Path(tmp, "tokens")
        tokens.write_text(
            "\n".join(
                str(common.issue_token(f"user{n}@example.com", f"password-{n}"))
                for n in range(users)
            )
            + "\n"
        )
        for framework in FRAMEWORKS:
            served = Served(framework)
            try:
                entry: dict[str, Any] = {
                    "framework": framework.name,
                    "server": framework.server,
                    "lines_of_code": code_lines(HERE / framework.app_file),
                    "openapi_manual_steps": len(framework.openapi_steps),
                    "openapi_steps": list(framework.openapi_steps),
                    "async_support": framework.async_support,
                    "behaviour": behaviour(served.url),
                    "openapi": openapi_quality(served.url),
                }
                if go:
                    for name, path in (
                        ("list", "/documents?limit=20"),
                        ("search", "/search?q=graph+note"),
                    ):
                        cpu_before = _cpu_seconds(served.process.pid)
                        stats = _loadgen(binary, served.url + path, tokens, rate, seconds)
                        spent = _cpu_seconds(served.process.pid) - cpu_before
                        answered = max(1, stats["ok"] + stats["non_2xx"])
                        stats["server_cpu_ms_per_request"] = round(spent * 1000 / answered, 3)
                        entry[f"load_{name}"] = stats
                results.append(entry)
            finally:
                served.stop()
    return {
        "users": users,
        "rate_per_s": rate,
        "seconds": seconds,
        "loadgen": "bench/loadgen (Go, open loop)" if go else "skipped: no Go",
        "results": results,
    }
