"""The folder benchmark on ``make stack``: a process per service on the real servers.

``make bench`` runs this as its own bounded script: ``bench_folder.py --mode stack`` with 400
documents of the same generator under its own stack name, stopped and purged afterwards, to
stay bounded beside the rest of the suite (the whole 1,000-document folder took 508 s on an
otherwise idle machine and did not finish in 25 minutes beside heavy neighbours, adr/0025:
``bench_folder.py --mode stack --output folder_stack_1000`` runs it). It needs the servers'
``KGLAB_*_URL`` variables (``eval "$(bash deploy/local/servers.sh env)"``) and says so when
they are missing.

Writes ``bench/results/folder_stack.json``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import bench_folder  # noqa: E402

NEEDED = ("KGLAB_POSTGRES_URL", "KGLAB_RABBITMQ_URL", "KGLAB_REDIS_URL")

if __name__ == "__main__":
    missing = [name for name in NEEDED if not os.environ.get(name)]
    if missing:
        print(f"make stack needs the servers ({', '.join(missing)} unset): skipped")
        sys.exit(0)
    sys.argv = [
        str(HERE / "bench_folder.py"),
        "--mode",
        "stack",
        "--documents",
        "400",
        "--time-limit",
        "1500",
        *sys.argv[1:],
    ]
    sys.exit(bench_folder.main())
