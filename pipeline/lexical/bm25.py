"""Okapi BM25 split in two halves that PostgreSQL multiplies together: each chunk stores its saturated,
length-normalised term weights (a pgvector ``sparsevec`` over term ids, fixed when the day loads), and
each query carries its terms' inverse document frequencies, read at query time from the store's live
per-day statistics (``storage/term_stats``). Their inner product is the BM25 score:

    score(q, d) = Σ_t∈q idf(t) · tf(t,d)·(k1 + 1) / (tf(t,d) + k1·(1 − b + b·len(d)/avglen))

``avglen`` is the mean length of the chunks loaded with the day (chunks are cut to a token budget, so
it differs little between days); ``idf`` always covers exactly the days stored, so it stays right as
days are loaded, sealed (a block keeps each day's statistics) and dropped by retention.

Fields: a chunk is indexed with its document's title and its section path counted several times over,
so a page titled for a topic outranks pages that mention it in passing. The constants below were
chosen on benchmarks/eval/python-docs.jsonl (benchmarks/retrieval_benchmark.py; RESULTS.md)."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pipeline.lexical.terms import TERM_SPACE, term_counts, term_id, terms

K1 = 1.2  # term-frequency saturation
B = 0.75  # length normalisation
TITLE_WEIGHT = 3  # a title term counts as three body occurrences
SECTION_WEIGHT = 2  # a heading term (the section path below the title) as two
MAX_TERMS = 1000  # the most terms a chunk keeps (the heaviest): pgvector indexes sparsevecs up to 1,000

# Impact markers, for the text branch's exact early stop (pipeline/lexical/pruning.py). No weight reaches
# WEIGHT_CEILING (tf·(k1+1)/(tf+norm) < k1+1). Where a term weighs at least IMPACT_TIERS[i] in a chunk,
# the chunk's indexed terms (``lexical_terms``) hold tier i's marker of it besides its id: so the GIN
# index also lists, per term, the chunks where it weighs most, and a chunk holding a term without a
# marker is known to score under idf·IMPACT_TIERS[0] for it. In a chunk of average length 1.2 is about
# two occurrences, 1.6 four (or one in the title). Every chunk indexed this way also holds IMPACT_TERM,
# so the store can tell whether all its chunks carry markers (days loaded before them do not until rebuilt).
WEIGHT_CEILING = K1 + 1
IMPACT_TIERS = (1.2, 1.6)
# Marker ids, clear of term ids [0, TERM_SPACE) and term_stats' -1, within int4: tier 0 in
# [-TERM_SPACE - 1, -2], tier 1 in [TERM_SPACE, 2·TERM_SPACE).
IMPACT_TERM = 2_100_000_000

@dataclass(frozen=True)
class LexicalEntry:
    """One chunk's lexical index entry: its distinct term ids (ascending) and their BM25 weights."""
    term_ids: tuple[int, ...]
    weights: tuple[float, ...]
    length: int  # weighted term count (title and section terms counted with their weight)

    @property
    def indexed_terms(self) -> list[int]:
        """What the chunk's ``lexical_terms`` hold: its term ids, each tier's marker of the terms that
        weigh at least the tier's weight, and IMPACT_TERM."""
        markers = [impact_marker(t, tier) for t, w in zip(self.term_ids, self.weights, strict=True)
                   for tier, least in enumerate(IMPACT_TIERS) if w >= least]
        return [*self.term_ids, *markers, IMPACT_TERM]


def impact_marker(term: int, tier: int) -> int:
    """The indexed id that a chunk holds where ``term`` weighs at least ``IMPACT_TIERS[tier]``."""
    return -2 - term if tier == 0 else TERM_SPACE + term


def stored_term_ids(indexed: Sequence[int]) -> tuple[int, ...]:
    """The term ids among a chunk's stored ``lexical_terms`` (without its impact markers)."""
    return tuple(t for t in indexed if 0 <= t < TERM_SPACE)


def section_below_title(title: str | None, section: str | None) -> tuple[str, ...]:
    """The section path's headings without the title, when the path repeats it as its first heading."""
    path = tuple(section.split(" > ")) if section else ()
    return path[1:] if title and path and path[0] == title else path


def header_fields(title: str | None, section: str | None) -> tuple[str, str]:
    """The title, and the words of the section path below it."""
    return title or "", " ".join(section_below_title(title, section))


def chunk_term_counts(text: str, title: str | None = None, section: str | None = None, *,
                      title_weight: int = TITLE_WEIGHT, section_weight: int = SECTION_WEIGHT) -> Counter[str]:
    heading_title, heading_path = header_fields(title, section)
    return term_counts(((heading_title, title_weight), (heading_path, section_weight), (text, 1)))


def entries(counts: Sequence[Mapping[str, int]], *, k1: float = K1, b: float = B) -> list[LexicalEntry]:
    """The BM25 entries of a day's chunks (``avglen`` is their mean length)."""
    lengths = [sum(c.values()) for c in counts]
    average = (sum(lengths) / len(lengths)) if lengths else 1.0
    out = []
    for count, length in zip(counts, lengths, strict=True):
        norm = k1 * (1 - b + b * length / max(average, 1.0))
        weights: dict[int, float] = {}
        for term, tf in count.items():
            index = term_id(term)
            # Two terms hashing to one id (rare) keep the larger weight: a sum could pass k1 + 1,
            # the ceiling the text branch's early stop counts on.
            weights[index] = max(weights.get(index, 0.0), tf * (k1 + 1) / (tf + norm))
        kept = sorted(weights.items(), key=lambda item: -item[1])[:MAX_TERMS]
        kept.sort()
        out.append(LexicalEntry(tuple(i for i, _ in kept), tuple(w for _, w in kept), length))
    return out


def idf(document_frequency: int, chunks: int) -> float:
    """BM25's inverse document frequency (the +1 form: never negative, however common the term)."""
    return math.log(1 + (chunks - document_frequency + 0.5) / (document_frequency + 0.5))


def query_terms(query: str) -> dict[int, str]:
    """The query's distinct terms by id (a query term counts once, however often it is repeated)."""
    return {term_id(term): term for term in terms(query)}
