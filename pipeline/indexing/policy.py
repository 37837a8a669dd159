"""When a partition gets a vector index, which kind, with what parameters, and what it is searched
with: a pure function of the partition's numbers (``builds.py`` carries the decision out).

Up to ``exact_max_rows`` an exact scan of a partition is fast and exact (no recall to lose): in
docvec's search an exactly scanned partition costs ~1.45 µs a row (wide rows, sorted whole under the
Merge Append), so 5,000 rows ~7 ms, against 1-2 ms for an HNSW scan of a small partition. Above it,
HNSW by default (best recall/latency, builds incrementally, no training); IVFFlat on request or when
HNSW's graph would not fit the memory allowed for the build (IVFFlat builds in far less memory and
time). IVFFlat lists come from the row count (rows/1000 up to 1M rows, sqrt(rows) beyond, as pgvector
recommends), probes from the lists (sqrt). An index is rebuilt when it is invalid, was built for
another model, or (IVFFlat) when the partition grew past ``rebuild_growth`` × the rows its centroids
were trained on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from pipeline.errors import ConfigError
from pipeline.storage.vector_indexes import (
    IndexKind,
    IndexSpec,
    IndexState,
    PartitionStats,
    hnsw_build_bytes,
)

__all__ = ["Action", "IndexKind", "IndexPlan", "IndexSettings", "IndexState", "PartitionStats", "plan_index"]


class Action(StrEnum):
    KEEP = "keep"  # what is there (index or exact scan) is right
    CREATE = "create"
    REBUILD = "rebuild"
    DROP = "drop"  # an index on a partition that no longer warrants one


@dataclass(frozen=True)
class IndexSettings:
    exact_max_rows: int = 5_000
    preferred: IndexKind = IndexKind.HNSW
    hnsw_m: int = 16
    hnsw_ef_construction: int = 64
    rebuild_growth: float = 2.0

    def __post_init__(self) -> None:
        if self.exact_max_rows < 0:
            raise ConfigError(f"exact_max_rows must be >= 0, got {self.exact_max_rows}")
        if self.preferred == IndexKind.NONE:
            raise ConfigError("preferred index kind must be hnsw or ivfflat (use a large exact_max_rows for none)")
        if not 2 <= self.hnsw_m <= 100 or not 4 <= self.hnsw_ef_construction <= 1000:
            raise ConfigError("hnsw m must be 2..100 and ef_construction 4..1000 (pgvector's limits)")
        if self.hnsw_ef_construction < 2 * self.hnsw_m:
            raise ConfigError("hnsw ef_construction must be at least 2 * m")
        if self.rebuild_growth <= 1.0:
            raise ConfigError(f"rebuild_growth must be > 1, got {self.rebuild_growth}")


@dataclass(frozen=True)
class IndexPlan:
    action: Action
    spec: IndexSpec
    reason: str

    @property
    def kind(self) -> IndexKind:
        return self.spec.kind


def ivfflat_lists(rows: int) -> int:
    return max(1, rows // 1000 if rows <= 1_000_000 else int(math.sqrt(rows)))


def ivfflat_probes(lists: int) -> int:
    return max(1, min(lists, math.ceil(math.sqrt(lists))))


def _search_params(kind: IndexKind, params: dict[str, int], settings: IndexSettings) -> tuple[tuple[str, int], ...]:
    """What an index of these build parameters is searched (and its recall checked) with."""
    if kind == IndexKind.HNSW:
        return (("ef_search", max(40, 2 * params.get("m", settings.hnsw_m) * 2)),)
    return (("probes", ivfflat_probes(params.get("lists", 1))),)


def plan_index(stats: PartitionStats, current: IndexState, settings: IndexSettings = IndexSettings()) -> IndexPlan:
    """The decision, and why, as data: unit-tested branch by branch."""
    if stats.rows <= settings.exact_max_rows:
        exact = IndexSpec(IndexKind.NONE, ())
        if current.kind != IndexKind.NONE:
            return IndexPlan(Action.DROP, exact, f"{stats.rows:,} rows <= {settings.exact_max_rows:,}: "
                             "an exact scan is fast and exact")
        return IndexPlan(Action.KEEP, exact, f"{stats.rows:,} rows <= {settings.exact_max_rows:,}: exact scan")

    kind = settings.preferred
    reason_kind = f"{kind.value} preferred"
    graph_bytes = hnsw_build_bytes(stats.rows, stats.dim, settings.hnsw_m)
    if kind == IndexKind.HNSW and graph_bytes > stats.maintenance_work_mem_bytes:
        kind, reason_kind = IndexKind.IVFFLAT, "HNSW graph would not fit maintenance_work_mem"
    if kind == IndexKind.HNSW:
        params: tuple[tuple[str, int], ...] = (("m", settings.hnsw_m), ("ef_construction", settings.hnsw_ef_construction))
    else:
        params = (("lists", ivfflat_lists(stats.rows)),)
    wanted = IndexSpec(kind, params, _search_params(kind, dict(params), settings))

    if current.kind == IndexKind.NONE:
        return IndexPlan(Action.CREATE, wanted, f"{stats.rows:,} rows > {settings.exact_max_rows:,}; {reason_kind}")
    if not current.valid:
        return IndexPlan(Action.REBUILD, wanted, "the existing index is invalid (a failed concurrent build)")
    if current.model_id is not None and current.model_id != stats.model_id:
        return IndexPlan(Action.REBUILD, wanted, "the index was built for another model's vectors")
    if current.kind != kind or (current.params and dict(current.params) != dict(params) and kind == IndexKind.HNSW):
        return IndexPlan(Action.REBUILD, wanted, f"{current.kind.value} index, policy now wants {kind.value} {dict(params)}")
    if kind == IndexKind.IVFFLAT and stats.rows > current.built_rows * settings.rebuild_growth:
        return IndexPlan(Action.REBUILD, wanted, f"IVFFlat centroids trained on {current.built_rows:,} rows, "
                         f"now {stats.rows:,} (> {settings.rebuild_growth}x): stale")
    # The index stays as built, and so do the search parameters its recall depends on (an IVFFlat built
    # at fewer rows has fewer lists, so fewer probes).
    kept = tuple(current.params) or params
    return IndexPlan(Action.KEEP, IndexSpec(kind, kept, _search_params(kind, dict(kept), settings)),
                     "the index fits the data")
