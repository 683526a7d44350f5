"""Tokenising for the lexical side (sparse vectors, the hashing embedder): words, lowercased,
stop words dropped, a light English suffix stripping so that "rivers" finds "river" and
"flooded" finds "flood"."""

from __future__ import annotations

import hashlib
import re
import unicodedata

_WORD = re.compile(r"[^\W_]+", re.UNICODE)

STOP_WORDS = frozenset(
    """
    a about above after again against all am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further
    had has have having he her here hers herself him himself his how i if in into is it its
    itself just me more most my myself no nor not of off on once only or other our ours ourselves
    out over own same she should so some such than that the their theirs them themselves then
    there these they this those through to too under until up very was we were what when where
    which while who whom why will with would you your yours yourself yourselves also into onto
    upon via s t
    """.split()
)

_SUFFIXES = ("ingly", "edly", "ings", "ing", "ies", "ied", "ed", "es", "ly", "s")


def stem(word: str) -> str:
    """Strip one common suffix, keeping at least four letters (deterministic, no dictionary)."""
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 4:
            base = word[: -len(suffix)]
            if suffix in ("ies", "ied"):
                return base + "y"
            return base
    return word


def terms(text: str) -> list[str]:
    """The indexable terms of ``text``, in order, repeats kept (term frequency counts them)."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return [stem(w) for w in _WORD.findall(folded) if w not in STOP_WORDS]


def term_index(term: str, buckets: int = 2**31 - 1) -> int:
    """A stable index for a term (not Python's salted ``hash``): the same in every process."""
    digest = hashlib.blake2b(term.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % buckets
