"""What ``kglab`` says when it refuses, before any server is asked: one readable sentence on
standard error, or one JSON document with ``--json`` (never a box), and exit status non-zero."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from kglab_cli import main
from kglab_cli.ingest import sources_of


def kglab(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str, str]:
    """``kglab ARGS`` through the console script's entry point, without a server."""
    monkeypatch.setattr("sys.argv", ["kglab", *args])
    monkeypatch.setenv("COLUMNS", "200")
    with pytest.raises(SystemExit) as exited:
        main.run()
    captured = capsys.readouterr()
    code = exited.value.code
    return (code if isinstance(code, int) else 1), captured.out, captured.err


@pytest.mark.parametrize(
    ("args", "sentence"),
    [
        (["export", "--format", "xml"], "--format takes graphml, jsonld or csv"),
        (["export", "--nope"], "No such option: --nope"),
        (["path", "Oslo"], "Missing argument 'target'"),
        (["search", "x", "--url", "not a url"], "'not a url' is not a server address"),
        (["search", "  "], "Give something to search for."),
        (["entities", ""], "Give a name to look for."),
    ],
)
def test_every_refusal_with_json_is_one_json_document(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    sentence: str,
) -> None:
    code, stdout, stderr = kglab(monkeypatch, capsys, *args, "--json")
    assert code != 0
    assert sentence in json.loads(stdout)["error"]
    assert "Value error" not in stdout
    assert stderr == ""

    code, stdout, stderr = kglab(monkeypatch, capsys, *args)
    assert code != 0
    assert sentence in stderr
    assert "╭" not in stderr  # a sentence, not a box
    assert "'q'" not in stderr  # no parameter names of the API


def test_a_url_is_checked_before_the_login_is(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("KGLAB_CONFIG_DIR", str(tmp_path))  # logged out
    _, _, stderr = kglab(monkeypatch, capsys, "jobs", "--url", "not a url")
    assert "not a server address" in stderr
    assert "not logged in" not in stderr


def test_export_refuses_a_folder_that_is_not_there(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    for args in (
        ["--output", str(tmp_path / "missing" / "graph.graphml")],
        ["--format", "csv", "--output", str(tmp_path / "missing" / "csv")],
    ):
        code, _, stderr = kglab(monkeypatch, capsys, "export", *args)
        assert code == 1
        assert f"{tmp_path / 'missing'} is not a folder" in stderr
        assert not (tmp_path / "missing").exists()


def test_files_in_the_way_are_named_in_good_grammar(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "entities.csv").write_text("mine")
    _, _, one = kglab(monkeypatch, capsys, "export", "--format", "csv", "-o", str(tmp_path))
    (tmp_path / "relations.csv").write_text("mine")
    _, _, two = kglab(monkeypatch, capsys, "export", "--format", "csv", "-o", str(tmp_path))
    assert f"{tmp_path / 'entities.csv'} already exists:" in one
    assert "relations.csv already exist: choose another --output" in two


def test_counts_are_pluralised() -> None:
    assert [main.counted(n, "source") for n in (0, 1, 2)] == ["0 sources", "1 source", "2 sources"]
    assert main.counted(1, "duplicate") == "1 duplicate"


def test_a_missing_path_is_a_failure_of_its_own_not_the_end_of_the_run(tmp_path: Path) -> None:
    (tmp_path / "anna.md").write_text("Anna Berg lives in Oslo.")
    sources = sources_of([str(tmp_path / "missing.txt"), str(tmp_path / "anna.md")])
    assert [(Path(s.label).name, s.error is None) for s in sources] == [
        ("missing.txt", False),
        ("anna.md", True),
    ]
    assert "is neither a file, a folder nor an http(s) URL" in str(sources[0].error)


def test_ids_never_wrap_at_80_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    screen = io.StringIO()
    monkeypatch.setattr(main, "out", Console(file=screen, width=80))
    job_id = "0123456789abcdef0123456789abcdef"
    main.table(
        "Jobs",
        ["job", "status", "stage", "%", "source", "error"],
        [[job_id, "failed", "parsing", 10, "a-long-file-name.pdf", "not a format we read " * 3]],
        empty="No jobs.",
    )
    assert job_id in screen.getvalue()  # on one line, whole
    assert max(len(line) for line in screen.getvalue().splitlines()) <= 80


def test_an_empty_list_is_a_sentence_not_an_empty_table(monkeypatch: pytest.MonkeyPatch) -> None:
    screen = io.StringIO()
    monkeypatch.setattr(main, "out", Console(file=screen, width=80))
    main.table("Entities", ["id", "name"], [], empty="Nothing relevant.")
    assert screen.getvalue() == "Nothing relevant.\n"
