"""The optional LLM extractor against a local fake OpenAI-compatible server (127.0.0.1): its
answers placed in sentences, retries, bounded concurrency, tokens and cost, and the offline
fallback when the endpoint fails or answers badly."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from kglab_graph.config import GraphSettings
from kglab_graph.extraction import ChunkText, RuleBasedRecogniser, extract_graph
from kglab_graph.llm import LlmConfig, LlmRecogniser
from kglab_graph.main import build_recogniser

TEXT = "Linus Torvalds wrote Git in 2005. Git supports SSH."
ANSWER = {
    "entities": [
        {"name": "Linus Torvalds", "type": "PERSON"},
        {"name": "Git", "type": "SOFTWARE"},
        {"name": "SSH", "type": "PROTOCOL"},
        {"name": "Richard Stallman", "type": "PERSON"},  # not in the text: dropped
        {"name": "2005", "type": "EVENT"},  # a number: dropped
    ],
    "relations": [
        {
            "head": "Linus Torvalds",
            "type": "CREATED",
            "tail": "Git",
            "verb": "write",
            "sentence": "Linus Torvalds wrote Git in 2005.",
        },
        {"head": "Git", "type": "SUPPORTS", "tail": "SSH", "verb": "support", "sentence": ""},
        {"head": "Git", "type": "INVENTED_TYPE", "tail": "SSH", "verb": "x", "sentence": ""},
    ],
}


@dataclass
class FakeEndpoint:
    url: str
    #: Status codes answered before the real answer, one per request.
    failures: list[int] = field(default_factory=list)
    content: Callable[[str], str] = lambda _text: json.dumps(ANSWER)
    delay_s: float = 0.0
    requests: list[dict[str, Any]] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


@pytest.fixture
def endpoint() -> Iterator[FakeEndpoint]:
    state = FakeEndpoint(url="")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with state.lock:
                state.requests.append(
                    {"path": self.path, "auth": self.headers.get("Authorization"), **body}
                )
                status = state.failures.pop(0) if state.failures else 200
                state.in_flight += 1
                state.max_in_flight = max(state.max_in_flight, state.in_flight)
            time.sleep(state.delay_s)
            with state.lock:
                state.in_flight -= 1
            if status != 200:
                self.send_response(status)
                self.end_headers()
                return
            text = body["messages"][-1]["content"]
            answer = {
                "choices": [{"message": {"role": "assistant", "content": state.content(text)}}],
                "usage": {"prompt_tokens": 100, "completion_tokens": 20},
            }
            payload = json.dumps(answer).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_port}/v1"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def recogniser(endpoint: FakeEndpoint, **config: Any) -> LlmRecogniser:
    settings = {"url": endpoint.url, "model": "fake-model", "api_key": "sk-test", **config}
    return LlmRecogniser(
        LlmConfig(**settings), RuleBasedRecogniser(), wait_initial_s=0.01, wait_max_s=0.05
    )


def test_the_answer_becomes_entities_and_typed_relations_with_their_sentence(
    endpoint: FakeEndpoint,
) -> None:
    llm = recogniser(endpoint, input_price_per_mtok=2.0, output_price_per_mtok=10.0)
    graph = extract_graph("u1", "d1", [ChunkText("c1", 0, TEXT)], llm)

    assert {(e.name, e.type) for e in graph.entities} == {
        ("Linus Torvalds", "PERSON"),
        ("Git", "SOFTWARE"),
        ("SSH", "PROTOCOL"),
    }
    typed = {
        (r.source_key, r.type, r.target_key, r.evidence)
        for r in graph.relations
        if r.type != "RELATED_TO"
    }
    assert typed == {
        ("linus torvalds", "CREATED", "git", ("d1:c1:0",)),
        ("git", "SUPPORTS", "ssh", ("d1:c1:1",)),
    }
    request = endpoint.requests[0]
    assert request["path"] == "/v1/chat/completions"
    assert request["auth"] == "Bearer sk-test"
    assert request["model"] == "fake-model"
    assert llm.last_usage.input_tokens == 100
    assert llm.last_usage.output_tokens == 20
    assert llm.last_usage.cost == pytest.approx((100 * 2.0 + 20 * 10.0) / 1_000_000)
    assert llm.last_usage.fallbacks == 0


def test_429_and_5xx_are_retried(endpoint: FakeEndpoint) -> None:
    endpoint.failures = [503, 429]
    llm = recogniser(endpoint, attempts=3)
    chunks = llm.recognise([TEXT])
    assert len(endpoint.requests) == 3
    assert llm.last_usage.requests == 3
    assert llm.last_usage.fallbacks == 0
    assert chunks[0][0].relations


def test_a_chunk_the_endpoint_keeps_failing_is_read_offline(endpoint: FakeEndpoint) -> None:
    endpoint.failures = [500, 500]
    llm = recogniser(endpoint, attempts=2)
    chunks = llm.recognise([TEXT])
    assert len(endpoint.requests) == 2
    assert llm.last_usage.fallbacks == 1
    # The rule-based fallback's answer: capitalised names, no types, no typed relations.
    assert {s.label for sentence in chunks[0] for s in sentence.spans} == {"ENTITY"}


def test_a_client_error_is_not_retried_and_falls_back(endpoint: FakeEndpoint) -> None:
    endpoint.failures = [401]
    llm = recogniser(endpoint, attempts=3)
    llm.recognise([TEXT])
    assert len(endpoint.requests) == 1
    assert llm.last_usage.fallbacks == 1


def test_an_answer_that_is_not_json_falls_back(endpoint: FakeEndpoint) -> None:
    endpoint.content = lambda _text: "Sure! Here are the entities: Git, SSH."
    llm = recogniser(endpoint)
    llm.recognise([TEXT, TEXT])
    assert llm.last_usage.fallbacks == 2
    assert llm.last_usage.input_tokens == 200  # tokens are spent all the same


def test_concurrency_is_bounded(endpoint: FakeEndpoint) -> None:
    endpoint.delay_s = 0.05
    llm = recogniser(endpoint, max_concurrency=2)
    llm.recognise([TEXT] * 8)
    assert len(endpoint.requests) == 8
    assert endpoint.max_in_flight == 2


def test_the_llm_is_off_by_default_and_needs_an_endpoint_when_on(endpoint: FakeEndpoint) -> None:
    assert GraphSettings().recogniser == "spacy"
    with pytest.raises(ValueError, match="KGLAB_GRAPH_LLM_URL"):
        GraphSettings(recogniser="llm")
    settings = GraphSettings(recogniser="llm", llm_url=endpoint.url, llm_model="fake-model")
    built = build_recogniser(settings)
    assert isinstance(built, LlmRecogniser)
    assert built.name == "llm:fake-model"
