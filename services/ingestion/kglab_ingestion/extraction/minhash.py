"""MinHash signatures over word shingles, for near-duplicate detection.

The same scheme as datasketch's ``MinHash`` (universal hashing ``(a*x + b) mod p`` over a
Mersenne prime, seeded permutations), written against numpy directly so the service does not
pull in scipy for twenty lines. Signatures are plain ints, so they can be stored as JSON.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy is imported where it is used: the service starts without it
    import numpy as np
    import numpy.typing as npt

SHINGLE_WORDS = 3
_PRIME = (1 << 61) - 1
_MAX_HASH = (1 << 32) - 1
_WORD = re.compile(r"\w+")
_BATCH = 4096


@lru_cache(maxsize=8)
def _permutations(num_perm: int) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint64]]:
    import numpy as np

    generator = np.random.RandomState(1)  # fixed: signatures must be comparable forever
    a = generator.randint(1, (1 << 61) - 1, size=num_perm, dtype=np.uint64)
    b = generator.randint(0, (1 << 61) - 1, size=num_perm, dtype=np.uint64)
    return a, b


def _shingles(text: str) -> set[str]:
    words = _WORD.findall(text.lower())
    if len(words) <= SHINGLE_WORDS:
        return {" ".join(words)} if words else set()
    return {" ".join(words[i : i + SHINGLE_WORDS]) for i in range(len(words) - SHINGLE_WORDS + 1)}


def _hash32(shingle: str) -> int:
    return int.from_bytes(hashlib.blake2b(shingle.encode(), digest_size=4).digest(), "little")


def minhash_signature(text: str, *, num_perm: int = 128) -> list[int]:
    """``num_perm`` minimum hashes of the text's 3-word shingles (case and punctuation
    ignored). An empty text has the all-maximum signature."""
    if num_perm < 1:
        raise ValueError("num_perm must be >= 1")
    import numpy as np

    a, b = _permutations(num_perm)
    prime, max_hash = np.uint64(_PRIME), np.uint64(_MAX_HASH)
    signature = np.full(num_perm, max_hash, dtype=np.uint64)
    hashes = np.fromiter((_hash32(s) for s in _shingles(text)), dtype=np.uint64)
    with np.errstate(over="ignore"):  # the product wraps modulo 2**64, as in datasketch
        for offset in range(0, len(hashes), _BATCH):
            batch = hashes[offset : offset + _BATCH, np.newaxis]
            permuted = np.bitwise_and((batch * a + b) % prime, max_hash)
            signature = np.minimum(signature, permuted.min(axis=0))
    return [int(v) for v in signature]


def estimated_similarity(a: Sequence[int], b: Sequence[int]) -> float:
    """The Jaccard similarity of two texts' shingle sets, estimated from their signatures."""
    if len(a) != len(b) or not a:
        raise ValueError("signatures must be non-empty and of the same length")
    return sum(1 for x, y in zip(a, b, strict=True) if x == y) / len(a)
