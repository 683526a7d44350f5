"""``kglab``: Knowledge Graph Lab from the command line.

Every command takes ``--json`` for scripts (one JSON document on standard output) and the
server's ``--url`` (``KGLAB_URL``, default ``http://127.0.0.1:8000``). A failure prints one
sentence on standard error and exits 1.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskID, TextColumn
from rich.table import Table

from kglab_cli import ingest as ingesting
from kglab_cli.client import DEFAULT_URL, Api, CliError, Credentials, detail_of

app = typer.Typer(
    name="kglab",
    help="Knowledge Graph Lab: ingest files, follow jobs, search and walk the knowledge graph.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True)

Url = Annotated[
    str, typer.Option("--url", envvar="KGLAB_URL", help="The gateway's address.", show_default=True)
]
AsJson = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def checked_url(url: str) -> str:
    """The server's address, refused in a sentence unless it is an http(s) URL with a host."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        parsed = None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
        raise CliError(
            f"{url!r} is not a server address: give one like {DEFAULT_URL} (--url or KGLAB_URL)."
        )
    return url


def counted(number: int, singular: str, plural: str | None = None) -> str:
    """``1 source``, ``2 sources``."""
    return f"{number} {singular if number == 1 else plural or singular + 's'}"


@contextmanager
def connected(url: str) -> Iterator[Api]:
    api = Api(checked_url(url), Credentials())
    try:
        yield api
    finally:
        api.close()


def emit(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def fail(message: str, *, as_json: bool) -> None:
    if as_json:
        emit({"error": message})
    else:
        err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(1)


def guarded(command: Callable[..., None]) -> Callable[..., None]:
    """Turn a CliError into one sentence and exit status 1."""
    import functools

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            command(*args, **kwargs)
        except CliError as exc:
            fail(str(exc), as_json=bool(kwargs.get("as_json")))

    return wrapper


def table(
    title: str,
    columns: list[str],
    rows: list[list[Any]],
    *,
    empty: str,
    whole: frozenset[str] = frozenset({"id", "job", "document_id"}),
) -> None:
    """Rows as a table, or the ``empty`` sentence when there are none. The ``whole`` columns
    (ids a user copies into another command) never wrap: the other columns shrink instead."""
    if not rows:
        out.print(empty, highlight=False)
        return
    view = Table(title=title, title_justify="left", show_lines=False)
    for column in columns:
        if column in whole:
            view.add_column(column, no_wrap=True, overflow="ignore", min_width=32)
        else:
            view.add_column(column, overflow="fold")
    for row in rows:
        view.add_row(*["" if cell is None else str(cell) for cell in row])
    out.print(view)


@app.command()
@guarded
def login(
    email: Annotated[str, typer.Option(envvar="KGLAB_EMAIL", prompt=True)],
    password: Annotated[
        str | None,
        typer.Option(
            envvar="KGLAB_PASSWORD",
            show_default=False,
            help="Asked for when not given (twice with --register).",
        ),
    ] = None,
    register: Annotated[bool, typer.Option(help="Create the account first.")] = False,
    url: Url = DEFAULT_URL,
    as_json: AsJson = False,
) -> None:
    """Sign in and keep the session in your config directory (readable by you only)."""
    if password is None:
        # A new account's password is typed twice: a typo would lock the user out of it.
        password = str(typer.prompt("Password", hide_input=True, confirmation_prompt=register))
    with connected(url) as api:
        api.login(email, password, register=register)
        where = str(api.credentials.path)
    if as_json:
        emit({"email": email, "url": url, "credentials": where})
    else:
        out.print(f"Logged in to {url} as {email} (session kept in {where}).", highlight=False)


@app.command()
@guarded
def logout(url: Url = DEFAULT_URL, as_json: AsJson = False) -> None:
    """Sign out: end the session on the server and forget its tokens."""
    with connected(url) as api:
        api.logout()
    if as_json:
        emit({"logged_out": True, "url": url})
    else:
        out.print(f"Logged out of {url}.", highlight=False)


@app.command()
@guarded
def ingest(
    paths: Annotated[list[str], typer.Argument(help="Files, folders (recursively) or URLs.")],
    parallel: Annotated[int, typer.Option(min=1, max=16, help="Sources sent at once.")] = 4,
    wait: Annotated[bool, typer.Option(help="Follow each job until it completes.")] = True,
    fresh: Annotated[
        bool, typer.Option(help="Ignore what earlier runs recorded and send everything again.")
    ] = False,
    url: Url = DEFAULT_URL,
    as_json: AsJson = False,
) -> None:
    """Ingest files, folders and URLs; resumable, duplicates skipped, exit 1 if any failed."""
    sources = ingesting.sources_of(paths)
    if not sources:
        raise CliError("Nothing to ingest: the folders hold no files.")
    with connected(url) as api:
        if as_json:
            runner = ingesting.Ingestion(api, parallel=parallel, wait=wait, report=lambda p: None)
            if fresh:
                runner.state.jobs.clear()
            summary = runner.run(sources)
        else:
            summary = _ingest_with_progress(api, sources, parallel=parallel, wait=wait, fresh=fresh)
    if as_json:
        emit(summary.as_json())
    else:
        out.print(
            f"{counted(len(sources), 'source')}: {summary.count('completed')} completed, "
            f"{counted(summary.count('duplicate'), 'duplicate')}, "
            f"{summary.count('skipped')} already ingested, {summary.count('submitted')} "
            f"submitted, {summary.count('failed')} failed.",
            highlight=False,
        )
        if summary.failed:
            # One line each: the reasons are sentences, too long for a table's column.
            out.print("What failed, and why:", style="bold")
            for outcome in summary.failed:
                out.print(f"  {outcome.label}: {outcome.error}", highlight=False, soft_wrap=True)
    if summary.failed:
        raise typer.Exit(1)


def _ingest_with_progress(
    api: Api, sources: list[ingesting.Source], *, parallel: int, wait: bool, fresh: bool
) -> ingesting.Summary:
    columns = (
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TextColumn("{task.fields[stage]}", markup=False),
    )
    with Progress(*columns, console=err, transient=False) as bars:
        overall = bars.add_task("all sources", total=len(sources), stage="")
        tasks: dict[str, TaskID] = {}

        def report(progress: ingesting.Progress) -> None:
            task = tasks.get(progress.label)
            if task is None:
                task = bars.add_task(progress.label, total=100, stage=progress.stage)
                tasks[progress.label] = task
            bars.update(task, completed=progress.percent, stage=progress.stage)
            if progress.final:
                bars.advance(overall)
                # Done: off the screen, so a folder of thousands shows only what is running.
                bars.update(task, visible=progress.stage == "failed")

        runner = ingesting.Ingestion(api, parallel=parallel, wait=wait, report=report)
        if fresh:
            runner.state.jobs.clear()
        return runner.run(sources)


@app.command()
@guarded
def jobs(
    status: Annotated[str | None, typer.Option(help="Only jobs in this status.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=100)] = 20,
    url: Url = DEFAULT_URL,
    as_json: AsJson = False,
) -> None:
    """List your ingestion jobs, newest first."""
    with connected(url) as api:
        page = api.get("/api/v1/jobs", status=status, limit=limit)
    if as_json:
        emit(page)
        return
    table(
        "Jobs",
        ["job", "status", "stage", "%", "source", "error"],
        [
            [
                j["job_id"],
                j["status"],
                j["stage"],
                j["progress"],
                j.get("source_name"),
                j.get("error"),
            ]
            for j in page["items"]
        ],
        empty="No jobs yet: `kglab ingest PATH` starts one.",
    )


@app.command()
@guarded
def documents(
    limit: Annotated[int, typer.Option(min=1, max=100)] = 20,
    source: Annotated[str | None, typer.Option(help="Only from this file name or URL.")] = None,
    url: Url = DEFAULT_URL,
    as_json: AsJson = False,
) -> None:
    """List your documents, newest first."""
    with connected(url) as api:
        page = api.get("/api/v1/documents", limit=limit, source=source)
    if as_json:
        emit(page)
        return
    table(
        "Documents",
        ["id", "title", "type", "chunks", "added"],
        [
            [d["id"], d["title"], d["media_type"], d["chunk_count"], d["created_at"]]
            for d in page["items"]
        ],
        empty="No documents yet: `kglab ingest PATH` adds them.",
    )


@app.command()
@guarded
def search(
    query: Annotated[str, typer.Argument(help="What to look for, in your own words.")],
    limit: Annotated[int, typer.Option(min=1, max=50)] = 10,
    graph: Annotated[bool, typer.Option(help="Add documents related through the graph.")] = True,
    url: Url = DEFAULT_URL,
    as_json: AsJson = False,
) -> None:
    """Search your documents."""
    if not query.strip():
        raise CliError("Give something to search for.")
    with connected(url) as api:
        answer = api.get("/api/v1/search", q=query, limit=limit, expand="graph" if graph else None)
    if as_json:
        emit(answer)
        return
    table(
        f"Results for '{query}'",
        ["score", "document", "text"],
        [
            [f"{r['score']:.3f}", r.get("title") or r["document_id"], r["text"]]
            for r in answer["results"]
        ],
        empty="Nothing relevant.",
    )
    related = answer.get("related_documents") or []
    if related:
        table(
            "Related through the graph",
            ["document", "shared entities", "via"],
            [[d["title"], d["shared_entities"], ", ".join(d["via"])] for d in related],
            empty="",
        )


@app.command()
@guarded
def entities(
    query: Annotated[str, typer.Argument(help="A name; typos are tolerated.")],
    limit: Annotated[int, typer.Option(min=1, max=200)] = 10,
    url: Url = DEFAULT_URL,
    as_json: AsJson = False,
) -> None:
    """Find entities of your graph by name."""
    if not query.strip():
        raise CliError("Give a name to look for.")
    with connected(url) as api:
        answer = api.get("/api/v1/graph/entities", q=query, limit=limit)
    if as_json:
        emit(answer)
        return
    table(
        "Entities",
        ["id", "name", "type", "score"],
        [[e["id"], e["name"], e["type"], e["score"]] for e in answer["results"]],
        empty="Nothing relevant.",
    )


@app.command()
@guarded
def neighbors(
    entity: Annotated[str, typer.Argument(help="An entity's name or id.")],
    depth: Annotated[int, typer.Option(min=1, max=3)] = 1,
    limit: Annotated[int, typer.Option(min=1, max=200)] = 50,
    url: Url = DEFAULT_URL,
    as_json: AsJson = False,
) -> None:
    """List the entities related to one, nearest first."""
    with connected(url) as api:
        # The server resolves the name: exact first, else the one close match; an ambiguous
        # name is refused with its candidates in the sentence.
        answer = api.get("/api/v1/graph/neighbors", entity=entity, depth=depth, limit=limit)
    if as_json:
        emit(answer)
        return
    table(
        f"Neighbours of {answer['entity']['name']}",
        ["distance", "name", "type", "id"],
        [[n["distance"], n["name"], n["type"], n["id"]] for n in answer["neighbors"]],
        empty=f"{answer['entity']['name']} is related to no other entity.",
    )


@app.command()
@guarded
def path(
    source: Annotated[str, typer.Argument(help="The first entity's name or id.")],
    target: Annotated[str, typer.Argument(help="The second entity's name or id.")],
    url: Url = DEFAULT_URL,
    as_json: AsJson = False,
) -> None:
    """Find the shortest path between two entities, by name."""
    with connected(url) as api:
        answer = api.get("/api/v1/graph/paths", **{"from": source, "to": target})
    if as_json:
        emit(answer)
        return
    names = " -> ".join(entity["name"] for entity in answer["entities"])
    steps = answer["length"]
    out.print(f"{steps} step{'' if steps == 1 else 's'}: {names}", highlight=False)


@app.command()
@guarded
def delete(
    document_ids: Annotated[list[str], typer.Argument(help="The documents to delete.")],
    wait: Annotated[bool, typer.Option(help="Wait until every store has let go.")] = True,
    url: Url = DEFAULT_URL,
    as_json: AsJson = False,
) -> None:
    """Delete documents; their chunks, vectors and graph go with them; exit 1 if any failed."""
    with connected(url) as api:
        api.require_login()
        # Each id on its own: one unknown id neither stops nor hides the others.
        results = [_delete_one(api, document_id, wait=wait) for document_id in document_ids]
    if as_json:
        emit(results)
    else:
        table(
            "Deletions",
            ["document_id", "result", "detail"],
            [[r["document_id"], r["result"], r.get("error") or _parts(r)] for r in results],
            empty="",
        )
    if any(r["result"] not in ("deleted", "in progress") for r in results):
        raise typer.Exit(1)


def _delete_one(api: Api, document_id: str, *, wait: bool) -> dict[str, Any]:
    """One document's deletion: ``result`` is deleted, in progress (without --wait), not
    found, or error (with the server's sentence)."""
    try:
        response = api.raw("DELETE", f"/api/v1/documents/{document_id}")
        if response.status_code == 404:
            return {
                "document_id": document_id,
                "result": "not found",
                "state": None,
                "error": detail_of(response),
            }
        if response.status_code >= 400:
            raise CliError(detail_of(response))
        status: dict[str, Any] = {"document_id": document_id, "state": "in_progress"}
        deadline = time.monotonic() + 120
        while wait and status["state"] != "complete" and time.monotonic() < deadline:
            status = api.get(f"/api/v1/documents/{document_id}/deletion")
            if status["state"] != "complete":
                time.sleep(0.25)  # the deletion's progress, polled over HTTP
    except CliError as exc:
        return {"document_id": document_id, "result": "error", "state": None, "error": str(exc)}
    if status["state"] == "complete":
        return {**status, "result": "deleted"}
    if wait:
        return {
            **status,
            "result": "error",
            "error": "Not every store had let go within 120 s; "
            f"`kglab delete {document_id}` again to follow it.",
        }
    return {**status, "result": "in progress"}


def _parts(status: dict[str, Any]) -> str:
    return ", ".join(
        f"{k}: {'gone' if v else 'pending'}" for k, v in (status.get("parts") or {}).items()
    )


class ExportFormat(StrEnum):
    graphml = "graphml"
    jsonld = "jsonld"
    csv = "csv"


#: Where each format goes without --output (csv: a folder of two files).
DEFAULT_EXPORT = {
    ExportFormat.graphml: "kglab-graph.graphml",
    ExportFormat.jsonld: "kglab-graph.jsonld",
    ExportFormat.csv: "kglab-graph-csv",
}
#: The files of the csv export, as the server's zip names them.
CSV_FILES = ("entities.csv", "relations.csv")


@app.command()
@guarded
def export(
    format_name: Annotated[
        str,
        typer.Option("--format", help="graphml, jsonld, or csv for neo4j-admin import."),
    ] = ExportFormat.graphml.value,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="The file to write; for csv, the folder that gets entities.csv and "
            "relations.csv. Default: kglab-graph.graphml, kglab-graph.jsonld, kglab-graph-csv/.",
        ),
    ] = None,
    force: Annotated[bool, typer.Option(help="Replace files already there.")] = False,
    url: Url = DEFAULT_URL,
    as_json: AsJson = False,
) -> None:
    """Export your graph (its most connected 5,000 entities and their relations) to disk."""
    try:
        export_format = ExportFormat(format_name.lower())
    except ValueError:
        raise CliError(
            f"kglab cannot export {format_name!r}: --format takes graphml, jsonld or csv."
        ) from None
    target = output or Path(DEFAULT_EXPORT[export_format])
    if not target.absolute().parent.is_dir():
        raise CliError(
            f"{target.absolute().parent} is not a folder: export writes into a folder that "
            "exists (create it first)."
        )
    is_csv = export_format is ExportFormat.csv
    if is_csv and target.exists() and not target.is_dir():
        raise CliError(f"{target} is a file: the csv export writes a folder of two files.")
    if not is_csv and target.is_dir():
        raise CliError(f"{target} is a folder: give the file to write with --output.")
    files = [target / name for name in CSV_FILES] if is_csv else [target]
    there = [str(f) for f in files if f.exists()]
    if there and not force:
        raise CliError(
            f"{', '.join(there)} {'already exists' if len(there) == 1 else 'already exist'}: "
            "choose another --output or add --force."
        )
    with connected(url) as api:
        if not api.get("/api/v1/graph/top-entities", limit=1)["results"]:
            raise CliError(
                "Your knowledge graph is empty: there is nothing to export yet. "
                "Ingest documents first (`kglab ingest PATH`)."
            )
        try:
            if is_csv:
                target.mkdir(mode=0o700, exist_ok=True)
                archive = target / ".kglab-export.zip.download"
                try:
                    api.download("/api/v1/graph/export", archive, format="csv")
                    _unzip_csv(archive, target)
                finally:
                    archive.unlink(missing_ok=True)
            else:
                api.download("/api/v1/graph/export", target, format=export_format.value)
        except OSError as exc:
            raise CliError(f"{target} cannot be written ({exc}).") from exc
    written = [{"path": str(f), "bytes": f.stat().st_size} for f in files]
    if as_json:
        emit({"format": export_format.value, "path": str(target), "files": written})
        return
    for item in written:
        out.print(f"Wrote {item['path']} ({item['bytes']:,} bytes).", highlight=False)
    if is_csv:
        out.print(
            "Load it into an empty Neo4j database with: neo4j-admin database import full neo4j "
            f"--nodes={files[0]} --relationships={files[1]}",
            highlight=False,
            soft_wrap=True,
        )


def _unzip_csv(archive: Path, folder: Path) -> None:
    """The two CSV files of the server's zip, by their known names only (nothing else in the
    archive is written anywhere)."""
    try:
        with zipfile.ZipFile(archive) as files:
            for name in CSV_FILES:
                partial = folder / f".{name}.part"
                # 0600 like the other formats: an export is a user's private graph.
                fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with files.open(name) as source, os.fdopen(fd, "wb") as sink:
                    shutil.copyfileobj(source, sink, 1024 * 1024)
                partial.replace(folder / name)
    except (zipfile.BadZipFile, KeyError) as exc:
        raise CliError(f"The server's csv export is not the expected zip ({exc}).") from exc


def run() -> None:
    """The console script's entry point: a usage error is one sentence too (JSON with
    ``--json``), not a box."""
    as_json = "--json" in sys.argv[1:]
    try:
        code = app(standalone_mode=False)
    except typer.Abort:
        code = _usage_error("Aborted.", None, as_json=as_json)
    except typer.TyperException as exc:
        # Click's errors (typer's own copy of click): a bad option, a missing argument.
        formatter = getattr(exc, "format_message", None)
        message = str(formatter() if formatter else exc)
        if message.strip():  # empty when the help was the answer (no command given)
            _usage_error(message, getattr(exc, "ctx", None), as_json=as_json)
        code = getattr(exc, "exit_code", 2)
    sys.exit(code if isinstance(code, int) else 0)


def _usage_error(message: str, context: Any, *, as_json: bool) -> int:
    if as_json:
        emit({"error": message})
    else:
        if context is not None:
            err.print(context.get_usage(), highlight=False, markup=False)
        err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return 1
