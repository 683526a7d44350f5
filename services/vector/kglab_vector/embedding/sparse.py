"""BM25-style sparse vectors: hashed terms with saturated, length-normalised term frequencies.

The IDF half of BM25 is left to Qdrant (``Modifier.IDF`` on the sparse vector), which knows the
collection's document frequencies; the term-frequency half is computed here:

    weight(t, d) = tf * (k1 + 1) / (tf + k1 * (1 - b + b * |d| / avgdl))

``avgdl`` is a constant (the typical chunk length in terms) rather than a live average, so a
chunk's vector never changes when other chunks arrive. Queries weigh each distinct term 1.0.
"""

from __future__ import annotations

from collections import Counter

from kglab_vector.domain import SparseVector
from kglab_vector.embedding.text import term_index, terms


class Bm25SparseEncoder:
    #: Recorded with the collection: a change of tokenising or weighting is a migration too.
    name = "kglab-bm25-v1"

    def __init__(self, k1: float = 1.2, b: float = 0.75, avg_terms: float = 60.0) -> None:
        self.k1 = k1
        self.b = b
        self.avg_terms = avg_terms

    def encode_document(self, text: str) -> SparseVector:
        counts = Counter(term_index(t) for t in terms(text))
        length = sum(counts.values())
        norm = self.k1 * (1 - self.b + self.b * length / self.avg_terms)
        indices = sorted(counts)
        values = [counts[i] * (self.k1 + 1) / (counts[i] + norm) for i in indices]
        return SparseVector(indices=indices, values=values)

    def encode_query(self, text: str) -> SparseVector:
        indices = sorted({term_index(t) for t in terms(text)})
        return SparseVector(indices=indices, values=[1.0] * len(indices))
