"""``make bench``: run every benchmark in one go, each bounded in time, and summarise.

Each ``bench_*.py`` prints its own table and writes ``bench/results/<name>.json``. Benchmarks
that need real servers read the ``KGLAB_*_URL`` variables (``make servers``) and say so
when they are missing. ``make bench BENCH=bus`` runs one. The benchmarks in ``BY_HAND`` take
minutes of downloads and run only when named (``make bench BENCH=fresh_machine``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TIMEOUT_S = int(os.environ.get("KGLAB_BENCH_TIMEOUT", "1800"))
#: Run only when ``BENCH`` names them: a clean clone installed from an empty package cache.
BY_HAND = {"bench_fresh_machine"}


def main() -> int:
    only = os.environ.get("BENCH")
    scripts = sorted(HERE.glob("bench_*.py"))
    if only:
        scripts = [s for s in scripts if s.stem == f"bench_{only}"]
    else:
        scripts = [s for s in scripts if s.stem not in BY_HAND]
    failures = []
    for script in scripts:
        print(f"\n##### {script.stem} #####", flush=True)
        started = time.perf_counter()
        try:
            result = subprocess.run(
                [sys.executable, str(script)], timeout=TIMEOUT_S, check=False, cwd=HERE.parent
            )
            code = result.returncode
        except subprocess.TimeoutExpired:
            code = -1
            print(f"{script.stem}: stopped after {TIMEOUT_S} s", flush=True)
        print(f"({script.stem}: exit {code}, {time.perf_counter() - started:.1f} s)", flush=True)
        if code != 0:
            failures.append(script.stem)
    print(f"\nresults in {HERE / 'results'}; failed: {', '.join(failures) or 'none'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
