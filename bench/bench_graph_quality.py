"""Graph extraction quality and speed, every extractor side by side (adr/0024).

    .venv/bin/python bench/bench_graph_quality.py [--repeat 3] [--baseline]

Scores each extractor on ``tests/data/graph_eval/passages.jsonl`` (60 passages written for the
project: news, technical docs, READMEs, man pages): entity, typed-entity, typed-relation and
related-pair precision / recall / F1, overall and per text kind. Then the throughput of each:
the passages extracted ``--repeat`` times, words/s and entities/s (median of the repeats; the
model's load is not counted). Writes ``bench/results/graph_quality.json`` with the load
average, since timings on a shared machine are inflated. ``--baseline`` writes
``graph_quality_baseline.json`` instead (the extractor as it was before adr/0024, kept for the
side-by-side table).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from machine import RESULTS, save  # noqa: E402

from kglab_graph.config import GraphSettings  # noqa: E402
from kglab_graph.extraction import (  # noqa: E402
    ChunkText,
    EntityRecogniser,
    create_recogniser,
    extract_graph,
)
from kglab_graph.main import build_recogniser  # noqa: E402
from tests.data.graph_eval.score import load_passages, score  # noqa: E402

EXTRACTORS = ("rules", "spacy-model-only", "spacy")


def throughput(
    recogniser: EntityRecogniser, passages: list[dict[str, Any]], repeat: int
) -> dict[str, Any]:
    words = sum(len(p["text"].split()) for p in passages)
    timings, cpu, entities = [], [], 0
    for _ in range(repeat):
        started, cpu_started = time.perf_counter(), time.process_time()
        entities = 0
        for passage in passages:
            graph = extract_graph(
                "bench", passage["id"], [ChunkText("c", 0, passage["text"])], recogniser
            )
            entities += len(graph.entities)
        timings.append(time.perf_counter() - started)
        cpu.append(time.process_time() - cpu_started)
    median = statistics.median(timings)
    cpu_median = statistics.median(cpu)
    return {
        "seconds_median": round(median, 4),
        "words": words,
        "entities": entities,
        "words_per_s": round(words / median, 1),
        "entities_per_s": round(entities / median, 1),
        # CPU time is what the load of other work inflates least: words per CPU-second.
        "cpu_seconds_median": round(cpu_median, 4),
        "words_per_cpu_s": round(words / cpu_median, 1),
        "entities_per_cpu_s": round(entities / cpu_median, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--baseline", action="store_true")
    args = parser.parse_args()
    passages = load_passages()
    load_before = os.getloadavg()
    results: dict[str, Any] = {}
    kinds: list[str] = list(EXTRACTORS)
    if os.environ.get("KGLAB_GRAPH_LLM_URL") and os.environ.get("KGLAB_GRAPH_LLM_MODEL"):
        kinds.append("llm")  # the optional extractor, scored the same way when configured
    for kind in kinds:
        recogniser = (
            build_recogniser(GraphSettings(recogniser="llm"))
            if kind == "llm"
            else create_recogniser(kind)
        )
        report = score(recogniser, passages)
        results[kind] = {
            "name": recogniser.name,
            "scores": report.as_dict(),
            "throughput": throughput(recogniser, passages, args.repeat),
            "false_entities_sample": [list(f) for f in report.false_entities[:40]],
        }
    baseline_file = RESULTS / "graph_quality_baseline.json"
    baseline = None
    if not args.baseline and baseline_file.exists():
        baseline = json.loads(baseline_file.read_text())["extractors"].get("spacy")
    if "llm" not in results:
        print("llm: not configured (set KGLAB_GRAPH_LLM_URL and KGLAB_GRAPH_LLM_MODEL to score it)")
    print(f"{len(passages)} passages; load average {load_before[0]:.1f} (timings are inflated)")
    header = f"{'extractor':<22}{'kind':<8}{'ent F1':>8}{'typed F1':>9}{'rel P':>7}{'rel R':>7}"
    print(header + f"{'rel F1':>8}{'pair F1':>8}")
    rows = [("spacy (before 0024)", baseline)] if baseline else []
    rows += list(results.items())
    for name, result in rows:
        assert result is not None
        for kind, s in result["scores"].items():
            rel = s["relations"]
            print(
                f"{name:<22}{kind:<8}{s['entities']['f1']:>8.3f}{s['typed_entities']['f1']:>9.3f}"
                f"{rel['precision']:>7.3f}{rel['recall']:>7.3f}{rel['f1']:>8.3f}"
                f"{s['pairs']['f1']:>8.3f}"
            )
    for name, result in results.items():
        t = result["throughput"]
        print(
            f"{name}: {t['words_per_s']:.0f} words/s, {t['entities_per_s']:.0f} entities/s "
            f"(per CPU-second: {t['words_per_cpu_s']:.0f} words, "
            f"{t['entities_per_cpu_s']:.0f} entities)"
        )
    out: dict[str, Any] = {
        "passages": len(passages),
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
        "note": "timings on a shared 2-core machine; only ratios within one run mean much",
        "extractors": results,
    }
    if baseline:
        out["baseline_before_adr_0024"] = baseline
    path = save("graph_quality_baseline" if args.baseline else "graph_quality", out)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
