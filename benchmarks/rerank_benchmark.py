"""What the optional reranking stage (pipeline/query/rerank.py) costs per query: the first N fused
candidates scored by a cross-encoder, on this machine's CPU.

No cross-encoder weights are installable here, so the models are randomly initialised BERTs saved with
the bundled MiniLM's tokenizer, built in a temporary folder: a tiny one (the tests' size) and one of
MiniLM-L6's size (6 layers, 384 wide, as the common ms-marco-MiniLM-L-6 cross-encoders are). Latency
depends on the size and the text lengths, not on the weights, so these figures hold for trained models
of the same shape; the ranking quality is not measured here.

Candidates: passages of the Python documentation as docvec's HTML reader reads them, cut into windows
of 180 words (about a chunk of the bundled model's 256 tokens); queries: benchmarks/eval/python-docs.jsonl.

Usage: ``python -m benchmarks.rerank_benchmark [--candidates 50] [--queries 20]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks import smoke
from pipeline.ingest.readers.html import read_html
from pipeline.query import evaluation
from pipeline.query.hits import SearchHit
from pipeline.query.rerank import CrossEncoderReranker
from tests.support import corpora
from tests.support.cross_encoder import build_cross_encoder

QUERIES = Path(__file__).parent / "eval" / "python-docs.jsonl"
WORDS = 180
MODELS = {"tiny (1 layer, 32 wide)": {"hidden": 32, "layers": 1, "heads": 2},
          "MiniLM-L6-sized (6 layers, 384 wide)": {"hidden": 384, "layers": 6, "heads": 12}}


def passages(count: int) -> list[SearchHit]:
    """``count`` candidate chunks: windows of the Python documentation's library pages."""
    found: list[SearchHit] = []
    for page in sorted((corpora.python_docs() / "library").glob("*.html")):
        words = read_html(page).text.split()
        for start in range(0, len(words) - WORDS, WORDS):
            found.append(SearchHit(rank=len(found) + 1, similarity=None, doc_id=page.name, ingest_date=dt.date.today(),
                                   seq=start, chunk_id=f"{page.name}#{start}", text=" ".join(words[start:start + WORDS]),
                                   metadata={"title": page.stem}))
            if len(found) == count:
                return found
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--candidates", type=int, default=50, help="candidates reranked per query (default 50)")
    parser.add_argument("--queries", type=int, default=20, help="queries timed (default 20)")
    args = smoke.parse_args(parser, {"candidates": 5, "queries": 2})
    queries = [q.query for q in evaluation.load_queries(QUERIES)[:args.queries]]
    hits = passages(args.candidates)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; {len(hits)} candidates of {WORDS} words per "
          f"query, {len(queries)} queries (python-docs.jsonl), CPU")
    print(f"{'cross-encoder':<38} {'params':>10} {'load s':>7} {'p50 ms':>8} {'p95 ms':>8} {'ms/candidate':>12}")
    with tempfile.TemporaryDirectory() as tmp:
        for label, shape in MODELS.items():
            folder = build_cross_encoder(Path(tmp) / label.split()[0], **shape)
            reranker = CrossEncoderReranker(folder, candidates=args.candidates)
            started = time.perf_counter()
            reranker.scores("warm up", [hits[0].text])
            load = time.perf_counter() - started
            params = sum(p.numel() for p in reranker._loaded().model.parameters())
            seconds = []
            for query in queries:
                started = time.perf_counter()
                reranker.rerank(query, hits)
                seconds.append(time.perf_counter() - started)
            p50 = statistics.median(seconds) * 1000
            p95 = sorted(seconds)[max(0, round(0.95 * len(seconds)) - 1)] * 1000
            print(f"{label:<38} {params:>10,} {load:>7.1f} {p50:>8.1f} {p95:>8.1f} {p50 / len(hits):>12.2f}")


if __name__ == "__main__":
    main()
