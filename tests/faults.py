"""Slow and failing extraction, for failure tests and benchmarks (not in the service).

The ingestion worker reads files through its extraction port (``OpenDocument``); these wrap
the real one:

- :func:`slow_extraction`: every unit (a PDF page) takes ``delay_s`` longer, in the
  extraction thread, so "killed mid-job", progress and the time limit are observable;
- :func:`flaky_extraction`: files whose name contains ``marker`` fail with a retryable error
  on their first ``attempts`` extractions, after every unit was read, so the retry path
  (release, redelivery, resume) runs. Attempts are counted per process (a job retried by
  another worker process is extracted there as a first attempt).

A test in one process passes them to ``create_app(extract=...)``; a service started as its own
process uses :func:`ingestion_app` as uvicorn's factory, with ``KGLAB_TEST_UNIT_DELAY_S``,
``KGLAB_TEST_FAIL_MARKER`` and ``KGLAB_TEST_FAIL_ATTEMPTS`` in its environment.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from fastapi import FastAPI

from kglab_ingestion.extraction import (
    DocumentInfo,
    ExtractionError,
    ExtractionUnit,
    OpenDocument,
    open_document,
)

INJECTED = "An injected failure (fault injection). It will be tried again."


def _close(units: Iterator[ExtractionUnit]) -> None:
    close = getattr(units, "close", None)
    if close is not None:
        close()


def slow_extraction(delay_s: float, inner: OpenDocument = open_document) -> OpenDocument:
    def extract(
        path: Path, media_type: str, *, source_name: str, start: int = 0
    ) -> tuple[DocumentInfo, Iterator[ExtractionUnit]]:
        info, units = inner(path, media_type, source_name=source_name, start=start)

        def slowly() -> Iterator[ExtractionUnit]:
            try:
                for unit in units:
                    time.sleep(delay_s)
                    yield unit
            finally:
                _close(units)  # a worker that gives up closes the document at once

        return info, slowly()

    return extract


def flaky_extraction(
    marker: str, attempts: int = 1, inner: OpenDocument = open_document
) -> OpenDocument:
    tried: Counter[str] = Counter()
    lock = threading.Lock()

    def extract(
        path: Path, media_type: str, *, source_name: str, start: int = 0
    ) -> tuple[DocumentInfo, Iterator[ExtractionUnit]]:
        info, units = inner(path, media_type, source_name=source_name, start=start)
        if marker not in source_name:
            return info, units
        with lock:
            tried[source_name] += 1
            failing = tried[source_name] <= attempts

        def then_fail() -> Iterator[ExtractionUnit]:
            try:
                yield from units
            finally:
                _close(units)
            if failing:
                raise ExtractionError(INJECTED, retryable=True)

        return info, then_fail()

    return extract


def ingestion_app() -> FastAPI:
    """``uvicorn --factory tests.faults:ingestion_app``: the ingestion service with the faults
    its environment asks for."""
    from kglab_ingestion.main import create_app

    extract: OpenDocument = open_document
    if delay := float(os.environ.get("KGLAB_TEST_UNIT_DELAY_S", "0")):
        extract = slow_extraction(delay, extract)
    if marker := os.environ.get("KGLAB_TEST_FAIL_MARKER"):
        extract = flaky_extraction(
            marker, int(os.environ.get("KGLAB_TEST_FAIL_ATTEMPTS", "1")), extract
        )
    return create_app(extract=extract)
