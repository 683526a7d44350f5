"""ONNX embedder variants side by side: chunks per second for each way of running the same model.

Every variant runs the same weights (MiniLM-L6 int8 export, ``kglab_vector.embedding.onnx``) and
must give the same vectors as the default (largest difference printed; float rounding only).
What varies: batch size, padding to each batch's longest text vs to the model's maximum (256
tokens), sorting a batch by length, onnxruntime threads, spinning worker threads, graph
optimisation level. Two text sets: equal lengths (60 words, as ``bench_vector.py``) and mixed
lengths (10 to 200 words, like real chunks). Variants are interleaved in ``--rounds`` rounds so
a neighbour's load spreads over all of them; each row gives the median wall-clock chunks/s and
chunks per CPU-second (the process's CPU time: robust on a shared machine, but it favours
fewer threads).

    .venv/bin/python bench/bench_embedding.py [--chunks 500] [--rounds 3] [--smoke]

Writes ``bench/results/embedding.json``.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from typing import Any

import numpy as np
from machine import save

from kglab_vector.embedding.onnx import OnnxEmbedder

WORDS = (
    "salt wool glass timber copper cheese ship honey pottery vineyard river town beetle "
    "festival lantern choir bonfire puppet harbour bridge market museum walls guild flood "
    "monks fort fishermen toll queen carapace cavern marsh meadow dune spore pollen carrion "
    "pendulum loom telescope varnish calculator diving bell mill orchard barge salmon"
).split()

#: name -> OnnxEmbedder keyword arguments; "default" is what the service runs.
VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "spinning threads": {"spinning": True},
    "1 thread": {"threads": 1},
    "batch 16": {"batch_size": 16},
    "batch 32": {"batch_size": 32},
    "batch 64": {"batch_size": 64},
    "unsorted": {"sort_by_length": False},
    "pad to 256": {"pad_to_max": True},
    "basic optimisation": {"optimization": "basic"},
}


def texts_of(kind: str, chunks: int) -> list[str]:
    rng = random.Random(7)
    lengths = [60] * chunks if kind == "equal" else [rng.randint(10, 200) for _ in range(chunks)]
    return [" ".join(rng.choice(WORDS) for _ in range(n)) for n in lengths]


def measure(embedder: OnnxEmbedder, texts: list[str]) -> tuple[float, float, list[list[float]]]:
    wall, cpu = time.perf_counter(), time.process_time()
    vectors = embedder.embed_documents(texts)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return len(texts) / wall, len(texts) / cpu, vectors


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated names")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks the script runs")
    args = parser.parse_args()
    if args.smoke:
        args.chunks, args.rounds = 16, 1
    names = [n.strip() for n in args.variants.split(",") if n.strip()]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        sys.exit(f"unknown variants: {', '.join(unknown)}; known: {', '.join(VARIANTS)}")
    if "default" not in names:
        names.insert(0, "default")
    embedders = {name: OnnxEmbedder(**VARIANTS[name]) for name in names}
    rows: list[dict[str, Any]] = []
    for kind in ("equal", "mixed"):
        texts = texts_of(kind, args.chunks)
        for embedder in embedders.values():
            embedder.embed_documents(texts[:8])  # warm-up
        wall: dict[str, list[float]] = {n: [] for n in names}
        cpu: dict[str, list[float]] = {n: [] for n in names}
        reference = np.asarray(embedders["default"].embed_documents(texts))
        differences: dict[str, float] = {}
        for _ in range(max(1, args.rounds)):
            for name, embedder in embedders.items():
                per_s, per_cpu_s, vectors = measure(embedder, texts)
                wall[name].append(per_s)
                cpu[name].append(per_cpu_s)
                difference = float(np.abs(np.asarray(vectors) - reference).max())
                differences[name] = max(differences.get(name, 0.0), difference)
        for name in names:
            rows.append(
                {
                    "texts": kind,
                    "variant": name,
                    "settings": VARIANTS[name],
                    "chunks": len(texts),
                    "chunks_per_s": round(statistics.median(wall[name]), 1),
                    "chunks_per_cpu_s": round(statistics.median(cpu[name]), 1),
                    "max_abs_difference": differences[name],
                }
            )
    print(f"{'texts':<6} {'variant':<20} {'chunks/s':>9} {'per CPU-s':>9} {'max |diff|':>11}")
    for row in rows:
        print(
            f"{row['texts']:<6} {row['variant']:<20} {row['chunks_per_s']:>9} "
            f"{row['chunks_per_cpu_s']:>9} {row['max_abs_difference']:>11.2e}"
        )
    same = all(row["max_abs_difference"] < 1e-3 for row in rows)
    path = save(
        "embedding",
        {
            "benchmark": "onnx_embedding_variants",
            "model": embedders["default"].model_name,
            "rounds": args.rounds,
            "rows": rows,
            "same_vectors": same,
        },
    )
    print(f"every variant gives the same vectors: {same}; wrote {path}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
