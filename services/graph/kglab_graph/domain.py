"""The graph's domain: entities, the relations between them, and what traversals return.

Entities belong to one owner and are keyed by a normalised name (:func:`normalise_key`), so
surface variants of one name ("Marie  Curie", "marie curie.") meet in one node. Their id is
derived from (owner, key), which makes every write idempotent across adapters and re-runs.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field

MIN_DEPTH = 1
MAX_DEPTH = 3
MAX_PATH_DEPTH = 6
MAX_LIMIT = 200

_NON_WORD = re.compile(r"[^\w]+", re.UNICODE)
_LEADING_ARTICLE = re.compile(r"^the\s+")


def normalise_key(name: str) -> str:
    """Case, accents, punctuation, whitespace and a leading "the" never tell entities apart."""
    folded = unicodedata.normalize("NFKD", name)
    folded = "".join(c for c in folded if not unicodedata.combining(c)).casefold()
    words = _NON_WORD.sub(" ", folded).replace("_", " ").split()
    return _LEADING_ARTICLE.sub("", " ".join(words))


def entity_id(owner: str, key: str) -> str:
    """A stable id for (owner, key): the same document processed twice writes the same nodes."""
    digest = hashlib.sha256(f"{owner}\x00{key}".encode()).hexdigest()
    return f"ent_{digest[:24]}"


@dataclass(frozen=True, slots=True)
class Entity:
    id: str
    name: str
    type: str
    key: str


@dataclass(frozen=True, slots=True)
class Mention:
    """``entity_key`` is named ``count`` times in one chunk."""

    chunk_id: str
    entity_key: str
    count: int


@dataclass(frozen=True, slots=True)
class Relation:
    """An undirected co-occurrence; ``source_id < target_id`` so each pair is stored once.

    ``evidence`` names the sentences that support it (``document:chunk:sentence``) and ``weight``
    is how many there are.
    """

    source_id: str
    target_id: str
    weight: int
    evidence: tuple[str, ...] = ()
    #: What the documents say about the pair (typed relations first), when asked for.
    statements: tuple[Statement, ...] = ()


@dataclass(frozen=True, slots=True)
class RelationCandidate:
    """Two entity keys related by extraction (keys, not ids).

    ``type`` is ``RELATED_TO`` for co-occurrence in one sentence (undirected, ``source_key <
    target_key``), or a typed relation read from the sentence's structure (``CREATED``,
    ``USES``, ...; directed: the source does it to the target) with the ``verb`` that said so.
    ``evidence`` names the sentences (``document:chunk:sentence``); ``sentences`` holds the
    text of the first few of them.
    """

    source_key: str
    target_key: str
    evidence: tuple[str, ...]
    type: str = "RELATED_TO"
    verb: str = ""
    sentences: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Statement:
    """What one document says relates two entities: co-occurrence (``RELATED_TO``) or a typed
    relation (``source_id`` does ``type`` to ``target_id``, by ``verb``), with its sentences:
    ``evidence`` as ``document:chunk:sentence`` and ``sentences`` the text of the first few."""

    source_id: str
    target_id: str
    type: str
    verb: str
    document_id: str
    evidence: tuple[str, ...]
    sentences: tuple[str, ...]


#: Statements returned per relation, at most.
MAX_STATEMENTS_PER_RELATION = 10


def statement_rows(
    document_id: str, ids: dict[str, str], relations: Sequence[RelationCandidate]
) -> list[Statement]:
    """The statements an extraction makes, by entity id (one per relation candidate)."""
    return [
        Statement(
            source_id=ids[r.source_key],
            target_id=ids[r.target_key],
            type=r.type,
            verb=r.verb,
            document_id=document_id,
            evidence=r.evidence,
            sentences=r.sentences,
        )
        for r in relations
    ]


@dataclass(frozen=True, slots=True)
class ChunkRef:
    id: str
    position: int
    heading: str | None = None


@dataclass(frozen=True, slots=True)
class RelatedDocument:
    """A document reached from some chunks through the entities they share with it."""

    document_id: str
    title: str
    #: How many distinct entities connect it; the ranking key.
    shared_entities: int
    #: Names of (up to five of) those entities, most mentioned first: why it is related.
    via: tuple[str, ...]


#: At most this many related documents per request.
MAX_RELATED = 50


@dataclass(frozen=True, slots=True)
class DocumentMentions:
    document_id: str
    title: str
    mentions: int


@dataclass(frozen=True, slots=True)
class EntityDetail:
    entity: Entity
    degree: int
    mentions: int
    top_documents: tuple[DocumentMentions, ...]


@dataclass(frozen=True, slots=True)
class RankedEntity:
    """An entity and how many entities it is related to."""

    entity: Entity
    degree: int


#: An export holds at most this many entities (the most connected) and relations.
MAX_EXPORT_ENTITIES = 5_000
MAX_EXPORT_RELATIONS = 50_000


@dataclass(frozen=True, slots=True)
class ScoredEntity:
    entity: Entity
    score: float


@dataclass(frozen=True, slots=True)
class Neighbor:
    entity: Entity
    distance: int


@dataclass(frozen=True, slots=True)
class Subgraph:
    entities: tuple[Entity, ...]
    relations: tuple[Relation, ...]
    distances: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Path:
    """Entities from the start to the end, and the relations joining consecutive ones."""

    entities: tuple[Entity, ...]
    relations: tuple[Relation, ...]

    @property
    def length(self) -> int:
        return len(self.relations)


@dataclass(frozen=True, slots=True)
class ExtractedGraph:
    """What extraction found in one document, ready for :meth:`GraphStore.apply_document`."""

    entities: tuple[Entity, ...]
    mentions: tuple[Mention, ...]
    relations: tuple[RelationCandidate, ...]


def canonical_pair(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a < b else (b, a)


@dataclass(frozen=True, slots=True)
class Alias:
    """``alias_key`` names the same thing as ``canonical_key`` for one owner, and why.

    ``alias_key == canonical_key`` records a merge someone undid: keep them apart."""

    alias_key: str
    canonical_key: str
    reason: str

    @property
    def kept_apart(self) -> bool:
        return self.alias_key == self.canonical_key


def compact_key(key: str) -> str:
    """A key without its spaces: "node js" (Node.js) and "nodejs" (NodeJS) are one spelling."""
    return key.replace(" ", "")
