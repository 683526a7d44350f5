"""Extraction benchmark: PDF extractors compared, peak memory on a large PDF, chunking speed.

    uv run python bench/bench_extraction.py [--runs 7] [--heavy-mb 50] [--big-pages 200]
    uv run python bench/bench_extraction.py --smoke      # tiny sizes, seconds: checks it runs

1. The 10-page corpus PDF, every extractor (PDFium, pypdf): open + every page's text, median
   of ``--runs`` (target < 0.3 s).
2. A ``--big-pages``-page PDF, each extractor, one run after a warm-up.
3. Peak RSS extracting a ``--heavy-mb`` MB PDF (text plus incompressible images), per
   extractor, each in a fresh subprocess (``VmHWM`` of the child, plus its interpreter
   baseline) (target < 250 MB).
4. Chunking throughput: characters per second through ``chunk_sections`` and MinHash.

Large PDFs are built on demand into tests/data/.cache/. Prints a table and writes
``bench/results/extraction.json`` with machine information.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from machine import save  # noqa: E402

from bench.pdf_extractors import PDF_EXTRACTORS, pdf_sections  # noqa: E402
from kglab_ingestion.extraction import (  # noqa: E402
    Section,
    chunk_sections,
    minhash_signature,
)
from tests.data.corpus import corpus_file, large_file  # noqa: E402
from tests.data.generate import CACHE, heavy_pdf, paged_pdf, prose, write_atomically  # noqa: E402

PDF = "application/pdf"
TARGET_10_PAGES_S = 0.3
TARGET_PEAK_MB = 250

# Run in a child: extract every page of one PDF and report peak RSS (KiB on Linux).
_CHILD = """
import json, sys
from pathlib import Path


def high_water_kib():
    # VmHWM, not ru_maxrss: ru_maxrss survives exec, so a child spawned by a big parent would
    # report the parent's size; VmHWM belongs to this process image alone.
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


baseline = high_water_kib()
from bench.pdf_extractors import pdf_sections
from kglab_ingestion.extraction import chunk_sections
imported = high_water_kib()
pages = chars = chunks = 0
for sections in pdf_sections(Path(sys.argv[1]), sys.argv[2]):
    pages += 1
    chars += sum(len(s.text) for s in sections)
    chunks += len(chunk_sections(sections))
peak = high_water_kib()
print(json.dumps({"baseline_kib": baseline, "imported_kib": imported, "peak_kib": peak,
                  "pages": pages, "chars": chars, "chunks": chunks}))
"""


def extract_all(path: Path, extractor: str) -> int:
    return sum(len(s.text) for sections in pdf_sections(path, extractor) for s in sections)


def timed_runs(path: Path, extractor: str, runs: int) -> dict[str, Any]:
    extract_all(path, extractor)  # warm-up: imports, caches
    samples = []
    chars = 0
    for _ in range(runs):
        started = time.perf_counter()
        chars = extract_all(path, extractor)
        samples.append(time.perf_counter() - started)
    return {
        "runs": runs,
        "median_s": round(statistics.median(samples), 4),
        "min_s": round(min(samples), 4),
        "max_s": round(max(samples), 4),
        "chars": chars,
    }


def peak_rss(path: Path, extractor: str) -> dict[str, Any]:
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path), extractor],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    report = json.loads(result.stdout.strip().splitlines()[-1])
    return {
        "peak_rss_mb": round(report["peak_kib"] / 1024, 1),
        "after_imports_mb": round(report["imported_kib"] / 1024, 1),
        "extraction_delta_mb": round((report["peak_kib"] - report["imported_kib"]) / 1024, 1),
        "pages": report["pages"],
        "chars": report["chars"],
        "chunks": report["chunks"],
        "seconds": round(time.perf_counter() - started, 2),
    }


def chunking_throughput(total_chars: int) -> dict[str, Any]:
    rng = random.Random(3)
    sections = []
    size = 0
    while size < total_chars:
        text = prose(rng, rng.randint(2, 40))
        sections.append(Section(f"Heading {len(sections) // 5}", text, "paragraph"))
        size += len(text)
    started = time.perf_counter()
    chunks = chunk_sections(sections)
    chunk_s = time.perf_counter() - started
    text = "\n".join(s.text for s in sections)
    started = time.perf_counter()
    minhash_signature(text)
    minhash_s = time.perf_counter() - started
    return {
        "chars": size,
        "chunks": len(chunks),
        "chunking_s": round(chunk_s, 4),
        "chunking_mb_per_s": round(size / chunk_s / 1e6, 2),
        "minhash_s": round(minhash_s, 4),
        "minhash_mb_per_s": round(size / minhash_s / 1e6, 2),
    }


def on_demand(name: str, build: Any) -> Path:
    path = CACHE / name
    if not path.exists():
        write_atomically(path, build())
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--heavy-mb", type=float, default=50)
    parser.add_argument("--big-pages", type=int, default=200)
    parser.add_argument("--chunk-mb", type=float, default=5)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: does it run?")
    args = parser.parse_args()
    if args.smoke:
        args.runs, args.heavy_mb, args.big_pages, args.chunk_mb = 3, 5, 20, 0.5
    extractors = sorted(PDF_EXTRACTORS)

    ten = corpus_file("ten-pages.pdf")
    if args.big_pages == 200:
        big = large_file("pages-200.pdf")
    else:
        big = on_demand(f"pages-{args.big_pages}.pdf", lambda: paged_pdf(args.big_pages, seed=200))
    if args.heavy_mb in (50, 5):
        heavy = large_file(f"heavy-{args.heavy_mb:g}mb.pdf")
    else:
        heavy = on_demand(f"heavy-{args.heavy_mb:g}mb.pdf", lambda: heavy_pdf(args.heavy_mb))

    results: dict[str, Any] = {
        "smoke": args.smoke,
        "targets": {"ten_pages_s": TARGET_10_PAGES_S, "peak_rss_mb": TARGET_PEAK_MB},
        "ten_pages": {},
        "big_pdf": {"pages": args.big_pages},
        "heavy_pdf": {"mb": round(heavy.stat().st_size / 2**20, 1)},
    }
    for extractor in extractors:
        results["ten_pages"][extractor] = timed_runs(ten, extractor, args.runs)
        results["big_pdf"][extractor] = timed_runs(big, extractor, 1)
        results["heavy_pdf"][extractor] = peak_rss(heavy, extractor)
    results["chunking"] = chunking_throughput(int(args.chunk_mb * 1e6))

    label = " (SMOKE: tiny sizes, not a measurement)" if args.smoke else ""
    print(f"extraction benchmark{label}")
    print(
        f"{'extractor':<10} {'10 pages median s':>18} {f'{args.big_pages} pages s':>14} "
        f"{'heavy PDF peak RSS MB':>22} {'(after imports)':>16}"
    )
    for extractor in extractors:
        heavy_result = results["heavy_pdf"][extractor]
        print(
            f"{extractor:<10} {results['ten_pages'][extractor]['median_s']:>18.4f} "
            f"{results['big_pdf'][extractor]['median_s']:>14.3f} "
            f"{heavy_result['peak_rss_mb']:>22.1f} {heavy_result['after_imports_mb']:>16.1f}"
        )
    print(f"heavy PDF: {results['heavy_pdf']['mb']} MB on disk")
    chunking = results["chunking"]
    print(
        f"chunking: {chunking['chunking_mb_per_s']} MB/s ({chunking['chunks']} chunks), "
        f"MinHash: {chunking['minhash_mb_per_s']} MB/s"
    )
    ok_time = all(results["ten_pages"][e]["median_s"] < TARGET_10_PAGES_S for e in ("pdfium",))
    ok_memory = results["heavy_pdf"]["pdfium"]["peak_rss_mb"] < TARGET_PEAK_MB
    print(
        f"targets (pdfium, production): 10 pages < {TARGET_10_PAGES_S} s: {ok_time}; "
        f"peak < {TARGET_PEAK_MB} MB: {ok_memory}"
    )
    path = save("extraction-smoke" if args.smoke else "extraction", results)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
