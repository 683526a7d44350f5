"""Every ``kglab`` command offers ``--json`` and ``--url``."""

from __future__ import annotations

import typer.main

from kglab_cli.main import app


def test_every_command_takes_json_and_url() -> None:
    group = typer.main.get_command(app)
    commands = group.commands  # type: ignore[attr-defined]
    assert set(commands) >= {
        "login",
        "ingest",
        "jobs",
        "search",
        "entities",
        "neighbors",
        "path",
        "delete",
        "export",
    }
    for name, command in commands.items():
        options = {opt for param in command.params for opt in param.opts}
        assert {"--json", "--url"} <= options, name
