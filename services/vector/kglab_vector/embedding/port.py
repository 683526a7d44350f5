"""The ``Embedder`` port: dense sentence vectors, unit length, of a fixed dimension."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class Embedder(Protocol):
    @property
    def model_name(self) -> str:
        """Names the vector space: two embedders with one name give comparable vectors."""

    @property
    def dimension(self) -> int:
        """Length of every vector."""

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        """One unit-length vector per text, in order (CPU-bound: call it off the event loop)."""

    def embed_query(self, text: str) -> list[float]:
        """The vector of a search query."""
