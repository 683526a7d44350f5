"""``make dev`` start-up: seconds from process start to the first 200 on ``/health`` (liveness)
and on the gateway's ``/ready/system`` (every service built, started and answering; the
gateway's own ``/ready`` is itself and Redis only, ADR 0027; the models may
still be loading in their services' background threads).

Starts ``make dev``'s command (``deploy/dev/run.py``) as a subprocess on a free port with a
fresh data folder, polls ``/health`` every 20 ms (then ``/ready`` every 100 ms), stops the
process, and repeats ``--runs`` times. The first run is reported apart (cold-ish: the OS file
cache may still be cold); the median is over the runs after it (warm). Target from the
foundation issue: healthy in under 5 seconds on a warm machine. Bounded: each run gives up
after ``--timeout`` seconds.

Beside wall-clock seconds it records the CPU seconds the process had used when each route first
answered (from ``/proc/<pid>/stat``): on a shared machine the wall clock mostly measures the
neighbours, the CPU time much less so. ``--script`` starts another composition (an older
``run.py``, say) for a side-by-side comparison.

    .venv/bin/python bench/bench_startup.py [--runs 5] [--timeout 60] [--script deploy/dev/run.py]

Writes ``bench/results/startup.json``.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from machine import save

ROOT = Path(__file__).resolve().parents[1]
TARGET_HEALTHY_S = 5.0
POLL_S = 0.02
#: /ready asks every service in turn: polling it as often as /health would cost the process
#: a noticeable share of the CPU it is starting with.
READY_POLL_S = 0.1


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a running process (Linux), else None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def one_start(script: Path, timeout_s: float) -> dict[str, Any]:
    """Start the system once; the seconds to the first 200 on /health and on /ready."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="kglab-startup-") as folder:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KGLAB_")}
        env.update(
            {
                "KGLAB_PORT": str(port),
                "KGLAB_DATA_DIR": str(Path(folder) / "data"),
                "KGLAB_LOG_LEVEL": "WARNING",
            }
        )
        log_path = Path(folder) / "system.log"
        with log_path.open("wb") as log:
            started = time.perf_counter()
            process = subprocess.Popen(
                [sys.executable, str(script)],
                env=env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            healthy_s: float | None = None
            ready_s: float | None = None
            healthy_cpu_s: float | None = None
            ready_cpu_s: float | None = None
            try:
                with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=2.0) as client:
                    while time.perf_counter() - started < timeout_s:
                        if process.poll() is not None:
                            break
                        try:
                            if healthy_s is None and client.get("/health").status_code == 200:
                                healthy_s = time.perf_counter() - started
                                healthy_cpu_s = cpu_seconds(process.pid)
                            if (
                                healthy_s is not None
                                and client.get("/ready/system").status_code == 200
                            ):
                                ready_s = time.perf_counter() - started
                                ready_cpu_s = cpu_seconds(process.pid)
                                break
                        except httpx.TransportError:
                            pass
                        time.sleep(POLL_S if healthy_s is None else READY_POLL_S)
            finally:
                process.terminate()
                try:
                    process.wait(20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        tail = log_path.read_text(errors="replace")[-2000:] if ready_s is None else ""
    return {
        "healthy_s": None if healthy_s is None else round(healthy_s, 3),
        "ready_s": None if ready_s is None else round(ready_s, 3),
        "healthy_cpu_s": healthy_cpu_s,
        "ready_cpu_s": ready_cpu_s,
        **({"log_tail": tail} if tail else {}),
    }


def median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(statistics.median(present), 3) if present else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="starts in all; the first is cold")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per start")
    parser.add_argument("--script", type=Path, default=ROOT / "deploy" / "dev" / "run.py")
    args = parser.parse_args()
    # A shared machine: its load goes into the JSON beside the seconds.
    load_at_start = [round(value, 2) for value in os.getloadavg()]
    runs = []
    for number in range(max(1, args.runs)):
        run = one_start(args.script.resolve(), args.timeout)
        runs.append(run)
        print(
            f"run {number}: healthy {run['healthy_s']} s ({run['healthy_cpu_s']} s CPU), "
            f"ready {run['ready_s']} s ({run['ready_cpu_s']} s CPU)",
            flush=True,
        )
        if "log_tail" in run:
            print(run["log_tail"], file=sys.stderr)
    warm = runs[1:] or runs
    result = {
        "first_run": runs[0],
        "warm_runs": len(warm),
        "healthy_median_s": median([r["healthy_s"] for r in warm]),
        "ready_median_s": median([r["ready_s"] for r in warm]),
        "healthy_cpu_median_s": median([r["healthy_cpu_s"] for r in warm]),
        "ready_cpu_median_s": median([r["ready_cpu_s"] for r in warm]),
        "runs": runs,
    }
    passed = result["healthy_median_s"] is not None and (
        result["healthy_median_s"] < TARGET_HEALTHY_S
    )
    path = save(
        "startup",
        {
            "benchmark": "dev_startup",
            "script": str(args.script),
            "target_healthy_s": TARGET_HEALTHY_S,
            "loadavg_at_start": load_at_start,
            "loadavg_at_end": [round(value, 2) for value in os.getloadavg()],
            "result": result,
            "passed": passed,
        },
    )
    print(
        f"warm median: healthy {result['healthy_median_s']} s "
        f"({result['healthy_cpu_median_s']} s CPU; target < {TARGET_HEALTHY_S:g} s), "
        f"ready {result['ready_median_s']} s ({result['ready_cpu_median_s']} s CPU); wrote {path}"
    )
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
