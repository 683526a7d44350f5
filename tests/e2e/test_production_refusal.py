"""A service started as its container starts it (``uvicorn --factory``), with nothing but the
image's defaults, refuses the stand-ins and says why, instead of serving on them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_a_service_started_with_no_environment_refuses_stand_ins(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("KGLAB_")}
    env["KGLAB_DATA_DIR"] = str(tmp_path / "data")
    # The image's CMD, with this interpreter.
    command = [sys.executable, "-m", "uvicorn", "--factory", "kglab_ingestion.main:create_app"]
    completed = subprocess.run(
        [*command, "--host", "127.0.0.1", "--port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert completed.returncode != 0
    error = completed.stderr
    assert "KGLAB_ENVIRONMENT is not set, which means production" in error
    for refused in ("KGLAB_STORES", "KGLAB_BUS", "KGLAB_CLAMD_URL", "KGLAB_INTERNAL_TOKEN_SECRET"):
        assert refused in error
    # It stopped before wiring anything: no embedded store was created.
    assert not (tmp_path / "data").exists()
