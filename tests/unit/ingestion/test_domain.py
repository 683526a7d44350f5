"""Ingestion domain rules with no I/O: names, sizes, cursors, progress messages, documents."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from kglab_ingestion.domain import (
    EXTRACTED_PROGRESS,
    FileTooLargeError,
    IngestionJob,
    InvalidQueryError,
    JobCursor,
    JobStage,
    JobStatus,
    ProgressUpdate,
    SourceKind,
    document_id_for,
    megabytes,
    part_failure_message,
    parts_awaited,
    progress_for,
    sanitise_file_name,
    stage_for,
)
from kglab_ingestion.extraction import Section
from kglab_ingestion.worker import (
    _percent,
    extraction_seconds_left,
    sections_from_rows,
    sections_to_rows,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("report.pdf", "report.pdf"),
        ("../../etc/passwd", "passwd"),
        ("..\\..\\windows\\system32\\cmd.exe", "cmd.exe"),
        ("notes\x00.md", "notes.md"),
        ("bell\x07\x1b[31m.txt", "bell[31m.txt"),
        ("...hidden.md", "hidden.md"),
        ("", "upload"),
        (None, "upload"),
        ("../..", "upload"),
        ('a<b>c:d"e|f?g*h.md', "abcdefgh.md"),
    ],
)
def test_file_names_are_reduced_to_a_safe_display_name(raw: str | None, expected: str) -> None:
    assert sanitise_file_name(raw) == expected


def test_a_long_name_keeps_its_extension() -> None:
    name = sanitise_file_name("x" * 400 + ".docx")
    assert len(name) == 255
    assert name.endswith(".docx")


@pytest.mark.parametrize(
    ("size", "text"),
    [(10 * 1024 * 1024, "10 MB"), (int(14.2 * 1024 * 1024), "14.2 MB"), (100_000, "0.1 MB")],
)
def test_sizes_read_as_people_write_them(size: int, text: str) -> None:
    assert megabytes(size) == text


def test_the_413_sentence_names_size_and_limit() -> None:
    error = FileTooLargeError(int(14.2 * 1024 * 1024), 10 * 1024 * 1024)
    assert error.detail == "The file is 14.2 MB; the limit is 10 MB."
    assert error.status == 413
    unknown = FileTooLargeError(0, 10 * 1024 * 1024, at_least=True)
    assert unknown.detail == "The file is more than 10 MB; the limit is 10 MB."


def test_a_cursor_round_trips_and_a_forged_one_is_a_readable_error() -> None:
    cursor = JobCursor(created_at=datetime(2026, 11, 26, 9, 30, tzinfo=UTC), job_id="abc")
    assert JobCursor.decode(cursor.encode()) == cursor
    for forged in ("nope", "e30", "!!!!"):
        with pytest.raises(InvalidQueryError, match="cursor"):
            JobCursor.decode(forged)


def test_the_document_id_is_derived_from_the_job() -> None:
    assert document_id_for("job-1") == document_id_for("job-1")
    assert document_id_for("job-1") != document_id_for("job-2")


def test_progress_messages_round_trip_and_say_when_they_are_final() -> None:
    update = ProgressUpdate(
        job_id="j",
        status=JobStatus.COMPLETED,
        progress=100,
        document_id="d",
        extra={"near_duplicate_of": "k"},
    )
    again = ProgressUpdate.from_json(update.to_json())
    assert again == update
    assert again.is_final
    assert not ProgressUpdate(job_id="j", status=JobStatus.PROCESSING, progress=40).is_final


def test_progress_reaches_every_tenth_of_a_ten_page_pdf() -> None:
    values = [_percent(done, 10) for done in range(1, 11)]
    assert values == sorted(values)
    assert values[-1] == 65
    # Extraction reports tenths 1-6; the announcement and the document's parts the rest.
    after = [EXTRACTED_PROGRESS]
    done: frozenset[str] = frozenset()
    for part in ("stored", "graphed", "embedded"):
        done |= {part}
        after.append(progress_for(done))
    assert after == [70, 80, 90, 100]
    assert {min(v // 10, 9) for v in values + after} >= set(range(1, 10))


def test_the_stage_names_the_first_part_not_yet_done() -> None:
    assert stage_for(frozenset()) is JobStage.STORING
    assert stage_for(frozenset({"stored"})) is JobStage.EMBEDDING
    assert stage_for(frozenset({"stored", "embedded"})) is JobStage.GRAPHING
    assert stage_for(frozenset({"stored", "graphed"})) is JobStage.EMBEDDING
    assert stage_for(frozenset({"stored", "embedded", "graphed"})) is JobStage.DONE


def test_parts_still_awaited_after_a_failure() -> None:
    # Nothing follows a document that could not be stored; otherwise every part reports.
    assert parts_awaited(frozenset(), frozenset({"stored"})) == frozenset()
    assert parts_awaited(frozenset({"stored"}), frozenset({"embedded"})) == {"graphed"}
    assert parts_awaited(frozenset({"stored", "graphed"}), frozenset({"embedded"})) == set()


def test_a_failed_part_reads_as_a_sentence() -> None:
    for part in ("stored", "embedded", "graphed"):
        message = part_failure_message(part)
        assert message.endswith("nothing of it was kept. Try the upload again later.")
        assert "Error" not in message
    assert "search" in part_failure_message("embedded")
    assert "knowledge graph" in part_failure_message("graphed")


def test_a_job_names_its_stage_before_stages_were_recorded() -> None:
    now = datetime(2026, 3, 4, tzinfo=UTC)
    job = IngestionJob(
        id="j1",
        owner_id="u1",
        source_kind=SourceKind.FILE,
        source_name="notes.md",
        created_at=now,
        updated_at=now,
    )
    assert job.current_stage is JobStage.QUEUED
    assert replace(job, status=JobStatus.PROCESSING).current_stage is JobStage.EXTRACTING
    assert replace(job, status=JobStatus.COMPLETED).current_stage is JobStage.DONE
    waiting = replace(job, status=JobStatus.PROCESSING, stage=JobStage.GRAPHING)
    update = ProgressUpdate.of(waiting)
    assert (update.stage, update.is_final) == (JobStage.GRAPHING, False)
    assert ProgressUpdate.from_json(update.to_json()) == update


def test_saved_sections_round_trip() -> None:
    sections = [Section(heading="Intro", text="Hello.", kind="paragraph"), Section(None, "a | b")]
    assert sections_from_rows(sections_to_rows(sections)) == sections


def test_a_job_shows_its_document_only_while_it_exists() -> None:
    now = datetime(2026, 3, 4, tzinfo=UTC)
    job = IngestionJob(
        id="j1",
        owner_id="u1",
        source_kind=SourceKind.FILE,
        source_name="notes.md",
        created_at=now,
        updated_at=now,
        status=JobStatus.PROCESSING,
        document_id="d1",
    )
    assert job.live_document_id is None  # not before the job completed
    done = replace(job, status=JobStatus.COMPLETED)
    assert done.live_document_id == "d1"
    assert ProgressUpdate.of(done).document_id == "d1"
    deleted = replace(done, document_deleted_at=now)
    assert deleted.live_document_id is None
    assert ProgressUpdate.of(deleted).document_id is None
    assert ProgressUpdate.of(deleted).is_final


def test_extraction_time_left_follows_the_pace_so_far() -> None:
    assert extraction_seconds_left(2.0, 0, 10) is None
    assert extraction_seconds_left(2.0, 4, 6) == 3.0
    assert extraction_seconds_left(5.0, 10, 0) == 0.0
