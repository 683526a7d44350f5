"""Paths to the test corpus for tests and benchmarks; large files are built on first use."""

from __future__ import annotations

from pathlib import Path

from tests.data.generate import CACHE, HERE, LARGE_FILES, TRAVERSAL_NAMES, write_atomically

__all__ = ["TRAVERSAL_NAMES", "corpus_file", "large_file"]


def corpus_file(name: str) -> Path:
    """A committed corpus file (run tests/data/generate.py if it is missing)."""
    path = HERE / name
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run python tests/data/generate.py")
    return path


def large_file(name: str) -> Path:
    """A large corpus file (``pages-200.pdf``, ``heavy-50mb.pdf``, ``heavy-5mb.pdf``), built
    into the git-ignored tests/data/.cache/ the first time it is asked for."""
    path = CACHE / name
    if not path.exists():
        write_atomically(path, LARGE_FILES[name]())
    return path
