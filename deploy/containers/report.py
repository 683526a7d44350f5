"""Write bench/results/containers.json from what `make images` and `run.sh up` measured.

    python deploy/containers/report.py NAME [--restart SERVICE ...]

Reads .kglab/containers/images.json (each image's size and build seconds) and
.kglab/stack/NAME/ready.json (each container's seconds from `podman run` to its first 200 on
/ready); with --restart, also kills each named service's container (SIGKILL of its PID 1, as the
deployed suite's fault does) and times its restart policy until /ready answers again. Adds the
machine (bench/machine.py: cpus, memory) and the load average now.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO / "deploy" / "stack"))
from machine import describe, save  # noqa: E402
from topology import PORT_OFFSETS  # noqa: E402


def ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def restart_s(name: str, service: str, gateway_port: int, timeout_s: float = 120) -> float:
    container = f"kglab-{name}-{service}"
    pid = int(
        subprocess.run(
            ["podman", "inspect", "--format", "{{.State.Pid}}", container],
            check=True,
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout
    )
    if pid <= 0:
        raise RuntimeError(f"{container} is not running")
    url = f"http://127.0.0.1:{gateway_port + PORT_OFFSETS[service]}/ready"
    started = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    while ready(url):  # until the kill has landed
        time.sleep(0.05)
    while not ready(url):
        if time.monotonic() - started > timeout_s:
            raise TimeoutError(f"{service} not back within {timeout_s} s")
        time.sleep(0.1)
    return round(time.monotonic() - started, 2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("name")
    parser.add_argument("--restart", nargs="*", default=[], choices=tuple(PORT_OFFSETS))
    args = parser.parse_args()
    images = json.loads((REPO / ".kglab" / "containers" / "images.json").read_text())
    started = json.loads((REPO / ".kglab" / "stack" / args.name / "ready.json").read_text())
    port = int(started["gateway_url"].rsplit(":", 1)[1])
    restarts = {service: restart_s(args.name, service, port) for service in args.restart}
    results = {
        "load_1m_now": float(Path("/proc/loadavg").read_text().split()[0]),
        "build": images,
        "start_to_ready": started,
        "restart_after_sigkill_to_ready_s": restarts,
        "container_options": (
            "--network host --user 10001:10001 --read-only --tmpfs /tmp --cap-drop ALL "
            "--security-opt no-new-privileges --init --restart unless-stopped --no-healthcheck"
        ),
    }
    path = save("containers", results)
    print(json.dumps({"machine": describe(), **results}, indent=2))
    print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
