"""deploy/ci/no_skips.py, the workflow's step that fails a run with any skipped test, fails."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "deploy/ci/no_skips.py"


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("no_skips", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def report(tmp_path: Path, cases: str) -> str:
    path = tmp_path / "junit.xml"
    path.write_text(f'<testsuites><testsuite name="pytest">{cases}</testsuite></testsuites>')
    return str(path)


PASSED = '<testcase classname="tests.a" name="test_one" />'
SKIPPED = (
    '<testcase classname="tests.vector" name="test_hits[server]">'
    '<skipped message="No Qdrant server" /></testcase>'
)


def test_a_report_without_skips_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert load().main(["no_skips.py", report(tmp_path, PASSED * 3)]) == 0
    assert "3 tests, none skipped" in capsys.readouterr().out


def test_a_skipped_test_fails_the_step(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert load().main(["no_skips.py", report(tmp_path, PASSED + SKIPPED)]) == 1
    assert "tests.vector::test_hits[server]" in capsys.readouterr().out


def test_a_report_with_no_test_fails_the_step(tmp_path: Path) -> None:
    assert load().main(["no_skips.py", report(tmp_path, "")]) == 1
