"""A scripted recogniser, so graph tests choose exactly which entities each sentence names.

Text format: one sentence per line, entities separated by ``;``, each ``Name/TYPE``.
"""

from __future__ import annotations

from collections.abc import Sequence

from kglab_graph.domain import ExtractedGraph
from kglab_graph.extraction import (
    ChunkText,
    RecognisedChunk,
    RecognisedSentence,
    RecognisedSpan,
    chunk_refs,
    extract_graph,
)
from kglab_graph.store.port import GraphStore


class ScriptedRecogniser:
    name = "scripted"

    def recognise(self, texts: Sequence[str]) -> list[RecognisedChunk]:
        return [
            [
                RecognisedSentence(
                    [
                        RecognisedSpan(*item.strip().split("/", 1))
                        for item in line.split(";")
                        if item.strip()
                    ],
                    line,
                )
                for line in text.splitlines()
                if line.strip()
            ]
            for text in texts
        ]


def script(*sentences: str) -> str:
    return "\n".join(sentences)


async def apply_script(
    store: GraphStore, owner: str, document_id: str, *chunk_texts: str, title: str = "A title"
) -> ExtractedGraph:
    chunks = [
        ChunkText(id=f"{document_id}-c{i}", position=i, text=text)
        for i, text in enumerate(chunk_texts)
    ]
    graph = extract_graph(owner, document_id, chunks, ScriptedRecogniser())
    await store.apply_document(
        owner,
        document_id,
        title,
        chunk_refs(chunks),
        graph.entities,
        graph.mentions,
        graph.relations,
    )
    return graph
