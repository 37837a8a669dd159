"""The vector index of each partition, decided by the index policy from the data, and the sealing of
days that no longer change into multi-day blocks with one index each."""

from typing import Any

import psycopg
from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetExecutionContext,
    Config,
    JsonMetadataValue,
    MaterializeResult,
    MetadataValue,
    asset,
)
from pydantic import Field

from assets.partitions import daily_partitions, partition_days, single_run_backfill
from pipeline.indexing import builds, sealing
from pipeline.indexing.policy import IndexKind, IndexSettings
from pipeline.query import evaluation
from pipeline.storage import catalog, layout, retention
from pipeline.storage.layout import LayoutSettings
from resources import EmbedderResource, PostgresResource, RetentionResource


class IndexPolicyConfig(Config):
    exact_max_rows: int = Field(default=IndexSettings.exact_max_rows, ge=0,
                                description="days with at most this many chunks are searched exactly (no index)")
    preferred: str = Field(default="hnsw", description="hnsw or ivfflat")
    hnsw_m: int = Field(default=16)
    hnsw_ef_construction: int = Field(default=64)
    rebuild_growth: float = Field(default=2.0, description="IVFFlat is retrained when a partition grew past this factor")
    block_days: int = Field(default=LayoutSettings.block_days, ge=1, le=366, description=(
        "sealed days are merged into blocks of this many days, one vector index each (1: one partition per day)"))
    seal_after_days: int = Field(default=LayoutSettings.seal_after_days, ge=1, description=(
        "a day is sealed (merged into its block) once it is older than this many days"))
    min_recall_at_10: float = Field(default=0.95, ge=0, le=1)
    recall_samples: int = Field(default=20, ge=1)
    eval_queries: str | None = Field(
        default=None, description="labelled JSONL for the retrieval check; empty = the sample set when it is loaded")
    min_retrieval_recall_at_5: float = Field(default=0.8, ge=0, le=1,
                                             description="the retrieval check fails below this hybrid recall@5")

    def settings(self) -> IndexSettings:
        return IndexSettings(exact_max_rows=self.exact_max_rows, preferred=IndexKind(self.preferred),
                             hnsw_m=self.hnsw_m, hnsw_ef_construction=self.hnsw_ef_construction,
                             rebuild_growth=self.rebuild_growth)

    def layout(self) -> LayoutSettings:
        return LayoutSettings(block_days=self.block_days, seal_after_days=self.seal_after_days)


@asset(
    deps=["vector_store"],
    partitions_def=daily_partitions,
    backfill_policy=single_run_backfill,
    group_name="ingest",
    owners=["team:data-platform"],
    kinds={"postgres", "pgvector"},
    check_specs=[
        AssetCheckSpec("recall_at_10", asset="vector_index",
                       description="indexed top-10 vs exact top-10 on stored vectors used as queries"),
        AssetCheckSpec("index_valid", asset="vector_index", description="no invalid (failed) index is left"),
        AssetCheckSpec("vectors_sane", asset="vector_index",
                       description="no zero-length or wrong-dimension vectors (pgvector refuses NaN itself)"),
        AssetCheckSpec("retrieval_quality", asset="vector_index",
                       description="recall@5, MRR and nDCG@10 of hybrid and vector search on the labelled queries"),
    ],
)
def vector_index(context: AssetExecutionContext, config: IndexPolicyConfig, postgres: PostgresResource,
                 embedder: EmbedderResource, retention_window: RetentionResource) -> MaterializeResult:
    """Each partition's vector index, as the index policy decides from its row count, dimension and
    memory: an exact scan for small partitions, HNSW (m, ef_construction) or IVFFlat (lists from rows)
    above the threshold, rebuilt when invalid, stale or built for another model. First, days older than
    `seal_after_days` are sealed into blocks of `block_days` (one index per block instead of one per
    day: searches walk a few indexes, not thirty). Built with memory and parallel workers sized to fit,
    CONCURRENTLY on live partitions; progress in the logs; recall measured."""
    settings = config.settings()
    pooled = postgres.settings().pgbouncer
    today = retention_window.today()
    outcomes, recalls, invalid, insane = [], {}, [], {}
    with postgres.connect() as conn:
        sealed = sealing.seal_days(conn, today, retention.oldest_kept_day(today, retention_window.window_days),
                                   config.layout(), settings, log=context.log.info)
        dim = catalog.chunks_dimension(conn)
        stored = catalog.partitions(conn)
        held = {p.table: p for p in (layout.holding(stored, day) for day in partition_days(context)) if p}
        if not held:
            context.log.info("no partition holds the run's days (nothing loaded), nothing to index")
        for partition in held.values():
            kept = builds.upkeep(conn, partition.table, settings, dim, recall_samples=config.recall_samples,
                                       log=context.log.info, pooled=pooled)
            if kept is None:
                continue
            outcomes.append(kept.outcome)
            if kept.recall_at_10 is not None:
                recalls[partition.table] = kept.recall_at_10
            if kept.invalid_index:
                invalid.append(kept.invalid_index)
            if kept.insane_vectors:
                insane[partition.table] = kept.insane_vectors
        retrieval, measurement = _retrieval_check(context, conn, embedder, config)
    low = {table: round(r, 3) for table, r in recalls.items() if r < config.min_recall_at_10}
    return MaterializeResult(
        metadata={
            "partitions": len(outcomes),
            "indexed_partitions": sum(1 for o in outcomes if o.index_name),
            "exact_scan_partitions": sum(1 for o in outcomes if not o.index_name),
            "sealed": MetadataValue.json({o.partition or "(retry next run)": list(o.merged) for o in sealed}),
            "seal_seconds": round(sum(o.seconds for o in sealed), 3),
            "actions": MetadataValue.json({o.partition: f"{o.plan.action.value} {o.plan.kind.value}: {o.plan.reason}"
                                           for o in outcomes}),
            "index_kinds": ", ".join(sorted({o.plan.kind.value for o in outcomes})) or "none",
            "rows": sum(o.rows for o in outcomes),
            "build_seconds": round(sum(o.build_seconds for o in outcomes), 3),
            "index_bytes": MetadataValue.int(sum(o.size_bytes for o in outcomes)),
            "min_recall_at_10": round(min(recalls.values()), 4) if recalls else 1.0,
            **({RETRIEVAL_RECORD: MetadataValue.json(measurement)} if measurement else {}),
        },
        check_results=[
            AssetCheckResult(check_name="recall_at_10", passed=not low,
                             description=None if not low else f"recall@10 below {config.min_recall_at_10}: {low}",
                             metadata={"recall_at_10": MetadataValue.json({d: round(r, 4) for d, r in recalls.items()}),
                                       "threshold": config.min_recall_at_10}),
            AssetCheckResult(check_name="index_valid", passed=not invalid,
                             metadata={"invalid_indexes": MetadataValue.json(invalid)}),
            AssetCheckResult(check_name="vectors_sane", passed=not insane,
                             metadata={"bad_vectors_by_partition": MetadataValue.json(insane)}),
            retrieval,
        ],
    )


RETRIEVAL_RECORD = "retrieval_measurement"


def _retrieval_check(context: AssetExecutionContext, conn: psycopg.Connection[Any], embedder: EmbedderResource,
                     config: IndexPolicyConfig) -> tuple[AssetCheckResult, dict[str, Any] | None]:
    """Search quality as a user sees it, measured after the indexes changed. When nothing that search
    reads changed since the last measurement (same store version, same labelled set and threshold),
    that measurement is reported again, naming its run, and the model is not even loaded."""
    chosen = evaluation.labelled_set_for(conn, config.eval_queries)
    if chosen is None:
        return AssetCheckResult(check_name="retrieval_quality", passed=True, description=(
            "no labelled queries for this corpus: set eval_queries to a JSONL file (see `docvec eval`)")), None
    queries, source = chosen
    version = ":".join([evaluation.store_version(conn), evaluation.queries_version(queries),
                        str(config.min_retrieval_recall_at_5)])
    previous = _previous_measurement(context)
    if previous is not None and previous.get("version") == version:
        return AssetCheckResult(
            check_name="retrieval_quality", passed=bool(previous["passed"]), description=previous["description"],
            metadata={**previous["metadata"], "measured_in_run": previous["run_id"],
                      "remeasured": False}), previous
    scores = {s.mode: s for s in evaluation.evaluate(conn, embedder.get(), queries, modes=("hybrid", "vector"))}
    hybrid = scores["hybrid"]
    passed = hybrid.recall_at_k >= config.min_retrieval_recall_at_5
    description = None if passed else (f"hybrid recall@5 {hybrid.recall_at_k:.3f} is below "
                                       f"{config.min_retrieval_recall_at_5}; misses: {'; '.join(hybrid.misses)}")
    figures = {"labelled_set": source, "queries": hybrid.queries,
               **{f"{mode}_{name}": getattr(s, name) for mode, s in scores.items()
                  for name in ("recall_at_k", "mrr", "ndcg_at_10")},
               "threshold_recall_at_5": config.min_retrieval_recall_at_5}
    record = {"version": version, "passed": passed, "description": description, "metadata": figures,
              "run_id": context.run.run_id}
    return AssetCheckResult(check_name="retrieval_quality", passed=passed, description=description,
                            metadata={**figures, "measured_in_run": context.run.run_id, "remeasured": True}), record


def _previous_measurement(context: AssetExecutionContext) -> dict[str, Any] | None:
    event = context.instance.get_latest_materialization_event(context.asset_key)
    materialization = event.asset_materialization if event else None
    recorded = materialization.metadata.get(RETRIEVAL_RECORD) if materialization else None
    return recorded.value if isinstance(recorded, JsonMetadataValue) and isinstance(recorded.value, dict) else None
