"""The deployed topology (``make stack``) measured from outside, through the gateway's port.

1. Start to ``/ready`` of every service: a first start (new databases, migrations) and a restart.
2. A 10-page PDF from upload to searchable: time until the job says ``completed`` and until search
   first finds the document (the two are the same once ``completed`` means searchable), p50/p95.
3. Small files with every consumer running: jobs per minute from the first upload until every
   document is searchable.

Needs the servers of ``make servers`` (``KGLAB_*_URL``). Each part is bounded in time and count.
Writes ``bench/results/stack.json``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
from machine import save  # noqa: E402

RUN = REPO / "deploy" / "stack" / "run.py"
PDF = (REPO / "tests" / "data" / "ten-pages.pdf").read_bytes()
PASSWORD = "a long enough passphrase"
PORT = int(os.environ.get("KGLAB_BENCH_STACK_PORT", "18000"))
PDF_RUNS = int(os.environ.get("KGLAB_BENCH_PDF_RUNS", "15"))
SMALL_FILES = int(os.environ.get("KGLAB_BENCH_SMALL_FILES", "1000"))
UPLOADERS = 8
PART_TIMEOUT_S = 900.0
LIMITS = (
    '[{"prefix": "/api/v1/auth/register", "limit": 1000, "window_s": 60, "per": "ip"},'
    ' {"prefix": "/api/", "limit": 100000, "window_s": 60, "per": "user"}]'
)


def start(name: str) -> tuple[subprocess.Popen[bytes], float]:
    env = {
        **os.environ,
        "KGLAB_ENVIRONMENT": "development",
        "KGLAB_LOG_LEVEL": "WARNING",
        "KGLAB_GATEWAY_RATE_LIMITS": LIMITS,
    }
    ready = REPO / ".kglab" / "stack" / name / "ready.json"
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, str(RUN), "up", "--name", name, "--port", str(PORT), "--quiet"],
        env=env,
        cwd=REPO,
    )
    while not ready.exists():
        if process.poll() is not None or time.monotonic() - started > 180:
            raise RuntimeError(f"the stack did not start (logs in {ready.parent / 'logs'})")
        time.sleep(0.05)
    return process, time.monotonic() - started


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGINT)
    process.wait(timeout=60)


async def sign_up(client: httpx.AsyncClient) -> dict[str, str]:
    email = f"bench-{uuid.uuid4().hex[:12]}@example.com"
    await client.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD})
    login = await client.post("/api/v1/auth/login", data={"username": email, "password": PASSWORD})
    login.raise_for_status()
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


async def searchable(client: httpx.AsyncClient, auth: dict[str, str], job_id: str) -> str:
    """Poll until the job is completed and search finds its document; the document id."""
    deadline = time.monotonic() + 120
    document_id = None
    while time.monotonic() < deadline:
        if document_id is None:
            job = (await client.get(f"/api/v1/jobs/{job_id}", headers=auth)).json()
            if job["status"] == "failed":
                raise RuntimeError(f"job failed: {job['error']}")
            if job["status"] == "completed":
                document_id = job["document_id"]
        if document_id is not None:
            found = await client.get(
                "/api/v1/search", params={"q": "page", "limit": 50}, headers=auth
            )
            if any(hit["document_id"] == document_id for hit in found.json()["results"]):
                return str(document_id)
        await asyncio.sleep(0.02)
    raise TimeoutError(f"job {job_id} not searchable within 120 s")


async def pdf_to_searchable(client: httpx.AsyncClient) -> dict[str, Any]:
    auth = await sign_up(client)
    times: list[float] = []
    for _ in range(PDF_RUNS):
        content = PDF + f"\n% {uuid.uuid4().hex}\n".encode()
        started = time.monotonic()
        upload = await client.post(
            "/api/v1/files", files={"file": ("ten-pages.pdf", content)}, headers=auth
        )
        upload.raise_for_status()
        await searchable(client, auth, upload.json()["job_id"])
        times.append(time.monotonic() - started)
    ordered = sorted(times)
    return {
        "runs": len(times),
        "p50_s": round(statistics.median(times), 3),
        "p95_s": round(ordered[max(0, round(0.95 * len(ordered)) - 1)], 3),
        "max_s": round(ordered[-1], 3),
    }


async def small_files(client: httpx.AsyncClient) -> dict[str, Any]:
    users = [await sign_up(client) for _ in range(4)]
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(SMALL_FILES):
        queue.put_nowait(n)
    jobs: list[tuple[dict[str, str], str]] = []
    started = time.monotonic()

    async def uploader() -> None:
        while not queue.empty():
            n = queue.get_nowait()
            auth = users[n % len(users)]
            text = f"Note {n}: Grace Hopper met Alan Turing in Boston. Tag {uuid.uuid4().hex}.\n"
            response = await client.post(
                "/api/v1/files", files={"file": (f"note-{n}.txt", text.encode())}, headers=auth
            )
            response.raise_for_status()
            jobs.append((auth, response.json()["job_id"]))

    await asyncio.gather(*(uploader() for _ in range(UPLOADERS)))
    uploaded_s = time.monotonic() - started
    pending = list(jobs)
    failed = 0
    deadline = started + PART_TIMEOUT_S
    while pending and time.monotonic() < deadline:
        still = []
        for auth, job_id in pending:
            job = (await client.get(f"/api/v1/jobs/{job_id}", headers=auth)).json()
            if job["status"] == "failed":
                failed += 1
            elif job["status"] != "completed":
                still.append((auth, job_id))
        pending = still
        if pending:
            await asyncio.sleep(0.5)
    elapsed = time.monotonic() - started
    done = len(jobs) - len(pending) - failed
    return {
        "files": SMALL_FILES,
        "uploaders": UPLOADERS,
        "upload_s": round(uploaded_s, 1),
        "completed": done,
        "failed": failed,
        "unfinished": len(pending),
        "seconds_until_all_completed": round(elapsed, 1),
        "jobs_per_min": round(done / elapsed * 60, 1),
    }


def main() -> int:
    if not os.environ.get("KGLAB_RABBITMQ_URL"):
        print("bench_stack: needs make servers (KGLAB_*_URL); skipped")
        return 0
    name = f"bench_{uuid.uuid4().hex[:6]}"
    results: dict[str, Any] = {"load_avg_at_start": os.getloadavg()}
    try:
        process, first = start(name)
        stop(process)
        process, again = start(name)
        results["start_to_ready_s"] = {"first": round(first, 2), "restart": round(again, 2)}
        print(f"start to /ready: first {first:.1f} s, restart {again:.1f} s (target < 30 s)")
        try:

            async def measure() -> None:
                url = f"http://127.0.0.1:{PORT}"
                async with httpx.AsyncClient(base_url=url, timeout=60) as client:
                    results["pdf_10_pages_to_searchable"] = await pdf_to_searchable(client)
                    print(f"10-page PDF to searchable: {results['pdf_10_pages_to_searchable']}")
                    results["small_files"] = await small_files(client)
                    print(f"small files: {results['small_files']}")

            asyncio.run(measure())
        finally:
            stop(process)
    finally:
        subprocess.run([sys.executable, str(RUN), "purge", "--name", name], cwd=REPO, check=False)
    path = save("stack", results)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
