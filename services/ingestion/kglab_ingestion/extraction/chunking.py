"""Structure-aware chunking: bounded chunks that follow headings, paragraphs and table rows.

Rules, in order of precedence:
1. A chunk never spans two headings (consecutive sections with the same heading are one group).
2. No chunk is longer than ``max_chars``.
3. A paragraph, table, list or code block that fits in a chunk is not split; a table that must
   be split breaks between rows and repeats its header row; a paragraph breaks between
   sentences, a sentence longer than a chunk between words, a word longer than that anywhere.
4. Consecutive chunks of one group overlap: the next starts with up to ``overlap_chars`` of the
   end of the previous one, from a sentence or word boundary (a continued table starts with
   its header row instead).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import groupby

from kglab_ingestion.extraction.model import Section, TextChunk

_LINE_KINDS = frozenset({"table", "list", "code", "json"})
_SENTENCE_BREAK = re.compile(r"(?:(?<=[.!?\u3002\uff01\uff1f])|(?<=[.!?][\"'\u201d\u2019)\]]))\s+")
_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
_BLOCK_SEPARATOR = "\n\n"


@dataclass(frozen=True)
class _Block:
    pieces: list[str]
    joiner: str
    header: str | None = None  # a table's first row, repeated when the table continues


def _split_long(text: str, limit: int) -> list[str]:
    """Cut text longer than ``limit`` at whitespace (or anywhere, for one huge word)."""
    pieces = []
    while len(text) > limit:
        cut = text.rfind(" ", 0, limit + 1)
        if cut <= limit // 2:
            cut = limit
        pieces.append(text[:cut].rstrip())
        text = text[cut:].lstrip()
    if text:
        pieces.append(text)
    return pieces


def _blocks(section: Section, limit: int) -> list[_Block]:
    if section.kind in _LINE_KINDS:
        keep_blank = section.kind == "code"
        lines = [line.rstrip() if keep_blank else line.strip() for line in section.text.split("\n")]
        lines = [line for line in lines if keep_blank or line]
        while lines and not lines[-1]:
            lines.pop()
        if not lines:
            return []
        pieces = [piece for line in lines for piece in (_split_long(line, limit) or [""])]
        header = lines[0] if section.kind == "table" and len(lines) > 1 else None
        return [_Block(pieces, "\n", header)]
    blocks = []
    for paragraph in _PARAGRAPH_BREAK.split(section.text):
        flat = " ".join(paragraph.split())
        if not flat:
            continue
        sentences = [s for s in _SENTENCE_BREAK.split(flat) if s]
        blocks.append(_Block([p for s in sentences for p in _split_long(s, limit)], " "))
    return blocks


def _tail(text: str, size: int) -> str:
    """At most ``size`` characters from the end of ``text``, starting at a sentence if one
    starts in the last ``size`` characters, else at a word."""
    if size <= 0:
        return ""
    window = text[-size:]
    if len(text) <= size:
        return window.strip()
    for match in _SENTENCE_BREAK.finditer(window):
        if len(window) - match.end() >= size // 4:
            return window[match.end() :].strip()
        break
    space = re.search(r"\s", window)
    return window[space.end() :].strip() if space else ""


class _Packer:
    def __init__(self, heading: str | None, max_chars: int, overlap_chars: int) -> None:
        self.heading = heading
        self.max_chars = max_chars
        self.overlap_chars = overlap_chars
        self.texts: list[str] = []
        self.current = ""
        self.seed_length = 0  # how much of ``current`` is overlap carried from the last chunk

    def has_content(self) -> bool:
        return len(self.current) > self.seed_length

    def fits(self, separator: str, text: str) -> bool:
        return len(self.current) + (len(separator) if self.current else 0) + len(text) <= (
            self.max_chars
        )

    def add(self, separator: str, text: str) -> None:
        if not self.fits(separator, text) and not self.has_content():
            self.current, self.seed_length = "", 0  # the seed gives way to real content
        self.current = f"{self.current}{separator}{text}" if self.current else text

    def new_chunk(self, seed: str | None = None) -> None:
        if self.has_content():
            self.texts.append(self.current)
        previous = self.texts[-1] if self.texts else ""
        if seed is None:
            seed = _tail(previous, self.overlap_chars) if previous else ""
        self.current, self.seed_length = seed, len(seed)

    def pack(self, block: _Block) -> None:
        whole = block.joiner.join(block.pieces)
        if self.fits(_BLOCK_SEPARATOR, whole):
            self.add(_BLOCK_SEPARATOR, whole)
            return
        if self.has_content():
            self.new_chunk()
        if len(whole) <= self.max_chars:
            if not self.fits(_BLOCK_SEPARATOR, whole):
                self.current, self.seed_length = "", 0  # keeping the block whole comes first
            self.add(_BLOCK_SEPARATOR, whole)
            return
        separator = _BLOCK_SEPARATOR
        for index, piece in enumerate(block.pieces):
            if not self.fits(separator, piece) and self.has_content():
                seed = None
                if block.header is not None and index > 0:
                    fits_header = len(block.header) + 1 + len(piece) <= self.max_chars
                    seed = block.header if fits_header else ""
                self.new_chunk(seed)
                separator = block.joiner if seed == block.header else separator
            self.add(separator, piece)
            separator = block.joiner

    def finish(self) -> list[str]:
        if self.has_content():
            self.texts.append(self.current)
        return self.texts


def chunk_sections(
    sections: Iterable[Section], *, max_chars: int = 1500, overlap_chars: int = 200
) -> list[TextChunk]:
    """Chunks of at most ``max_chars`` characters, in order, each with its section heading."""
    if max_chars < 50:
        raise ValueError("max_chars must be at least 50")
    if not 0 <= overlap_chars <= max_chars // 2 - 2:
        raise ValueError("overlap_chars must be between 0 and half of max_chars")
    limit = max_chars - overlap_chars - len(_BLOCK_SEPARATOR)
    chunks: list[TextChunk] = []
    for heading, group in groupby(sections, key=lambda section: section.heading):
        packer = _Packer(heading, max_chars, overlap_chars)
        for section in group:
            for block in _blocks(section, limit):
                packer.pack(block)
        for text in packer.finish():
            chunks.append(TextChunk(len(chunks), text, heading))
    return chunks
