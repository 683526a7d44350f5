"""Uploads, URL submissions and job polling through the ingestion service's HTTP API.

Every refusal is a problem+json with a readable ``detail``; every job belongs to its owner.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from kglab_ingestion.store.tables import jobs as jobs_table
from kglab_shared.events import DocumentExtracted
from tests.data.corpus import corpus_file
from tests.integration.ingestion.conftest import ALICE, BOB, EICAR, MARKDOWN, IngestionApp
from tests.waiting import wait_until


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["detail"].endswith(".")
    return body


async def job_count(app: IngestionApp) -> int:
    async with app.jobs.engine.connect() as connection:
        return int(await connection.scalar(select(func.count()).select_from(jobs_table)) or 0)


async def test_a_markdown_upload_becomes_a_completed_job_and_a_document(
    ingestion: IngestionApp,
) -> None:
    response = await ingestion.upload(MARKDOWN, "graphs.md")
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert accepted["status"] in ("pending", "processing", "completed")
    assert response.headers["location"] == f"/api/v1/jobs/{accepted['job_id']}"
    assert accepted["provenance"]["content_type"] == "text/markdown"
    assert accepted["provenance"]["size_bytes"] == len(MARKDOWN)
    assert accepted["provenance"]["uploader_id"] == ALICE
    assert len(accepted["provenance"]["sha256"]) == 64

    job = await ingestion.wait_for_status(accepted["job_id"], "completed", "failed")
    assert job["status"] == "completed", job
    assert job["progress"] == 100
    assert job["error"] is None
    assert job["attempts"] == 1
    assert job["document_id"]
    assert job["title"] == "Graph databases"
    assert job["provenance"]["processor_version"]

    async def announced() -> bool:
        return len(ingestion.extracted) == 1

    await wait_until(announced)
    event = DocumentExtracted.model_validate(ingestion.extracted[0].data)
    assert event.document_id == job["document_id"]
    assert event.owner_id == ALICE
    assert event.provenance.source_name == "graphs.md"
    assert event.chunk_count > 0
    assert "Cypher" in ingestion.texts[event.document_id]


#: The largest event a document's indexing puts on the bus, whatever the document's size
#: (adr/0020: about 800 bytes measured; the rest is headroom for a long title or metadata).
MAX_EVENT_BYTES = 4096


async def test_a_big_documents_event_carries_a_claim_not_its_text(
    ingestion: IngestionApp,
) -> None:
    paragraph = "The salt town's ledger records copper, wool and timber from the harbour. " * 10
    text = "\n\n".join(f"## Part {i}\n\n{paragraph}" for i in range(1500))  # about 1.1 MB
    accepted = (await ingestion.upload(text.encode(), "ledger.md")).json()
    await ingestion.wait_for_status(accepted["job_id"], "completed", timeout_s=60)

    event = ingestion.extracted[0]
    data = DocumentExtracted.model_validate(event.data)
    assert data.chunk_count >= 1500
    assert len(event.to_bytes()) <= MAX_EVENT_BYTES
    # Everything is there all the same, read with the claim as the document service reads it.
    assert ingestion.texts[data.document_id].count("salt town's ledger") == 15000
    # Once the document service acknowledged its part, the chunks are dropped at ingestion.
    gone = await ingestion.client.get(
        f"/internal/extractions/{data.job_id}", headers={"X-KGLab-Claim": data.claim}
    )
    assert gone.status_code == 404


async def test_an_identical_file_points_at_the_existing_job(ingestion: IngestionApp) -> None:
    first = (await ingestion.upload(MARKDOWN, "graphs.md")).json()
    await ingestion.wait_for_status(first["job_id"], "completed")
    again = await ingestion.upload(MARKDOWN, "copy-of-graphs.md")
    assert again.status_code == 200, again.text
    body = again.json()
    assert body["duplicate"] is True
    assert body["duplicate_of"] == first["job_id"]
    assert body["job_id"] == first["job_id"]
    assert body["document_id"]
    assert await job_count(ingestion) == 1
    # Another user uploading the same bytes gets a job of their own.
    theirs = await ingestion.upload(MARKDOWN, "graphs.md", user=BOB)
    assert theirs.status_code == 202
    assert theirs.json()["job_id"] != first["job_id"]


async def test_a_near_duplicate_is_linked_to_the_original(ingestion: IngestionApp) -> None:
    body = b"# Report\n\n" + b" ".join(f"word{n} fact{n % 17}".encode() for n in range(400))
    first = (await ingestion.upload(body, "report.md")).json()
    await ingestion.wait_for_status(first["job_id"], "completed")
    edited = body.replace(b"word7 ", b"wordseven ")
    second = (await ingestion.upload(edited, "report-v2.md")).json()
    job = await ingestion.wait_for_status(second["job_id"], "completed")
    assert job["near_duplicate_of"] == first["job_id"]
    assert job["near_duplicate_similarity"] > 0.9
    unrelated = (await ingestion.upload(MARKDOWN, "graphs.md")).json()
    job = await ingestion.wait_for_status(unrelated["job_id"], "completed")
    assert job["near_duplicate_of"] is None


async def test_a_file_over_the_limit_is_refused_with_its_size(
    ingestion_factory: Any,
) -> None:
    app: IngestionApp = await ingestion_factory(max_upload_bytes=10 * 1024 * 1024)
    oversized = b"a" * int(14.2 * 1024 * 1024)
    body = problem(await app.upload(oversized, "big.txt"), 413)
    assert body["detail"] == "The file is 14.2 MB; the limit is 10 MB."
    assert await job_count(app) == 0
    assert list((app.settings.data_dir / "ingestion" / "spool").glob("*")) == []


async def test_a_streamed_upload_without_length_stops_at_the_limit(
    ingestion_factory: Any,
) -> None:
    app: IngestionApp = await ingestion_factory(max_upload_bytes=100_000)
    boundary = "kglabboundary"
    sent = 0

    async def body() -> Any:
        nonlocal sent
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            'filename="big.txt"\r\nContent-Type: text/plain\r\n\r\n'
        ).encode()
        for _ in range(1000):
            sent += 10_000
            yield b"b" * 10_000
        yield f"\r\n--{boundary}--\r\n".encode()

    response = await app.client.post(
        "/api/v1/files",
        content=body(),
        headers={**app.headers(), "content-type": f"multipart/form-data; boundary={boundary}"},
    )
    detail = problem(response, 413)["detail"]
    assert detail == "The file is more than 0.1 MB; the limit is 0.1 MB."
    # Reading stopped early: far less than the 10 MB offered was consumed.
    assert sent < 1_000_000


@pytest.mark.parametrize(
    ("name", "content", "fragment"),
    [
        ("photo.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 100, "photo.png"),
        ("report.pdf", MARKDOWN, "report.pdf"),
        ("program.exe", b"MZ" + b"\0" * 100, "program.exe"),
    ],
)
async def test_a_file_of_the_wrong_type_is_refused(
    ingestion: IngestionApp, name: str, content: bytes, fragment: str
) -> None:
    body = problem(await ingestion.upload(content, name), 415)
    assert fragment in body["detail"]
    assert await job_count(ingestion) == 0


@pytest.mark.parametrize("name", ["README", "LICENSE", "notes.rst", "table.csv"])
async def test_text_without_a_text_extension_is_ingested_as_text(
    ingestion: IngestionApp, name: str
) -> None:
    response = await ingestion.upload(corpus_file(name).read_bytes(), name)
    assert response.status_code == 202, response.text
    assert response.json()["provenance"]["content_type"] == "text/plain"
    job = await ingestion.wait_for_status(response.json()["job_id"], "completed", "failed")
    assert job["status"] == "completed", job


async def test_text_that_is_not_utf8_is_read_with_a_notice_on_the_job(
    ingestion: IngestionApp,
) -> None:
    latin1 = await ingestion.upload(corpus_file("latin1.txt").read_bytes(), "latin1.txt")
    utf8 = await ingestion.upload(corpus_file("utf8.txt").read_bytes(), "utf8.txt")
    read = await ingestion.wait_for_status(latin1.json()["job_id"], "completed", "failed")
    clean = await ingestion.wait_for_status(utf8.json()["job_id"], "completed", "failed")
    assert read["status"] == "completed", read
    assert read["notice"].startswith("The text is not valid UTF-8; it was read as cp1252")
    assert "save the file as UTF-8" in read["notice"]
    assert clean["status"] == "completed", clean
    assert clean["notice"] is None


async def test_binary_junk_under_an_unknown_name_is_still_refused(
    ingestion: IngestionApp,
) -> None:
    body = problem(await ingestion.upload(corpus_file("junk.bin").read_bytes(), "junk.bin"), 415)
    assert "binary data, not text" in body["detail"]
    assert await job_count(ingestion) == 0


async def test_an_infected_file_is_refused_and_recorded(ingestion: IngestionApp) -> None:
    body = problem(await ingestion.upload(EICAR, "readme.txt"), 422)
    assert "malware" in body["detail"]
    assert "readme.txt" in body["detail"]
    job = await ingestion.job(body["job_id"])
    assert job["status"] == "failed"
    assert "malware" in job["error"]
    # Nothing of it is stored or queued.
    assert not await ingestion.app.state.blob_store.exists(job["provenance"]["sha256"])
    assert ingestion.extracted == []


async def test_a_path_traversal_name_is_reduced_to_its_last_part(ingestion: IngestionApp) -> None:
    # Built by hand: HTTP clients escape control characters in file names, attackers do not.
    body = (
        b'--kglab\r\nContent-Disposition: form-data; name="file"; '
        b'filename="..\\..\\../etc/\x01pass\x1bwd.md"\r\n\r\n' + MARKDOWN + b"\r\n--kglab--\r\n"
    )
    response = await ingestion.client.post(
        "/api/v1/files",
        content=body,
        headers={**ingestion.headers(), "content-type": "multipart/form-data; boundary=kglab"},
    )
    assert response.status_code == 202, response.text
    assert response.json()["source_name"] == "passwd.md"


@pytest.mark.parametrize(
    ("kwargs", "status", "fragment"),
    [
        ({"data": {"other": "x"}, "files": {"other": ("a.md", b"x")}}, 422, "'file'"),
        ({"content": b"just text", "headers": {"content-type": "text/plain"}}, 415, "'file'"),
        (
            {
                "content": b"--b\r\nbroken",
                "headers": {"content-type": "multipart/form-data; boundary=b"},
            },
            422,
            "file",
        ),
    ],
)
async def test_a_malformed_upload_is_a_readable_4xx(
    ingestion: IngestionApp, kwargs: dict[str, Any], status: int, fragment: str
) -> None:
    kwargs = dict(kwargs)  # parametrised values are shared between the adapter runs
    headers = {**ingestion.headers(), **kwargs.pop("headers", {})}
    response = await ingestion.client.post("/api/v1/files", headers=headers, **kwargs)
    assert fragment in problem(response, status)["detail"]


async def test_an_empty_file_is_refused(ingestion: IngestionApp) -> None:
    assert "empty" in problem(await ingestion.upload(b"", "empty.md"), 422)["detail"]


async def test_every_route_needs_a_caller(ingestion: IngestionApp) -> None:
    for method, path in (
        ("POST", "/api/v1/files"),
        ("POST", "/api/v1/urls"),
        ("GET", "/api/v1/jobs"),
        ("GET", "/api/v1/jobs/abc"),
    ):
        response = await ingestion.client.request(method, path)
        problem(response, 401)


async def test_another_users_job_does_not_exist_for_them(ingestion: IngestionApp) -> None:
    job_id = (await ingestion.upload(MARKDOWN, "graphs.md")).json()["job_id"]
    response = await ingestion.client.get(f"/api/v1/jobs/{job_id}", headers=ingestion.headers(BOB))
    assert job_id in problem(response, 404)["detail"]
    listing = await ingestion.client.get("/api/v1/jobs", headers=ingestion.headers(BOB))
    assert listing.json()["items"] == []


async def test_jobs_are_listed_newest_first_page_by_page(ingestion: IngestionApp) -> None:
    ids = []
    for number in range(3):
        response = await ingestion.upload(MARKDOWN + str(number).encode(), f"n{number}.md")
        ids.append(response.json()["job_id"])
    first = (await ingestion.client.get("/api/v1/jobs?limit=2", headers=ingestion.headers())).json()
    assert [j["job_id"] for j in first["items"]] == [ids[2], ids[1]]
    rest = (
        await ingestion.client.get(
            f"/api/v1/jobs?limit=2&cursor={first['next_cursor']}", headers=ingestion.headers()
        )
    ).json()
    assert [j["job_id"] for j in rest["items"]] == [ids[0]]
    assert rest["next_cursor"] is None
    for job_id in ids:
        await ingestion.wait_for_status(job_id, "completed")
    done = await ingestion.client.get("/api/v1/jobs?status=completed", headers=ingestion.headers())
    assert len(done.json()["items"]) == 3
    pending = await ingestion.client.get("/api/v1/jobs?status=pending", headers=ingestion.headers())
    assert pending.json()["items"] == []


@pytest.mark.parametrize(
    ("query", "fragment"),
    [("cursor=not-a-cursor", "cursor"), ("status=stuck", "status"), ("limit=0", "limit")],
)
async def test_bad_list_queries_are_readable_422s(
    ingestion: IngestionApp, query: str, fragment: str
) -> None:
    response = await ingestion.client.get(f"/api/v1/jobs?{query}", headers=ingestion.headers())
    assert fragment in problem(response, 422)["detail"]


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("ftp://example.org/file", "http"),
        ("http://127.0.0.1/admin", "address"),
        ("http://169.254.169.254/latest/meta-data", "address"),
        ("not a url", "spaces"),
    ],
)
async def test_unsafe_or_malformed_urls_are_refused(
    ingestion: IngestionApp, url: str, fragment: str
) -> None:
    response = await ingestion.client.post(
        "/api/v1/urls", json={"url": url}, headers=ingestion.headers()
    )
    assert fragment.lower() in problem(response, 422)["detail"].lower()
    assert await job_count(ingestion) == 0


async def test_a_url_body_must_be_json_with_a_url(ingestion: IngestionApp) -> None:
    response = await ingestion.client.post(
        "/api/v1/urls", json={"link": "https://example.org"}, headers=ingestion.headers()
    )
    assert "url" in problem(response, 422)["detail"]


async def test_an_unreachable_scanner_is_a_readable_503_and_nothing_is_queued(
    ingestion_factory: Any,
) -> None:
    from tests.isolation import free_port

    app: IngestionApp = await ingestion_factory(KGLAB_CLAMD_URL=f"tcp://127.0.0.1:{free_port()}")
    body = problem(await app.upload(MARKDOWN, "graphs.md"), 503)
    assert "scan" in body["detail"].lower()
    assert await job_count(app) == 0
