"""A deterministic hashing embedder for fast tests and quick local runs: no model, no file.

Each term (and each adjacent pair of terms) adds +-1 to one of ``dimension`` buckets, chosen by a
stable hash; the sum is L2-normalised. Texts that share words get close vectors; it knows no
synonyms, so it is no substitute for the real model in search quality.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from collections.abc import Sequence

from kglab_vector.embedding.text import terms


class HashingEmbedder:
    def __init__(self, dimension: int = 256) -> None:
        if not 8 <= dimension <= 4096:
            raise ValueError(f"dimension must be between 8 and 4096; got {dimension}.")
        self._dimension = dimension

    @property
    def model_name(self) -> str:
        return f"kglab-hashing-v1-{self._dimension}"

    @property
    def dimension(self) -> int:
        return self._dimension

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        return [self._embed(text) for text in texts]

    def embed_query(self, text: str) -> list[float]:
        return self._embed(text)

    def _embed(self, text: str) -> list[float]:
        vector = [0.0] * self._dimension
        words = terms(text)
        features = words + [f"{a} {b}" for a, b in itertools.pairwise(words)]
        for feature in features:
            digest = hashlib.blake2b(feature.encode("utf-8"), digest_size=8).digest()
            bucket = int.from_bytes(digest[:4], "big") % self._dimension
            vector[bucket] += 1.0 if digest[4] & 1 else -1.0
        norm = math.sqrt(sum(v * v for v in vector))
        if norm == 0.0:
            # No terms at all: a fixed unit vector, so every vector stays unit length.
            vector[0] = 1.0
            return vector
        return [v / norm for v in vector]
