"""The vector index of each partition, decided by the index policy from the data, the sealing of days
that no longer change into multi-day blocks with one index each, and the checks of what search reads."""

from typing import Any

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckKey,
    AssetCheckResult,
    AssetExecutionContext,
    Config,
    JsonMetadataValue,
    MaterializeResult,
    asset,
    asset_check,
)
from pydantic import Field

from assets.partitions import checked_days, daily_partitions, partition_days, single_run_backfill
from assets.reporting import check_result, dagster_metadata, publish_run_metrics
from pipeline.indexing.policy import IndexKind, IndexSettings
from pipeline.ops import index_upkeep, run_metrics, store_checks
from pipeline.storage.layout import LayoutSettings
from resources import EmbedderResource, PostgresResource, RetentionResource, SourceResource


class IndexPolicyConfig(Config):
    exact_max_rows: int = Field(default=IndexSettings.exact_max_rows, ge=0,
                                description="days with at most this many chunks are searched exactly (no index)")
    preferred: str = Field(default="hnsw", description="hnsw or ivfflat")
    hnsw_m: int = Field(default=16)
    hnsw_ef_construction: int = Field(default=64)
    rebuild_growth: float = Field(default=2.0, description="IVFFlat is retrained when a partition grew past this factor")
    block_days: int = Field(default=LayoutSettings.block_days, ge=1, le=366, description=(
        "sealed days are merged into blocks of this many days, one vector index each (1: one partition per day)"))
    seal_after_days: int = Field(default=LayoutSettings.seal_after_days, ge=0, description=(
        "a day is sealed (merged into its block) once it is older than this many days (0: all but today)"))
    window_block: bool = Field(default=LayoutSettings.window_block, description=(
        "seal every sealed day of the retention window into one block instead of blocks of block_days: with "
        "seal_after_days 0 searches walk two vector indexes, and each seal rebuilds the window's index "
        "(minutes at 1M chunks)"))
    recall_samples: int = Field(default=20, ge=1, description="stored vectors used as queries to measure a new "
                                "index's recall@10 against an exact scan")

    def settings(self) -> IndexSettings:
        return IndexSettings(exact_max_rows=self.exact_max_rows, preferred=IndexKind(self.preferred),
                             hnsw_m=self.hnsw_m, hnsw_ef_construction=self.hnsw_ef_construction,
                             rebuild_growth=self.rebuild_growth)

    def layout(self) -> LayoutSettings:
        return LayoutSettings(block_days=self.block_days, seal_after_days=self.seal_after_days,
                              window_block=self.window_block)


@asset(
    deps=["vector_store"],
    partitions_def=daily_partitions,
    backfill_policy=single_run_backfill,
    group_name="ingest",
    owners=["team:data-platform"],
    kinds={"postgres", "pgvector"},
)
def vector_index(context: AssetExecutionContext, config: IndexPolicyConfig, postgres: PostgresResource,
                 retention_window: RetentionResource, source: SourceResource) -> MaterializeResult:
    """Each partition's vector index, as the index policy decides from its row count, dimension and
    memory: an exact scan for small partitions, HNSW (m, ef_construction) or IVFFlat (lists from rows)
    above the threshold, rebuilt when invalid, stale or built for another model. First, days older than
    `seal_after_days` are sealed into blocks of `block_days` (one index per block instead of one per
    day: searches walk a few indexes, not thirty), or with `window_block` into one block for the whole
    window (two indexes to walk, the window's index rebuilt at each seal). Built with memory and parallel
    workers sized to fit, CONCURRENTLY on live partitions; progress in the logs; each new index's recall
    measured and recorded."""
    with postgres.connect() as conn:
        report = index_upkeep.upkeep_indexes(
            conn, partition_days(context), config.settings(), config.layout(), today=retention_window.today(),
            window_days=retention_window.window_days, recall_samples=config.recall_samples,
            pooled=bool(postgres.settings().pgbouncer), day_folders=source.source_mode() == "days",
            log=context.log.info)
        publish_run_metrics(context, postgres.settings(), lambda: run_metrics.index_samples(conn, report))
    return MaterializeResult(metadata=dagster_metadata(report.metadata()))


class RecallCheckConfig(Config):
    min_recall_at_10: float = Field(default=0.95, ge=0, le=1, description="the check fails below this recall@10")


@asset_check(asset=vector_index, description="indexed top-10 vs exact top-10 on stored vectors used as queries")
def recall_at_10(context: AssetCheckExecutionContext, config: RecallCheckConfig,
                 postgres: PostgresResource) -> AssetCheckResult:
    """The recall@10 of the index of each partition holding the run's days, as measured after its build."""
    with postgres.connect() as conn:
        return check_result(store_checks.recall_at_10(conn, checked_days(context), config.min_recall_at_10))


@asset_check(asset=vector_index, description="no invalid (failed) index is left")
def index_valid(context: AssetCheckExecutionContext, postgres: PostgresResource) -> AssetCheckResult:
    """No partition holding the run's days keeps an index a failed build left invalid."""
    with postgres.connect() as conn:
        return check_result(store_checks.index_valid(conn, checked_days(context)))


@asset_check(asset=vector_index, description="no zero-length or wrong-dimension vectors (pgvector refuses NaN itself)")
def vectors_sane(context: AssetCheckExecutionContext, postgres: PostgresResource) -> AssetCheckResult:
    """Every vector of the partitions holding the run's days has the column's dimension and a length."""
    with postgres.connect() as conn:
        return check_result(store_checks.vectors_sane(conn, checked_days(context)))


class RetrievalCheckConfig(Config):
    eval_queries: str | None = Field(
        default=None, description="labelled JSONL for the retrieval check; empty = the sample set when it is loaded")
    min_retrieval_recall_at_5: float = Field(default=0.8, ge=0, le=1,
                                             description="the retrieval check fails below this hybrid recall@5")


@asset_check(asset=vector_index,
             description="recall@5, MRR and nDCG@10 of hybrid and vector search on the labelled queries")
def retrieval_quality(context: AssetCheckExecutionContext, config: RetrievalCheckConfig, postgres: PostgresResource,
                      embedder: EmbedderResource) -> AssetCheckResult:
    """Search quality as a user sees it, after the indexes changed. When nothing search reads changed
    since the last measurement (same store version, labelled set and threshold), that measurement is
    reported again, naming its run, and the model is not even loaded."""
    with postgres.connect() as conn:
        return check_result(store_checks.retrieval_quality(
            conn, embedder.get, config.eval_queries, config.min_retrieval_recall_at_5, run=context.run.run_id,
            previous=_last_measurement(context)))


def _last_measurement(context: AssetCheckExecutionContext) -> dict[str, Any] | None:
    """The record of the last retrieval measurement this check reported (in an earlier run)."""
    key = AssetCheckKey(vector_index.key, "retrieval_quality")
    for record in context.instance.event_log_storage.get_asset_check_execution_history(key, limit=10):
        evaluation = record.event.asset_check_evaluation if record.event else None
        recorded = evaluation.metadata.get(store_checks.RETRIEVAL_RECORD) if evaluation else None
        if isinstance(recorded, JsonMetadataValue) and isinstance(recorded.value, dict):
            return recorded.value
    return None


INDEX_CHECKS = [recall_at_10, index_valid, vectors_sane, retrieval_quality]
