"""A team's whole folder in ``make dev`` or ``make stack``: 1,000 mixed documents (~50 MB) through
the public API.

The folder is generated (reproducible from a seed, with the test corpus's writers: fpdf2 for
PDFs, python-docx for DOCX): PDFs of 1 to 8 pages, a quarter of them with full-page scans (the
bulk of the bytes, as in real folders), DOCX reports (some with pictures), Markdown notes, HTML
articles and plain text, 300 to 1,500 words each. Every document carries a unique marker word,
so a sample can be checked to be found by search at the end.

``make dev`` (``deploy/dev/run.py``, one process, embedded stores: SQLite, Qdrant Edge, the ONNX
model) starts on a free port with a fresh data folder; with ``--mode stack``, ``make stack``
(``deploy/stack/run.py``: a process per service on the real servers of ``deploy/local/servers.sh
env``, its own databases and virtual host under ``--name``, the vector process on Qdrant Edge)
starts instead, and is stopped and its data purged at the end. One user uploads the folder with 4
concurrent uploads, while a searcher sends a distinct hybrid search (no cache hit) every half
second. Reported: time until every job is ``completed`` (which means searchable, adr/0010), jobs
failed, search latency p50/p95 while ingestion runs, peak resident memory (VmHWM) of the make dev
process or of each stack process, and of this driver, the machine's load average through the run
(other engineers share its 2 cores: timings are inflated accordingly), and how many of a sample of
markers search finds. Bounded by ``--time-limit`` (default 15 minutes, the target): what is
unfinished then is reported.

    .venv/bin/python bench/bench_folder.py [--documents 1000] [--time-limit 1200] [--smoke]
    eval "$(bash deploy/local/servers.sh env)" && \
        .venv/bin/python bench/bench_folder.py --mode stack [--name folder_bench]

Writes ``bench/results/folder.json`` (make dev) or ``bench/results/folder_stack.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO))
from machine import save  # noqa: E402

from tests.data.generate import prose  # noqa: E402

PASSWORD = "a long enough passphrase"
LIMITS = (
    '[{"prefix": "/api/v1/auth/register", "limit": 1000, "window_s": 60, "per": "ip"},'
    ' {"prefix": "/api/", "limit": 1000000, "window_s": 60, "per": "user"}]'
)
#: Share of the folder per kind (the rest is plain text).
KINDS = (("pdf", 0.25), ("docx", 0.2), ("md", 0.2), ("html", 0.15), ("txt", 0.2))
UPLOADERS = 4
RENEW_EVERY_S = 600.0
SEARCH_EVERY_S = 0.5


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# -- the folder ----------------------------------------------------------------------------


def paragraphs(rng: random.Random, words: int, marker: str) -> list[str]:
    out = [f"Reference {marker}. " + prose(rng, 3)]
    count = len(out[0].split())
    while count < words:
        paragraph = prose(rng, rng.randint(3, 7))
        out.append(paragraph)
        count += len(paragraph.split())
    return out


def noise_png(rng: random.Random, width: int, height: int) -> bytes:
    from PIL import Image

    image = Image.frombytes("RGB", (width, height), rng.randbytes(width * height * 3))
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=1)
    return out.getvalue()


def pdf_of(rng: random.Random, title: str, body: list[str], scans: int) -> bytes:
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    pdf.set_title(title)
    pages = max(1, min(8, len(body) // 3))
    per_page = max(1, len(body) // pages)
    for page in range(pages):
        pdf.add_page()
        pdf.set_font("Helvetica", "B", 15)
        pdf.multi_cell(0, 9, f"{title}: part {page + 1}", new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", "", 11)
        for paragraph in body[page * per_page : (page + 1) * per_page]:
            pdf.multi_cell(0, 6, paragraph, new_x="LMARGIN", new_y="NEXT")
            pdf.ln(3)
    for _ in range(scans):
        pdf.add_page()
        pdf.image(io.BytesIO(noise_png(rng, 210, 210)), x=20, y=20, w=170)
    return bytes(pdf.output())


def docx_of(rng: random.Random, title: str, body: list[str], pictures: int) -> bytes:
    import docx
    from docx.shared import Inches

    document = docx.Document()
    document.core_properties.title = title
    document.add_heading(title, level=0)
    for i, paragraph in enumerate(body):
        if i % 4 == 0:
            document.add_heading(f"Section {i // 4 + 1}", level=1)
        document.add_paragraph(paragraph)
    for _ in range(pictures):
        document.add_picture(io.BytesIO(noise_png(rng, 150, 150)), width=Inches(3))
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def folder(documents: int, seed: int = 19) -> list[tuple[str, bytes, str]]:
    """(file name, content, marker) for each document."""
    rng = random.Random(seed)
    kinds = [k for k, share in KINDS for _ in range(round(share * documents))][:documents]
    kinds += ["txt"] * (documents - len(kinds))
    rng.shuffle(kinds)
    files = []
    for number, kind in enumerate(kinds):
        marker = f"zq{uuid.UUID(int=rng.getrandbits(128)).hex[:10]}"
        title = f"Team note {number}"
        body = paragraphs(rng, rng.randint(300, 1500), marker)
        if kind == "pdf":
            content = pdf_of(rng, title, body, scans=rng.choice((0, 0, 0, 2, 3)))
        elif kind == "docx":
            content = docx_of(rng, title, body, pictures=rng.choice((0, 0, 1, 2)))
        elif kind == "md":
            sections = [f"## Section {i + 1}\n\n{p}" for i, p in enumerate(body)]
            content = ("# " + title + "\n\n" + "\n\n".join(sections) + "\n").encode()
        elif kind == "html":
            inner = "".join(f"<h2>Section {i + 1}</h2><p>{p}</p>" for i, p in enumerate(body))
            content = (
                f"<!doctype html><html><head><title>{title}</title></head><body><article>"
                f"<h1>{title}</h1>{inner}</article></body></html>"
            ).encode()
        else:
            content = (title + "\n\n" + "\n\n".join(body) + "\n").encode()
        files.append((f"note-{number:04d}.{kind}", content, marker))
    return files


# -- make dev ------------------------------------------------------------------------------


def start_dev(port: int, data_dir: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "KGLAB_ENVIRONMENT": "development",
        "KGLAB_DATA_DIR": str(data_dir),
        "KGLAB_PORT": str(port),
        "KGLAB_LOG_LEVEL": "WARNING",
        "KGLAB_GATEWAY_RATE_LIMITS": LIMITS,
    }
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, str(REPO / "deploy" / "dev" / "run.py")],
            env=env,
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


STACK_RUN = REPO / "deploy" / "stack" / "run.py"
STATE = REPO / ".kglab" / "stack"


def start_stack(name: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    """``make stack`` under its own name (databases, virtual host, data folder) and ports."""
    env = {
        **os.environ,
        "KGLAB_ENVIRONMENT": "development",
        "KGLAB_LOG_LEVEL": "WARNING",
        "KGLAB_GATEWAY_RATE_LIMITS": LIMITS,
    }
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, str(STACK_RUN), "up", "--name", name, "--port", str(port)],
            env=env,
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def stack_pids(name: str) -> dict[str, int]:
    """Each stack service's process now (the supervisor restarts one that exits)."""
    pids: dict[str, int] = {}
    for pid_file in (STATE / name / "run").glob("*.pid"):
        try:
            pids[pid_file.stem] = int(pid_file.read_text().strip())
        except (OSError, ValueError):
            continue
    return pids


def free_ports(count: int) -> int:
    """A port with the ``count - 1`` ports after it free too (a stack's services)."""
    for _ in range(100):
        base = free_port()
        if base + count > 65535:
            continue
        try:
            for offset in range(1, count):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", base + offset))
        except OSError:
            continue
        return base
    raise RuntimeError(f"no {count} consecutive free ports")


def memory_mib(pid: int) -> dict[str, float]:
    """Resident memory now and at its peak (VmRSS, VmHWM) of a process, in MiB."""
    fields: dict[str, float] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(("VmRSS", "VmHWM")):
                key, value = line.split(":", 1)
                fields[key] = round(int(value.split()[0]) / 1024, 1)
    except OSError:
        pass
    return {"rss_mib": fields.get("VmRSS", 0.0), "peak_rss_mib": fields.get("VmHWM", 0.0)}


async def wait_healthy(
    client: httpx.AsyncClient, process: subprocess.Popen[bytes], ready: Path | None = None
) -> float:
    """Until the gateway is ready, and with a stack's ``ready`` file, every service."""
    started = time.monotonic()
    while time.monotonic() - started < 300:
        if process.poll() is not None:
            raise RuntimeError("the system stopped while starting")
        try:
            if (await client.get("/ready")).status_code == 200 and (
                ready is None or ready.exists()
            ):
                return time.monotonic() - started
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.2)
    raise TimeoutError("the system was not ready within 300 s")


async def sign_up(client: httpx.AsyncClient) -> tuple[str, dict[str, str]]:
    email = f"folder-{uuid.uuid4().hex[:12]}@example.com"
    await client.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD})
    return email, await sign_in(client, email)


async def sign_in(client: httpx.AsyncClient, email: str) -> dict[str, str]:
    login = await client.post("/api/v1/auth/login", data={"username": email, "password": PASSWORD})
    login.raise_for_status()
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


async def keep_signed_in(
    client: httpx.AsyncClient, email: str, auth: dict[str, str], finished: asyncio.Event
) -> None:
    """Signs in again every 10 minutes: an access token lives 15 (a run can last longer)."""
    while not finished.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(finished.wait(), timeout=RENEW_EVERY_S)
        if not finished.is_set():
            auth.update(await sign_in(client, email))


async def get(client: httpx.AsyncClient, url: str, **options: Any) -> httpx.Response:
    """A GET retried on a dropped connection (make dev closes idle keep-alive connections, and
    a request can race the close): a lost poll must not lose a 20-minute run."""
    for attempt in range(5):
        try:
            return await client.get(url, **options)
        except httpx.TransportError:
            if attempt == 4:
                raise
            await asyncio.sleep(0.5)
    raise AssertionError("unreachable")


async def job_counts(client: httpx.AsyncClient, auth: dict[str, str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 100}
        if cursor:
            params["cursor"] = cursor
        response = await get(client, "/api/v1/jobs", params=params, headers=auth)
        if response.status_code != 200:
            raise RuntimeError(f"GET /api/v1/jobs: {response.status_code} {response.text[:200]}")
        page = response.json()
        for job in page["items"]:
            counts[job["status"]] = counts.get(job["status"], 0) + 1
        cursor = page.get("next_cursor")
        if not cursor:
            return counts


async def ingest(
    client: httpx.AsyncClient, files: list[tuple[str, bytes, str]], args: argparse.Namespace
) -> dict[str, Any]:
    email, auth = await sign_up(client)
    queue: asyncio.Queue[tuple[str, bytes, str]] = asyncio.Queue()
    for item in files:
        queue.put_nowait(item)
    rejected: list[str] = []
    searches: list[float] = []
    search_errors = 0
    loads: list[list[float]] = []
    peak: dict[str, float] = {}
    finished = asyncio.Event()
    started = time.monotonic()
    deadline = started + args.time_limit
    rng = random.Random(5)
    words = prose(rng, 40).lower().replace(".", "").split()

    async def uploader() -> None:
        while not queue.empty() and time.monotonic() < deadline:
            name, content, _ = queue.get_nowait()
            try:
                response = await client.post(
                    "/api/v1/files", files={"file": (name, content)}, headers=auth
                )
            except httpx.TransportError as error:
                rejected.append(f"{name}: {error!r}")
                continue
            if response.status_code != 202:
                rejected.append(f"{name}: {response.status_code} {response.text[:200]}")

    async def searcher() -> None:
        nonlocal search_errors
        while not finished.is_set():
            query = " ".join(rng.sample(words, 3)) + f" {uuid.uuid4().hex[:6]}"
            began = time.monotonic()
            try:
                response = await client.get(
                    "/api/v1/search", params={"q": query, "limit": 10}, headers=auth
                )
            except httpx.TransportError:
                search_errors += 1
                continue
            if response.status_code == 200:
                searches.append((time.monotonic() - began) * 1000)
            else:
                search_errors += 1
            await asyncio.sleep(SEARCH_EVERY_S)

    async def watcher() -> None:
        while not finished.is_set():
            loads.append(load())
            for process, pid in args.pids().items():
                usage = memory_mib(pid)
                # VmHWM is the peak of the process alive now; RSS samples keep a restarted one's.
                peak[process] = max(peak.get(process, 0.0), usage["rss_mib"], usage["peak_rss_mib"])
            await asyncio.sleep(5)

    side = [
        asyncio.create_task(searcher()),
        asyncio.create_task(watcher()),
        asyncio.create_task(keep_signed_in(client, email, auth, finished)),
    ]
    await asyncio.gather(*(uploader() for _ in range(UPLOADERS)))
    uploaded_s = time.monotonic() - started
    counts: dict[str, int] = {}
    while time.monotonic() < deadline:
        counts = await job_counts(client, auth)
        print(f"  {time.monotonic() - started:7.1f} s: {counts}", flush=True)
        if counts.get("pending", 0) + counts.get("processing", 0) == 0:
            break
        await asyncio.sleep(5)
    elapsed = time.monotonic() - started
    finished.set()
    await asyncio.gather(*side)
    done = counts.get("pending", 0) + counts.get("processing", 0) == 0
    sample = random.Random(7).sample(files, min(50, len(files)))
    found = 0
    for _, _, marker in sample:
        hits = await get(client, "/api/v1/search", params={"q": marker, "limit": 10}, headers=auth)
        if hits.status_code == 200 and hits.json()["results"]:
            found += 1
    ordered = sorted(searches)
    return {
        "uploaded": len(files) - len(rejected) - queue.qsize(),
        "rejected": rejected[:20],
        "not_uploaded_in_time": queue.qsize(),
        "upload_s": round(uploaded_s, 1),
        "jobs": counts,
        "all_done": done,
        "seconds_until_all_searchable": round(elapsed, 1) if done else None,
        "seconds_elapsed": round(elapsed, 1),
        "search_during_ingestion": {
            "samples": len(ordered),
            "errors": search_errors,
            "p50_ms": round(statistics.median(ordered), 1) if ordered else None,
            "p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))], 1) if ordered else None,
            "max_ms": round(ordered[-1], 1) if ordered else None,
        },
        "markers_found": f"{found}/{len(sample)}",
        "peak_rss_mib_per_process": {
            process: max(peak.get(process, 0.0), memory_mib(pid)["peak_rss_mib"])
            for process, pid in args.pids().items()
        },
        "loadavg_samples": loads[:: max(1, len(loads) // 30)],
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    began = time.monotonic()
    files = folder(args.documents)
    generated_s = time.monotonic() - began
    kinds: dict[str, int] = {}
    for name, _, _ in files:
        kinds[name.rsplit(".", 1)[1]] = kinds.get(name.rsplit(".", 1)[1], 0) + 1
    total = sum(len(content) for _, content, _ in files)
    print(f"  folder: {len(files)} documents, {total / 1e6:.1f} MB, {kinds}", flush=True)
    stack = args.mode == "stack"
    port = free_ports(6) if stack else free_port()
    with tempfile.TemporaryDirectory(prefix="kglab-folder-") as data:
        log = Path(data) / "run.log"
        if stack:
            process = start_stack(args.name, port, log)
            args.pids = lambda: stack_pids(args.name)
        else:
            process = start_dev(port, Path(data) / "kglab", log)
            args.pids = lambda: {"make dev": process.pid}
        try:
            async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{port}", timeout=120
            ) as client:
                ready_s = await wait_healthy(
                    client, process, STATE / args.name / "ready.json" if stack else None
                )
                result = await ingest(client, files, args)
        except BaseException:
            print(log.read_text(errors="replace")[-3000:], file=sys.stderr)
            raise
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
            tail = log.read_text(errors="replace")[-3000:]
            if stack:
                subprocess.run(
                    [sys.executable, str(STACK_RUN), "purge", "--name", args.name],
                    cwd=REPO,
                    check=False,
                )
    return {
        "mode": "make stack" if stack else "make dev",
        "documents": len(files),
        "bytes": total,
        "kinds": kinds,
        "generate_s": round(generated_s, 1),
        "ready_s": round(ready_s, 1),
        "uploaders": UPLOADERS,
        "time_limit_s": args.time_limit,
        "targets": {"searchable_within_s": 900, "search_p95_ms_during_ingestion": 200},
        "loadavg_at_start": args.load_at_start,
        "driver_peak_rss_mib": memory_mib(os.getpid())["peak_rss_mib"],
        **result,
        "loadavg_at_end": load(),
        "log_tail": tail if not result["all_done"] else "",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--documents", type=int, default=1000)
    parser.add_argument("--time-limit", type=float, default=900.0, help="seconds, hard bound")
    parser.add_argument("--smoke", action="store_true", help="20 documents: checks the script")
    parser.add_argument(
        "--mode",
        choices=("dev", "stack"),
        default="dev",
        help="make dev (one process) or make stack (a process per service; needs the servers' "
        "KGLAB_*_URL variables)",
    )
    parser.add_argument(
        "--name", default=f"folder_bench_{os.getpid()}", help="with --mode stack: its name"
    )
    parser.add_argument(
        "--output", help="bench/results/<output>.json (default: folder, or folder_stack)"
    )
    args = parser.parse_args()
    if args.smoke:
        args.documents, args.time_limit = 20, 300.0
    args.load_at_start = load()
    result = asyncio.run(run(args))
    for key in ("documents", "bytes", "upload_s", "jobs", "seconds_until_all_searchable"):
        print(f"  {key}: {result[key]}")
    print(f"  search during ingestion: {result['search_during_ingestion']}")
    print(f"  peak memory: {result['peak_rss_mib_per_process']}; markers {result['markers_found']}")
    if args.smoke:
        return 0 if result["all_done"] else 1
    name = args.output or ("folder_stack" if args.mode == "stack" else "folder")
    print(f"wrote {save(name, result)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
