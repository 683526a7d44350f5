"""The vector service's domain: indexed chunks, search queries and hits, and its errors."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from kglab_shared.errors import UnprocessableError

MAX_LIMIT = 50
MAX_QUERY_CHARS = 512
MAX_FILTER_CHARS = 200
#: ``expand=`` values this service answers; anything else is a readable 422.
SUPPORTED_EXPANSIONS: frozenset[str] = frozenset({"graph"})
#: Top hits whose chunks ``expand=graph`` starts from, and related documents it adds.
GRAPH_SEED_HITS = 5
GRAPH_RELATED_LIMIT = 5

#: Point ids are UUIDv5 of owner, document and chunk under this namespace, so a redelivered
#: ``document.stored`` overwrites the same points instead of adding copies.
POINT_NAMESPACE = uuid.UUID("1b0c5e5e-64c4-4b7e-9a53-2a8a4d1f7c01")


class SearchMode(StrEnum):
    HYBRID = "hybrid"
    DENSE = "dense"
    SPARSE = "sparse"


@dataclass(frozen=True, slots=True)
class SparseVector:
    """Term indices (hashed) and their weights; Qdrant applies IDF on the server side."""

    indices: list[int]
    values: list[float]


@dataclass(frozen=True, slots=True)
class ChunkRecord:
    """One chunk as the index holds it: the payload of its point."""

    owner_id: str
    document_id: str
    chunk_id: str
    position: int
    text: str
    title: str
    heading: str | None = None
    media_type: str | None = None

    @property
    def point_id(self) -> str:
        return point_id(self.owner_id, self.document_id, self.chunk_id)

    @property
    def passage(self) -> str:
        """What gets embedded: the chunk in the context of its title and heading."""
        parts = [self.title.strip()]
        if self.heading and self.heading.strip() and self.heading.strip() != parts[0]:
            parts.append(self.heading.strip())
        parts.append(self.text)
        return "\n".join(p for p in parts if p)


@dataclass(frozen=True, slots=True)
class IndexedChunk:
    record: ChunkRecord
    dense: list[float]
    sparse: SparseVector


def point_id(owner_id: str, document_id: str, chunk_id: str) -> str:
    # Length-prefixed parts: ("a/b", "c") and ("a", "b/c") must not collide.
    key = "|".join(f"{len(p)}:{p}" for p in (owner_id, document_id, chunk_id))
    return str(uuid.uuid5(POINT_NAMESPACE, key))


@dataclass(frozen=True, slots=True)
class SearchFilters:
    document_id: str | None = None
    media_type: str | None = None


@dataclass(frozen=True, slots=True)
class SearchQuery:
    owner_id: str
    text: str
    mode: SearchMode = SearchMode.HYBRID
    limit: int = 10
    filters: SearchFilters = field(default_factory=SearchFilters)
    expand: frozenset[str] = frozenset()

    def cache_fields(self) -> dict[str, object]:
        """Everything that changes the answer, normalised (case and spacing do not)."""
        return {
            "q": normalise_query(self.text),
            "mode": self.mode.value,
            "limit": self.limit,
            "document_id": self.filters.document_id,
            "media_type": self.filters.media_type,
            "expand": sorted(self.expand),
        }

    @classmethod
    def from_cache_fields(cls, owner_id: str, fields: Mapping[str, Any]) -> SearchQuery:
        """The query again from its :meth:`cache_fields` (a hot query being refreshed); a
        description that does not make a valid query raises ``ValueError``."""
        try:
            text, limit = fields["q"], fields["limit"]
            document_id, media_type = fields.get("document_id"), fields.get("media_type")
            expand = fields.get("expand") or []
            if not (isinstance(text, str) and 0 < len(text) <= MAX_QUERY_CHARS):
                raise ValueError("query text")
            if not (isinstance(limit, int) and 1 <= limit <= MAX_LIMIT):
                raise ValueError("limit")
            for value in (document_id, media_type):
                if value is not None and not isinstance(value, str):
                    raise ValueError("filter")
            if not (isinstance(expand, list) and set(expand) <= SUPPORTED_EXPANSIONS):
                raise ValueError("expand")
            return cls(
                owner_id=owner_id,
                text=text,
                mode=SearchMode(fields["mode"]),
                limit=limit,
                filters=SearchFilters(document_id=document_id, media_type=media_type),
                expand=frozenset(expand),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a search query description: {exc}") from exc


@dataclass(frozen=True, slots=True)
class SearchHit:
    document_id: str
    chunk_id: str
    position: int
    title: str
    heading: str | None
    text: str
    score: float


_SPACES = re.compile(r"\s+")


def normalise_query(text: str) -> str:
    return _SPACES.sub(" ", text).strip().lower()


def validate_query(text: str) -> str:
    cleaned = _SPACES.sub(" ", text).strip()
    if not cleaned:
        raise InvalidSearchError("The query 'q' is empty; type a few words to search for.")
    if len(cleaned) > MAX_QUERY_CHARS:
        raise InvalidSearchError(
            f"The query is {len(cleaned)} characters long; the limit is {MAX_QUERY_CHARS}."
        )
    return cleaned


def parse_expand(values: list[str] | None) -> frozenset[str]:
    """``expand=a,b`` or ``expand=a&expand=b``; an unknown value is a readable 422."""
    requested = {
        part.strip().lower() for value in values or [] for part in value.split(",") if part.strip()
    }
    unknown = sorted(requested - SUPPORTED_EXPANSIONS)
    if unknown:
        supported = ", ".join(sorted(SUPPORTED_EXPANSIONS)) or "none yet"
        names = ", ".join(f"'{u[:40]}'" for u in unknown[:5])
        raise InvalidSearchError(
            f"This search cannot expand results with {names}; supported values: {supported}."
        )
    return frozenset(requested)


_WORD = re.compile(r"\w+", re.UNICODE)


def snippet(text: str, query: str, max_chars: int = 300) -> str:
    """The chunk's text, or a window of it around the first query word it contains."""
    text = text.strip()
    if len(text) <= max_chars:
        return text
    lowered = text.lower()
    start = 0
    for word in sorted(set(_WORD.findall(query.lower())), key=len, reverse=True):
        if len(word) < 3:
            continue
        found = lowered.find(word)
        if found >= 0:
            start = max(0, found - max_chars // 3)
            break
    if start > 0:
        # Begin at a word boundary.
        space = text.find(" ", start)
        start = space + 1 if 0 <= space < start + 30 else start
    end = min(len(text), start + max_chars)
    if end == len(text):
        start = max(0, end - max_chars)
    window = text[start:end].strip()
    return ("…" if start > 0 else "") + window + ("…" if end < len(text) else "")


class InvalidSearchError(UnprocessableError):
    pass


class EmbeddingModelMismatchError(RuntimeError):
    """The collection holds vectors of another model: mixing them would corrupt search."""


class ModelFileError(RuntimeError):
    """A model or tokenizer file is missing or is not the file this service was built for."""
