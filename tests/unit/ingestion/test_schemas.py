"""The ingestion examples the OpenAPI document shows have the shapes the routes really answer."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from kglab_ingestion.domain import (
    IngestionJob,
    JobCursor,
    JobStatus,
    SourceKind,
    document_id_for,
)
from kglab_ingestion.schemas import (
    JOB_ACCEPTED_EXAMPLE,
    JOB_DUPLICATE_EXAMPLE,
    JOB_EXAMPLE,
    URL_JOB_ACCEPTED_EXAMPLE,
    JobOut,
    JobPageOut,
)

EXAMPLES = [JOB_ACCEPTED_EXAMPLE, JOB_EXAMPLE, JOB_DUPLICATE_EXAMPLE, URL_JOB_ACCEPTED_EXAMPLE]


def a_real_answer(**changes: Any) -> dict[str, Any]:
    now = datetime(2026, 3, 4, 10, 12, 5, tzinfo=UTC)
    job = IngestionJob(
        id="5f0c6b8e9d4a4c1fb1d1c2a3b4c5d6e7",
        owner_id="u1",
        source_kind=SourceKind.FILE,
        source_name="graph-databases.md",
        created_at=now,
        updated_at=now,
        **changes,
    )
    answer: dict[str, Any] = JobOut.of(job).model_dump(mode="json")
    return answer


@pytest.mark.parametrize("example", EXAMPLES, ids=["accepted", "completed", "duplicate", "url"])
def test_each_job_example_is_what_a_route_answers(example: dict[str, Any]) -> None:
    assert set(example) == set(a_real_answer())
    assert set(example["provenance"]) == set(a_real_answer()["provenance"])
    parsed = JobOut.model_validate(example)
    assert parsed.model_dump(mode="json") == example
    assert example["links"]["self"] == f"/api/v1/jobs/{example['job_id']}"
    assert example["links"]["progress"] == f"/ws/jobs/{example['job_id']}"
    assert example["provenance"]["source_name"] == example["source_name"]
    # JobOut shows a document id only for a completed job.
    assert (example["document_id"] is not None) == (example["status"] == JobStatus.COMPLETED)


def test_the_completed_example_names_the_document_its_job_produces() -> None:
    assert JOB_EXAMPLE["document_id"] == document_id_for(JOB_EXAMPLE["job_id"])
    assert JOB_DUPLICATE_EXAMPLE["duplicate_of"] == JOB_EXAMPLE["job_id"]


def test_the_page_example_is_newest_first_and_its_cursor_points_after_its_last_job() -> None:
    schema = JobPageOut.model_json_schema()
    (page,) = schema["examples"]
    items = page["items"]
    created = [item["created_at"] for item in items]
    assert created == sorted(created, reverse=True)
    cursor = JobCursor.decode(page["next_cursor"])
    assert cursor.job_id == items[-1]["job_id"]
    assert cursor.created_at == datetime.fromisoformat(items[-1]["created_at"])
