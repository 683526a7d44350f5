"""The largest events' size, before and after the claim check (adr/0020).

Chunks a synthetic document of each size with ingestion's own chunker, then serialises
``document.extracted`` and ``document.stored`` as the bus does (``EventEnvelope.to_bytes``):
as they are now (ids, a chunk count and a claim) and as they were before (the same payload
with every chunk inline, schema version 1). Sizes in bytes; no timing, so the machine's load
does not matter (it is recorded all the same).
"""

from __future__ import annotations

import json
import os
import random
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.machine import describe
from kglab_ingestion.extraction.chunking import chunk_sections
from kglab_ingestion.extraction.model import Section
from kglab_shared.claims import new_claim
from kglab_shared.events import DocumentExtracted, DocumentStored, ExtractedChunk, Provenance

SIZES = (10_000, 1_000_000, 10_000_000)
WORDS = "salt town mining river guild charter copper harbour winter ledger".split()


def text_of(chars: int, rng: random.Random) -> str:
    words: list[str] = []
    total = 0
    while total < chars:
        word = rng.choice(WORDS)
        words.append(word)
        total += len(word) + 1
    return " ".join(words)


def events(chars: int) -> dict[str, Any]:
    rng = random.Random(chars)
    paragraphs = [text_of(800, rng) for _ in range(max(1, chars // 800))]
    sections = [Section(text=p, heading=f"Part {i // 10}") for i, p in enumerate(paragraphs)]
    chunks = chunk_sections(sections)
    document_id = "530a20c599725e8d8168319cbc3d624b"
    inline = [
        ExtractedChunk(
            chunk_id=f"{document_id}-{c.position:05d}",
            position=c.position,
            text=c.text,
            heading=c.heading,
        ).model_dump(mode="json")
        for c in chunks
    ]
    extracted = DocumentExtracted(
        document_id=document_id,
        job_id="adc0851c86524f2e838e7f9bb06af6ec",
        owner_id="9c8f1f0e-80c1-4dd9-a796-973982e0ddff",
        title="Velmora: a salt town",
        media_type="text/markdown",
        metadata={"headings": len(sections) // 10},
        provenance=Provenance(
            source_name="velmora.md",
            uploader_id="9c8f1f0e-80c1-4dd9-a796-973982e0ddff",
            uploaded_at=datetime(2026, 12, 6, tzinfo=UTC),
            size_bytes=chars,
            content_type="text/markdown",
            sha256="0f" * 32,
            processor_version="kglab-extraction/1.0",
        ),
        chunk_count=len(inline),
        claim=new_claim(),
    )
    stored = DocumentStored(
        document_id=document_id,
        owner_id=extracted.owner_id,
        title=extracted.title,
        media_type=extracted.media_type,
        chunk_count=len(inline),
        claim=extracted.claim,
    )
    sizes: dict[str, Any] = {"text_chars": chars, "chunks": len(inline)}
    for name, event in (("document.extracted", extracted), ("document.stored", stored)):
        envelope = event.envelope(source="kglab/bench")
        before_data = {k: v for k, v in envelope.data.items() if k not in ("claim", "chunk_count")}
        before = envelope.model_copy(update={"data": {**before_data, "chunks": inline}})
        before = before.model_copy(update={"schema_version": 1})
        sizes[name] = {"before": len(before.to_bytes()), "after": len(envelope.to_bytes())}
    return sizes


def main() -> None:
    rows = [events(chars) for chars in SIZES]
    print(f"{'text':>12} {'chunks':>7} {'event':<20} {'before B':>12} {'after B':>9}")
    for row in rows:
        for name in ("document.extracted", "document.stored"):
            print(
                f"{row['text_chars']:>12,} {row['chunks']:>7} {name:<20} "
                f"{row[name]['before']:>12,} {row[name]['after']:>9,}"
            )
    out = Path(__file__).parent / "results" / "event_size.json"
    machine = describe() | {"loadavg": os.getloadavg()}
    out.write_text(json.dumps({"machine": machine, "documents": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
