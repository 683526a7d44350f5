"""An optional entity and relation extractor on any OpenAI-compatible chat endpoint (adr/0024).

Off by default (``KGLAB_GRAPH_RECOGNISER=llm`` turns it on; ``KGLAB_GRAPH_LLM_URL``,
``_MODEL``, ``_API_KEY`` say where). It sits behind the same port as the offline recogniser
and returns the same shapes, so resolution, storage and the evaluation are the same. Each chunk
is one chat request (at most ``max_concurrency`` at a time), retried with exponential backoff
on connection errors, 429 and 5xx (tenacity); a chunk whose answer still fails or is not the
JSON asked for is read by the offline recogniser instead, and the log says so. Tokens and cost
are counted per document (per :meth:`recognise` call).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
from tenacity import (
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from kglab_graph.extraction import (
    EntityRecogniser,
    RecognisedChunk,
    RecognisedRelation,
    RecognisedSentence,
    RecognisedSpan,
)
from kglab_graph.nlp_rules import VERB_TYPES, is_junk
from kglab_shared.logging import get_logger

_log = get_logger(__name__)

ENTITY_TYPES = (
    "PERSON",
    "ORG",
    "GPE",
    "LOC",
    "SOFTWARE",
    "PROTOCOL",
    "STANDARD",
    "LANGUAGE",
    "PRODUCT",
    "EVENT",
)
RELATION_TYPES = tuple(sorted({*VERB_TYPES.values(), "LOCATED_IN"}))
PROMPT = (
    "Extract the named entities and the relations stated between them from the user's text. "
    'Answer with JSON only, of the form {"entities": [{"name": str, "type": str}], '
    '"relations": [{"head": str, "type": str, "tail": str, "verb": str, '
    '"sentence": str}]}. Entity types: ' + ", ".join(ENTITY_TYPES) + ". Relation types "
    "(head does it to tail): " + ", ".join(RELATION_TYPES) + ". Names exactly as written in "
    "the text; no versions, numbers, URLs, paths or code. `sentence` is the sentence that "
    "states the relation, copied from the text; `verb` its verb."
)
_SENTENCE_END = re.compile(r"(?<!\b[A-Z]\.)(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])|\n\s*\n")


@dataclass(frozen=True)
class LlmConfig:
    url: str
    model: str
    api_key: str | None = None
    max_concurrency: int = 4
    timeout_s: float = 60.0
    attempts: int = 3
    #: Prices per million tokens, for the cost per document (0: not counted).
    input_price_per_mtok: float = 0.0
    output_price_per_mtok: float = 0.0


@dataclass
class Usage:
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    #: Chunks the offline recogniser read because the endpoint failed or answered badly.
    fallbacks: int = 0


class LlmAnswerError(ValueError):
    """The endpoint answered, but not with the JSON asked for."""


def _retryable(error: BaseException) -> bool:
    if isinstance(error, httpx.TransportError):
        return True
    if isinstance(error, httpx.HTTPStatusError):
        return error.response.status_code == 429 or error.response.status_code >= 500
    return False


class LlmRecogniser:
    def __init__(
        self,
        config: LlmConfig,
        fallback: EntityRecogniser,
        *,
        transport: httpx.BaseTransport | None = None,
        wait_initial_s: float = 0.5,
        wait_max_s: float = 8.0,
    ) -> None:
        self.config = config
        self.name = f"llm:{config.model}"
        self._fallback = fallback
        headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
        self._client = httpx.Client(
            base_url=config.url.rstrip("/"),
            headers=headers,
            timeout=config.timeout_s,
            transport=transport,
            limits=httpx.Limits(max_connections=config.max_concurrency),
        )
        self._wait = wait_exponential_jitter(multiplier=wait_initial_s, max=wait_max_s)
        self._lock = threading.Lock()
        #: What the last :meth:`recognise` call (one document) cost.
        self.last_usage = Usage()

    def close(self) -> None:
        self._client.close()

    def recognise(self, texts: Sequence[str]) -> list[RecognisedChunk]:
        usage = Usage()
        with ThreadPoolExecutor(max_workers=self.config.max_concurrency) as pool:
            answers = list(pool.map(lambda text: self._chunk(text, usage), texts))
        failed = [i for i, answer in enumerate(answers) if answer is None]
        if failed:
            usage.fallbacks = len(failed)
            offline = self._fallback.recognise([texts[i] for i in failed])
            for i, chunk in zip(failed, offline, strict=True):
                answers[i] = chunk
        self.last_usage = usage
        return [answer or [] for answer in answers]

    def _chunk(self, text: str, usage: Usage) -> RecognisedChunk | None:
        try:
            body = self._ask(text, usage)
            return _parse(text, body)
        except (httpx.HTTPError, LlmAnswerError) as error:
            _log.warning("llm_extraction_failed", model=self.config.model, error=str(error))
            return None

    def _ask(self, text: str, usage: Usage) -> dict[str, Any]:
        payload = {
            "model": self.config.model,
            "temperature": 0,
            "response_format": {"type": "json_object"},
            "messages": [
                {"role": "system", "content": PROMPT},
                {"role": "user", "content": text},
            ],
        }
        for attempt in Retrying(
            stop=stop_after_attempt(self.config.attempts),
            wait=self._wait,
            retry=retry_if_exception(_retryable),
            reraise=True,
        ):
            with attempt:
                with self._lock:
                    usage.requests += 1
                response = self._client.post("/chat/completions", json=payload)
                response.raise_for_status()
        answer = response.json()
        counts = answer.get("usage") or {}
        with self._lock:
            usage.input_tokens += int(counts.get("prompt_tokens", 0))
            usage.output_tokens += int(counts.get("completion_tokens", 0))
            usage.cost = (
                usage.input_tokens * self.config.input_price_per_mtok
                + usage.output_tokens * self.config.output_price_per_mtok
            ) / 1_000_000
        try:
            content = answer["choices"][0]["message"]["content"]
            parsed = json.loads(content)
        except (KeyError, IndexError, TypeError, json.JSONDecodeError) as error:
            raise LlmAnswerError(
                f"The model's answer is not the JSON asked for: {error}"
            ) from error
        if not isinstance(parsed, dict):
            raise LlmAnswerError("The model's answer is not a JSON object.")
        return parsed


def _parse(text: str, body: dict[str, Any]) -> RecognisedChunk:
    """The model's entities and relations placed in the text's sentences; names not in the text
    (invented or rewritten) and junk are dropped."""
    sentences = [s for s in _SENTENCE_END.split(text) if s and s.strip()]
    entities: list[tuple[str, str]] = []
    for item in body.get("entities") or []:
        if not isinstance(item, dict):
            continue
        name, label = str(item.get("name", "")).strip(), str(item.get("type", "")).upper()
        if name and name in text and label in ENTITY_TYPES and not is_junk(name):
            entities.append((name, label))
    names = {name for name, _ in entities}
    relations: list[tuple[int, RecognisedRelation]] = []
    for item in body.get("relations") or []:
        if not isinstance(item, dict):
            continue
        head, tail = str(item.get("head", "")), str(item.get("tail", ""))
        kind = str(item.get("type", "")).upper()
        if head not in names or tail not in names or kind not in RELATION_TYPES:
            continue
        said = str(item.get("sentence", ""))
        where = next(
            (i for i, s in enumerate(sentences) if said and said.strip() in s),
            next((i for i, s in enumerate(sentences) if head in s and tail in s), None),
        )
        if where is not None:
            verb = str(item.get("verb", "")).lower()[:40]
            relations.append((where, RecognisedRelation(head, kind, tail, verb)))
    return [
        RecognisedSentence(
            [RecognisedSpan(name, label) for name, label in entities if name in sentence],
            sentence.strip(),
            [relation for i, relation in relations if i == index],
        )
        for index, sentence in enumerate(sentences)
    ]
