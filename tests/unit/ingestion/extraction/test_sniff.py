"""The real type comes from the bytes; the name must agree; hostile containers are refused."""

from __future__ import annotations

import codecs
import time

import pytest

from kglab_ingestion.extraction import MEDIA_TYPES, UnsupportedFileError, sniff_media_type
from kglab_ingestion.extraction.model import DOCX, HTML, JSON, MARKDOWN, PDF, TEXT
from tests.data.corpus import TRAVERSAL_NAMES, corpus_file

ALLOWED = "upload PDF, DOCX, Markdown, text, JSON or HTML."


def head(name: str, size: int = 8192) -> bytes:
    return corpus_file(name).read_bytes()[:size]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("one-page.pdf", PDF),
        ("protected.pdf", PDF),
        ("corrupt.pdf", PDF),  # the header is a PDF's; the damage is found on opening
        ("report.docx", DOCX),
        ("notes.md", MARKDOWN),
        ("utf8.txt", TEXT),
        ("utf16-bom.txt", TEXT),
        ("utf16-nobom.txt", TEXT),
        ("latin1.txt", TEXT),
        ("eicar.txt", TEXT),  # plain text to the sniffer; the virus scanner refuses it
        ("valid.json", JSON),
        ("broken.json", JSON),  # looks like JSON; its syntax error is the job's failure
        ("news-broadsheet.html", HTML),
        ("news-wire.html", HTML),
    ],
)
def test_corpus_files_are_recognised(name: str, expected: str) -> None:
    assert sniff_media_type(head(name), name) == expected
    assert expected in MEDIA_TYPES


def test_docx_is_recognised_from_the_first_8_kib_only() -> None:
    assert sniff_media_type(head("report.docx", 8192), "report.docx") == DOCX


@pytest.mark.parametrize(
    ("name", "content", "detail"),
    [
        (
            "report.pdf",
            "report.docx",
            "The file is named report.pdf but its content is a DOCX document; " + ALLOWED,
        ),
        (
            "report.docx",
            "one-page.pdf",
            "The file is named report.docx but its content is a PDF document; " + ALLOWED,
        ),
        (
            "notes.pdf",
            "utf8.txt",
            "The file is named notes.pdf but its content is plain text; " + ALLOWED,
        ),
        (
            "notes.txt",
            "binary-garbage.txt",
            "The file is named notes.txt but its content is binary data, not text; " + ALLOWED,
        ),
        (
            "data.json",
            "notes.md",
            "The file is named data.json but its content is text that does not look like JSON; "
            + ALLOWED,
        ),
        (
            "page.html",
            "valid.json",
            "The file is named page.html but its content is text that does not look like HTML; "
            + ALLOWED,
        ),
    ],
)
def test_content_that_disagrees_with_the_name_is_refused(
    name: str, content: str, detail: str
) -> None:
    with pytest.raises(UnsupportedFileError) as refused:
        sniff_media_type(head(content), name)
    assert refused.value.detail == detail


def test_a_plain_zip_named_docx_is_named_as_a_zip() -> None:
    import io
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("holiday/photo.txt", "not a document")
    with pytest.raises(UnsupportedFileError) as refused:
        sniff_media_type(out.getvalue(), "report.docx")
    assert refused.value.detail == (
        "The file is named report.docx but its content is a ZIP archive; " + ALLOWED
    )


@pytest.mark.parametrize(
    ("data", "phrase"),
    [
        (b"\x89PNG\r\n\x1a\n" + bytes(100), "a PNG image"),
        (b"\x7fELF\x02\x01\x01" + bytes(100), "a Linux program"),
        (b"MZ\x90\x00" + bytes(100), "a Windows program"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(100), "a legacy or password-protected"),
    ],
)
def test_known_binary_formats_are_named(data: bytes, phrase: str) -> None:
    with pytest.raises(UnsupportedFileError) as refused:
        sniff_media_type(data, "upload.docx")
    assert f"its content is {phrase}" in refused.value.detail


@pytest.mark.parametrize("name", ["README", "LICENSE", "notes.rst", "table.csv", "CHANGES-utf16"])
def test_text_is_known_by_its_content_whatever_its_name(name: str) -> None:
    assert sniff_media_type(head(name), name) == TEXT


@pytest.mark.parametrize(
    ("name", "content", "detail"),
    [
        (
            "junk.bin",
            "junk.bin",
            "The file junk.bin has the extension .bin and its content is binary data, not text",
        ),
        (
            "README",
            "binary-garbage.txt",
            "The file README has no extension and its content is binary data, not text",
        ),
        (
            "setup.exe",
            "one-page.pdf",
            "The file setup.exe has the extension .exe and its content is a PDF document",
        ),
        # Not Unicode: a detector's guess is not trusted without a text extension.
        ("names.lst", "latin1.txt", "The file names.lst has the extension .lst"),
    ],
)
def test_what_is_not_unicode_text_under_an_unknown_name_is_refused(
    name: str, content: str, detail: str
) -> None:
    with pytest.raises(UnsupportedFileError) as refused:
        sniff_media_type(head(content), name)
    assert refused.value.detail.startswith(detail)
    assert refused.value.detail.endswith(f"which is not a format we read; {ALLOWED}")


def test_a_windows_program_under_an_unknown_name_is_named() -> None:
    with pytest.raises(UnsupportedFileError) as refused:
        sniff_media_type(b"MZ\x90\x00" + bytes(100), "setup.exe")
    assert "its content is a Windows program" in refused.value.detail


def test_an_empty_file_is_refused() -> None:
    with pytest.raises(UnsupportedFileError) as refused:
        sniff_media_type(b"", "empty.txt")
    assert refused.value.detail == "The file empty.txt is empty; there is nothing to read."


def test_the_zip_bomb_is_refused_quickly_without_inflating() -> None:
    bomb = corpus_file("zip-bomb.docx")
    assert bomb.stat().st_size < 1024 * 1024  # small on disk, 512 MB inflated
    started = time.perf_counter()
    with pytest.raises(UnsupportedFileError) as refused:
        sniff_media_type(bomb.read_bytes()[:8192], "zip-bomb.docx")
    assert time.perf_counter() - started < 0.5
    assert refused.value.detail == (
        "The file zip-bomb.docx is a compressed archive that was refused because it would "
        "expand to more than 512 MB, which is how a zip bomb looks."
    )


def test_extension_case_does_not_matter() -> None:
    assert sniff_media_type(head("one-page.pdf"), "SCAN.PDF") == PDF
    assert sniff_media_type(head("notes.md"), "Notes.Markdown") == MARKDOWN
    assert sniff_media_type(head("news-tabloid.html"), "saved.htm") == HTML


def test_json_and_html_in_utf16_are_recognised() -> None:
    payload = codecs.BOM_UTF16_LE + '{"a": 1}'.encode("utf-16-le")
    assert sniff_media_type(payload, "a.json") == JSON
    page = codecs.BOM_UTF16_LE + "<!doctype html><html><p>x</p></html>".encode("utf-16-le")
    assert sniff_media_type(page, "a.html") == HTML


@pytest.mark.parametrize("name", TRAVERSAL_NAMES)
def test_hostile_names_only_show_their_last_part(name: str) -> None:
    content = head("hostile-name.txt")
    assert sniff_media_type(content, name) == TEXT
    with pytest.raises(UnsupportedFileError) as refused:
        sniff_media_type(head("one-page.pdf"), name)
    detail = refused.value.detail
    assert "/" not in detail.split(" but ")[0]
    assert "\\" not in detail
    assert "\x00" not in detail
    assert ".." not in detail.split(" but ")[0]
