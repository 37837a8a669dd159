"""Which chunks the text branch must score to find the exact BM25 top k, without scoring every chunk
that holds a query term (MaxScore's idea, on PostgreSQL's GIN index instead of a posting-list cursor).

A chunk's score is bounded by what it holds. For each query term it is in one of several states:
absent; held without a marker (weighing under ``bm25.IMPACT_TIERS[0]``); holding tier i's marker but
not the next one's (weighing under the next tier's weight, or ``bm25.WEIGHT_CEILING``). Its BM25 score
times its prior (≤ 1) is at most the sum of its states' bounds (idf times that weight). So for a
threshold θ, every
chunk scoring θ or more holds the indexed ids of some *minimal* state assignment whose bound reaches θ,
and the candidates for θ are the chunks matching one of them (``lexical_terms @> ids``, each a GIN
lookup that intersects posting lists). If the k-th best candidate scores at least θ, no chunk outside
can beat it: the top k is exact. Otherwise θ drops to that k-th score (one more round, exact by the
same argument) or, with fewer than k candidates in scope, to a lower level.

A lookup reads the whole posting list of each id it holds, and a common word's (or its low tier's) is
long: a conjunction drops its commonest ids while the chunks that admits, estimated, cost less to score
than the lists cost to read (``SCORE_TO_READ``). The lookups then select more chunks than can reach θ,
never fewer, so the argument above holds as it is.

Only the ``MAX_TIERED_TERMS`` terms with the highest bounds are tiered; the others add their full bound
to every chunk's (``slack``). The first θ is the highest level whose candidate count, estimated from
the terms' frequencies as if they were independent, reaches a target: a few rounds at most, each reading
a few thousand chunks instead of every chunk holding a common word."""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pipeline.lexical.bm25 import IMPACT_TIERS, WEIGHT_CEILING, impact_marker

# Bounds are widened by this factor: stored weights and query IDFs are float32 in PostgreSQL.
ROUNDING_SLACK = 1.0 + 1e-4
MAX_TIERED_TERMS = 5  # 4^5 = 1,024 state assignments to enumerate per query
# A round of more GIN lookups than this scores every chunk holding a query term instead: a guard on the
# statement's size (each lookup reads its terms' posting lists in every partition), not a measured optimum.
MAX_CONJUNCTIONS = 64
# Scoring one more candidate costs about as much as reading this many posting-list entries in a GIN lookup:
# measured at 1M chunks (benchmarks/bm25_benchmark.py), a lookup read ~17 ns per entry and a round's time
# hardly moved between 105 and 661 candidates (~10 µs each). Any value from 150 to 2,400 gave the same
# latencies there; the all-common-word queries' p99 fell from ~75 to ~49 ms.
SCORE_TO_READ = 600.0
# Bounds are summed in fixed point (units of 2^-32, each rounded up): exact sums in any order, so two
# assignments with equal bounds are equal here too, and every comparison with a threshold is exact.
UNITS = 2.0 ** 32


@dataclass(frozen=True)
class TermStatistics:
    """A query term's weight and frequencies over the stored chunks: ``df`` hold it, ``tier_df[i]``
    weigh it at least ``IMPACT_TIERS[i]``."""
    term: int
    idf: float
    df: int
    tier_df: tuple[int, ...]


@dataclass(frozen=True)
class Candidates:
    """Chunks to score: those holding any of ``any_of``, or all ids of one of ``all_of``. Every chunk
    outside scores below ``threshold`` (0 when ``complete``: every chunk holding a query term)."""
    any_of: tuple[int, ...]
    all_of: tuple[tuple[int, ...], ...]
    threshold: float
    complete: bool
    estimated: float  # chunks, were the terms independent

    def settled(self, scores: Sequence[float], k: int) -> bool:
        """Whether these descending ``scores`` of the candidates in scope are the exact top ``k``."""
        return self.complete or (len(scores) >= k and scores[k - 1] >= self.threshold)

    def covers(self, other: Candidates) -> bool:
        """Whether every chunk ``other`` selects is one of these: each of its lookups holds all the ids of
        one of ours. Scoring ``other`` would then find no chunk these did not."""
        if self.complete:
            return True
        if other.complete:
            return False
        ours = [frozenset((t,)) for t in self.any_of] + [frozenset(ids) for ids in self.all_of]
        theirs = [frozenset((t,)) for t in other.any_of] + [frozenset(ids) for ids in other.all_of]
        return all(any(mine <= lookup for mine in ours) for lookup in theirs)


@dataclass(frozen=True)
class _State:
    bound: float
    share: float  # of the stored chunks in this state
    requires: tuple[int, ...]  # the indexed ids a chunk in this state holds


class PruningPlan:
    """The candidate sets of one query's terms over ``chunks`` stored chunks. ``tiered``: every stored
    chunk carries impact markers (otherwise a term is either absent or held, with the ceiling's bound)."""

    def __init__(self, terms: Sequence[TermStatistics], chunks: int, *, tiered: bool) -> None:
        self.terms = sorted(terms, key=lambda t: (-t.idf, t.term))
        self.chunks = max(chunks, 1)
        self.tiered = tiered
        self._holding = self._posting_lengths()
        states = [self._states(t) for t in self.terms]
        self._tiered = states[:MAX_TIERED_TERMS]
        slack = sum(_units(term_states[-1].bound) for term_states in states[MAX_TIERED_TERMS:])
        self.slack = slack / UNITS
        # Every assignment of states to the tiered terms (a row of state indices), its bound, and the
        # estimated count of chunks at or above each bound (a running sum, highest bound first).
        grid = np.array(list(itertools.product(*(range(len(ts)) for ts in self._tiered))), dtype=np.intp)
        grid = grid.reshape(len(grid), len(self._tiered))
        width = max((len(ts) for ts in self._tiered), default=1)
        padded = [[*ts, *[_State(0.0, 0.0, ())] * (width - len(ts))] for ts in self._tiered]
        self._units = np.array([[_units(s.bound) for s in ts] for ts in padded], dtype=np.int64).reshape(-1, width)
        shares = np.array([[s.share for s in ts] for ts in padded]).reshape(-1, width)
        columns = np.arange(len(self._tiered))
        totals = self._units[columns, grid].sum(axis=1) + slack
        order = np.argsort(-totals, kind="stable")
        self._grid, self._totals = grid[order], totals[order]
        self._running = np.cumsum(np.prod(shares[columns, self._grid], axis=1)) * self.chunks
        distinct = np.unique(self._totals)[::-1]
        self.levels = [int(t) / UNITS for t in distinct]  # exact: the units are below 2^53
        ends = np.searchsorted(-self._totals, -distinct, side="right")
        self._level_estimates = self._running[ends - 1]  # ascending, as the levels descend

    def _posting_lengths(self) -> dict[int, int]:
        """How many chunks hold each indexed id a lookup may hold (its posting list's length)."""
        lengths = {}
        for term in self.terms:
            held = min(term.df, self.chunks)
            lengths[term.term] = held
            for tier, df in enumerate(term.tier_df if self.tiered else ()):
                held = min(held, df)  # nested tiers: never more chunks than the tier below
                lengths[impact_marker(term.term, tier)] = held
        return lengths

    def _lean(self, ids: Sequence[int]) -> tuple[int, ...]:
        """A conjunction without its commonest ids, while the chunks each admits (estimated as if the ids
        were independent) cost less to score than its posting list costs to read; its rarest id stays."""
        kept = sorted(ids, key=lambda i: (self._holding.get(i, self.chunks), i))
        selected = self.chunks * math.prod(self._holding.get(i, self.chunks) / self.chunks for i in kept)
        while len(kept) > 1:
            length = self._holding.get(kept[-1], self.chunks)
            if length == 0:
                break
            without = selected * self.chunks / length
            if (without - selected) * SCORE_TO_READ >= length:
                break
            kept.pop()
            selected = without
        return tuple(sorted(kept))

    def _states(self, term: TermStatistics) -> list[_State]:
        """Absent, held, then each tier's: the bound of each, its share of the chunks, the ids it holds."""
        held = self._holding[term.term]
        ceiling = term.idf * WEIGHT_CEILING * ROUNDING_SLACK
        if not self.tiered:
            return [_State(0.0, 1.0 - held / self.chunks, ()), _State(ceiling, held / self.chunks, (term.term,))]
        bounds = [term.idf * least * ROUNDING_SLACK for least in IMPACT_TIERS] + [ceiling]
        requires = [(term.term,), *((impact_marker(term.term, tier),) for tier in range(len(IMPACT_TIERS)))]
        counts = [*(self._holding[ids[0]] for ids in requires), 0]  # the chunks in each state or above
        return [_State(0.0, 1.0 - held / self.chunks, ()),
                *(_State(bound, (counts[i] - counts[i + 1]) / self.chunks, ids)
                  for i, (bound, ids) in enumerate(zip(bounds, requires, strict=True)))]

    def estimate(self, threshold: float) -> float:
        """How many chunks could reach ``threshold``, were the terms independent."""
        reached = self._reaching(threshold)
        return float(self._running[reached - 1]) if reached else 0.0

    def _reaching(self, threshold: float) -> int:
        """How many assignments (highest bound first) have a bound of ``threshold`` or more."""
        return int(np.searchsorted(-self._totals, -_units(threshold), side="right"))

    def first(self, wanted: float) -> Candidates:
        """The candidates of the highest level whose estimated count reaches ``wanted``."""
        return self._at_least(wanted, 0)

    def lower(self, previous: Candidates, factor: float = 16.0) -> Candidates:
        """Wider candidates than ``previous`` (too few were in scope): a level estimated at ``factor``
        times as many chunks, or more."""
        below = bisect.bisect_left([-level for level in self.levels], -previous.threshold)
        below += int(below < len(self.levels) and self.levels[below] >= previous.threshold)
        return self._at_least(max(previous.estimated, 1.0) * factor, below)

    def widest_within(self, most: float) -> Candidates:
        """The candidates of the lowest level estimated at ``most`` chunks or fewer (the highest level
        when none is)."""
        last = max(int(np.searchsorted(self._level_estimates, most, side="right")) - 1, 0)
        return self.candidates(self.levels[last])

    def _at_least(self, wanted: float, start: int) -> Candidates:
        """The candidates of the first level from ``start`` on whose estimate reaches ``wanted``."""
        reaching = start + int(np.searchsorted(self._level_estimates[start:], wanted, side="left"))
        return self.candidates(self.levels[reaching] if reaching < len(self.levels) else 0.0)

    def candidates(self, threshold: float) -> Candidates:
        """The chunks that can score ``threshold`` or more (and those the lean lookups admit besides), as
        GIN lookups; every chunk holding a query term when the threshold is too low to exclude any, or the
        lookups would be too many."""
        if _units(threshold) <= _units(self.slack) or threshold <= 0.0:
            return self.complete_candidates()
        lean = {frozenset(self._lean(ids)) for ids in self._minimal(threshold)}
        # A lookup holding all of another's ids selects none that the other does not.
        conjunctions = sorted(tuple(sorted(ids)) for ids in lean if not any(other < ids for other in lean))
        if len(conjunctions) > MAX_CONJUNCTIONS:
            return self.complete_candidates()
        single = tuple(sorted(ids[0] for ids in conjunctions if len(ids) == 1))
        return Candidates(any_of=single, all_of=tuple(ids for ids in conjunctions if len(ids) > 1),
                          threshold=threshold, complete=False, estimated=self.estimate(threshold))

    def complete_candidates(self) -> Candidates:
        return Candidates(any_of=tuple(sorted(t.term for t in self.terms)), all_of=(), threshold=0.0,
                          complete=True, estimated=self.chunks * (1.0 - math.prod(
                              1.0 - min(t.df, self.chunks) / self.chunks for t in self.terms)))

    def _minimal(self, threshold: float) -> list[tuple[int, ...]]:
        """The ids required by each minimal assignment reaching ``threshold``: lowering any one of its
        terms' states takes its bound below it."""
        reached = self._reaching(threshold)
        grid, totals = self._grid[:reached], self._totals[:reached]
        columns = np.arange(grid.shape[1])
        lowered = totals[:, None] - self._units[columns, grid] + self._units[columns, np.maximum(grid - 1, 0)]
        minimal = np.all((grid == 0) | (lowered < _units(threshold)), axis=1)
        return [tuple(t for j, i in enumerate(row) for t in self._tiered[j][i].requires) for row in grid[minimal]]


def _units(value: float) -> int:
    """``value`` in fixed-point units, rounded up (a bound never shrinks; a threshold of exactly a sum of
    units stays that sum)."""
    return math.ceil(value * UNITS)
