"""Combining ranked lists: the vector and text branches fused by document, and per-document limits.

Fusion ranks documents, not chunks: each branch scores a document by its best chunk, the branches'
document scores are combined, and a document's chunks follow it, best first by the same combination at
chunk level. Two combinations:

- ``relative`` (the default): each branch's scores min-max normalised over its candidates, then
  ``vector_weight · vector + (1 − vector_weight) · text``. Unlike ranks, normalised scores keep how far
  ahead a branch's best candidate is, so one confident branch is not outvoted by the other's near-misses.
- ``rrf``: reciprocal rank fusion, ``Σ 1 / (rrf_k + rank)`` over the branches.

After relative fusion, each document's opening weighs in (``with_openings``): its first chunk's
similarity to the query, normalised over the candidates, decides ``opening_weight`` of its score.

Measured on benchmarks/eval/python-docs.jsonl (77 questions; benchmarks/retrieval_sweep.py, exact
vectors): fusing chunks by RRF put the right page first for 78% of the questions, below the vector branch
alone (82%); fusing documents by RRF 83%, by relative scores 87%. vector_weight 0.6 is the middle of
the plateau 0.5-0.7 (MRR@10 0.911, 0.916, 0.923; 0.4 and 0.8 fall to 0.878 and 0.907), so a corpus that
leans either way stays on it. On the sample corpus's labelled set only relative fusion kept every
question's page in the top 5.

The default result list (``interleave``) was chosen on the same 77 questions and confirmed on git's
manual (benchmarks/eval/git-docs.jsonl, 72 questions), k = 10 chunks, hybrid: the list before it (a
document's chunks follow it) had a relevant page among the first 5 chunks' pages for 0.857 and 0.764 of
the questions, with 0.857 and 0.689 of those chunks from a relevant page; documents taking turns two
chunks each 0.935 and 0.819 (on topic 0.442, 0.444); one chunk each 1.000 and 0.889 (0.265, 0.278); the
best document's two chunks, then one of each other document, 0.974 and 0.861 (0.421, 0.408): nearly
the hit rate of one chunk per document, with over half as many again of the chunks on topic."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Literal, get_args

from pipeline.errors import ConfigError
from pipeline.query.hits import SearchHit

Fusion = Literal["relative", "rrf"]
FUSIONS: tuple[str, ...] = get_args(Fusion)
VECTOR_WEIGHT = 0.6
# Chunks the best document places before the others take turns in the default result list (``interleave``).
LEAD = 2
# The share of a hybrid document score its opening chunk's similarity to the query decides (``with_openings``).
# Measured with benchmarks/retrieval_sweep.py (exact vectors), hybrid MRR@10 at 0, 0.1 ... 0.6: on the
# Python docs 0.916, 0.928, 0.921, 0.931, 0.940, 0.913, 0.863; on git's manual 0.755, 0.767, 0.780, 0.773,
# 0.781, 0.775, 0.775. 0.3 is the middle of the Python docs' plateau (0.1-0.4), a step from its fall at 0.5.
OPENING_WEIGHT = 0.3
RRF_K = 60  # the constant of the original RRF paper (Cormack et al. 2009); larger flattens the top ranks' weight


def check_fusion(method: str, vector_weight: float) -> None:
    """Refuse a fusion method or vector weight ``fuse`` does not take."""
    if method not in FUSIONS:
        raise ConfigError(f"fusion must be one of {', '.join(FUSIONS)}, got {method!r}")
    if not 0.0 <= vector_weight <= 1.0:
        raise ConfigError(f"vector_weight must be between 0 and 1, got {vector_weight}")


def normalised(scores: dict[str, float]) -> dict[str, float]:
    """Min-max normalised: the lowest score 0, the highest 1 (all 1 when they are equal), as relative
    fusion puts each branch on one scale."""
    if not scores:
        return {}
    low, high = min(scores.values()), max(scores.values())
    return {key: (value - low) / (high - low) if high > low else 1.0 for key, value in scores.items()}


def _best(hits: Sequence[SearchHit], key: Callable[[SearchHit], str],
          value: Callable[[SearchHit], float]) -> dict[str, float]:
    best: dict[str, float] = {}
    for hit in hits:
        best[key(hit)] = max(best.get(key(hit), float("-inf")), value(hit))
    return best


def _ranks(hits: Sequence[SearchHit], key: Callable[[SearchHit], str]) -> dict[str, int]:
    ranks: dict[str, int] = {}
    for hit in hits:
        ranks.setdefault(key(hit), len(ranks) + 1)
    return ranks


def _combined(vector_hits: Sequence[SearchHit], text_hits: Sequence[SearchHit], key: Callable[[SearchHit], str],
              method: str, rrf_k: int, vector_weight: float) -> defaultdict[str, float]:
    combined: defaultdict[str, float] = defaultdict(float)
    if method == "rrf":
        for hits in (vector_hits, text_hits):
            for item, rank in _ranks(hits, key).items():
                combined[item] += 1.0 / (rrf_k + rank)
        return combined
    for hits, weight, value in ((vector_hits, vector_weight, lambda h: h.similarity or 0.0),
                                (text_hits, 1.0 - vector_weight, lambda h: h.text_score or 0.0)):
        for item, scaled in normalised(_best(hits, key, value)).items():
            combined[item] += weight * scaled
    return combined


def fuse(vector_hits: Sequence[SearchHit], text_hits: Sequence[SearchHit], rrf_k: int = RRF_K, *,
         method: str = "relative", vector_weight: float = VECTOR_WEIGHT) -> list[SearchHit]:
    """The branches' hits fused by document, then by chunk (see the module docstring). Each hit keeps
    its similarity and text score; ``score`` is its chunk's fused score and ``document_score`` its
    document's, which orders the hits. Ties go to the higher vector similarity."""
    check_fusion(method, vector_weight)
    documents = _combined(vector_hits, text_hits, lambda h: h.doc_id, method, rrf_k, vector_weight)
    chunks_fused = _combined(vector_hits, text_hits, lambda h: h.chunk_id, method, rrf_k, vector_weight)
    chunks: dict[str, SearchHit] = {}
    similarity: dict[str, float] = {}
    text_score: dict[str, float] = {}
    for hit in (*vector_hits, *text_hits):
        chunks.setdefault(hit.chunk_id, hit)
        if hit.similarity is not None:
            similarity[hit.chunk_id] = hit.similarity
        if hit.text_score is not None:
            text_score[hit.chunk_id] = hit.text_score
    ordered = sorted(chunks.values(), key=lambda h: (-documents[h.doc_id], h.doc_id, -chunks_fused[h.chunk_id],
                                                     -similarity.get(h.chunk_id, -1.0), h.chunk_id))
    return [replace(hit, rank=i + 1, similarity=similarity.get(hit.chunk_id), text_score=text_score.get(hit.chunk_id),
                    score=chunks_fused[hit.chunk_id], document_score=documents[hit.doc_id])
            for i, hit in enumerate(ordered)]


def with_openings(hits: Sequence[SearchHit], openings: Mapping[str, float],
                  weight: float = OPENING_WEIGHT) -> list[SearchHit]:
    """Relative fusion's hits with each document re-scored by how near its opening chunk (``seq`` 0: the
    title, the summary a page starts with) is to the query: ``(1 − weight) · document score + weight ·
    opening``, the openings' similarities (``openings``, by document) min-max normalised over the
    candidates like a branch; a document whose opening is not given scores 0 there. The order of each
    document's chunks is unchanged; ``document_score`` is the new score, which orders the documents.

    Why: a page's opening says what the whole page is about, which its best chunk alone does not. A
    question in plain words ("put my half-done changes aside") describes what a command does, which is
    the first line of its page, while long pages that share the vocabulary (a user manual, a config
    reference) win on single chunks. Chosen on benchmarks/eval/python-docs.jsonl and confirmed on
    git-docs.jsonl (benchmarks/retrieval_sweep.py, RESULTS.md)."""
    if weight == 0.0 or not hits:
        return list(hits)
    documents = {hit.doc_id for hit in hits}
    opening = normalised({doc: similarity for doc, similarity in openings.items() if doc in documents})
    scores = {hit.doc_id: (1.0 - weight) * (hit.document_score or 0.0) + weight * opening.get(hit.doc_id, 0.0)
              for hit in hits}
    position = {hit.chunk_id: n for n, hit in enumerate(hits)}
    ordered = sorted(hits, key=lambda h: (-scores[h.doc_id], h.doc_id, position[h.chunk_id]))
    return [replace(hit, rank=i + 1, document_score=scores[hit.doc_id]) for i, hit in enumerate(ordered)]


def limit_per_document(hits: Sequence[SearchHit], per_doc: int | None, k: int) -> list[SearchHit]:
    """At most ``per_doc`` hits of each document (the best ones), then the first ``k``, re-ranked."""
    kept: list[SearchHit] = []
    seen: Counter[str] = Counter()
    for hit in hits:
        if per_doc is not None and seen[hit.doc_id] >= per_doc:
            continue
        seen[hit.doc_id] += 1
        kept.append(hit)
        if len(kept) == k:
            break
    return [replace(hit, rank=i + 1) for i, hit in enumerate(kept)]


def interleave(hits: Sequence[SearchHit], lead: int = LEAD) -> list[SearchHit]:
    """The default result list: documents take turns in the order they first appear (hybrid: by
    document score), each document's chunks best first. The first round holds the first document's best
    ``lead`` chunks, then every other document's best chunk; each later round every document's next
    chunk. So the first positions show different documents instead of one long document's chunks, and the
    best document still leads with its best passages. Every hit is kept (its document score too); only
    the order changes, re-ranked."""
    by_document: dict[str, list[SearchHit]] = {}
    for hit in hits:
        by_document.setdefault(hit.doc_id, []).append(hit)
    chunks = list(by_document.values())
    ordered: list[SearchHit] = [*chunks[0][:lead], *(c[0] for c in chunks[1:])] if chunks else []
    taken = [min(lead, len(chunks[0]))] + [1] * (len(chunks) - 1) if chunks else []
    while left := [n for n, document in enumerate(chunks) if taken[n] < len(document)]:
        for n in left:
            ordered.append(chunks[n][taken[n]])
            taken[n] += 1
    return [replace(hit, rank=i + 1) for i, hit in enumerate(ordered)]
