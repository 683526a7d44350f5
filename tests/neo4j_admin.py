"""The real ``neo4j-admin database import full``, to prove an export loads in Neo4j.

The importer is Neo4j's own (``org.neo4j.cli.AdminTool`` with ``neo4j-import-tool``), from the
jars of the local Neo4j launcher that ``make servers`` builds (``deploy/local/neo4j/target/lib``;
``KGLAB_NEO4J_LIB`` names another folder of them). It imports into a throwaway ``NEO4J_HOME``;
no server is touched. Without Java or the jars the tests skip locally and fail in CI.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.backends import backends_required

REPO = Path(__file__).resolve().parents[1]
LIB = Path(
    os.environ.get("KGLAB_NEO4J_LIB", REPO / "deploy" / "local" / "neo4j" / "target" / "lib")
)
#: A cold JVM importing a few rows on 2 loaded cores: seconds; the bound is for a hang.
TIMEOUT_S = 180.0


@dataclass(frozen=True)
class Imported:
    """What the importer said it loaded."""

    nodes: int
    relationships: int
    properties: int
    output: str


def importer_missing() -> str | None:
    if shutil.which("java") is None:
        return "java is not installed (the Neo4j importer runs on it)"
    if not list(LIB.glob("neo4j-import-tool-*.jar")):
        return f"no neo4j-import-tool jar in {LIB}: `make servers` builds the Neo4j launcher"
    return None


def require_importer() -> None:
    reason = importer_missing()
    if reason is not None:
        if backends_required():
            pytest.fail(f"KGLAB_REQUIRE_BACKENDS=1 but {reason}", pytrace=False)
        pytest.skip(reason)


def neo4j_admin_import(home: Path, nodes: Path, relationships: Path) -> Imported:
    """``neo4j-admin database import full neo4j --nodes=... --relationships=...`` with the
    defaults a user gets (no quoting or multiline options), into ``home``; fails the test with
    the importer's output when it refuses the files."""
    require_importer()
    (home / "conf").mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "NEO4J_HOME": str(home), "NEO4J_CONF": str(home / "conf")}
    done = subprocess.run(
        [
            "java",
            "-Xmx256m",
            "-cp",
            f"{LIB}/*",
            "org.neo4j.cli.AdminTool",
            "database",
            "import",
            "full",
            "neo4j",
            f"--nodes={nodes}",
            f"--relationships={relationships}",
            "--threads=1",
            f"--report-file={home / 'import.report'}",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    output = done.stdout + done.stderr
    report = home / "import.report"
    bad = report.read_text() if report.exists() else ""
    refused = f"neo4j-admin import refused the files (exit {done.returncode}):\n"
    assert done.returncode == 0, f"{refused}{output[-3000:]}\n{bad}"
    assert "IMPORT DONE" in output, f"{refused}{output[-3000:]}"
    assert not bad.strip(), f"neo4j-admin import reported bad entries:\n{bad}"

    def count(what: str) -> int:
        found = re.search(rf"^\s*(\d+) {what}\s*$", output, re.MULTILINE)
        assert found, f"no count of {what} in the importer's output:\n{output[-2000:]}"
        return int(found.group(1))

    return Imported(count("nodes"), count("relationships"), count("properties"), output)
