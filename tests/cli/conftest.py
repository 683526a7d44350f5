"""``kglab``, the installed console script, run against the live system (``make dev``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.live_system import PASSWORD, LiveSystem, group_on_one_worker

KGLAB = Path(sys.executable).parent / "kglab"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The CLI tests share the browser tests' worker and live system."""
    group_on_one_worker(items, Path(__file__).parent)


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


Kglab = Callable[..., Run]


@pytest.fixture
def kglab(live_system: LiveSystem, tmp_path: Path) -> Kglab:
    """Run ``kglab ARGS`` as a user would, with its own config directory."""
    assert KGLAB.exists(), f"{KGLAB} is missing: `make install` installs the console script"
    config = tmp_path / "config"

    def run(
        *args: str,
        env: dict[str, str] | None = None,
        timeout: float = 120.0,
        typed: str | None = None,
    ) -> Run:
        """``typed`` is what the user types at the prompts (standard input)."""
        environment = {
            **os.environ,
            "KGLAB_URL": live_system.url,
            "KGLAB_CONFIG_DIR": str(config),
            "COLUMNS": "200",
            **(env or {}),
        }
        done = subprocess.run(
            [str(KGLAB), *args],
            env=environment,
            input=typed,
            stdin=None if typed is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        return Run(done.returncode, done.stdout, done.stderr)

    run.config = config  # type: ignore[attr-defined]
    return run


@pytest.fixture
def logged_in(kglab: Kglab, live_system: LiveSystem) -> Kglab:
    email, _ = live_system.new_user()
    result = kglab("login", "--json", env={"KGLAB_EMAIL": email, "KGLAB_PASSWORD": PASSWORD})
    assert result.code == 0, result.stderr
    return kglab
