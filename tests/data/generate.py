"""Build the test corpus in tests/data/, deterministically (same bytes on every run).

    python tests/data/generate.py           # (re)write the small committed files
    python tests/data/generate.py --check   # fail if the committed files differ from a rebuild
    python tests/data/generate.py --large   # also build the on-demand files into .cache/

Large files (a 200-page PDF, a 50 MB PDF) are not committed: tests and benchmarks call
``tests.data.corpus.large_file(...)``, which builds them here on first use.
Hostile files are made from parts so this source is never itself one of them.
"""

from __future__ import annotations

import argparse
import codecs
import io
import json
import math
import os
import random
import struct
import sys
import tempfile
import zipfile
import zlib
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.data.html_layouts import LAYOUTS

HERE = Path(__file__).resolve().parent
CACHE = HERE / ".cache"
FIXED_DATE = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
ZIP_DATE = (2024, 1, 2, 3, 4, 6)
PDF_PASSWORD = "open-sesame"

_WORDS = (
    "river stone engine signal harbour market winter garden letter number theory paper light "
    "council bridge forest method record island station measure pattern weaver loom carriage "
    "ledger valley orchard lantern compass archive meadow circuit glacier beacon canal granite "
    "builds carries measures records shows follows describes changes opens reaches crosses "
    "quiet early careful distant gentle narrow ancient modern simple steady bright common "
    "the a every each this that one another its their under over across through beside near"
).split()


def prose(rng: random.Random, sentences: int) -> str:
    """Readable-looking sentences from a small vocabulary, reproducible from the seed."""
    out = []
    for _ in range(sentences):
        words = [rng.choice(_WORDS) for _ in range(rng.randint(8, 16))]
        out.append(" ".join(words).capitalize() + ".")
    return " ".join(out)


# --- PDF -----------------------------------------------------------------------------------


ONE_PAGE_HEADING = "Analytical Engines"
ONE_PAGE_PARAGRAPHS = [
    "The engine weaves algebraic patterns just as the loom weaves flowers and leaves.",
    "It might act upon other things besides number, were objects found whose mutual "
    "relations could be expressed by those of the abstract science of operations.",
]


def _new_pdf(title: str, author: str) -> object:
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    pdf.set_title(title)
    pdf.set_author(author)
    pdf.set_subject("Test corpus")
    pdf.set_keywords("kglab, test")
    pdf.set_creator("kglab tests/data/generate.py")
    pdf.set_producer("fpdf2")
    pdf.set_creation_date(FIXED_DATE)
    return pdf


def _write_page(pdf: object, heading: str, paragraphs: list[str], footer: str | None) -> None:
    pdf.add_page()  # type: ignore[attr-defined]
    pdf.set_font("Helvetica", "B", 16)  # type: ignore[attr-defined]
    pdf.multi_cell(0, 10, heading, new_x="LMARGIN", new_y="NEXT")  # type: ignore[attr-defined]
    pdf.set_font("Helvetica", "", 11)  # type: ignore[attr-defined]
    for paragraph in paragraphs:
        pdf.multi_cell(0, 6, paragraph, new_x="LMARGIN", new_y="NEXT")  # type: ignore[attr-defined]
        pdf.ln(4)  # type: ignore[attr-defined]
    if footer:
        pdf.set_auto_page_break(False)  # type: ignore[attr-defined]
        pdf.set_y(-20)  # type: ignore[attr-defined]
        pdf.cell(0, 10, footer, align="C")  # type: ignore[attr-defined]
        pdf.set_auto_page_break(True, margin=25)  # type: ignore[attr-defined]


def one_page_pdf() -> bytes:
    pdf = _new_pdf("Notes on the Analytical Engine", "Ada Lovelace")
    _write_page(pdf, ONE_PAGE_HEADING, ONE_PAGE_PARAGRAPHS, None)
    return bytes(pdf.output())  # type: ignore[attr-defined]


def paged_pdf_paragraphs(pages: int, *, seed: int = 10) -> list[list[str]]:
    """The three paragraphs of each page of ``paged_pdf(pages, seed=seed)``."""
    rng = random.Random(seed)
    return [[prose(rng, rng.randint(3, 5)) for _ in range(3)] for _ in range(pages)]


def paged_pdf(pages: int, *, seed: int = 10) -> bytes:
    """``pages`` pages, each a chapter heading, three paragraphs and "Page i of n"."""
    pdf = _new_pdf(f"A Report of {pages} Pages", "Charles Babbage")
    for page, paragraphs in enumerate(paged_pdf_paragraphs(pages, seed=seed), start=1):
        _write_page(pdf, f"Chapter {page}", paragraphs, f"Page {page} of {pages}")
    return bytes(pdf.output())  # type: ignore[attr-defined]


def heavy_pdf(target_mb: float, *, seed: int = 50) -> bytes:
    """About ``target_mb`` MB: every page has text and a 0.5 MB image that does not compress,
    the way scanned or photo-heavy reports reach tens of megabytes."""
    from PIL import Image

    rng = random.Random(seed)
    width, height = 480, 360
    pages = max(1, math.ceil(target_mb * 1024 * 1024 / (width * height * 3)))
    pdf = _new_pdf(f"A Heavy Report ({target_mb:g} MB)", "Charles Babbage")
    for page in range(1, pages + 1):
        _write_page(pdf, f"Plate {page}", [prose(rng, 4), prose(rng, 4)], f"Page {page}")
        image = Image.frombytes("RGB", (width, height), rng.randbytes(width * height * 3))
        pdf.image(image, x=20, y=120, w=170)  # type: ignore[attr-defined]
    return bytes(pdf.output())  # type: ignore[attr-defined]


def protected_pdf() -> bytes:
    """The one-page PDF behind a user password (RC4-128: deterministic, unlike AES's IVs)."""
    import pypdf
    from pypdf.generic import ArrayObject, ByteStringObject

    writer = pypdf.PdfWriter(clone_from=io.BytesIO(one_page_pdf()))
    # pypdf draws file identifiers at random; the key derives from the first one only.
    identifier = ByteStringObject(b"kglab-test-id-01")
    writer._ID = ArrayObject((identifier, identifier))
    writer.encrypt(PDF_PASSWORD, PDF_PASSWORD + "-owner", algorithm="RC4-128")
    writer._ID = ArrayObject((identifier, identifier))
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def corrupt_pdf() -> bytes:
    """A PDF header, the first objects of a real PDF cut short, then noise: no page tree."""
    rng = random.Random(13)
    real = one_page_pdf()
    return real[:200] + rng.randbytes(2048) + b"\n%%EOF\n"


# --- DOCX ----------------------------------------------------------------------------------

DOCX_TABLE = [["Quarter", "Revenue", "Change"], ["Q1", "1.2 M", "+4%"], ["Q2", "1.5 M", "+25%"]]


def tiny_png(width: int = 16, height: int = 16) -> bytes:
    """A small gradient PNG written by hand (no imaging library needed)."""
    raw = b"".join(
        b"\x00" + b"".join(bytes((x * 16 % 256, y * 16 % 256, 128)) for x in range(width))
        for y in range(height)
    )

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


def _normalised_zip(data: bytes) -> bytes:
    """The same archive with fixed timestamps and member order, so rebuilds are identical."""
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            member = zipfile.ZipInfo(info.filename, ZIP_DATE)
            member.compress_type = zipfile.ZIP_DEFLATED
            member.external_attr = 0o644 << 16
            target.writestr(member, source.read(info.filename))
    return out.getvalue()


def report_docx() -> bytes:
    import docx
    from docx.shared import Inches

    document = docx.Document()
    core = document.core_properties
    core.title = "Quarterly Report"
    core.author = "Grace Hopper"
    core.created = FIXED_DATE.replace(tzinfo=None)
    core.modified = FIXED_DATE.replace(tzinfo=None)
    core.last_modified_by = "kglab"
    core.revision = 1
    document.add_heading("Quarterly Report", level=0)
    document.add_paragraph("This report summarises the first half of the year.")
    document.add_heading("Summary", level=1)
    document.add_paragraph("Revenue grew in both quarters. Costs stayed flat.")
    document.add_paragraph("Hiring is on track.", style="List Bullet")
    document.add_paragraph("The new office opened in May.", style="List Bullet")
    document.add_heading("Figures", level=2)
    table = document.add_table(rows=len(DOCX_TABLE), cols=len(DOCX_TABLE[0]))
    for r, row in enumerate(DOCX_TABLE):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    document.add_picture(io.BytesIO(tiny_png()), width=Inches(1))
    document.add_paragraph("The chart above shows the trend.")
    document.add_heading("Outlook", level=1)
    document.add_paragraph("We expect steady growth in the second half.")
    out = io.BytesIO()
    document.save(out)
    return _normalised_zip(out.getvalue())


def zip_bomb_docx(inflated_mb: int = 512) -> bytes:
    """A DOCX-shaped ZIP whose document part inflates to ``inflated_mb`` MB of zeros.

    About 500 KB on disk for the default; the sizes are stated honestly in its headers, so the
    sniffer and the archive check can refuse it without decompressing anything.
    """
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        types = zipfile.ZipInfo("[Content_Types].xml", ZIP_DATE)
        types.compress_type = zipfile.ZIP_DEFLATED
        archive.writestr(
            types,
            '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/'
            'content-types"><Override PartName="/word/document.xml" ContentType="application/'
            'vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>',
        )
        part = zipfile.ZipInfo("word/document.xml", ZIP_DATE)
        part.compress_type = zipfile.ZIP_DEFLATED
        zeros = bytes(1024 * 1024)
        with archive.open(part, "w", force_zip64=True) as stream:
            for _ in range(inflated_mb):
                stream.write(zeros)
    return out.getvalue()


# --- text formats --------------------------------------------------------------------------

MARKDOWN = """# Field Notes

Observations from the river survey, written up after the spring visit.

## Method

We walked the **east bank** at low tide and counted birds in
each of the five sections.

- Section A: reed bed
- Section B: mud flats
  - inner flats
- Section C: shingle

## Results

| Species | Count |
| --- | --- |
| Avocet | 12 |
| Redshank | 30 |

> The avocets had not been seen here for a century.

```
count = sum(section.birds for section in sections)
```

## Next steps

Repeat the survey in autumn.
"""

TEXT_UTF8 = "Plain notes in UTF-8: naïve café, Straße, 東京, emoji-free.\n\nSecond paragraph.\n"
TEXT_UTF16 = "Notes saved by a Windows editor: Zürich, Ærø, señor.\n\nSecond paragraph.\n"
TEXT_LATIN1 = (
    "Le café de la gare était fermé; nous avons marché jusqu'à la place du marché, où "
    "l'église sonnait déjà midi. À côté, une boulangerie vendait des brioches dorées.\n\n"
    "Die Brücke über den Fluß war schön, und die Grüße der Bäuerin waren herzlich. "
    "Señor Muñoz, el pequeño niño, comió piñas en el año pasado.\n"
)

VALID_JSON = {
    "title": "Survey results",
    "survey": {"site": "East bank", "date": "2024-04-12", "observers": ["Ana", "Ben"]},
    "counts": [{"species": "Avocet", "n": 12}, {"species": "Redshank", "n": 30}],
    "complete": True,
    "notes": None,
    "odd key.with dot": 1.5,
}
# The comma after "date" is missing: Python's parser stops at line 3, column 5.
BROKEN_JSON = '{\n  "date": "2024-04-12"\n  "site": "East bank"\n}\n'


def eicar() -> bytes:
    """The antivirus test string, assembled so that no source file contains it verbatim."""
    parts = [
        "X5O!P%@AP[4\\PZX54(P^)7CC)7}$",
        "EICAR-STANDARD-",
        "ANTIVIRUS-TEST-",
        "FILE!$H+H*",
    ]
    return "".join(parts).encode("ascii")


# Names an uploader may send to escape the upload folder. The service must never use them as
# paths; ``hostile-name.txt`` is an ordinary text file to upload under each of them.
TRAVERSAL_NAMES = [
    "../../../../etc/passwd.txt",
    "..\\..\\..\\windows\\system32\\drivers\\etc\\hosts.txt",
    "/etc/shadow.txt",
    "reports/../../secret.txt",
    "%2e%2e%2f%2e%2e%2fsecret.txt",
    "C:\\Windows\\win.ini.txt",
    "notes\x00.pdf.txt",
]


# --- text without a known extension ----------------------------------------------------------

README_TEXT = """Knowledge Graph Lab notes
=========================

Start the system with make dev, then open http://127.0.0.1:8000/docs.
Ada Lovelace wrote the first published algorithm for the Analytical Engine.
"""
LICENSE_TEXT = """MIT License

Copyright (c) 2024 Knowledge Graph Lab contributors

Permission is hereby granted, free of charge, to any person obtaining a copy of this
software, to deal in the Software without restriction.
"""
RST_TEXT = """Graph search
============

.. note:: Entities are mined from every document.

* Neo4j stores the graph.
* Qdrant stores the vectors.
"""
CSV_TEXT = """city,country,population
Zürich,Switzerland,421878
Lyon,France,522250
Kraków,Poland,804237
"""
CHANGES_TEXT = """Changes
-------
1.1: search answers name their document; café menus are indexed.
"""


# --- the corpus ----------------------------------------------------------------------------


def small_files() -> dict[str, Callable[[], bytes]]:
    files: dict[str, Callable[[], bytes]] = {
        "one-page.pdf": one_page_pdf,
        "ten-pages.pdf": lambda: paged_pdf(10),
        "protected.pdf": protected_pdf,
        "corrupt.pdf": corrupt_pdf,
        "report.docx": report_docx,
        "zip-bomb.docx": zip_bomb_docx,
        "notes.md": lambda: MARKDOWN.encode("utf-8"),
        "utf8.txt": lambda: TEXT_UTF8.encode("utf-8"),
        "utf16-bom.txt": lambda: codecs.BOM_UTF16_LE + TEXT_UTF16.encode("utf-16-le"),
        "utf16-nobom.txt": lambda: TEXT_UTF16.encode("utf-16-le"),
        "latin1.txt": lambda: TEXT_LATIN1.encode("latin-1"),
        "binary-garbage.txt": lambda: random.Random(7).randbytes(4096),
        "valid.json": lambda: json.dumps(VALID_JSON, indent=2).encode() + b"\n",
        "broken.json": lambda: BROKEN_JSON.encode(),
        "eicar.txt": eicar,
        "hostile-name.txt": lambda: b"An ordinary file uploaded under a hostile name.\n",
        # Text known by its content, whatever its name (issue 13): accepted as plain text.
        "README": lambda: README_TEXT.encode("utf-8"),
        "LICENSE": lambda: LICENSE_TEXT.encode("utf-8"),
        "notes.rst": lambda: RST_TEXT.encode("utf-8"),
        "table.csv": lambda: CSV_TEXT.encode("utf-8"),
        "CHANGES-utf16": lambda: codecs.BOM_UTF16_LE + CHANGES_TEXT.encode("utf-16-le"),
        # ...and binary junk under a name that promises nothing: still refused.
        "junk.bin": lambda: random.Random(11).randbytes(4096),
    }
    for name, (html, _, _) in LAYOUTS.items():
        files[name] = lambda html=html: html.encode("utf-8")  # type: ignore[misc]
    return files


LARGE_FILES: dict[str, Callable[[], bytes]] = {
    "pages-200.pdf": lambda: paged_pdf(200, seed=200),
    "heavy-50mb.pdf": lambda: heavy_pdf(50),
    "heavy-5mb.pdf": lambda: heavy_pdf(5),
}


def write_atomically(path: Path, data: bytes) -> None:
    """Write via a temporary file and a rename, so a parallel reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    parser.add_argument("--large", action="store_true", help="also build the large files")
    args = parser.parse_args()
    stale = []
    for name, build in small_files().items():
        data = build()
        path = HERE / name
        if args.check:
            if not path.exists() or path.read_bytes() != data:
                stale.append(name)
        elif not path.exists() or path.read_bytes() != data:
            write_atomically(path, data)
            print(f"wrote {path.relative_to(HERE.parents[1])} ({len(data):,} bytes)")  # noqa: T201
    if args.large:
        for name, build in LARGE_FILES.items():
            write_atomically(CACHE / name, build())
            print(f"wrote {(CACHE / name).relative_to(HERE.parents[1])}")  # noqa: T201
    if stale:
        sys.stderr.write(f"out of date, run tests/data/generate.py: {', '.join(stale)}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
