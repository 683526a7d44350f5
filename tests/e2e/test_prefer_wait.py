"""``Prefer: wait=N`` on POST /api/v1/files: a small file answered with its document once it is
searchable; a large one, a key that may not read documents, or no preference: the job, as before."""

from __future__ import annotations

import httpx

from tests.e2e.test_ingestion_flow import MARKDOWN, sign_up


async def test_a_small_file_is_answered_with_its_searchable_document(
    gateway: httpx.AsyncClient,
) -> None:
    auth = await sign_up(gateway)
    response = await gateway.post(
        "/api/v1/files",
        files={"file": ("curie.md", MARKDOWN, "text/markdown")},
        headers={**auth, "Prefer": "wait=25"},
    )
    assert response.status_code == 201, response.text
    assert response.headers["preference-applied"] == "wait=25"
    document = response.json()
    assert document["title"] == "The Curie laboratory"
    assert response.headers["location"] == f"/api/v1/documents/{document['id']}"
    # Answered means done: found by search at once, no polling.
    found = await gateway.get("/api/v1/search", params={"q": "radioactivity"}, headers=auth)
    assert found.status_code == 200, found.text
    assert any(hit["document_id"] == document["id"] for hit in found.json()["results"])


async def test_a_large_file_gets_the_job_as_without_the_preference(
    gateway: httpx.AsyncClient,
) -> None:
    auth = await sign_up(gateway)
    large = (MARKDOWN + b"\n" + b"Polonium and radium were isolated in Paris. " * 30_000)[
        :1_200_000
    ]
    response = await gateway.post(
        "/api/v1/files",
        files={"file": ("large.md", large, "text/markdown")},
        headers={**auth, "Prefer": "wait=25"},
    )
    assert response.status_code == 202, response.text
    assert "job_id" in response.json()
    assert "preference-applied" not in response.headers


async def test_no_time_to_wait_answers_the_job_with_the_preference_applied(
    gateway: httpx.AsyncClient,
) -> None:
    auth = await sign_up(gateway)
    response = await gateway.post(
        "/api/v1/files",
        files={"file": ("quick.md", MARKDOWN + b"\nQuick.", "text/markdown")},
        headers={**auth, "Prefer": "wait=0"},
    )
    assert response.status_code == 202, response.text
    assert response.headers["preference-applied"] == "wait=0"
    assert response.json()["job_id"]


async def test_a_preference_it_cannot_read_is_ignored(gateway: httpx.AsyncClient) -> None:
    auth = await sign_up(gateway)
    response = await gateway.post(
        "/api/v1/files",
        files={"file": ("odd.md", MARKDOWN + b"\nOdd.", "text/markdown")},
        headers={**auth, "Prefer": "wait=soon, respond-async"},
    )
    assert response.status_code == 202
    assert "preference-applied" not in response.headers


async def test_a_key_that_may_not_read_documents_is_not_given_one(
    gateway: httpx.AsyncClient,
) -> None:
    auth = await sign_up(gateway)
    created = await gateway.post(
        "/api/v1/auth/api-keys",
        json={"name": "uploader", "scopes": ["documents:write"]},
        headers=auth,
    )
    assert created.status_code == 201, created.text
    key = {"Authorization": f"Bearer {created.json()['key']}"}
    response = await gateway.post(
        "/api/v1/files",
        files={"file": ("key.md", MARKDOWN + b"\nBy key.", "text/markdown")},
        headers={**key, "Prefer": "wait=10"},
    )
    assert response.status_code == 202, response.text
    assert response.json()["job_id"]
    assert "preference-applied" not in response.headers
