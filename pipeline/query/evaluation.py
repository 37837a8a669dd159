"""Retrieval evaluation on labelled queries: recall@k, hit@1, hit@k, MRR and nDCG@10 per search mode,
and two measures of the result list a user gets by default (k chunks, documents taking turns): whether
a relevant page is among its first k chunks' pages (``list_hit_at_k``), and the share of those chunks
that come from a relevant page (``relevant_share``: what an LLM given the first k chunks reads that is on topic).

A labelled file is JSONL, one query per line:
``{"query": "what does ERR-4471 mean", "expected_doc_ids": ["runbooks/err-4471.md"], "tags": ["identifier"]}``
(``tags`` optional). Relevance is per document: a query's results are turned into a ranked list of
distinct documents, and a document counts when it is in ``expected_doc_ids``.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from pipeline.errors import ConfigError
from pipeline.ingest.embedding import Embedder
from pipeline.query.hits import SearchHit
from pipeline.query.request import MODES, request
from pipeline.query.search_model import ModelSource
from pipeline.query.service import SearchService
from pipeline.storage import catalog, chunk_search, ingest_days, model_registry

RANKED = 10  # documents per query looked at: MRR and nDCG over the first 10
# The search options an evaluation may vary (``docvec eval --fusion rrf``): how results are ranked. The
# query, mode, k and per-document limit are the evaluation's own.
TUNING = ("fusion", "vector_weight", "opening_weight", "feedback_weight", "rrf_k", "candidates", "ef_search", "probes",
          "as_of", "group_by_document")


@dataclass(frozen=True)
class LabelledQuery:
    query: str
    expected_doc_ids: tuple[str, ...]
    tags: tuple[str, ...] = ()


@dataclass
class ModeScores:
    mode: str
    recall_at_k: float
    mrr: float
    ndcg_at_10: float
    queries: int
    hit_at_1: float = 0.0  # share of queries whose first document is an expected one
    hit_at_k: float = 0.0  # share with an expected document in the first k
    list_hit_at_k: float = 0.0  # default list of k chunks: share of queries with a relevant page among them
    relevant_share: float = 0.0  # default list of k chunks: mean share of them that come from a relevant page
    by_tag: dict[str, dict[str, float]] = field(default_factory=dict)
    misses: list[str] = field(default_factory=list)  # queries whose documents were not in the top k


def load_queries(path: Path) -> list[LabelledQuery]:
    """Read a labelled JSONL file; a bad line is an error naming the file, line and fix."""
    if not path.is_file():
        raise ConfigError(f"labelled query file {path} does not exist (write one, or omit it to use the sample set)")
    queries = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            query, expected = entry["query"], entry["expected_doc_ids"]
            if not isinstance(query, str) or not query.strip() or not isinstance(expected, list) or not expected:
                raise ValueError("needs a non-empty query and a non-empty list expected_doc_ids")
            queries.append(LabelledQuery(query, tuple(map(str, expected)), tuple(map(str, entry.get("tags", [])))))
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(
                f"{path}:{number}: not a labelled query ({exc}); each line must look like "
                '{"query": "...", "expected_doc_ids": ["day-folder/relative/path.md"]}'
            ) from exc
    if not queries:
        raise ConfigError(f"{path} holds no labelled queries")
    return queries


def ranked_documents(hits: Sequence[SearchHit]) -> list[str]:
    seen: list[str] = []
    for hit in hits:
        if hit.doc_id not in seen:
            seen.append(hit.doc_id)
    return seen


def scores_for(ranked: Sequence[str], expected: Sequence[str], k: int) -> tuple[float, float, float]:
    """recall@k, reciprocal rank (first 10), nDCG@10 for one query, binary relevance."""
    relevant = set(expected)
    recall = len(relevant & set(ranked[:k])) / len(relevant)
    reciprocal = next((1.0 / (i + 1) for i, doc in enumerate(ranked[:RANKED]) if doc in relevant), 0.0)
    dcg = sum(1.0 / math.log2(i + 2) for i, doc in enumerate(ranked[:RANKED]) if doc in relevant)
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(len(relevant), RANKED)))
    return recall, reciprocal, dcg / ideal


def hits_for(ranked: Sequence[str], expected: Sequence[str], k: int) -> tuple[float, float]:
    """hit@1 and hit@k for one query: is an expected document first, or in the first k."""
    relevant = set(expected)
    return float(bool(ranked) and ranked[0] in relevant), float(bool(relevant & set(ranked[:k])))


def list_scores(hits: Sequence[SearchHit], expected: Sequence[str], k: int) -> tuple[float, float]:
    """A result list's first ``k`` chunks: whether one comes from a relevant page (page-level hit@k), and
    the share of the ``k`` that do (a list shorter than ``k`` counts its missing chunks as off topic)."""
    relevant = set(expected)
    first = [hit.doc_id in relevant for hit in hits[:k]]
    return float(any(first)), sum(first) / k


def evaluate(conn: psycopg.Connection[Any], model: ModelSource | Embedder | None, queries: Sequence[LabelledQuery],
             modes: Sequence[str] = MODES, k: int = 5, **options: Any) -> list[ModeScores]:
    """Each mode's scores on ``queries``, searched through the search service on ``conn`` with ``model``
    (a source, a loaded embedder, or None for the served model; loaded only when a mode embeds the
    queries). Each query asks for the first ``RANKED`` documents, one chunk each, and for the default list
    of ``k`` chunks (``list_scores``); ``options`` are further ``SearchRequest`` fields (fusion, ...)."""
    service = SearchService.over(conn, model)
    requests = {mode: [request(q.query, mode=mode, k=RANKED, per_doc=1, **options) for q in queries] for mode in modes}
    lists = {mode: [request(q.query, mode=mode, k=k, **options) for q in queries] for mode in modes}
    vectors = service.encode([q.query for q in queries]) if queries and any(m != "text" for m in modes) else None
    results = []
    for mode in modes:
        per_query = []
        by_tag: dict[str, list[tuple[float, float, float]]] = {}
        hit_rows: list[tuple[float, float]] = []
        list_rows: list[tuple[float, float]] = []
        misses = []
        for n, labelled in enumerate(queries):
            vector = None if vectors is None else vectors[n]
            hits = service.search(requests[mode][n], vector=vector).hits
            list_rows.append(list_scores(service.search(lists[mode][n], vector=vector).hits,
                                         labelled.expected_doc_ids, k))
            ranked = ranked_documents(hits)
            triple = scores_for(ranked, labelled.expected_doc_ids, k)
            hit_rows.append(hits_for(ranked, labelled.expected_doc_ids, k))
            per_query.append(triple)
            for tag in labelled.tags or ("untagged",):
                by_tag.setdefault(tag, []).append(triple)
            if triple[0] < 1.0:
                misses.append(labelled.query)
        results.append(ModeScores(
            mode=mode, recall_at_k=_mean(per_query, 0), mrr=_mean(per_query, 1), ndcg_at_10=_mean(per_query, 2),
            queries=len(per_query), misses=misses, hit_at_1=_mean(hit_rows, 0), hit_at_k=_mean(hit_rows, 1),
            list_hit_at_k=_mean(list_rows, 0), relevant_share=_mean(list_rows, 1),
            by_tag={tag: {"recall_at_k": _mean(rows, 0), "mrr": _mean(rows, 1), "ndcg_at_10": _mean(rows, 2),
                          "queries": len(rows)} for tag, rows in sorted(by_tag.items())},
        ))
    return results


def _mean(rows: Sequence[tuple[float, ...]], column: int) -> float:
    return round(sum(row[column] for row in rows) / len(rows), 4) if rows else 0.0


def format_scores(scores: Sequence[ModeScores], k: int) -> str:
    lines = [f"{'mode':<8} {'queries':>7} {f'recall@{k}':>9} {'hit@1':>6} {f'hit@{k}':>6} {'MRR':>7} {'nDCG@10':>8}"
             f"  {f'list hit@{k}':>11} {f'on-topic@{k}':>11}"]
    for s in scores:
        lines.append(f"{s.mode:<8} {s.queries:>7} {s.recall_at_k:>9.3f} {s.hit_at_1:>6.3f} {s.hit_at_k:>6.3f} "
                     f"{s.mrr:>7.3f} {s.ndcg_at_10:>8.3f}  {s.list_hit_at_k:>11.3f} {s.relevant_share:>11.3f}")
    tags = sorted({tag for s in scores for tag in s.by_tag})
    if len(tags) > 1:
        lines.append("")
        for tag in tags:
            for s in scores:
                t = s.by_tag.get(tag)
                if t:
                    label = f"{tag} ({t['queries']:.0f})"
                    lines.append(f"{s.mode:<8} {label:<18} recall@{k} {t['recall_at_k']:.3f}  "
                                 f"MRR {t['mrr']:.3f}  nDCG@10 {t['ndcg_at_10']:.3f}")
    for s in scores:
        if s.misses:
            lines.append(f"{s.mode}: not in the top {k}: " + "; ".join(s.misses))
    return "\n".join(lines)


def sample_queries() -> list[LabelledQuery]:
    from pipeline import sample_corpus

    return [LabelledQuery(q["query"], tuple(q["expected_doc_ids"]), tuple(q["tags"]))
            for q in sample_corpus.labelled_queries()]


def queries_version(queries: Sequence[LabelledQuery]) -> str:
    """Changes whenever the labelled set does."""
    payload = sorted((q.query, sorted(q.expected_doc_ids), sorted(q.tags)) for q in queries)
    return hashlib.sha256(json.dumps(payload).encode()).hexdigest()[:16]


def store_version(conn: psycopg.Connection[Any]) -> str:
    """Changes whenever search over this store could rank differently: a day loaded, a partition sealed,
    trimmed or dropped, a vector index built or replaced, another model served. A retrieval measurement
    taken at one version holds for as long as the version stays."""
    serving = model_registry.serving(conn)
    parts = [f"{p.table}:{p.rows}:{index.name if (index := catalog.existing_vector_index(conn, p.table)) else '-'}"
             for p in catalog.partitions(conn)]
    payload = [serving.id if serving else None, str(ingest_days.last_load(conn)), parts]
    return hashlib.sha256(json.dumps(payload).encode()).hexdigest()[:16]


def labelled_set_for(conn: psycopg.Connection, path: str | None) -> tuple[list[LabelledQuery], str] | None:
    """The queries to judge this store by: the user's file when configured; else the sample set when the
    sample corpus is what is loaded (all its expected documents are present); else none."""
    if path:
        return load_queries(Path(path)), path
    queries = sample_queries()
    wanted = sorted({doc for q in queries for doc in q.expected_doc_ids})
    present = chunk_search.documents_present(conn, wanted)
    return (queries, "the sample corpus's labelled set") if present == len(wanted) else None
