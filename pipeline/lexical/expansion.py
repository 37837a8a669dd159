"""Pseudo-relevance feedback for BM25 (RM3's idea on docvec's stored weights): the terms that weigh most
in the chunks a search ranked first are added to the query, and its candidates are scored again.

A question in plain words names what a page does in other words than the page uses ("work on two
branches at once in separate directories" for git-worktree, "Manage multiple working trees"). The first
documents a search ranks are mostly about the right topic even when the best one is not first; their
heaviest terms ("worktree", "tree") are the page's own vocabulary, and weighing them in lifts the pages
that use it. A term's feedback weight is its stored BM25 weight (term frequency, saturated and
length-normalised, as ``bm25.entries`` stores it) times its IDF, summed over the feedback chunks; the
``terms`` heaviest are kept, scaled so that the heaviest adds ``weight`` times its IDF to the query.

Measured with benchmarks/retrieval_sweep.py (exact vectors, hybrid, openings in), MRR@10 with the first
5 documents' best chunks and 5 terms: at weight 0, 0.1, 0.2, 0.3 on the Python docs 0.931, 0.934, 0.940,
0.939; on git's manual 0.773, 0.798, 0.804, 0.789. 3 and 8 terms, 4 and 7 documents gave 0.934-0.938
and 0.791-0.799. Chosen on the Python docs and confirmed on git's manual. Re-scoring only the
candidates both branches found, instead of searching again with the longer query, scored within 0.007 of
it on both, for one statement over a hundred chunks instead of a second text search."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

FEEDBACK_DOCUMENTS = 5  # documents whose best chunk gives the feedback terms
FEEDBACK_TERMS = 5  # terms kept from them
FEEDBACK_WEIGHT = 0.2  # the heaviest feedback term's share of its IDF in the query


def expanded_query(query: Mapping[int, float], feedback: Sequence[Mapping[int, float]], idf: Mapping[int, float],
                   weight: float = FEEDBACK_WEIGHT, terms: int = FEEDBACK_TERMS) -> dict[int, float]:
    """The query's term weights (``query``: each term's IDF) with the ``terms`` heaviest terms of the
    ``feedback`` chunks' stored weights added (see the module docstring). ``idf``: the IDF of every term
    the feedback chunks hold; a term without one is not stored any more and is skipped."""
    expanded = dict(query)
    if weight <= 0.0 or terms < 1:
        return expanded
    heft: dict[int, float] = {}
    for weights in feedback:
        for term, stored in weights.items():
            if term in idf:
                heft[term] = heft.get(term, 0.0) + stored * idf[term]
    # Ties go to the lower term id: the same query over the same store always expands the same way.
    heaviest = sorted(heft.items(), key=lambda item: (-item[1], item[0]))[:terms]
    if not heaviest or heaviest[0][1] <= 0.0:
        return expanded
    top = heaviest[0][1]
    for term, value in heaviest:
        expanded[term] = expanded.get(term, 0.0) + weight * value / top * idf[term]
    return expanded
