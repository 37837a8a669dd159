"""Clean text from HTML pages: a paragraph's source line breaks are layout, not text; code blocks keep
their lines and indents; sections stay (issue #30, item 4)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pipeline.ingest.readers.html import read_html
from tests.support import corpora


def _page(name: str) -> str:
    return read_html(corpora.python_docs() / "library" / name).text


def test_a_real_pages_paragraphs_have_no_source_line_breaks() -> None:
    text = _page("json.html")
    # In python3-doc's json.html this paragraph is written over five source lines.
    assert ("JSON (JavaScript Object Notation), specified by RFC 7159 (which obsoletes RFC 4627) and by ECMA-404, "
            "is a lightweight data interchange format inspired by JavaScript object literal syntax") in text
    assert ("exposes an API familiar to users of the standard library marshal and pickle modules.") in text
    prose = [block for block in text.split("\n\n") if not block.startswith((">>>", "$", " "))
             and not re.search(r"[{}()=]\s*$", block.split("\n")[0])]
    # No line of prose ends mid-sentence with the next one starting in lower case ("common\n values").
    broken = [block for block in prose if re.search(r"[a-z,]\n[a-z]", block)]
    assert not broken, broken[:3]


def test_a_real_pages_code_blocks_keep_their_lines_and_indents() -> None:
    text = _page("json.html")
    assert ">>> print(json.dumps({'4': 5, '6': 7}, sort_keys=True, indent=4))\n{\n    \"4\": 5,\n    \"6\": 7\n}" in text
    assert "...     if '__complex__' in dct:\n...         return complex(dct['real'], dct['imag'])" in text


def test_a_real_page_keeps_its_sections() -> None:
    parsed = read_html(corpora.python_docs() / "library" / "json.html")
    paths = [section.path for section in parsed.sections]
    assert ("json — JSON encoder and decoder", "Basic Usage") in paths
    start = next(s.start for s in parsed.sections if s.path[-1:] == ("Basic Usage",))
    assert parsed.text[start:].startswith("Basic Usage\n\n- json.dump(")


def test_a_line_break_tag_stays_a_line_break(tmp_path: Path) -> None:
    page = tmp_path / "address.html"
    page.write_text("<html><head><title>Contact</title></head><body><article><h1>Contact</h1>"
                    "<p>Write to the   docs\n   team at:<br>12 Example Street<br/>Springfield</p>"
                    "<pre>def f():\n    return   1\n</pre></article></body></html>", encoding="utf-8")
    text = read_html(page).text
    assert "Write to the docs team at:\n12 Example Street\nSpringfield" in text
    assert "def f():\n    return   1" in text


def test_a_man_page_keeps_its_name_and_summary_that_the_extraction_drops_with_its_header() -> None:
    """git's manual pages (Debian's git-doc, AsciiDoc HTML) hold their <h1> and NAME line in a header
    that trafilatura drops as boilerplate: the title is the page's own h1, not its first remaining
    heading ("SYNOPSIS"), and the one-line summary leads the text, once."""
    page = Path("/usr/share/doc/git-doc/git-stash.html")
    if not page.exists():
        pytest.skip("git-doc is not installed (scripts/test.sh installs it)")
    parsed = read_html(page)
    assert parsed.title == "git-stash(1) Manual Page"
    assert parsed.text.startswith("git-stash - Stash the changes in a dirty working directory away\n")
    assert parsed.text.count("Stash the changes in a dirty working directory away") == 1
    assert ("SYNOPSIS",) in [section.path for section in parsed.sections]
    python = read_html(corpora.python_docs() / "library" / "json.html")
    assert python.title == "json — JSON encoder and decoder", "a page whose h1 is in its content: unchanged"
    assert python.text.count("json — JSON encoder and decoder") == 1
