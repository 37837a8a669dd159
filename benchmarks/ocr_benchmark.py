"""Scanned documents against their text edition, side by side in one run: the same real pages read
from a PDF's text layer and OCR'd from a scan of them, for retrieval quality, OCR fidelity and speed.

Corpus: the pages of the Python documentation (Debian's python3-doc) that answer the labelled questions
of ``benchmarks/eval/python-docs.jsonl`` whose answer pages are short (every expected page under
``--max-chars`` characters of text: 24 questions, 24 pages with the default), printed to PDF by headless
Chromium (the **text edition**), then each PDF page rasterised at ``--dpi`` by PDFium, given a flatbed
scanner's flaws (up to 0.8 degrees of skew, grey paper, sensor noise) and wrapped as an image-only PDF
by Pillow (the **scanned edition**, what "scan to PDF" writes). Nothing generated is kept.

Each edition is read by docvec's own readers in its parse workers (the scanned one OCR'd by Tesseract
through pytesseract), chunked, embedded and loaded into a scratch database of its own, and searched with
the same questions (answers by document). Reported:

- MRR@10, hit@1 and hit@5 of the vector, text and hybrid modes on both editions (target: the scanned
  edition's hybrid MRR@10 within 0.05 of the text edition's);
- the character error rate of the OCR text against the text layer of the same page (edit distance over
  the text layer's length, whitespace runs counted as one space);
- pages/s: parsing the text edition, OCR of the scanned edition (all parse workers), and embedding the
  same pages on this machine;
- pytesseract (one Tesseract process per page, images handed over as files) against one Tesseract
  process over a multi-page TIFF of the same pages, single-threaded, on ``--engine-pages`` pages.

Usage: ``python -m benchmarks.ocr_benchmark [--max-chars 25000] [--dpi 300]`` (168 PDF pages; ~25 min on 2 busy cores).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import re
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pypdfium2 as pdfium

from benchmarks import smoke
from benchmarks.retrieval_benchmark import QUERIES, docvec_rankers, measure
from benchmarks.server import benchmark_main, drop_scratch, scratch_settings
from pipeline.indexing import builds
from pipeline.ingest import stages
from pipeline.ingest.chunking import ChunkingConfig
from pipeline.ingest.context import HEADER_TOKENS
from pipeline.ingest.embedding import Embedder, load_embedder
from pipeline.ingest.parse_pool import ParseLimits
from pipeline.ingest.readers import parse
from pipeline.ingest.readers.ocr import OcrOptions
from pipeline.query import evaluation
from pipeline.query.search_model import search_model_id
from pipeline.records import DayDocuments, SourceDocument
from pipeline.storage import connections, layout
from tests.support import corpora, scans

DATABASE = "docvec_bench_ocr"
DAY = dt.date(2026, 1, 5)
_SPACE = re.compile(r"\s+")
_WORD = re.compile(r"\w+")


def select(queries: list[evaluation.LabelledQuery], root: Path, max_chars: int,
           ) -> tuple[list[evaluation.LabelledQuery], list[str]]:
    """The questions whose every answer page holds at most ``max_chars`` characters, and those pages."""
    lengths: dict[str, int] = {}
    for doc in sorted({d for q in queries for d in q.expected_doc_ids}):
        lengths[doc] = len(parse(root / doc).text)
    chosen = [q for q in queries if all(lengths[d] <= max_chars for d in q.expected_doc_ids)]
    return chosen, sorted({d for q in chosen for d in q.expected_doc_ids})


def as_pdf(doc_id: str) -> str:
    return re.sub(r"\.html$", ".pdf", doc_id)


def build_editions(docs: list[str], root: Path, folder: Path, dpi: int) -> tuple[Path, Path, float]:
    """Two landing folders holding the text and the scanned edition of ``docs``; the build's seconds."""
    started = time.perf_counter()
    text, scanned = folder / "text", folder / "scanned"
    for n, doc in enumerate(docs):
        printed = corpora.print_to_pdf(root / doc, text / DAY.isoformat() / as_pdf(doc))
        pages = len(pdfium.PdfDocument(str(printed)))
        images = [scans.degrade(image, seed=n * 1000 + i)
                  for i, image in enumerate(scans.rasterize(printed, range(pages), dpi=dpi))]
        scans.image_only_pdf(images, scanned / DAY.isoformat() / as_pdf(doc), dpi=dpi)
    return text, scanned, time.perf_counter() - started


def page_texts(document: SourceDocument) -> dict[int, str]:
    bounds = [(s.start, s.page) for s in document.sections]
    pages: dict[int, str] = {}
    for (start, page), (end, _) in zip(bounds, [*bounds[1:], (len(document.text), None)], strict=True):
        if page is not None:
            pages[page] = pages.get(page, "") + document.text[start:end]
    return pages


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance, a row at a time in numpy (insertions carried along a row by a running min)."""
    if not a or not b:
        return max(len(a), len(b))
    target = np.frombuffer(b.encode("utf-32-le"), dtype=np.uint32)
    steps = np.arange(len(b) + 1)
    row = steps.copy()
    for i, char in enumerate(a, start=1):
        substituted = row[:-1] + (target != ord(char))
        candidate = np.empty_like(row)
        candidate[0] = i
        candidate[1:] = np.minimum(row[1:] + 1, substituted)
        row = np.minimum.accumulate(candidate - steps) + steps
    return int(row[-1])


def character_error_rate(text: DayDocuments, scanned: DayDocuments) -> tuple[float, float, int]:
    """Edits over reference characters, page by page (OCR against the text layer); the share of the text
    layer's words (a multiset, in any order) the OCR text holds; pages compared."""
    edits = reference = pages = 0
    found = wanted = 0
    scanned_by_id = {d.doc_id: d for d in scanned.documents}
    for document in text.documents:
        ocr_pages = page_texts(scanned_by_id[document.doc_id]) if document.doc_id in scanned_by_id else {}
        for number, original in page_texts(document).items():
            want = _SPACE.sub(" ", original).strip()
            got = _SPACE.sub(" ", ocr_pages.get(number, "")).strip()
            edits += edit_distance(want, got)
            reference += len(want)
            pages += 1
            words, recovered = Counter(_WORD.findall(want.lower())), Counter(_WORD.findall(got.lower()))
            found += sum((words & recovered).values())
            wanted += sum(words.values())
    return edits / max(1, reference), found / max(1, wanted), pages


def load_edition(name: str, landing: Path, embedder: Embedder, limits: ParseLimits) -> dict[str, Any]:
    """Read (parse or OCR), chunk, embed and load one edition into scratch database ``name``; timings."""
    settings = scratch_settings(name)
    started = time.perf_counter()
    read = stages.read_documents(landing, DAY, limits=limits)
    parse_seconds = time.perf_counter() - started
    config = ChunkingConfig(max_seq_length=embedder.info.max_seq_length,
                            reserved_tokens=HEADER_TOKENS if embedder.contextual else 0)
    chunks = stages.chunk_documents(read, embedder.backend_tokenizer(), config, contextual=embedder.contextual)
    with connections.connect(settings) as conn:
        started = time.perf_counter()
        embedded = stages.embed_chunks(chunks, embedder, conn)
        embed_seconds = time.perf_counter() - started
        stages.load_embeddings(conn, embedded)
        builds.maintain_partition(conn, layout.partition_name(DAY))
        conn.execute("VACUUM ANALYZE chunks")
        model_id = search_model_id(conn, embedder, "x")
    return {"settings": settings, "read": read, "parse_seconds": parse_seconds, "embed_seconds": embed_seconds,
            "chunks": len(chunks.chunks), "model_id": model_id,
            "pages": sum(int(d.metadata.get("pages", 0)) for d in read.documents),
            "ocr_pages": sum(int(d.metadata.get("ocr_pages", 0)) for d in read.documents),
            "ocr_seconds": sum(float(d.metadata.get("ocr_seconds", 0.0)) for d in read.documents)}


def engines(scanned: Path, pages: int, languages: str) -> tuple[float, float, float]:
    """pytesseract page by page against one tesseract process over a multi-page TIFF of the same pages
    (both single-threaded): (pytesseract pages/s, CLI pages/s, character error rate between the two)."""
    import pytesseract

    os.environ["OMP_THREAD_LIMIT"] = "1"
    pdfs = sorted(scanned.rglob("*.pdf"))
    images = [image for pdf in pdfs for image in scans.rasterize(pdf, range(1), dpi=300)][:pages]
    with tempfile.TemporaryDirectory() as folder:
        # Written first: saving an image (pytesseract saves each) leaves its encoder settings on it.
        tiff = scans.multipage_tiff(images, Path(folder) / "pages.tiff", dpi=300)
        started = time.perf_counter()
        one_by_one = [pytesseract.image_to_string(image.copy(), lang=languages) for image in images]
        per_page = len(images) / (time.perf_counter() - started)
        started = time.perf_counter()
        done = subprocess.run([shutil.which("tesseract") or "tesseract", str(tiff), "stdout", "-l", languages],
                              capture_output=True, text=True, check=True)
        whole = len(images) / (time.perf_counter() - started)
    a, b = _SPACE.sub(" ", "".join(one_by_one)).strip(), _SPACE.sub(" ", done.stdout.replace("\f", "")).strip()
    return per_page, whole, edit_distance(a, b) / max(1, len(a))


def print_rows(label: str, rows: list[dict[str, Any]]) -> None:
    for row in rows:
        print(f"  {label:<22} {row['name']:<7} {row['mrr']:>6.3f} {row['hit1']:>6.3f} {row['hit5']:>6.3f}")


@benchmark_main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-chars", type=int, default=25_000, help="longest answer page, in characters of text")
    parser.add_argument("--dpi", type=int, default=300, help="resolution of the scans (and of OCR)")
    parser.add_argument("--engine-pages", type=int, default=8, help="pages for the pytesseract / CLI comparison")
    parser.add_argument("--languages", default="eng", help="Tesseract languages")
    args = smoke.parse_args(parser, {"max_chars": 4_400, "engine_pages": 1, "dpi": 200})
    root = corpora.python_docs()
    queries, docs = select(evaluation.load_queries(QUERIES), root, args.max_chars)
    queries = [evaluation.LabelledQuery(q.query, tuple(as_pdf(d) for d in q.expected_doc_ids), q.tags)
               for q in queries]
    limits = ParseLimits(seconds=600, ocr=OcrOptions(languages=args.languages, dpi=args.dpi, max_pages=1000))
    embedder = load_embedder()
    vectors = embedder.encode([q.query for q in queries])
    results = {}
    with tempfile.TemporaryDirectory(prefix="docvec-ocr-bench-") as folder:
        text, scanned, build_seconds = build_editions(docs, root, Path(folder), args.dpi)
        for label, landing in (("text", text), ("scanned", scanned)):
            name = f"{DATABASE}_{label}"
            edition = load_edition(name, landing, embedder, limits)
            with connections.connect(edition["settings"]) as conn:
                rankers = docvec_rankers(conn, vectors, edition["model_id"], embedder)
                edition["rows"] = measure({mode: rankers[mode] for mode in ("vector", "text", "hybrid")}, queries)
            drop_scratch(name)
            results[label] = edition
        report(args, root, docs, queries, results, build_seconds)
        per_page, whole, between = engines(scanned, args.engine_pages, args.languages)
    print(f"engines, {args.engine_pages} pages, one core: pytesseract page by page {per_page:.2f} pages/s; "
          f"tesseract CLI over one multi-page TIFF {whole:.2f} pages/s; their texts differ by {between:.2%}")


def report(args: argparse.Namespace, root: Path, docs: list[str], queries: list[evaluation.LabelledQuery],
           results: dict[str, dict[str, Any]], build_seconds: float) -> None:
    cer, recall, compared = character_error_rate(results["text"]["read"], results["scanned"]["read"])
    text_edition, scan_edition = results["text"], results["scanned"]
    pages = text_edition["pages"]
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; corpus: {len(docs)} pages of the Python "
          f"documentation ({root}) printed by Chromium: {pages} PDF pages, scanned at {args.dpi} dpi with skew and "
          f"noise (built in {build_seconds:.0f} s); {len(queries)} questions of {QUERIES.name}")
    print(f"  {'edition':<22} {'mode':<7} {'MRR@10':>6} {'hit@1':>6} {'hit@5':>6}")
    print_rows("text (PDF text layer)", text_edition["rows"])
    print_rows("scanned (OCR)", scan_edition["rows"])
    mrr = {label: next(r["mrr"] for r in e["rows"] if r["name"] == "hybrid") for label, e in results.items()}
    print(f"scanned - text, hybrid MRR@10: {mrr['scanned'] - mrr['text']:+.3f} (target: within 0.05)")
    print(f"OCR character error rate: {cer:.2%} over {compared} pages (OCR text against the page's text layer); "
          f"words recovered in any order: {recall:.2%}")
    ocr_rate = scan_edition["ocr_pages"] / scan_edition["parse_seconds"]
    embed_rate = pages / text_edition["embed_seconds"]
    print(f"  {'step':<40} {'pages':>6} {'seconds':>8} {'pages/s':>8}")
    print(f"  {'parse, text edition':<40} {pages:>6} {text_edition['parse_seconds']:>8.1f} "
          f"{pages / text_edition['parse_seconds']:>8.2f}")
    print(f"  {'parse with OCR, scanned edition':<40} {scan_edition['ocr_pages']:>6} "
          f"{scan_edition['parse_seconds']:>8.1f} {ocr_rate:>8.2f}")
    print(f"  {'embedding the text edition':<40} {pages:>6} {text_edition['embed_seconds']:>8.1f} {embed_rate:>8.2f}")
    print(f"OCR / embedding: {ocr_rate / embed_rate:.2f}x (OCR seconds inside the workers: "
          f"{scan_edition['ocr_seconds']:.1f} s, {scan_edition['ocr_seconds'] / max(1, scan_edition['ocr_pages']):.2f} "
          f"s a page a core)", flush=True)


if __name__ == "__main__":
    main()
