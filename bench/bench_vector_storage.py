"""Qdrant Edge's dense storage datatypes side by side, one owner holding 100,000 chunks.

``make bench`` runs this as its own bounded script: ``bench_vector.py --only storage`` with
float32, float16, turbo16 and turbo8 shards of the same chunks and a float32 copy whose HNSW a
child process builds (adr/0025, adr/0029). For the run beside neighbours that stream memory:

    .venv/bin/python bench/bench_vector.py --only storage --sizes 100000 --neighbours 4 \\
        --output bench/results/vector_storage_neighbours.json

Writes ``bench/results/vector_storage.json``.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import bench_vector  # noqa: E402

if __name__ == "__main__":
    sys.argv = [
        str(HERE / "bench_vector.py"),
        "--only",
        "storage",
        "--sizes",
        "100000",
        "--storage-owners",
        "1",
        "--hnsw",
        "--output",
        str(HERE / "results" / "vector_storage.json"),
        *sys.argv[1:],
    ]
    bench_vector.main()
