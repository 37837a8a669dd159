"""Contextual header recipes side by side on both evaluation corpora of benchmarks/retrieval_benchmark.py:
the page title alone, title + the chunk's own heading, title + the full section path (the recipe stores
use, ``pipeline.ingest.context.RECIPE``), and the path with less or more room (``HeaderRecipe.tokens``,
reserved in every chunk's budget, so chunks shrink as headers grow). One embedding pass per recipe and
corpus; with ``--bare`` also chunks without a header.

Each pass goes through docvec's own stages (read, chunk with the recipe, the embedder's text) and is scored
in memory: vectors ranked exactly (the benchmark goes through HNSW, so its vector figures can differ by
the index's recall), BM25 and fusion by benchmarks/retrieval_sweep.py's copy of docvec's scoring. The
recipe only changes what is embedded, so the text column moves only through the chunk sizes.

With ``--max-tokens N ...`` each recipe also runs with chunks capped at N tokens (``ChunkingConfig.max_tokens``,
the ``raw_documents`` run config's ``max_tokens``): all-MiniLM-L6-v2 reads 256 word pieces but was trained
on 128.

Usage: ``python -m benchmarks.header_recipes [--corpus python-docs git-docs] [--recipes path/32 none/32 ...]
[--max-tokens 128 192] [--backend onnx]``
(no database: everything is in memory).
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from benchmarks import smoke
from benchmarks.retrieval_benchmark import CORPORA, DAY
from benchmarks.retrieval_sweep import POOL, Chunk, Lexical, _hit
from pipeline.ingest import context, stages
from pipeline.ingest.chunking import ChunkingConfig
from pipeline.ingest.embedding import Embedder, load_embedder
from pipeline.query import evaluation, fusion
from pipeline.query.hits import SearchHit
from pipeline.records import DayChunks, DayDocuments
from tests.support import corpora

DEFAULT_RECIPES = ("path/32", "none/32", "last/32", "path/16", "path/64")
LABEL_WIDTH = 32  # the recipe column, wide enough for "title > path, 32 tokens, cap 128"


def chunk_cap(value: str) -> int:
    """A ``--max-tokens`` value: a chunk's room must be over twice its 32-token overlap (``ChunkingConfig``);
    caps at or above the model's room (222 tokens beside a 32-token header) change nothing."""
    least = 2 * ChunkingConfig.overlap_tokens + 2
    if not value.isdigit() or int(value) < least:
        raise argparse.ArgumentTypeError(f"{value!r}: a chunk cap is a whole number of tokens, at least {least} "
                                         "(over twice the chunks' overlap)")
    return int(value)


def parse_recipe(spec: str) -> context.HeaderRecipe:
    """``sections/tokens``, e.g. ``last/32``."""
    sections, _, tokens = spec.partition("/")
    if sections not in ("path", "last", "none") or not tokens.isdigit():
        raise argparse.ArgumentTypeError(f"{spec!r}: a recipe is SECTIONS/TOKENS, SECTIONS one of path, last, none")
    return context.HeaderRecipe(sections=sections, tokens=int(tokens))  # type: ignore[arg-type]


def scores(ranked: Sequence[list[str]], queries: Sequence[evaluation.LabelledQuery]) -> tuple[float, float, float]:
    """MRR@10, hit@1, hit@5 of ranked document lists."""
    rows = [(evaluation.scores_for(r, q.expected_doc_ids, 5)[1], *evaluation.hits_for(r, q.expected_doc_ids, 5))
            for r, q in zip(ranked, queries, strict=True)]
    return tuple(statistics.fmean(row[i] for row in rows) for i in range(3))  # type: ignore[return-value]


def chunked(documents: DayDocuments, embedder: Embedder, recipe: context.HeaderRecipe | None,
            max_tokens: int | None = None) -> DayChunks:
    """The documents chunked as a store would with ``recipe`` (None: no header) for ``embedder``'s length,
    each chunk at most ``max_tokens`` (None: as many as the model reads, less the header)."""
    config = ChunkingConfig(max_seq_length=embedder.info.max_seq_length, max_tokens=max_tokens,
                            reserved_tokens=recipe.tokens if recipe else 0)
    return stages.chunk_documents(documents, embedder.backend_tokenizer(), config, contextual=recipe is not None,
                                  recipe=recipe or context.RECIPE)


def measure(documents: DayDocuments, embedder: Embedder, recipe: context.HeaderRecipe | None,
            queries: Sequence[evaluation.LabelledQuery], query_vectors: np.ndarray,
            max_tokens: int | None = None) -> tuple[int, float, dict[str, tuple[float, float, float]]]:
    """One embedding pass with ``recipe`` (None: no header) and chunks of at most ``max_tokens`` (None: as
    many as the model reads, less the header); returns (chunks, seconds, mode: scores)."""
    started = time.perf_counter()
    batch = chunked(documents, embedder, recipe, max_tokens)
    matrix = embedder.encode([context.embedded_text(c.context, c.text) for c in batch.chunks])
    chunks = [Chunk(c.chunk_id, c.doc_id, c.text, c.metadata.get("title"), c.metadata.get("section"), c.prior)
              for c in batch.chunks]
    vector_hits: list[list[SearchHit]] = []
    for similarities in query_vectors @ matrix.T:
        top = np.argsort(-similarities)[:POOL]
        vector_hits.append([_hit(chunks[i], r + 1, similarity=float(similarities[i])) for r, i in enumerate(top)])
    lexical = Lexical(chunks)
    text_hits = [lexical.search(q.query) for q in queries]
    hybrid = [evaluation.ranked_documents(fusion.limit_per_document(fusion.fuse(v, t), 1, 10))
              for v, t in zip(vector_hits, text_hits, strict=True)]
    return len(chunks), time.perf_counter() - started, {
        "vector": scores([evaluation.ranked_documents(h) for h in vector_hits], queries),
        "text": scores([evaluation.ranked_documents(h) for h in text_hits], queries),
        "hybrid": scores(hybrid, queries)}


def columns(first: str, width: int) -> str:
    """The table's header: corpus, ``first`` (``width`` wide), then the figures ``figures`` prints."""
    return (f"{'corpus':<12} {first:<{width}} {'chunks':>7} {'vector MRR hit1 hit5':>21} {'text MRR':>9} "
            f"{'hybrid MRR hit1 hit5':>21}")


def figures(corpus: str, label: str, width: int, chunks: int, measured: dict[str, tuple[float, float, float]]) -> str:
    """One row under ``columns``."""
    vector, text, hybrid = measured["vector"], measured["text"], measured["hybrid"]
    return (f"{corpus:<12} {label:<{width}} {chunks:>7,} {vector[0]:>9.3f} {vector[1]:>5.3f} {vector[2]:>5.3f} "
            f"{text[0]:>9.3f} {hybrid[0]:>9.3f} {hybrid[1]:>5.3f} {hybrid[2]:>5.3f}")


def corpus_and_questions(name: str, limit_pages: int | None,
                         limit_questions: int | None) -> tuple[DayDocuments, list[evaluation.LabelledQuery]]:
    """An evaluation corpus's pages read as docvec reads them (one day), and its questions."""
    corpus = CORPORA[name]
    with tempfile.TemporaryDirectory() as tmp:
        landing = Path(tmp) / "landing"
        corpora.write_days(corpus.pages()[:limit_pages], landing, 1, DAY, corpus.root())
        documents = stages.read_documents(landing, DAY)
    return documents, evaluation.load_queries(corpus.queries)[:limit_questions]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", nargs="+", choices=sorted(CORPORA), default=sorted(CORPORA))
    parser.add_argument("--recipes", nargs="+", type=parse_recipe, default=[parse_recipe(r) for r in DEFAULT_RECIPES])
    parser.add_argument("--bare", action="store_true", help="also chunks embedded without a header")
    parser.add_argument("--max-tokens", nargs="+", type=chunk_cap, default=[],
                        help="also each recipe with chunks capped at N tokens (default: only the model's limit)")
    parser.add_argument("--limit-pages", type=int, help="only each corpus's first N pages (default: all)")
    parser.add_argument("--limit-questions", type=int, help="only the first N questions (default: all)")
    parser.add_argument("--backend", choices=("torch", "onnx"), default="torch",
                        help="the embedding backend (onnx: the same vectors to 1e-6, faster on a CPU)")
    args = smoke.parse_args(parser, {"limit_pages": 3, "limit_questions": 5})
    embedder = load_embedder(contextual=True, backend=args.backend)
    recipes: list[context.HeaderRecipe | None] = [*args.recipes, *([None] if args.bare else [])]
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; default recipe: {context.RECIPE.name}; "
          f"embedded with {args.backend}")
    print(f"{columns('recipe', LABEL_WIDTH)} {'seconds':>8}")
    for name in dict.fromkeys(args.corpus):
        documents, queries = corpus_and_questions(name, args.limit_pages, args.limit_questions)
        query_vectors = embedder.encode([q.query for q in queries])
        for recipe, cap in itertools.product(recipes, [None, *args.max_tokens]):
            count, seconds, measured = measure(documents, embedder, recipe, queries, query_vectors, cap)
            label = (recipe.name if recipe else "no header") + (f", cap {cap}" if cap else "")
            print(f"{figures(name, label, LABEL_WIDTH, count, measured)} {seconds:>8.0f}", flush=True)


if __name__ == "__main__":
    main()
