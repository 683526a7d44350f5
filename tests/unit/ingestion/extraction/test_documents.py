"""Each format's extraction: exact text, structure and metadata from the generated corpus."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from kglab_ingestion.extraction import (
    ExtractionError,
    Section,
    open_document,
)
from kglab_ingestion.extraction.model import DOCX, HTML, JSON, MARKDOWN, PDF, TEXT
from tests.data.corpus import corpus_file
from tests.data.generate import (
    DOCX_TABLE,
    ONE_PAGE_HEADING,
    ONE_PAGE_PARAGRAPHS,
    TEXT_LATIN1,
    TEXT_UTF8,
    TEXT_UTF16,
    paged_pdf_paragraphs,
)
from tests.data.html_layouts import BOILERPLATE, LAYOUTS


def read(name: str, media_type: str, **options: object) -> tuple[object, list[Section]]:
    info, units = open_document(corpus_file(name), media_type, source_name=name, **options)  # type: ignore[arg-type]
    return info, [section for unit in units for section in unit.sections]


# --- PDF -----------------------------------------------------------------------------------


def test_one_page_pdf_text_and_metadata() -> None:
    info, units = open_document(corpus_file("one-page.pdf"), PDF, source_name="one-page.pdf")
    assert info.title == "Notes on the Analytical Engine"
    assert info.media_type == PDF
    assert info.metadata["author"] == "Ada Lovelace"
    assert info.metadata["pages"] == 1
    assert info.metadata["created"] == "2024-01-02T03:04:05+00:00"
    pages = list(units)
    assert [(u.index, u.total) for u in pages] == [(0, 1)]
    assert [s.text for s in pages[0].sections] == [ONE_PAGE_HEADING, *ONE_PAGE_PARAGRAPHS]


def test_ten_page_pdf_is_one_unit_per_page() -> None:
    info, units = open_document(corpus_file("ten-pages.pdf"), PDF, source_name="ten-pages.pdf")
    assert info.metadata["pages"] == 10
    pages = list(units)
    assert [u.index for u in pages] == list(range(10))
    assert {u.total for u in pages} == {10}
    expected = paged_pdf_paragraphs(10)
    for page in pages:
        texts = [s.text for s in page.sections]
        assert texts[0] == f"Chapter {page.index + 1}"
        # Paragraph breaks are rebuilt from line lengths, a heuristic; the words are exact.
        footer = f"Page {page.index + 1} of 10"
        assert " ".join(texts[1:]) == " ".join([*expected[page.index], footer])
        assert len(texts) >= 3


def test_resuming_skips_earlier_pages() -> None:
    _, units = open_document(
        corpus_file("ten-pages.pdf"),
        PDF,
        source_name="ten-pages.pdf",
        start=7,
    )
    pages = list(units)
    assert [u.index for u in pages] == [7, 8, 9]
    assert pages[0].sections[0].text == "Chapter 8"


def test_resuming_past_the_single_unit_of_other_formats_yields_nothing() -> None:
    _, units = open_document(corpus_file("notes.md"), MARKDOWN, source_name="notes.md", start=1)
    assert list(units) == []


def test_pages_are_read_lazily(tmp_path: Path) -> None:
    """The document stays open while pages are consumed, and page two comes only on demand."""
    copy = tmp_path / "lazy.pdf"
    shutil.copy(corpus_file("ten-pages.pdf"), copy)
    _, units = open_document(copy, PDF, source_name="lazy.pdf")
    first = next(units)
    assert first.index == 0
    second = next(units)
    assert second.sections[0].text == "Chapter 2"


def test_password_protected_pdf_is_a_readable_error() -> None:
    with pytest.raises(ExtractionError) as failed:
        open_document(corpus_file("protected.pdf"), PDF, source_name="x.pdf")
    assert failed.value.detail == "This PDF is password-protected."
    assert failed.value.retryable is False


def test_corrupt_pdf_is_a_readable_error() -> None:
    with pytest.raises(ExtractionError) as failed:
        open_document(corpus_file("corrupt.pdf"), PDF, source_name="x.pdf")
    assert failed.value.detail == "This PDF is damaged and cannot be read."
    assert failed.value.retryable is False


def test_a_truncated_pdf_is_a_readable_error(tmp_path: Path) -> None:
    cut = tmp_path / "cut.pdf"
    cut.write_bytes(corpus_file("ten-pages.pdf").read_bytes()[:3000])
    with pytest.raises(ExtractionError) as failed:
        list(open_document(cut, PDF, source_name="cut.pdf")[1])
    assert "damaged" in failed.value.detail


# --- DOCX ----------------------------------------------------------------------------------


def test_docx_keeps_headings_tables_and_lists_as_structure() -> None:
    info, sections = read("report.docx", DOCX)
    assert info.title == "Quarterly Report"  # type: ignore[attr-defined]
    assert info.metadata["author"] == "Grace Hopper"  # type: ignore[attr-defined]
    assert info.metadata["tables"] == 1  # type: ignore[attr-defined]
    assert info.metadata["images"] == 1  # the picture is counted, not a failure
    table = "\n".join(" | ".join(row) for row in DOCX_TABLE)
    assert sections == [
        Section(
            "Quarterly Report", "This report summarises the first half of the year.", "paragraph"
        ),
        Section("Summary", "Revenue grew in both quarters. Costs stayed flat.", "paragraph"),
        Section("Summary", "- Hiring is on track.\n- The new office opened in May.", "list"),
        Section("Figures", table, "table"),
        Section("Figures", "The chart above shows the trend.", "paragraph"),
        Section("Outlook", "We expect steady growth in the second half.", "paragraph"),
    ]
    assert table.splitlines()[1] == "Q1 | 1.2 M | +4%"


def test_zip_bomb_docx_is_refused_by_the_archive_check() -> None:
    with pytest.raises(ExtractionError) as failed:
        open_document(corpus_file("zip-bomb.docx"), DOCX, source_name="zip-bomb.docx")
    assert failed.value.detail == (
        "This DOCX file was refused because it would expand to more than 512 MB, "
        "which is how a zip bomb looks."
    )


def test_damaged_docx_is_a_readable_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken.docx"
    broken.write_bytes(corpus_file("report.docx").read_bytes()[:5000])
    with pytest.raises(ExtractionError) as failed:
        open_document(broken, DOCX, source_name="broken.docx")
    assert failed.value.detail == "This DOCX file is damaged or is not a Word document."


# --- Markdown, text, JSON ------------------------------------------------------------------


def test_markdown_sections_follow_headings() -> None:
    info, sections = read("notes.md", MARKDOWN)
    assert info.title == "Field Notes"  # type: ignore[attr-defined]
    assert sections == [
        Section(
            "Field Notes",
            "Observations from the river survey, written up after the spring visit.",
            "paragraph",
        ),
        Section(
            "Method",
            "We walked the east bank at low tide and counted birds in each of the five sections.",
            "paragraph",
        ),
        Section(
            "Method",
            "- Section A: reed bed\n- Section B: mud flats\n  - inner flats\n- Section C: shingle",
            "list",
        ),
        Section("Results", "Species | Count\nAvocet | 12\nRedshank | 30", "table"),
        Section("Results", "The avocets had not been seen here for a century.", "quote"),
        Section("Results", "count = sum(section.birds for section in sections)", "code"),
        Section("Next steps", "Repeat the survey in autumn.", "paragraph"),
    ]


@pytest.mark.parametrize(
    ("name", "text", "encodings"),
    [
        ("utf8.txt", TEXT_UTF8, {"utf-8"}),
        ("utf16-bom.txt", TEXT_UTF16, {"utf-16-le"}),
        ("utf16-nobom.txt", TEXT_UTF16, {"utf-16-le"}),
        ("latin1.txt", TEXT_LATIN1, {"cp1252", "latin_1"}),
    ],
)
def test_plain_text_encoding_is_detected(name: str, text: str, encodings: set[str]) -> None:
    info, sections = read(name, TEXT)
    assert info.metadata["encoding"] in encodings  # type: ignore[attr-defined]
    assert info.title == name.removesuffix(".txt")  # type: ignore[attr-defined]
    paragraphs = [" ".join(p.split()) for p in text.split("\n\n") if p.strip()]
    assert [s.text for s in sections] == paragraphs


def test_binary_content_in_a_text_job_is_a_readable_error() -> None:
    with pytest.raises(ExtractionError) as failed:
        read("binary-garbage.txt", TEXT)
    assert failed.value.detail == "This text file is not text in any encoding we know."


def test_json_is_flattened_to_paths() -> None:
    info, sections = read("valid.json", JSON)
    assert info.title == "Survey results"  # type: ignore[attr-defined]
    assert sections == [
        Section(
            None,
            "\n".join(
                [
                    "title: Survey results",
                    "survey.site: East bank",
                    "survey.date: 2024-04-12",
                    "survey.observers[0]: Ana",
                    "survey.observers[1]: Ben",
                    "counts[0].species: Avocet",
                    "counts[0].n: 12",
                    "counts[1].species: Redshank",
                    "counts[1].n: 30",
                    "complete: true",
                    "notes: null",
                    '["odd key.with dot"]: 1.5',
                ]
            ),
            "json",
        )
    ]


def test_broken_json_names_the_line_and_column() -> None:
    with pytest.raises(ExtractionError) as failed:
        read("broken.json", JSON)
    assert failed.value.detail == "The JSON is not valid: expected ',' at line 3, column 3."
    assert failed.value.retryable is False


@pytest.mark.parametrize(
    ("payload", "detail"),
    [
        ('{"a": }', "The JSON is not valid: expected a value at line 1, column 7."),
        (
            "{'a': 1}",
            "The JSON is not valid: expected a property name in quotes at line 1, column 2.",
        ),
        ('{"a": "open', "The JSON is not valid: a string is not closed at line 1, column 7."),
        (
            '{"a": 1} x',
            "The JSON is not valid: unexpected content after the end of the JSON "
            "at line 1, column 10.",
        ),
        ("[" * 100_000 + "]" * 100_000, "The JSON is nested too deeply to read."),
    ],
)
def test_json_errors_are_sentences(tmp_path: Path, payload: str, detail: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(payload)
    with pytest.raises(ExtractionError) as failed:
        open_document(path, JSON, source_name="bad.json")
    assert failed.value.detail == detail


def test_deep_but_parseable_json_flattens_without_recursion(tmp_path: Path) -> None:
    path = tmp_path / "deep.json"
    path.write_text('{"a": ' * 500 + "1" + "}" * 500)
    _, units = open_document(path, JSON, source_name="deep.json")
    [unit] = list(units)
    assert unit.sections[0].text == "a" + ".a" * 499 + ": 1"


# --- HTML ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_news_layouts_give_the_article_without_the_page_around_it(name: str) -> None:
    _, title, sentences = LAYOUTS[name]
    info, sections = read(name, HTML)
    assert info.title == title  # type: ignore[attr-defined]
    text = "\n".join(s.text for s in sections)
    for sentence in sentences:
        assert sentence in text
    for phrase in BOILERPLATE:
        assert phrase not in text


def test_html_headings_and_tables_are_kept() -> None:
    _, sections = read("news-liveblog.html", HTML)
    assert [s.heading for s in sections] == ["Polls closed", "Record turnout", "Results timing"]
    _, sections = read("news-wire.html", HTML)
    tables = [s for s in sections if s.kind == "table"]
    assert tables == [
        Section(None, "Region | Gigawatts\nAsia | 310\nEurope | 72\nAmericas | 58", "table")
    ]
    info, _ = read("news-broadsheet.html", HTML)
    assert info.metadata["author"] == "Maria Keller"  # type: ignore[attr-defined]


def test_media_type_outside_the_allowed_set_is_refused() -> None:
    with pytest.raises(ExtractionError) as failed:
        open_document(corpus_file("utf8.txt"), "image/png", source_name="x.png")
    assert failed.value.detail == "Files of type image/png cannot be read."


def test_decoding_notices_say_what_was_guessed_or_replaced() -> None:
    from kglab_ingestion.extraction.encoding import decoding_notice

    assert decoding_notice("café".encode(), "utf-8") is None
    assert decoding_notice(b"\xff\xfec\x00a\x00", "utf-16-le") is None
    guessed = decoding_notice("café".encode("cp1252"), "cp1252")
    assert guessed is not None
    assert guessed.startswith("The text is not valid UTF-8; it was read as cp1252")
    lossy = decoding_notice(b"caf\xe9 \x81\x81", "cp1252")
    assert lossy is not None
    assert "2 byte sequences could not be read" in lossy
