"""Each constant of docvec's ranking varied alone around its default, the others fixed, on the
evaluation corpus of benchmarks/retrieval_benchmark.py: BM25's k1 and b, the title and section weights,
the list prior, the share of chunks above which a term stops selecting candidates (the rule docvec's
text branch used before its exact early stop, pipeline/lexical/pruning.py; docvec now scores as share
1.0 does), and hybrid fusion (method and vector weight), each with docvec's other defaults (the
openings weighed in, as relative fusion's hybrid searches do). This is what chose them; RESULTS.md keeps
its output. Then the document leads the openings came from: first a prototype, each document's title
and the start of its first chunk embedded once, its similarity to the question fused into the document
score as a third branch (weight ``w``), for a few lengths of that lead; last what docvec built instead,
the stored vector of each document's opening chunk (``fusion.with_openings``, no second embedding),
for a few weights (0.0: relative fusion alone, as before the openings). Last the feedback terms
(``pipeline/lexical/expansion.py``): their weight (0.0: none, as before them), how many documents give
them and how many terms are kept.

It reads the chunks (text, title, section, prior, vector) that ``retrieval_benchmark --reuse`` left in
``docvec_bench_retrieval_0``, and scores in memory with docvec's own code: the tokenizer and weights of
pipeline/lexical, the fusion of pipeline/query/fusion.py, the metrics of pipeline/query/evaluation.py.
Vectors are ranked exactly here (the benchmark goes through the HNSW index), so its vector figures can
differ from the benchmark's by the index's recall.

Usage: ``python -m benchmarks.retrieval_benchmark --reuse`` once, then ``python -m benchmarks.retrieval_sweep``;
``--corpus git-docs`` (after ``retrieval_benchmark --corpus git-docs --reuse``) confirms on the second corpus
what the first chose.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from benchmarks import smoke
from benchmarks.retrieval_benchmark import CORPORA
from benchmarks.server import benchmark_main, existing_scratch
from pipeline.ingest.embedding import load_embedder
from pipeline.lexical import bm25
from pipeline.lexical.expansion import FEEDBACK_DOCUMENTS, FEEDBACK_TERMS, FEEDBACK_WEIGHT, expanded_query
from pipeline.query import evaluation, feedback, fusion
from pipeline.query.hits import SearchHit
from pipeline.storage import connections, model_registry

POOL = 50


@dataclass(frozen=True)
class Chunk:
    chunk_id: str
    doc_id: str
    text: str
    title: str | None
    section: str | None
    prior: float


def _hit(chunk: Chunk, rank: int, similarity: float | None = None, text_score: float | None = None) -> SearchHit:
    return SearchHit(rank=rank, similarity=similarity, doc_id=chunk.doc_id, ingest_date=dt.date(2026, 1, 5), seq=0,
                     chunk_id=chunk.chunk_id, text=chunk.text, metadata={}, text_score=text_score,
                     score=similarity if similarity is not None else text_score or 0.0)


class Lexical:
    """BM25 over the chunks with the given constants, as docvec stores and scores it."""

    def __init__(self, chunks: Sequence[Chunk], *, k1: float = bm25.K1, b: float = bm25.B,
                 title_weight: int = bm25.TITLE_WEIGHT, section_weight: int = bm25.SECTION_WEIGHT) -> None:
        counts = [bm25.chunk_term_counts(c.text, c.title, c.section, title_weight=title_weight,
                                         section_weight=section_weight) for c in chunks]
        self.postings: dict[int, list[tuple[int, float]]] = defaultdict(list)
        self.stored: list[dict[int, float]] = []
        for row, entry in enumerate(bm25.entries(counts, k1=k1, b=b)):
            self.stored.append(dict(zip(entry.term_ids, entry.weights, strict=True)))
            for term, weight in zip(entry.term_ids, entry.weights, strict=True):
                self.postings[term].append((row, weight))
        self.chunks = chunks
        self.row = {chunk.chunk_id: row for row, chunk in enumerate(chunks)}

    def feedback(self, query: str, vector_hits: Sequence[SearchHit], text_hits: Sequence[SearchHit],
                 ranked: Sequence[SearchHit], weight: float, *, use_prior: bool = True,
                 documents: int = FEEDBACK_DOCUMENTS, terms: int = FEEDBACK_TERMS) -> list[SearchHit]:
        """What ``branches.feedback_text`` reads from the store: the branches' candidates scored again for
        ``query`` with the ``terms`` heaviest terms of ``ranked``'s first ``documents`` documents."""
        n = len(self.chunks)
        stored = [self.stored[self.row[hit.chunk_id]] for hit in feedback.feedback_chunks(ranked, documents)]
        idf = {term: bm25.idf(len(self.postings[term]), n) for weights in stored for term in weights}
        query_idf = {term: bm25.idf(len(self.postings[term]), n) for term in bm25.query_terms(query)
                     if self.postings.get(term)}
        expanded = expanded_query(query_idf, stored, idf, weight, terms)
        candidates = feedback.pool(vector_hits, text_hits)
        scores = {}
        for hit in candidates:
            row = self.row[hit.chunk_id]
            score = sum(value * self.stored[row].get(term, 0.0) for term, value in expanded.items())
            scores[hit.chunk_id] = score * (self.chunks[row].prior if use_prior else 1.0)
        return feedback.text_hits(candidates, scores, POOL)

    def search(self, query: str, *, share: float = 1.0, floor: int = 0,
               use_prior: bool = True) -> list[SearchHit]:
        n = len(self.chunks)
        present = {t: len(self.postings[t]) for t in bm25.query_terms(query) if t in self.postings}
        if not present:
            return []
        most = max(share * n, floor)
        selective = [t for t, df in present.items() if df <= most] or [min(present, key=present.__getitem__)]
        candidates = {row for t in selective for row, _ in self.postings[t]}
        scores: dict[int, float] = defaultdict(float)
        for term, df in present.items():
            idf = bm25.idf(df, n)
            for row, weight in self.postings[term]:
                if row in candidates:
                    scores[row] += idf * weight
        ranked = sorted(scores, key=lambda r: -scores[r] * (self.chunks[r].prior if use_prior else 1.0))[:POOL]
        return [_hit(self.chunks[r], i + 1, text_score=scores[r] * (self.chunks[r].prior if use_prior else 1.0))
                for i, r in enumerate(ranked)]


def scores(ranked_lists: Sequence[list[str]], queries: Sequence[evaluation.LabelledQuery]) -> tuple[float, float]:
    rows = [(evaluation.scores_for(r, q.expected_doc_ids, 5)[1], evaluation.hits_for(r, q.expected_doc_ids, 5)[0])
            for r, q in zip(ranked_lists, queries, strict=True)]
    return statistics.fmean(r[0] for r in rows), statistics.fmean(r[1] for r in rows)


@benchmark_main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", choices=sorted(CORPORA), default="python-docs")
    args = smoke.parse_args(parser, {})  # its size is the corpus retrieval_benchmark left (smoke-sized after its --smoke)
    corpus = CORPORA[args.corpus]
    settings = existing_scratch(f"{corpus.database}_0")
    if settings is None:
        raise SystemExit(f"run `python -m benchmarks.retrieval_benchmark --corpus {args.corpus} --reuse` first: "
                         "it loads the corpus")
    embedder = load_embedder()
    with connections.connect(settings) as conn:
        model = model_registry.registered(conn, embedder.info)
        if model is None:
            raise SystemExit("the corpus there was embedded with another model revision: rerun the benchmark")
        rows = conn.execute("SELECT chunk_id, doc_id, text, metadata->>'title', metadata->>'section', prior, embedding, "
                            "seq FROM chunks WHERE model_id = %s ORDER BY chunk_id", (model.id,)).fetchall()
    chunks = [Chunk(*row[:6]) for row in rows]
    matrix = np.stack([np.asarray(row[6].to_numpy(), dtype=np.float32) for row in rows])  # halfvec: float16
    queries = evaluation.load_queries(corpus.queries)
    query_vectors = embedder.encode([q.query for q in queries])
    vector_hits: list[list[SearchHit]] = []
    for similarities in query_vectors @ matrix.T:
        top = np.argsort(-similarities)[:POOL]
        vector_hits.append([_hit(chunks[i], r + 1, similarity=float(similarities[i])) for r, i in enumerate(top)])

    openings = opening_vectors(chunks, [row[7] for row in rows], matrix)

    def evaluate(lexical: Lexical, **options: Any) -> str:
        method = options.pop("method", "relative")
        weight = options.pop("vector_weight", fusion.VECTOR_WEIGHT)
        relative = method == "relative"
        opening = options.pop("opening_weight", fusion.OPENING_WEIGHT if relative else 0.0)
        feedback_weight = options.pop("feedback_weight", FEEDBACK_WEIGHT if relative else 0.0)
        sizes = {size: options.pop(size) for size in ("documents", "terms") if size in options}
        text_hits = [lexical.search(q.query, **options) for q in queries]
        text = scores([evaluation.ranked_documents(h) for h in text_hits], queries)
        ranked_lists = []
        for q, query_vector, v, t in zip(queries, query_vectors, vector_hits, text_hits, strict=True):
            fused = fusion.fuse(v, t, method=method, vector_weight=weight)
            similarities = opening_similarities(openings, fused, query_vector)
            ranked = fusion.with_openings(fused, similarities, opening)
            if feedback_weight and t:  # as SearchService._ranked: the text branch re-scored, fused again
                again = lexical.feedback(q.query, v, t, ranked, feedback_weight,
                                         use_prior=options.get("use_prior", True), **sizes)
                ranked = fusion.with_openings(fusion.fuse(v, again, method=method, vector_weight=weight),
                                              similarities, opening)
            ranked_lists.append(evaluation.ranked_documents(fusion.limit_per_document(ranked, 1, 10)))
        hybrid = scores(ranked_lists, queries)
        return f"{text[0]:>9.3f} {hybrid[0]:>10.3f} {hybrid[1]:>11.3f}"

    default = Lexical(chunks)
    vector = scores([evaluation.ranked_documents(h) for h in vector_hits], queries)
    print(f"{len(chunks):,} chunks, {len(queries)} questions; vector alone (exact): MRR@10 {vector[0]:.3f}, "
          f"hit@1 {vector[1]:.3f}")
    print(f"{'constant':<26} {'value':>8} {'text MRR':>9} {'hybrid MRR':>10} {'hybrid hit1':>11}")
    print(f"{'(all defaults)':<26} {'':>8} {evaluate(default)}")
    for name, values in (("k1", (0.9, 1.5, 2.0)), ("b", (0.5, 0.9))):
        for value in values:
            print(f"{'BM25 ' + name:<26} {value:>8} {evaluate(Lexical(chunks, **{name: value}))}")
    for title, section in ((0, 0), (1, 1), (2, 1), (5, 3)):
        print(f"{'title, section weights':<26} {f'{title}, {section}':>8} "
              f"{evaluate(Lexical(chunks, title_weight=title, section_weight=section))}")
    print(f"{'list prior':<26} {'off':>8} {evaluate(default, use_prior=False)}")
    for share in (1.0, 0.1, 0.05, 0.02):
        print(f"{'candidate share, no floor':<26} {share:>8} {evaluate(default, share=share, floor=0)}")
    print(f"{'fusion':<26} {'rrf':>8} {evaluate(default, method='rrf')}")
    for weight in (0.4, 0.5, 0.7, 0.8):
        print(f"{'vector weight':<26} {weight:>8} {evaluate(default, vector_weight=weight)}")
    text_hits = [default.search(q.query) for q in queries]
    chunk_level = []
    for v, t in zip(vector_hits, text_hits, strict=True):
        fused: dict[str, float] = defaultdict(float)
        doc_of = {}
        for hits in (v, t):
            for hit in hits:
                fused[hit.chunk_id] += 1.0 / (60 + hit.rank)
                doc_of[hit.chunk_id] = hit.doc_id
        chunk_level.append(list(dict.fromkeys(doc_of[c] for c in sorted(fused, key=lambda c: -fused[c]))))
    mrr, hit1 = scores(chunk_level, queries)
    print(f"{'fusion':<26} {'rrf/chunk':>8} {'':>9} {mrr:>10.3f} {hit1:>11.3f}")
    leads = document_leads(chunks, [row[7] for row in rows])
    hybrid_hits = [fusion.fuse(v, t) for v, t in zip(vector_hits, text_hits, strict=True)]
    for length in LEAD_LENGTHS:
        signal = DocumentSignal(leads, embedder.encode([lead.text(length) for lead in leads]))
        for weight in LEAD_WEIGHTS:
            ranked = [signal.ranked(fused, query_vector, weight)
                      for fused, query_vector in zip(hybrid_hits, query_vectors, strict=True)]
            mrr, hit1 = scores(ranked, queries)
            label = f"title + {length}" if length else "title"
            print(f"{'document lead, ' + label:<26} {weight:>8} {'':>9} {mrr:>10.3f} {hit1:>11.3f}")
    for weight in OPENING_WEIGHTS:
        label = "(default)" if weight == fusion.OPENING_WEIGHT else ""
        print(f"{'opening chunk ' + label:<26} {weight:>8} {evaluate(default, opening_weight=weight)}")
    for weight in FEEDBACK_WEIGHTS:
        label = "(default)" if weight == FEEDBACK_WEIGHT else ""
        print(f"{'feedback terms ' + label:<26} {weight:>8} {evaluate(default, feedback_weight=weight)}")
    for documents in (3, 4, 7):
        print(f"{'feedback documents':<26} {documents:>8} {evaluate(default, documents=documents)}")
    for terms in (3, 8, 12):
        print(f"{'feedback terms kept':<26} {terms:>8} {evaluate(default, terms=terms)}")


OPENING_WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6)
FEEDBACK_WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.5)
LEAD_LENGTHS = (0, 200, 400)  # characters of the first chunk after the title
LEAD_WEIGHTS = (0.1, 0.2, 0.3)


@dataclass(frozen=True)
class Lead:
    doc_id: str
    title: str
    start: str  # the first chunk's text, its whitespace runs as single spaces

    def text(self, length: int) -> str:
        return f"{self.title}: {self.start[:length]}" if length else self.title


def document_leads(chunks: Sequence[Chunk], seqs: Sequence[int]) -> list[Lead]:
    """Each document's title and first chunk, by document id."""
    first: dict[str, tuple[int, Chunk]] = {}
    for chunk, seq in zip(chunks, seqs, strict=True):
        if chunk.doc_id not in first or seq < first[chunk.doc_id][0]:
            first[chunk.doc_id] = (seq, chunk)
    return [Lead(doc_id, chunk.title or "", " ".join(chunk.text.split()))
            for doc_id, (_, chunk) in sorted(first.items())]


def opening_vectors(chunks: Sequence[Chunk], seqs: Sequence[int], matrix: np.ndarray) -> dict[str, np.ndarray]:
    """Each document's opening chunk's vector (``seq`` 0), unit length, by document id."""
    return {chunk.doc_id: matrix[row] / np.linalg.norm(matrix[row])
            for row, (chunk, seq) in enumerate(zip(chunks, seqs, strict=True)) if seq == 0}


def opening_similarities(openings: dict[str, np.ndarray], fused: Sequence[SearchHit],
                         query_vector: np.ndarray) -> dict[str, float]:
    """What ``branches.opening_similarities`` reads from the store: each candidate document's opening's
    cosine similarity to the query."""
    unit = query_vector / np.linalg.norm(query_vector)
    return {doc: float(openings[doc] @ unit) for doc in {hit.doc_id for hit in fused} if doc in openings}


class DocumentSignal:
    """The documents' lead vectors; a hybrid list's documents re-ranked with their lead's similarity."""

    def __init__(self, leads: Sequence[Lead], vectors: np.ndarray) -> None:
        self.doc_ids = [lead.doc_id for lead in leads]
        self.vectors = vectors

    def ranked(self, fused: Sequence[SearchHit], query_vector: np.ndarray, weight: float) -> list[str]:
        """The fused hits' documents (and the POOL documents whose lead is nearest), by (1 - weight) times
        the fused document score plus weight times the lead's similarity, min-max normalised like a branch."""
        similarities = self.vectors @ query_vector
        lead = fusion.normalised({self.doc_ids[i]: float(similarities[i]) for i in np.argsort(-similarities)[:POOL]})
        fused_score = {hit.doc_id: hit.document_score or 0.0 for hit in fused}
        combined = {doc: (1.0 - weight) * fused_score.get(doc, 0.0) + weight * lead.get(doc, 0.0)
                    for doc in {*fused_score, *lead}}
        return sorted(combined, key=lambda doc: (-combined[doc], doc))[:10]


if __name__ == "__main__":
    main()
