"""A part's report that ingestion cannot record at once (its database away) is retried for
minutes, but for less than a job waits for its parts, so it lands before the deadline."""

from __future__ import annotations

from kglab_ingestion.config import IngestionSettings
from kglab_ingestion.messaging.consume import INDEXING_RETRY


def test_reports_are_retried_within_the_indexing_deadline() -> None:
    retrying_s = sum(
        INDEXING_RETRY.delay_after(attempt) for attempt in range(1, INDEXING_RETRY.max_attempts)
    )
    deadline_s = IngestionSettings.model_fields["indexing_timeout_s"].default
    assert 5 * 60 < retrying_s < deadline_s
