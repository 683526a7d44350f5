"""``kglab ingest``: files, folders (recursively) and URLs, a few at a time, resumable.

Each source becomes a job. A run records every job it starts in ``ingest-state.json`` (the config
directory, per server and user, keyed by the file's SHA-256 or the URL), so a run that was
interrupted picks up where it stopped: a completed source is not sent again, a job still running
is followed rather than uploaded twice. Whatever the state says, the server also recognises a
file it already has and answers with the earlier job, marked a duplicate.
"""

from __future__ import annotations

import base64
import hashlib
import json
import mimetypes
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from kglab_cli.client import Api, CliError, config_dir, detail_of

FINAL = frozenset({"completed", "failed"})
POLL_S = 0.25
#: Files from this size on go through tus (the plain upload's limit is 10 MB), in pieces.
RESUMABLE_FROM = 8 * 1024 * 1024
PIECE = 4 * 1024 * 1024
TUS = {"Tus-Resumable": "1.0.0"}


@dataclass
class Source:
    """A file or a URL to ingest; ``key`` identifies its content across runs."""

    label: str
    path: Path | None = None
    url: str | None = None
    key: str = ""
    #: Why it cannot be ingested (a path that is not there): a failure in the summary.
    error: str | None = None


@dataclass
class Outcome:
    label: str
    status: str  # completed | duplicate | skipped | failed | submitted
    job_id: str | None = None
    document_id: str | None = None
    error: str | None = None
    notice: str | None = None


@dataclass
class Progress:
    """What the progress display is told: a source's stage and percentage."""

    label: str
    stage: str
    percent: int
    final: bool = False


@dataclass
class Summary:
    outcomes: list[Outcome] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for outcome in self.outcomes if outcome.status == status)

    @property
    def failed(self) -> list[Outcome]:
        return [outcome for outcome in self.outcomes if outcome.status == "failed"]

    def as_json(self) -> dict[str, Any]:
        return {
            "completed": self.count("completed"),
            "duplicates": self.count("duplicate"),
            "skipped": self.count("skipped"),
            "submitted": self.count("submitted"),
            "failed": self.count("failed"),
            "sources": [asdict(outcome) for outcome in self.outcomes],
        }


def is_url(text: str) -> bool:
    return text.startswith(("http://", "https://"))


def sources_of(arguments: Iterable[str]) -> list[Source]:
    """Expand the arguments: a folder yields every file under it (hidden ones left out). A path
    that is neither a file nor a folder is a source with its ``error``: the others still go."""
    found: list[Source] = []
    for argument in arguments:
        if is_url(argument):
            found.append(Source(label=argument, url=argument, key=f"url:{argument}"))
            continue
        path = Path(argument)
        if path.is_dir():
            for file in sorted(_walk(path)):
                found.append(Source(label=str(file), path=file))
        elif path.is_file():
            found.append(Source(label=str(path), path=path))
        else:
            found.append(
                Source(
                    label=argument,
                    key=f"missing:{argument}",
                    error=f"{argument} is neither a file, a folder nor an http(s) URL.",
                )
            )
    return found


def _walk(folder: Path) -> Iterator[Path]:
    for root, directories, files in os.walk(folder):
        directories[:] = [d for d in directories if not d.startswith(".")]
        for name in files:
            if not name.startswith("."):
                yield Path(root) / name


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        for block in iter(lambda: source.read(1 << 20), b""):
            digest.update(block)
    return f"sha256:{digest.hexdigest()}"


class IngestState:
    """Jobs started by earlier runs, per server and user, saved after every change."""

    def __init__(self, url: str, email: str) -> None:
        self.path = config_dir() / "ingest-state.json"
        self.scope = f"{url} {email}"
        self._lock = threading.Lock()
        try:
            self._all: dict[str, dict[str, dict[str, str]]] = json.loads(self.path.read_text())
        except (FileNotFoundError, ValueError):
            self._all = {}
        self.jobs = self._all.setdefault(self.scope, {})

    def get(self, key: str) -> dict[str, str] | None:
        return self.jobs.get(key)

    def put(self, key: str, **record: str) -> None:
        with self._lock:
            self.jobs[key] = record
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(
                self.path.with_suffix(".tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600
            )
            with os.fdopen(fd, "w") as sink:
                json.dump(self._all, sink)
            self.path.with_suffix(".tmp").replace(self.path)


class Ingestion:
    """Runs the sources through the API, ``parallel`` at a time, reporting each one's progress."""

    def __init__(
        self,
        api: Api,
        *,
        parallel: int,
        wait: bool,
        report: Callable[[Progress], None],
        timeout_s: float = 900.0,
    ) -> None:
        session = api.require_login()
        self.api = api
        self.parallel = max(1, parallel)
        self.wait = wait
        self.report = report
        self.timeout_s = timeout_s
        self.state = IngestState(api.url, session["email"])

    def run(self, sources: list[Source]) -> Summary:
        summary = Summary()
        with ThreadPoolExecutor(max_workers=self.parallel) as pool:
            for outcome in pool.map(self._one, sources):
                summary.outcomes.append(outcome)
        return summary

    def _one(self, source: Source) -> Outcome:
        try:
            return self._ingest(source)
        except CliError as exc:
            self.report(Progress(source.label, "failed", 0, final=True))
            return Outcome(source.label, "failed", error=str(exc))
        except OSError as exc:
            self.report(Progress(source.label, "failed", 0, final=True))
            return Outcome(source.label, "failed", error=f"{source.label} cannot be read: {exc}")

    def _ingest(self, source: Source) -> Outcome:
        if source.error is not None:
            raise CliError(source.error)
        if source.path is not None:
            source.key = _sha256(source.path)
        earlier = self.state.get(source.key)
        if earlier and earlier.get("status") == "completed":
            self.report(Progress(source.label, "already ingested", 100, final=True))
            return Outcome(
                source.label, "skipped", earlier.get("job_id"), earlier.get("document_id")
            )
        if earlier and earlier.get("job_id") and earlier.get("status") != "failed":
            job = self._job(earlier["job_id"])
            if job is not None:  # resume following it instead of sending it again
                return self._follow(source, job, duplicate=False)
        self.report(Progress(source.label, "sending", 0))
        job = self._submit(source)
        duplicate = bool(job.get("duplicate"))
        self.state.put(source.key, job_id=job["job_id"], status=str(job["status"]))
        return self._follow(source, job, duplicate=duplicate)

    def _submit(self, source: Source) -> dict[str, Any]:
        if source.url is not None:
            response = self.api.raw("POST", "/api/v1/urls", json={"url": source.url})
        elif source.path is not None and source.path.stat().st_size >= RESUMABLE_FROM:
            return self._submit_resumable(source, source.path)
        else:
            assert source.path is not None
            media_type = mimetypes.guess_type(source.path.name)[0] or "application/octet-stream"
            # Bytes, not a file object: a retry after a token refresh sends them again.
            content = source.path.read_bytes()
            response = self.api.raw(
                "POST", "/api/v1/files", files={"file": (source.path.name, content, media_type)}
            )
        if response.status_code not in (200, 201, 202):
            raise CliError(detail_of(response))
        job: dict[str, Any] = response.json()
        return job

    def _submit_resumable(self, source: Source, path: Path) -> dict[str, Any]:
        """tus: the upload's address is recorded, so an interrupted run resumes from the
        offset the server holds instead of sending the file again."""
        size = path.stat().st_size
        earlier = self.state.get(source.key) or {}
        location = earlier.get("upload")
        offset = 0
        if location:
            head = self.api.raw("HEAD", location, headers=TUS)
            location = location if head.status_code == 200 else None
            offset = int(head.headers.get("Upload-Offset", "0")) if location else 0
        if not location:
            name = base64.b64encode(path.name.encode()).decode()
            created = self.api.raw(
                "POST",
                "/api/v1/uploads",
                headers={**TUS, "Upload-Length": str(size), "Upload-Metadata": f"filename {name}"},
            )
            if created.status_code != 201:
                raise CliError(detail_of(created))
            location = httpx.URL(created.headers["Location"]).path
            self.state.put(source.key, upload=location, status="uploading")
        last: httpx.Response | None = None
        with path.open("rb") as content:
            while offset < size:
                self.report(Progress(source.label, "sending", int(100 * offset / size)))
                content.seek(offset)
                last = self.api.raw(
                    "PATCH",
                    location,
                    content=content.read(PIECE),
                    headers={
                        **TUS,
                        "Upload-Offset": str(offset),
                        "Content-Type": "application/offset+octet-stream",
                    },
                )
                if last.status_code != 204:
                    if last.status_code not in (409, 503):
                        self.state.put(source.key, status="failed")
                    raise CliError(detail_of(last))
                offset = int(last.headers["Upload-Offset"])
        if last is None:  # every byte was there already: the server names the job on HEAD
            last = self.api.raw("HEAD", location, headers=TUS)
        job_id = last.headers.get("Upload-Job-Id")
        if not job_id:
            raise CliError(f"The upload of {path.name} finished but the server named no job.")
        job = self._job(job_id)
        if job is None:
            raise CliError(f"The job {job_id} of {path.name} is gone.")
        return {**job, "duplicate": last.headers.get("Upload-Duplicate") == "true"}

    def _job(self, job_id: str) -> dict[str, Any] | None:
        response = self.api.raw("GET", f"/api/v1/jobs/{job_id}")
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise CliError(detail_of(response))
        job: dict[str, Any] = response.json()
        return job

    def _follow(self, source: Source, job: dict[str, Any], *, duplicate: bool) -> Outcome:
        job_id = str(job["job_id"])
        if not self.wait and job["status"] not in FINAL:
            self.report(Progress(source.label, "submitted", int(job.get("progress") or 0), True))
            return Outcome(source.label, "submitted", job_id)
        deadline = time.monotonic() + self.timeout_s
        while job["status"] not in FINAL:
            self.report(
                Progress(source.label, str(job.get("stage")), int(job.get("progress") or 0))
            )
            if time.monotonic() > deadline:
                raise CliError(f"job {job_id} did not finish within {self.timeout_s:.0f} s")
            time.sleep(POLL_S)  # the job's progress, polled over HTTP
            job = self._job(job_id) or {"status": "failed", "error": "The job is gone."}
        self.state.put(
            source.key,
            job_id=job_id,
            status=str(job["status"]),
            document_id=str(job.get("document_id") or ""),
        )
        if job["status"] == "failed":
            self.report(Progress(source.label, "failed", int(job.get("progress") or 0), True))
            return Outcome(source.label, "failed", job_id, error=job.get("error") or "failed")
        self.report(Progress(source.label, "duplicate" if duplicate else "done", 100, True))
        return Outcome(
            source.label,
            "duplicate" if duplicate else "completed",
            job_id,
            job.get("document_id"),
            notice=job.get("notice"),
        )
