"""The command line against ``make dev``: login, ingest (folders, URLs, duplicates, failures,
resuming), jobs, documents, search, entities, neighbours, paths, export and delete."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
import uuid
from pathlib import Path
from xml.etree import ElementTree

import httpx

from tests.cli.conftest import Kglab
from tests.live_system import PASSWORD, LiveSystem
from tests.neo4j_admin import neo4j_admin_import, require_importer

CORPUS = {
    "salt.md": "# Salt\n\nVelmora is a salt town. Anna Berg mined salt in Velmora with Karl Odd.\n",
    "notes/company.txt": (
        "Karl Odd founded the Velmora Salt Company in Oslo. Anna Berg joined it.\n"
    ),
    "notes/deeper/curie.md": (
        "# Curie\n\nMarie Curie worked with Pierre Curie in Paris. "
        "Marie Curie discovered radium in Paris with Pierre Curie.\n"
    ),
    "notes/salt-again.md": (
        "# Salt\n\nVelmora is a salt town. Anna Berg mined salt in Velmora with Karl Odd.\n"
    ),
    "notes/picture.bin": "\x00\x01\x02\x03" * 64,
    ".hidden/secret.md": "left out: hidden folders are not ingested\n",
}


def write_corpus(root: Path) -> Path:
    for name, text in CORPUS.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_login_keeps_the_session_readable_by_its_owner_only(
    kglab: Kglab, live_system: LiveSystem
) -> None:
    refused = kglab("search", "salt")
    assert refused.code == 1
    assert "kglab login" in refused.stderr
    email, _ = live_system.new_user()
    wrong = kglab("login", "--email", email, "--password", "not the passphrase")
    assert wrong.code == 1
    assert "password" in wrong.stderr.lower()
    done = kglab("login", "--email", email, "--password", PASSWORD, "--json")
    assert done.code == 0, done.stderr
    credentials = Path(done.json()["credentials"])
    assert stat.S_IMODE(credentials.stat().st_mode) == 0o600
    assert stat.S_IMODE(credentials.parent.stat().st_mode) == 0o700
    assert PASSWORD not in credentials.read_text()
    assert kglab("jobs", "--json").code == 0
    assert kglab("logout", "--json").code == 0
    assert kglab("jobs").code == 1


def test_register_through_login(kglab: Kglab) -> None:
    email = "cli-new-user@example.com"
    done = kglab("login", "--register", "--email", email, "--password", PASSWORD)
    assert done.code == 0, done.stderr
    assert email in done.stdout
    again = kglab("login", "--register", "--email", email, "--password", PASSWORD)
    assert again.code == 1
    assert again.stderr.strip()  # the server's sentence, e.g. that the account exists


def test_register_asks_for_the_password_twice(kglab: Kglab) -> None:
    email = f"cli-{uuid.uuid4().hex[:12]}@example.com"
    # The two typings differ: nothing is created, and the prompt says why.
    typo = kglab("login", "--register", "--email", email, typed=f"{PASSWORD}\n{PASSWORD}x\n")
    assert typo.code == 1
    assert "do not match" in typo.stdout + typo.stderr
    assert kglab("login", "--email", email, "--password", PASSWORD).code == 1  # no account

    # A typo, then the same password twice: the account is created and signed in.
    typed = f"{PASSWORD}\n{PASSWORD}x\n{PASSWORD}\n{PASSWORD}\n"
    done = kglab("login", "--register", "--email", email, typed=typed)
    assert done.code == 0, done.stderr
    assert "Repeat for confirmation" in done.stdout + done.stderr
    assert email in done.stdout
    # Signing in later asks once.
    again = kglab("login", "--email", email, typed=f"{PASSWORD}\n")
    assert again.code == 0, again.stderr
    assert "Repeat" not in again.stdout + again.stderr


def test_ingest_a_folder_and_a_url_then_resume(logged_in: Kglab, tmp_path: Path) -> None:
    folder = write_corpus(tmp_path / "corpus")
    # Loopback is refused for URL ingestion unless allowed: a failure with its reason.
    first = logged_in("ingest", str(folder), "http://127.0.0.1:9/page", "--json")
    assert first.code == 1, first.stderr
    summary = first.json()
    by_name = {
        Path(s["label"]).name if "://" not in s["label"] else s["label"]: s
        for s in summary["sources"]
    }
    assert "secret.md" not in by_name
    assert {by_name[n]["status"] for n in ("company.txt", "curie.md")} == {"completed"}
    assert sorted(by_name[n]["status"] for n in ("salt.md", "salt-again.md")) == [
        "completed",
        "duplicate",
    ]
    assert by_name["picture.bin"]["status"] == "failed"
    assert "not a format we read" in by_name["picture.bin"]["error"]
    assert by_name["http://127.0.0.1:9/page"]["status"] == "failed"
    assert by_name["http://127.0.0.1:9/page"]["error"]
    assert (summary["completed"], summary["duplicates"], summary["failed"]) == (3, 1, 2)

    # A second run sends nothing that already completed; the failures are tried (and fail) again.
    second = logged_in("ingest", str(folder), "--json")
    assert second.code == 1
    assert second.json()["skipped"] == 4
    assert second.json()["failed"] == 1

    # Without --json: a summary and what failed, and why, for a person.
    third = logged_in("ingest", str(folder / "notes" / "picture.bin"))
    assert third.code == 1
    assert "1 failed" in third.stdout
    assert "What failed, and why" in third.stdout
    assert "not a format we read" in third.stdout

    jobs = logged_in("jobs", "--json").json()["items"]
    # The ids a user copies into `kglab delete` stay whole on an 80-column terminal.
    narrow = logged_in("jobs", env={"COLUMNS": "80"})
    assert all(j["job_id"] in narrow.stdout for j in jobs)
    sources = {j["source_name"] for j in jobs}
    assert sources >= {"company.txt", "curie.md"}
    assert sources & {"salt.md", "salt-again.md"}  # one job for the two copies


def test_a_missing_path_fails_alone_and_the_others_are_ingested(
    logged_in: Kglab, tmp_path: Path
) -> None:
    anna = tmp_path / "anna.md"
    anna.write_text("# Anna\n\nAnna Berg sailed from Bergen to Tromsø.\n")
    missing = tmp_path / "missing.txt"

    run = logged_in("ingest", str(missing), str(anna), "--json")

    assert run.code == 1
    assert run.stderr == ""  # with --json, no progress bars either
    by_label = {s["label"]: s for s in run.json()["sources"]}
    assert by_label[str(anna)]["status"] == "completed"
    assert by_label[str(missing)]["status"] == "failed"
    assert "is neither a file, a folder nor an http(s) URL" in by_label[str(missing)]["error"]
    assert "Anna Berg" in {
        e["name"] for e in logged_in("entities", "Anna Berg", "--json").json()["results"]
    }

    # For a person: the summary in good grammar, and a line for the failure.
    again = logged_in("ingest", str(missing), str(anna))
    assert again.code == 1
    assert "2 sources: 0 completed, 0 duplicates, 1 already ingested" in again.stdout
    assert f"{missing}: {missing} is neither" in again.stdout


def test_search_and_walk_the_graph_then_delete(logged_in: Kglab, tmp_path: Path) -> None:
    folder = write_corpus(tmp_path / "corpus")
    (folder / "notes" / "picture.bin").unlink()
    assert logged_in("ingest", str(folder), "--json").code == 0

    hits = logged_in("search", "salt town", "--json").json()["results"]
    assert "salt town" in hits[0]["text"]
    assert "salt town" in logged_in("search", "salt town").stdout

    names = [e["name"] for e in logged_in("entities", "Karl", "--json").json()["results"]]
    assert "Karl Odd" in names
    neighbours = logged_in("neighbors", "Karl Odd", "--json").json()
    assert "Oslo" in {n["name"] for n in neighbours["neighbors"]}
    path = logged_in("path", "Anna Berg", "Oslo", "--json").json()
    steps = [e["name"] for e in path["entities"]]
    assert (steps[0], steps[-1]) == ("Anna Berg", "Oslo")
    assert "Anna Berg ->" in logged_in("path", "Anna Berg", "Oslo").stdout
    unknown = logged_in("path", "Nobody Atall", "Oslo")
    assert unknown.code == 1
    assert "No entity" in unknown.stderr
    # A name that could mean two entities: refused, naming both, rather than a guess.
    ambiguous = logged_in("neighbors", "Curie")
    assert ambiguous.code == 1
    assert "could mean 2 entities" in ambiguous.stderr
    assert "Marie Curie" in ambiguous.stderr
    assert "Pierre Curie" in ambiguous.stderr

    # No path: the names the user gave, never the internal ids.
    apart = logged_in("path", "Marie Curie", "Oslo")
    assert apart.code == 1
    assert "joins Marie Curie and Oslo" in apart.stderr, apart.stderr
    assert "ent_" not in apart.stderr
    nothing = logged_in("entities", "zzzzqqq")
    assert (nothing.code, nothing.stdout.strip()) == (0, "Nothing relevant.")

    documents = logged_in("documents", "--json").json()["items"]
    curie = next(d for d in documents if d["source"] == "curie.md")
    company = next(d for d in documents if d["source"] == "company.txt")
    deleted = logged_in("delete", curie["id"], "--json")
    assert deleted.code == 0, deleted.stderr
    assert deleted.json()[0]["state"] == "complete"
    assert deleted.json()[0]["result"] == "deleted"
    remaining = {d["source"] for d in logged_in("documents", "--json").json()["items"]}
    assert "curie.md" not in remaining
    # One known id, one unknown: the first is deleted, and both are reported.
    unknown = "0" * 32
    mixed = logged_in("delete", company["id"], unknown, "--json")
    assert mixed.code == 1
    assert [(r["document_id"], r["result"]) for r in mixed.json()] == [
        (company["id"], "deleted"),
        (unknown, "not found"),
    ]
    assert "no document" in mixed.json()[1]["error"].lower()
    remaining = {d["source"] for d in logged_in("documents", "--json").json()["items"]}
    assert "company.txt" not in remaining
    missing = logged_in("delete", unknown)
    assert missing.code == 1
    assert unknown in missing.stdout
    assert "not found" in missing.stdout
    assert "no document" in missing.stdout.lower()


def test_export_graphml_jsonld_and_csv_that_neo4j_admin_imports(
    logged_in: Kglab, tmp_path: Path
) -> None:
    require_importer()
    empty = logged_in("export", "--format", "csv", "--output", str(tmp_path / "none"))
    assert empty.code == 1
    assert "graph is empty" in empty.stderr
    assert not (tmp_path / "none" / "entities.csv").exists()
    refused = logged_in("export", "--format", "pdf")
    assert refused.code != 0
    assert "graphml" in refused.stderr  # the choices it takes
    assert logged_in("export", "--format", "pdf", "--json").json()["error"]
    in_the_way = tmp_path / "a-file"
    in_the_way.write_text("mine")
    folder_wanted = logged_in("export", "--format", "csv", "--output", str(in_the_way))
    assert folder_wanted.code == 1
    assert "writes a folder" in folder_wanted.stderr
    assert in_the_way.read_text() == "mine"
    file_wanted = logged_in("export", "--format", "graphml", "--output", str(tmp_path))
    assert file_wanted.code == 1
    assert "is a folder" in file_wanted.stderr

    folder = write_corpus(tmp_path / "corpus")
    (folder / "notes" / "picture.bin").unlink()
    assert logged_in("ingest", str(folder), "--json").code == 0

    graphml = logged_in("export", "--output", str(tmp_path / "g.graphml"), "--json")
    assert graphml.code == 0, graphml.stderr
    (written,) = graphml.json()["files"]
    root = ElementTree.parse(written["path"]).getroot()
    ns = {"g": "http://graphml.graphdrawing.org/xmlns"}
    names = {d.text for d in root.findall("g:graph/g:node/g:data[@key='d0']", ns)}
    assert {"Karl Odd", "Anna Berg", "Oslo"} <= names
    assert written["bytes"] == Path(written["path"]).stat().st_size

    jsonld_path = tmp_path / "g.jsonld"
    jsonld = logged_in("export", "--format", "jsonld", "-o", str(jsonld_path))
    assert jsonld.code == 0, jsonld.stderr
    assert "Wrote" in jsonld.stdout
    document = json.loads(jsonld_path.read_text())
    assert "Marie Curie" in {n.get("name") for n in document["@graph"]}
    exists = logged_in("export", "--format", "jsonld", "-o", str(jsonld_path))
    assert exists.code == 1
    assert "already exists" in exists.stderr
    assert logged_in("export", "--format", "jsonld", "-o", str(jsonld_path), "--force").code == 0

    out = tmp_path / "neo4j-csv"
    exported = logged_in("export", "--format", "csv", "--output", str(out))
    assert exported.code == 0, exported.stderr
    assert "neo4j-admin database import full" in exported.stdout
    assert sorted(p.name for p in out.iterdir()) == ["entities.csv", "relations.csv"]
    # Every export is the user's private graph: 0600, whatever the format.
    for written_file in (out / "entities.csv", out / "relations.csv", jsonld_path):
        assert stat.S_IMODE(written_file.stat().st_mode) == 0o600, written_file
    assert stat.S_IMODE(Path(written["path"]).stat().st_mode) == 0o600
    entities = (out / "entities.csv").read_text().splitlines()
    relations = (out / "relations.csv").read_text().splitlines()
    imported = neo4j_admin_import(tmp_path / "neo4j", out / "entities.csv", out / "relations.csv")
    # Every row loaded: one node per entity, one relationship per relation row.
    assert imported.nodes == len(entities) - 1 >= 5
    assert imported.relationships == len(relations) - 1 >= 4


def test_a_big_file_goes_through_tus_and_an_interrupted_upload_resumes(
    logged_in: Kglab, live_system: LiveSystem, tmp_path: Path
) -> None:
    """Over 8 MB a file is sent with tus: this one is 11 MB (over the plain upload's 10 MB),
    not a format we read, so the server refuses it once every byte is there. An earlier run
    had sent 4 MB of it: the run goes on from there rather than starting again."""
    big = tmp_path / "big.bin"
    data = os.urandom(11 * 1024 * 1024)
    big.write_bytes(data)
    config = logged_in.config  # type: ignore[attr-defined]
    session = json.loads((config / "credentials.json").read_text())[live_system.url]
    tus = {"Tus-Resumable": "1.0.0"}
    with live_system.client(session["access_token"]) as client:
        created = client.post(
            "/api/v1/uploads",
            headers={
                **tus,
                "Upload-Length": str(len(data)),
                "Upload-Metadata": "filename " + base64.b64encode(b"big.bin").decode(),
            },
        )
        location = httpx.URL(created.headers["Location"]).path
        sent = client.patch(
            location,
            content=data[: 4 * 1024 * 1024],
            headers={
                **tus,
                "Upload-Offset": "0",
                "Content-Type": "application/offset+octet-stream",
            },
        )
        assert sent.status_code == 204, sent.text
        key = "sha256:" + hashlib.sha256(data).hexdigest()
        scope = f"{live_system.url} {session['email']}"
        state = {scope: {key: {"upload": location, "status": "uploading"}}}
        (config / "ingest-state.json").write_text(json.dumps(state))

        run = logged_in("ingest", str(big), "--json")
        assert run.code == 1
        (outcome,) = run.json()["sources"]
        assert outcome["status"] == "failed"
        assert "not a format we read" in outcome["error"]  # not the 10 MB limit: tus was used
        # The interrupted upload was carried on to its end, not left at 4 MB.
        after = client.head(location, headers=tus)
        assert after.headers.get("Upload-Offset") != str(4 * 1024 * 1024)
