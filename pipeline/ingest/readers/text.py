"""Plain text and Markdown: decoded (UTF-8, UTF-8/16 with BOM), front matter as metadata, Markdown
headings (parsed by markdown-it-py) as the section structure."""

from __future__ import annotations

import codecs
import re
from pathlib import Path
from typing import Any

from markdown_it import MarkdownIt

from pipeline.errors import UnreadableDocument
from pipeline.ingest.readers.structure import Builder, Parsed

_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?)\n---[ \t]*\n", re.S)
_FRONT_MATTER_LINE = re.compile(r"^([A-Za-z_][\w-]*)\s*:\s*(.*?)\s*$")


def decode_text(raw: bytes) -> str:
    if raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8):]
    elif raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return raw.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise UnreadableDocument(f"UTF-16 text is malformed at byte {exc.start}", "re-save the file as UTF-8") from exc
    if b"\x00" in raw[:8192]:
        raise UnreadableDocument("looks binary (contains NUL bytes)",
                                 "give it the extension of its format, or remove it from the landing directory")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UnreadableDocument(f"is not valid UTF-8 (bad byte 0x{raw[exc.start]:02x} at offset {exc.start})",
                                 "re-encode it as UTF-8, e.g. `iconv -f latin1 -t utf-8`") from exc


def split_front_matter(text: str) -> tuple[str, dict[str, str]]:
    """``key: value`` lines between ``---`` fences at the top become metadata (a YAML subset)."""
    match = _FRONT_MATTER.match(text)
    if not match:
        return text, {}
    metadata = {}
    for line in match.group(1).splitlines():
        pair = _FRONT_MATTER_LINE.match(line)
        if pair:
            metadata[pair.group(1)] = pair.group(2).strip("\"'")
    return text[match.end():], metadata


def _first_line(text: str) -> str | None:
    for line in text.splitlines():
        stripped = line.strip().lstrip("#").strip()
        if stripped:
            return stripped[:200]
    return None


def read_plain_text(path: Path) -> Parsed:
    text, front = split_front_matter(decode_text(path.read_bytes()))
    builder = Builder()
    builder.block(text)
    return builder.build(front.get("title") or _first_line(text), front)


def read_markdown(path: Path) -> Parsed:
    text, front = split_front_matter(decode_text(path.read_bytes()))
    return markdown_document(text, front.get("title"), front)


def markdown_document(text: str, title: str | None, metadata: dict[str, Any]) -> Parsed:
    """Markdown text with its headings (ATX or setext, as CommonMark parses them) as sections."""
    lines = text.splitlines(keepends=True)
    tokens = MarkdownIt("commonmark").parse(text)
    headings = [(token.map[0], token.map[1], int(token.tag[1]), tokens[i + 1].content)
                for i, token in enumerate(tokens) if token.type == "heading_open" and token.map]
    builder = Builder()
    line = 0
    for start, end, level, heading in headings:
        builder.block("".join(lines[line:start]))
        builder.heading(level, heading)
        line = end
    builder.block("".join(lines[line:]))
    return builder.build(title or builder.first_heading or _first_line(text), metadata)
