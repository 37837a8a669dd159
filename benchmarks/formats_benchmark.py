"""Document readers side by side on the same real files: docvec's readers (one maintained library per
format), kreuzberg and markitdown, for speed and text fidelity; then docvec's parallel parse against
embedding the same PDFs on this CPU.

Corpus: ``--pages`` pages of the Python 3.11 documentation (Debian's python3.11-doc): the HTML pages,
printed to PDF by headless Chromium, and their reST sources converted by pandoc to DOCX, PPTX and
EPUB; two Debian manuals typeset by TeX and DocBook (PDF); R's readxl example workbooks (XLSX).

Fidelity is measured against the pages' reST sources (a reference no candidate produced): recall is
the share of the source's words (multiset, lower case) a reader recovered, precision the share of the
reader's words found in the source (navigation, page furniture and garbled text lower it).

Usage: ``pip install markitdown[pdf,docx,pptx,xlsx]`` (the comparison's third candidate), then
``python -m benchmarks.formats_benchmark [--pages 20]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from benchmarks import smoke
from benchmarks.server import benchmark_main
from pipeline.ingest.chunking import ChunkingConfig, chunk_texts
from pipeline.ingest.embedding import load_embedder
from pipeline.ingest.parse_pool import ParseLimits, parse_files
from pipeline.ingest.readers import parse
from tests.support import corpora

_WORD = re.compile(r"[a-z0-9]+")
_REST_MARKUP = re.compile(r"^\s*\.\. [\w:-]+::.*$|^[=\-~^\"'`#*+]{3,}\s*$|:[\w:-]+:`|[`*|]", re.M)
DEBIAN_PDFS = (Path("/usr/share/doc/libtasn1-doc/libtasn1.pdf"),
               Path("/usr/share/doc/shared-mime-info/shared-mime-info-spec.pdf"))
WORKBOOKS = ("datasets.xlsx", "deaths.xlsx", "clippy.xlsx", "geometry.xlsx", "type-me.xlsx")


def words(text: str) -> Counter[str]:
    return Counter(_WORD.findall(text.lower()))


def fidelity(extracted: str, reference: str) -> tuple[float, float]:
    got, want = words(extracted), words(reference)
    common = sum((got & want).values())
    return common / max(1, sum(want.values())), common / max(1, sum(got.values()))


def docvec_text(path: Path) -> str:
    return parse(path).text


def kreuzberg_text(path: Path) -> str:
    from kreuzberg import ExtractionConfig, extract_file_sync

    return str(extract_file_sync(str(path), config=ExtractionConfig(use_cache=False)).content)


def markitdown_text(path: Path) -> str:
    from markitdown import MarkItDown

    return str(MarkItDown(enable_plugins=False).convert(str(path)).text_content)


CANDIDATES: dict[str, Callable[[Path], str]] = {
    "docvec": docvec_text, "kreuzberg": kreuzberg_text, "markitdown": markitdown_text}
LIBRARIES = {"pdf": "pypdfium2", "docx": "python-docx", "pptx": "python-pptx", "epub": "kreuzberg",
             "html": "trafilatura", "xlsx": "openpyxl"}


def build_corpus(folder: Path, pages: int, manuals: bool = True) -> tuple[dict[str, list[tuple[Path, str]]], int]:
    """{format: [(file, reference text)]} and the PDFs' page count; the Debian manuals when ``manuals``."""
    corpus: dict[str, list[tuple[Path, str]]] = {fmt: [] for fmt in LIBRARIES}
    for page in corpora.python_doc_pages(pages):
        section, name = page.parent.name, page.stem
        source = corpora.python_doc_source(section, name)
        reference = _REST_MARKUP.sub(" ", source.read_text(encoding="utf-8"))
        corpus["html"].append((page, reference))
        corpus["pdf"].append((corpora.print_to_pdf(page, folder / f"{section}-{name}.pdf"), reference))
        for fmt in ("docx", "pptx", "epub"):
            corpus[fmt].append((corpora.pandoc(source, folder / f"{section}-{name}.{fmt}", title=name), reference))
    for manual in DEBIAN_PDFS if manuals else ():
        if manual.exists():
            corpus["pdf"].append((shutil.copyfile(manual, folder / manual.name), ""))
    for workbook in WORKBOOKS:
        corpus["xlsx"].append((corpora.readxl_workbook(workbook, folder / workbook), ""))
    import pypdfium2 as pdfium

    pdf_pages = sum(len(pdfium.PdfDocument(str(path))) for path, _ in corpus["pdf"])
    return corpus, pdf_pages


def compare(corpus: dict[str, list[tuple[Path, str]]], candidates: dict[str, Callable[[Path], str]]) -> list[str]:
    lines = [f"  {'format':<6} {'reader':<11} {'files/s':>8} {'MB/s':>6} {'recall':>7} {'precision':>9}  failures"]
    for fmt, files in corpus.items():
        size = sum(path.stat().st_size for path, _ in files) / 1e6
        for name, read in candidates.items():
            texts, failures, started = [], [], time.perf_counter()
            for path, _ in files:
                try:
                    texts.append(read(path))
                except Exception as exc:  # noqa: BLE001 - a candidate's failure is a result to report
                    texts.append("")
                    failures.append(f"{path.name}: {type(exc).__name__}")
            seconds = time.perf_counter() - started
            scored = [fidelity(text, ref) for text, (_, ref) in zip(texts, files, strict=True) if ref]
            recall = f"{sum(r for r, _ in scored) / len(scored):.3f}" if scored else "n/a"
            precision = f"{sum(p for _, p in scored) / len(scored):.3f}" if scored else "n/a"
            label = f"{name} ({LIBRARIES[fmt]})" if name == "docvec" else name
            lines.append(f"  {fmt:<6} {label:<11} {len(files) / seconds:>8.1f} {size / seconds:>6.1f} {recall:>7} "
                         f"{precision:>9}  {', '.join(failures) or '-'}")
    return lines


def parse_against_embedding(pdfs: list[Path], pdf_pages: int) -> list[str]:
    limits = ParseLimits()
    started = time.perf_counter()
    parsed = [p for p in parse_files(pdfs, limits) if not isinstance(p, Exception)]
    parse_seconds = time.perf_counter() - started
    embedder = load_embedder()
    config = ChunkingConfig(max_seq_length=embedder.info.max_seq_length)
    chunks = [c.text for doc in chunk_texts([p.text for p in parsed], embedder.backend_tokenizer(), config) for c in doc]
    started = time.perf_counter()
    embedder.encode(chunks)
    embed_seconds = time.perf_counter() - started
    parse_rate, embed_rate = pdf_pages / parse_seconds, pdf_pages / embed_seconds
    return [f"  parse ({limits.worker_count(len(pdfs))} workers, process start included): {pdf_pages} pages in "
            f"{parse_seconds:.2f} s = {parse_rate:.0f} pages/s",
            f"  embed the same text on {embedder.device}: {len(chunks)} chunks in {embed_seconds:.1f} s = "
            f"{len(chunks) / embed_seconds:.1f} chunks/s = {embed_rate:.1f} pages/s",
            f"  parsing / embedding: {parse_rate / embed_rate:.0f}x (target >= 10x)"]


@benchmark_main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=20, help="pages of the Python documentation")
    parser.add_argument("--manuals", action=argparse.BooleanOptionalAction, default=True,
                        help="include the two TeX/DocBook-typeset Debian manuals (PDF)")
    args = smoke.parse_args(parser, {"pages": 1, "manuals": False})
    candidates = dict(CANDIDATES)
    for name in ("kreuzberg", "markitdown"):
        try:
            __import__(name)
        except ImportError:
            print(f"({name} is not installed: left out of the comparison)")
            candidates.pop(name)
    with tempfile.TemporaryDirectory() as tmp:
        corpus, pdf_pages = build_corpus(Path(tmp), args.pages, args.manuals)
        print(f"machine: {platform.machine()}, {os.cpu_count()} cores; {sum(map(len, corpus.values()))} files: "
              + ", ".join(f"{len(files)} {fmt}" for fmt, files in corpus.items()) + f" ({pdf_pages} PDF pages)")
        print("\n".join(compare(corpus, candidates)))
        print("\n".join(parse_against_embedding([path for path, _ in corpus["pdf"]], pdf_pages)))


if __name__ == "__main__":
    main()
