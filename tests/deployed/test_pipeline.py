"""Every format through the deployed topology: uploaded, completed, readable, found by search and
in the graph the moment the job says ``completed``; deleted out of every store."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.deployed.conftest import DATA, Deployment, User, sign_up
from tests.waiting import wait_until

#: One file per format the API accepts, from the test corpus (tests/data/generate.py).
FORMATS = [
    "notes.md",
    "utf8.txt",
    "latin1.txt",
    "valid.json",
    "news-wire.html",
    "one-page.pdf",
    "ten-pages.pdf",
    "report.docx",
]
PEOPLE = (
    "# Field notes {tag}\n\nMarie Curie worked in Paris with Pierre Curie. Marie Curie studied "
    "radioactivity at the University of Paris, and Pierre Curie measured crystals.\n"
)


def unique(name: str) -> bytes:
    """The corpus file with a unique tail, so its raw bytes are this test's alone. Text formats
    take a last line; PDF and DOCX readers ignore bytes after the end of the file."""
    content = (DATA / name).read_bytes()
    tag = uuid.uuid4().hex
    if name.endswith(".json"):
        return content.rstrip()[:-1] + f', "deployed_tag": "{tag}"}}'.encode()
    if name.endswith(".html"):
        return content.replace(b"</body>", f"<!-- {tag} --></body>".encode(), 1)
    return content + f"\n% {tag}\n".encode()


async def assert_searchable(user: User, document_id: str) -> list[dict[str, object]]:
    """Readable with its chunks, found by search, and in the graph: checked once, no waiting."""
    document = await user.get(f"/api/v1/documents/{document_id}")
    assert document.status_code == 200, document.text
    chunks = await user.get(f"/api/v1/documents/{document_id}/chunks", limit=100)
    assert chunks.status_code == 200, chunks.text
    items: list[dict[str, object]] = chunks.json()["items"]
    assert items, "a completed document has chunks"
    query = " ".join(str(items[0]["text"]).split()[:12])
    search = await user.get("/api/v1/search", q=query, limit=10)
    assert search.status_code == 200, search.text
    hits = [hit for hit in search.json()["results"] if hit["document_id"] == document_id]
    assert hits, f"search for {query!r} did not find the completed document"
    graph = await user.get(f"/api/v1/documents/{document_id}/graph")
    assert graph.status_code == 200, f"the completed document is not in the graph: {graph.text}"
    return items


@pytest.mark.parametrize("name", FORMATS)
async def test_each_format_is_searchable_when_completed_and_deleted_from_every_store(
    deployment: Deployment, user: User, name: str
) -> None:
    content = unique(name)
    job = await user.finished(await user.upload(name, content))
    assert job["status"] == "completed", job
    document_id = job["document_id"]
    chunks = await assert_searchable(user, document_id)

    stored = deployment.counts(user.id)
    assert stored["mongo_documents"] == 1
    assert stored["mongo_chunks"] == len(chunks)
    assert stored["neo4j_document"] == 1
    assert stored["neo4j_chunk"] == len(chunks)
    if "qdrant_points" in stored:
        assert stored["qdrant_points"] == len(chunks)
    assert deployment.blob_exists(content)

    deleted = await user.client.delete(f"/api/v1/documents/{document_id}", headers=user.headers)
    assert deleted.status_code == 202, deleted.text

    left: dict[str, int] = {}

    async def gone_everywhere() -> bool:
        left.clear()
        left.update({store: n for store, n in deployment.counts(user.id).items() if n})
        if deployment.blob_exists(content):
            left["raw_file"] = 1
        # Without a Qdrant server no inspector counts the vectors (Qdrant Edge lives in
        # the vector service's own data directory): its part of the deletion is the signal.
        deletion = await user.get(f"/api/v1/documents/{document_id}/deletion")
        if deletion.status_code != 200 or deletion.json()["state"] != "complete":
            left["deletion"] = 1
        return not left

    try:
        await wait_until(gone_everywhere, timeout_s=60, step_s=0.25)
    except AssertionError:
        pytest.fail(f"60 s after the delete, still stored: {left}")
    assert (await user.get(f"/api/v1/documents/{document_id}")).status_code == 404
    # Each service reports its part gone (document.parts_removed) just after removing it:
    # the report may trail the removal the counts above see by a moment.
    report: dict[str, object] = {}

    async def reported_complete() -> bool:
        deletion = await user.get(f"/api/v1/documents/{document_id}/deletion")
        assert deletion.status_code == 200, deletion.text
        report.update(deletion.json())
        return report["state"] == "complete"

    try:
        await wait_until(reported_complete, timeout_s=30, step_s=0.25)
    except AssertionError:
        pytest.fail(f"30 s after every store was empty, the deletion reads {report}")
    search = await user.get("/api/v1/search", q=str(chunks[0]["text"])[:80])
    assert search.status_code == 200, search.text
    assert not [hit for hit in search.json()["results"] if hit["document_id"] == document_id]


async def test_entities_of_a_completed_document_are_in_the_graph(user: User) -> None:
    job = await user.finished(
        await user.upload("curie.md", PEOPLE.format(tag=uuid.uuid4().hex).encode())
    )
    assert job["status"] == "completed", job
    await assert_searchable(user, job["document_id"])
    graph = (await user.get(f"/api/v1/documents/{job['document_id']}/graph")).json()
    names = {entity["name"] for entity in graph["entities"]}
    assert "Marie Curie" in names, names
    found = await user.get("/api/v1/graph/entities", q="Pierre Curie")
    assert found.status_code == 200, found.text
    assert any(entity["name"] == "Pierre Curie" for entity in found.json()["results"])


async def test_a_second_user_sees_nothing_of_the_first(
    gateway: httpx.AsyncClient, user: User
) -> None:
    job = await user.finished(await user.upload("notes.md", unique("notes.md")))
    assert job["status"] == "completed", job
    stranger = await sign_up(gateway)
    assert (await stranger.get(f"/api/v1/jobs/{job['job_id']}")).status_code == 404
    assert (await stranger.get(f"/api/v1/documents/{job['document_id']}")).status_code == 404
    search = await stranger.get("/api/v1/search", q="notes")
    assert search.status_code == 200
    assert search.json()["results"] == []
