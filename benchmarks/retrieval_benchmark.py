"""Retrieval quality on a real manual nobody here wrote, side by side in one run: a plain peer-like
pipeline and docvec, on the same pages, the same model and the same labelled questions.

Corpora (``--corpus``, one or both; tests/support/corpora.py builds each page set from a Debian package):

- ``python-docs`` (the default): the pages of the Python documentation listed in ``corpora.python_eval_pages``
  (every guide, 108 library modules, and the index, contents, module-index and glossary pages), as Debian's
  python3-doc ships them (Sphinx HTML). Questions: ``benchmarks/eval/python-docs.jsonl``, 77 written by
  reading those pages (40 in plain words, 30 naming an identifier, 7 short keyword queries).
- ``git-docs``: git's manual as Debian's git-doc ships it (``corpora.git_eval_pages``: 213 AsciiDoc pages,
  every command page, the guides and the how-tos; a style nobody tuned on). Questions:
  ``benchmarks/eval/git-docs.jsonl``, 72 written by reading those pages before any search ran (42 in plain
  words, 24 hinging on an option, config key, variable or command, 6 keyword queries).

Answers are by document (every page that answers is listed).

- **peer**: what a plain pipeline does: fixed windows of 256 word pieces (32 shared), no titles, MiniLM
  vectors (exact cosine), PostgreSQL full text (``ts_rank_cd`` over ``to_tsvector('english')``, any
  word of the query), chunk-level reciprocal rank fusion (k 60). It gets docvec's text extraction (main
  content, no navigation), so the comparison is about chunking, indexing and ranking only.
- **docvec**: ingested through its own stages (heading-aware chunks with contextual headers, BM25 with
  field weights, list priors), day partition indexed by its own policy (HNSW here), searched by its
  own search functions; ``hybrid, no feedback`` is hybrid without its feedback terms (``feedback_weight``
  0, as before them), ``hybrid, no openings`` without them and its documents' openings weighed in
  (``opening_weight`` 0 too: relative fusion alone, as before both); ``--ablate`` adds docvec without
  contextual headers (a second embedding pass).

Metrics per question: the ranked list of distinct documents; MRR over the first 10, hit@1, hit@5.

Usage: ``python -m benchmarks.retrieval_benchmark [--corpus python-docs git-docs] [--ablate] [--queries FILE]``;
it works in scratch databases (``docvec_bench_retrieval*``) and a temporary landing folder; with two corpora
it ends with their figures side by side.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psycopg

from benchmarks import smoke
from benchmarks.server import benchmark_main, drop_scratch, existing_scratch, scratch_settings
from pipeline.indexing import builds
from pipeline.ingest import stages
from pipeline.ingest.chunking import ChunkingConfig, chunk_texts
from pipeline.ingest.context import HEADER_TOKENS
from pipeline.ingest.embedding import Embedder, load_embedder
from pipeline.query import evaluation, search
from pipeline.query.request import request
from pipeline.query.search_model import search_model_id
from pipeline.query.service import SearchService
from pipeline.settings import Settings
from pipeline.storage import connections, layout, model_registry
from pipeline.storage.loader import copy_rows
from pipeline.storage.queries import value
from tests.support import corpora

DATABASE = "docvec_bench_retrieval"
QUERIES = Path(__file__).parent / "eval" / "python-docs.jsonl"
DAY = dt.date(2026, 1, 5)
CANDIDATES = 50
Ranker = Callable[[int, evaluation.LabelledQuery], list[str]]


@dataclass(frozen=True)
class Corpus:
    """An evaluation corpus: its labelled questions, its scratch databases' name, its pages and their root."""

    queries: Path
    database: str
    pages: Callable[[], list[Path]]
    root: Callable[[], Path]


CORPORA = {
    "python-docs": Corpus(QUERIES, DATABASE, corpora.python_eval_pages, corpora.python_docs),
    "git-docs": Corpus(QUERIES.with_name("git-docs.jsonl"), f"{DATABASE}_git", corpora.git_eval_pages,
                       corpora.git_docs),
}


def load_docvec(settings: Settings, landing: Path, embedder: Embedder) -> tuple[int, int, float]:
    """Ingest the day through docvec's stages; returns (model id, chunks, seconds)."""
    started = time.perf_counter()
    config = ChunkingConfig(max_seq_length=embedder.info.max_seq_length,
                            reserved_tokens=HEADER_TOKENS if embedder.contextual else 0)
    with connections.connect(settings) as conn:
        documents = stages.read_documents(landing, DAY)
        chunks = stages.chunk_documents(documents, embedder.backend_tokenizer(), config, contextual=embedder.contextual)
        stages.load_embeddings(conn, stages.embed_chunks(chunks, embedder, conn))
        builds.maintain_partition(conn, layout.partition_name(DAY))
        conn.execute("VACUUM ANALYZE chunks")
        model_id = search_model_id(conn, embedder, "x")
    return model_id, len(chunks.chunks), time.perf_counter() - started


def load_peer(conn: psycopg.Connection[Any], landing: Path, embedder: Embedder) -> tuple[int, float]:
    """The peer's table: fixed windows of the same extracted text, no titles; returns (chunks, seconds)."""
    started = time.perf_counter()
    documents = stages.read_documents(landing, DAY).documents
    windows = chunk_texts([d.text for d in documents], embedder.backend_tokenizer(),
                          ChunkingConfig(max_seq_length=embedder.info.max_seq_length))
    rows = [(d.doc_id, piece.text) for d, pieces in zip(documents, windows, strict=True) for piece in pieces]
    vectors = embedder.encode([text for _, text in rows])
    conn.execute("DROP TABLE IF EXISTS peer_chunks")
    conn.execute(f"""CREATE TABLE peer_chunks (id serial, doc_id text, text text, embedding vector({embedder.info.dim}),
                     tsv tsvector GENERATED ALWAYS AS (to_tsvector('english', text)) STORED)""")
    with conn.cursor() as cursor:
        copy_rows(cursor, "peer_chunks", ("doc_id", "text", "embedding"), ("text", "text", "vector"),
                  ((doc, text, vector) for (doc, text), vector in zip(rows, vectors, strict=True)))
    conn.execute("CREATE INDEX ON peer_chunks USING gin (tsv)")
    conn.execute("CREATE INDEX ON peer_chunks USING hnsw (embedding vector_cosine_ops)")
    conn.execute("ANALYZE peer_chunks")
    conn.commit()
    return len(rows), time.perf_counter() - started


def _distinct(doc_ids: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(doc_ids))


# Any word of the query (plainto_tsquery ANDs them), ranked by cover density.
PEER_TEXT = """SELECT id, doc_id FROM peer_chunks,
                      (SELECT replace(plainto_tsquery('english', %s)::text, ' & ', ' | ')::tsquery AS query) q
               WHERE tsv @@ q.query ORDER BY ts_rank_cd(tsv, q.query) DESC, id LIMIT %s"""


def peer_rankers(conn: psycopg.Connection[Any], vectors: np.ndarray) -> dict[str, Ranker]:
    def vector_chunks(n: int, _q: evaluation.LabelledQuery) -> list[str]:
        conn.execute("SET hnsw.ef_search = 100")
        return [r[0] for r in conn.execute("SELECT doc_id FROM peer_chunks ORDER BY embedding <=> %s LIMIT %s",
                                           (vectors[n], CANDIDATES))]

    def text_chunks(_n: int, q: evaluation.LabelledQuery) -> list[str]:
        return [doc for _, doc in chunk_ids(PEER_TEXT, (q.query, CANDIDATES))]

    def chunk_ids(sql_text: str, params: tuple[Any, ...]) -> list[tuple[int, str]]:
        return [(r[0], r[1]) for r in conn.execute(sql_text, params)]

    def hybrid(n: int, q: evaluation.LabelledQuery) -> list[str]:
        conn.execute("SET hnsw.ef_search = 100")
        vector = chunk_ids("SELECT id, doc_id FROM peer_chunks ORDER BY embedding <=> %s LIMIT %s",
                           (vectors[n], CANDIDATES))
        text = chunk_ids(PEER_TEXT, (q.query, CANDIDATES))
        scores: dict[int, float] = {}
        doc_of: dict[int, str] = {}
        for ranked in (vector, text):
            for rank, (chunk, doc) in enumerate(ranked, start=1):
                scores[chunk] = scores.get(chunk, 0.0) + 1.0 / (60 + rank)
                doc_of[chunk] = doc
        return _distinct([doc_of[c] for c in sorted(scores, key=lambda c: -scores[c])])

    return {"vector": lambda n, q: _distinct(vector_chunks(n, q)), "text": lambda n, q: _distinct(text_chunks(n, q)),
            "hybrid": hybrid}


def docvec_rankers(conn: psycopg.Connection[Any], vectors: np.ndarray, model_id: int,
                   embedder: Embedder) -> dict[str, Ranker]:
    service = SearchService.over(conn, embedder)

    def ranker(mode: str, fusion: str = "relative", **options: Any) -> Ranker:
        def rank(n: int, q: evaluation.LabelledQuery) -> list[str]:
            wanted = request(q.query, k=10, mode=mode, per_doc=1, fusion=fusion, **options)
            return evaluation.ranked_documents(service.search(wanted, vector=None if mode == "text" else vectors[n]).hits)
        return rank

    def rrf_by_chunk(n: int, q: evaluation.LabelledQuery) -> list[str]:
        """Fusion as before this change and as the peer does it: chunk ranks, then first chunk per page."""
        vector = search.search_vector(conn, vectors[n], model_id, k=CANDIDATES)
        text = search.search_text(conn, q.query, model_id, k=CANDIDATES)
        scores: dict[str, float] = {}
        doc_of: dict[str, str] = {}
        for ranked in (vector, text):
            for hit in ranked:
                scores[hit.chunk_id] = scores.get(hit.chunk_id, 0.0) + 1.0 / (60 + hit.rank)
                doc_of[hit.chunk_id] = hit.doc_id
        return _distinct([doc_of[c] for c in sorted(scores, key=lambda c: -scores[c])])

    return {"vector": ranker("vector"), "text": ranker("text"), "hybrid": ranker("hybrid"),
            "hybrid, no feedback": ranker("hybrid", feedback_weight=0.0),
            "hybrid, no openings": ranker("hybrid", opening_weight=0.0, feedback_weight=0.0),
            "hybrid, rrf by document": ranker("hybrid", fusion="rrf"),
            "hybrid, rrf by chunk": rrf_by_chunk}


def measure(rankers: dict[str, Ranker], queries: Sequence[evaluation.LabelledQuery]) -> list[dict[str, Any]]:
    rows = []
    for name, rank in rankers.items():
        per_query, seconds = [], []
        by_tag: dict[str, list[float]] = {}
        for n, q in enumerate(queries):
            started = time.perf_counter()
            ranked = rank(n, q)
            seconds.append(time.perf_counter() - started)
            _, reciprocal, _ = evaluation.scores_for(ranked, q.expected_doc_ids, 5)
            first, top5 = evaluation.hits_for(ranked, q.expected_doc_ids, 5)
            per_query.append((reciprocal, first, top5))
            for tag in q.tags or ("untagged",):
                by_tag.setdefault(tag, []).append(reciprocal)
        rows.append({"name": name, "mrr": statistics.fmean(r[0] for r in per_query),
                     "hit1": statistics.fmean(r[1] for r in per_query), "hit5": statistics.fmean(r[2] for r in per_query),
                     "by_tag": {t: statistics.fmean(v) for t, v in sorted(by_tag.items())},
                     "p50_ms": statistics.median(seconds) * 1000})
    return rows


def measure_lists(conn: psycopg.Connection[Any], vectors: np.ndarray, embedder: Embedder,
                  queries: Sequence[evaluation.LabelledQuery]) -> list[str]:
    """The hybrid result list as users get it (k = 10 chunks, no per-document limit): the default (documents
    take turns) against the list before it (``group_by_document``: a document's chunks follow it). Per
    question: a relevant page among the first 5 chunks' pages, and the share of the first 5 and 10 chunks
    that come from a relevant page (evaluation.list_scores)."""
    service = SearchService.over(conn, embedder)
    lines = []
    for label, grouped in (("default (documents take turns)", False), ("grouped (before)", True)):
        rows = []
        for n, q in enumerate(queries):
            hits = service.search(request(q.query, k=10, group_by_document=grouped), vector=vectors[n]).hits
            rows.append((*evaluation.list_scores(hits, q.expected_doc_ids, 5),
                         evaluation.list_scores(hits, q.expected_doc_ids, 10)[1]))
        hit5, share5, share10 = (statistics.fmean(r[i] for r in rows) for i in range(3))
        lines.append(f"docvec hybrid list, {label:<31} page hit@5 {hit5:.3f}  on-topic chunks@5 {share5:.3f}  "
                     f"@10 {share10:.3f}")
    return lines


def print_rows(system: str, rows: Sequence[dict[str, Any]]) -> None:
    for r in rows:
        tags = "  ".join(f"{t} {v:.3f}" for t, v in r["by_tag"].items())
        print(f"{system:<22} {r['name']:<24} {r['mrr']:>6.3f} {r['hit1']:>6.3f} {r['hit5']:>6.3f} "
              f"{r['p50_ms']:>7.1f}   {tags}")


def run_corpus(corpus: Corpus, args: argparse.Namespace) -> list[tuple[str, list[dict[str, Any]]]]:
    """Load one corpus (or reuse it), measure every system on its questions, print its table."""
    queries_file = args.queries or corpus.queries
    queries = evaluation.load_queries(queries_file)[:args.limit_questions]
    pages = corpus.pages()[:args.limit_pages]
    root = corpus.root()
    variants = [("docvec", True)] + ([("docvec, no headers", False)] if args.ablate else [])
    results: list[tuple[str, list[dict[str, Any]]]] = []
    lists: list[str] = []  # the default result list's figures (measure_lists), docvec with headers
    notes = []
    with tempfile.TemporaryDirectory() as tmp:
        landing = Path(tmp) / "landing"
        corpora.write_days(pages, landing, 1, DAY, root)
        for n, (label, contextual) in enumerate(variants):
            name = f"{corpus.database}_{n}"
            embedder = load_embedder(contextual=contextual)
            settings = existing_scratch(name) if args.reuse else None
            with connections.connect(settings) if settings else nullcontext() as conn:
                model_id = model_registry.registered(conn, embedder.info) if conn else None
            if settings is None or model_id is None:
                settings = scratch_settings(name)
                model, chunks, seconds = load_docvec(settings, landing, embedder)
                notes.append(f"{label}: {chunks:,} chunks, ingested in {seconds:.0f} s")
            else:
                model = model_id.id
                notes.append(f"{label}: loaded by an earlier run")
            vectors = embedder.encode([q.query for q in queries])
            with connections.connect(settings) as conn:
                results.append((label, measure(docvec_rankers(conn, vectors, model, embedder), queries)))
                lists += measure_lists(conn, vectors, embedder, queries) if n == 0 else []
                if n == 0:
                    if not (args.reuse and value(conn, "SELECT to_regclass('peer_chunks') IS NOT NULL")):
                        peer_chunks, peer_seconds = load_peer(conn, landing, embedder)
                        notes.append(f"peer: {peer_chunks:,} chunks, embedded and loaded in {peer_seconds:.0f} s")
                    results.insert(0, ("peer (256-token windows)", measure(peer_rankers(conn, vectors), queries)))
            if not args.reuse:
                drop_scratch(name)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; corpus: {len(pages)} pages of {root}; "
          f"{len(queries)} questions ({queries_file.name}); {'; '.join(notes)}")
    print(f"{'system':<22} {'mode':<24} {'MRR@10':>6} {'hit@1':>6} {'hit@5':>6} {'p50 ms':>7}   MRR by tag")
    for system, rows in results:
        print_rows(system, rows)
    print("\n".join(lists))
    peer_hybrid = next(r for r in results[0][1] if r["name"] == "hybrid")
    docvec = {r["name"]: r for r in results[1][1]}
    print(f"docvec hybrid - peer hybrid: MRR@10 {docvec['hybrid']['mrr'] - peer_hybrid['mrr']:+.3f}, "
          f"hit@1 {docvec['hybrid']['hit1'] - peer_hybrid['hit1']:+.3f}; docvec text MRR@10 {docvec['text']['mrr']:.3f}")
    return results


def print_side_by_side(measured: dict[str, list[tuple[str, list[dict[str, Any]]]]]) -> None:
    """The peer's and docvec's vector, text and hybrid modes, one column group per corpus."""
    names = list(measured)
    print(f"\n{'system':<26} {'mode':<8} " + " ".join(f"{n:>12} {'MRR@10':>6} {'hit@1':>5} {'hit@5':>5}" for n in names))
    for system in ("peer (256-token windows)", "docvec"):
        for mode in ("vector", "text", "hybrid"):
            cells = []
            for name in names:
                row = next(r for s, rows in measured[name] if s == system for r in rows if r["name"] == mode)
                cells.append(f"{'':>12} {row['mrr']:>6.3f} {row['hit1']:>5.3f} {row['hit5']:>5.3f}")
            print(f"{system:<26} {mode:<8} " + " ".join(cells))


@benchmark_main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", nargs="+", choices=sorted(CORPORA), default=["python-docs"],
                        help="the evaluation corpora, measured one after the other (default: python-docs)")
    parser.add_argument("--queries", type=Path, help="another questions file (one corpus only)")
    parser.add_argument("--ablate", action="store_true", help="also docvec without contextual headers")
    parser.add_argument("--reuse", action="store_true", help="keep the loaded databases, and reuse them when present")
    parser.add_argument("--limit-pages", type=int, help="only the corpus's first N pages (default: all)")
    parser.add_argument("--limit-questions", type=int, help="only the first N questions (default: all)")
    args = smoke.parse_args(parser, {"limit_pages": 2, "limit_questions": 5})
    if args.queries and len(args.corpus) > 1:
        parser.error("--queries replaces one corpus's questions: name one --corpus with it")
    measured = {}
    for name in dict.fromkeys(args.corpus):
        measured[name] = run_corpus(CORPORA[name], args)
    if len(measured) > 1:
        print_side_by_side(measured)

if __name__ == "__main__":
    main()
