"""The ingest DAG for one or more days: raw_documents → document_chunks → chunk_embeddings → vector_store,
and the checks of what vector_store holds. Each asset is a few calls to the engine (pipeline/ops),
whose report it hands to Dagster."""

from collections.abc import Mapping
from typing import Any

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetsDefinition,
    Config,
    MaterializeResult,
    Output,
    asset,
    asset_check,
)
from pydantic import Field

from assets.partitions import checked_days, daily_partitions, partition_days, single_run_backfill
from assets.reporting import check_result, dagster_metadata, publish_run_metrics, refused_as_failure
from pipeline.ingest.planning import DayPlan, Recipe
from pipeline.ops import ingest_steps, loading, run_metrics, store_checks
from pipeline.ops.reports import log_lines
from pipeline.records import DayChunks, DayEmbeddings, ModelInfo
from resources import (
    EmbedderResource,
    PostgresResource,
    RetentionResource,
    SourceResource,
)

GROUP = "ingest"
OWNERS = ["team:data-platform"]
COMMON: dict[str, Any] = {
    "partitions_def": daily_partitions,
    "backfill_policy": single_run_backfill,
    "group_name": GROUP,
    "owners": OWNERS,
}


class ChunkingSettings(Config):
    """How chunks are cut: part of what decides whether a day is unchanged, so it is read where the
    day's files are (the plan carries it to the chunking step)."""
    overlap_tokens: int = Field(default=32, ge=0, description="tokens shared by consecutive chunks")
    max_tokens: int | None = Field(default=None, ge=8, description="cap below the model's max_seq_length")
    force: bool = Field(default=False, description="rebuild days even when their input is unchanged")

    def recipe(self, model: ModelInfo, contextual: bool, max_chunks_per_document: int) -> Recipe:
        """What a day is built with under these settings, for ``model``."""
        return Recipe.of(model, contextual=contextual, overlap_tokens=self.overlap_tokens, max_tokens=self.max_tokens,
                         max_chunks_per_document=max_chunks_per_document)


@asset(io_manager_key="batch_io_manager", kinds={"python"}, **COMMON)
def raw_documents(context: AssetExecutionContext, config: ChunkingSettings, source: SourceResource,
                  embedder: EmbedderResource, postgres: PostgresResource,
                  retention_window: RetentionResource) -> Output[dict[str, DayPlan]]:
    """Source documents of each ingest day, read with their structure (title, heading path, page or
    slide): PDF, Word, PowerPoint, Excel, EPUB, HTML (main content only), Markdown (front matter becomes
    metadata) and plain text. Non-text formats are parsed in parallel worker processes, each file under
    a time and memory limit. Bad files (no reader for the format, encrypted, scanned, corrupt, too large,
    binary, invalid UTF-8, empty, links escaping the landing directory) become dead letters that name
    the file and the fix; the rest of the day goes on. Here, once, each day is planned: a day whose
    files, failures, chunking settings and model all match what is stored is unchanged and goes through
    the rest untouched; its files are not even opened when their names, sizes, inodes and change times
    match the last load, and of a changed day only the changed files are read. Days older than the
    retention window are refused. With the source in collection mode, a run takes one snapshot of the
    living folder or prefix and reports documents added, changed, deleted and unchanged."""
    with refused_as_failure():
        days = ingest_steps.days_to_read(partition_days(context), retention_window.today(), retention_window.window_days)
        landing = source.landing()
        with postgres.connect() as conn:
            recipe = config.recipe(embedder.planning_info(conn), embedder.contextual_headers,
                                   source.max_chunks_per_document)
            report = ingest_steps.read_days(conn, landing, days, recipe, source.read_options(), force=config.force,
                                            snapshot=source.collection_options())
    for letter in report.dead_letters:
        context.log.warning(f"dead letter [{letter.stage}] {letter.source_uri}: {letter.error}. {letter.detail}")
    log_lines(context.log.info, report.lines())
    publish_run_metrics(context, postgres.settings(), lambda: run_metrics.read_samples(report))
    return Output(report.plans, metadata=dagster_metadata(report.metadata()))


@asset(io_manager_key="batch_io_manager", kinds={"python"}, **COMMON)
def document_chunks(context: AssetExecutionContext, embedder: EmbedderResource,
                    raw_documents: Mapping[str, DayPlan]) -> Output[dict[str, DayChunks]]:
    """Token-aware chunks cut with the embedding model's own tokenizer: never over its max_seq_length
    (header included), split at heading, paragraph, sentence, line or word boundaries, with configurable
    overlap. Each chunk gets its contextual header (title > section path, embedded with it but stored
    apart), its BM25 terms and weights, and a prior below 1 when it is a list of links. Chunk ids are
    deterministic (document id, position, content hash). A day planned unchanged goes through untouched
    (the model is loaded only when some day must be chunked)."""
    report = ingest_steps.chunk_days(raw_documents, lambda: embedder.get().backend_tokenizer())
    log_lines(context.log.info, report.lines())
    return Output(report.batches, metadata=dagster_metadata(report.metadata()))


def _chunk_embeddings(context: AssetExecutionContext, embedder: EmbedderResource, postgres: PostgresResource,
                      document_chunks: Mapping[str, DayChunks]) -> Output[dict[str, DayEmbeddings]]:
    """Vectors for every chunk from the local sentence-transformers model (CUDA when present, fp16 there),
    in length-sorted batches. Content this model already embedded (same chunk hash) reuses the stored
    vector, so unchanged text is never embedded twice; a run of unchanged days never loads the model."""
    with postgres.connect() as conn:
        report = ingest_steps.embed_days(conn, document_chunks, embedder.get, log=context.log.info)
    publish_run_metrics(context, postgres.settings(), lambda: run_metrics.embed_samples(report))
    return Output(report.batches, metadata=dagster_metadata(report.metadata()))


def embedding_asset(op_tags: Mapping[str, str] | None = None) -> AssetsDefinition:
    """The ``chunk_embeddings`` asset, its step tagged with ``op_tags``: the one step worth placing on
    other machines (a Celery queue of GPU workers: deploy/celery/gpu_definitions.py)."""
    return asset(name="chunk_embeddings", io_manager_key="batch_io_manager", kinds={"python"},
                 op_tags=dict(op_tags or {}), **COMMON)(_chunk_embeddings)


chunk_embeddings = embedding_asset()


@asset(kinds={"postgres", "pgvector"}, **COMMON)
def vector_store(context: AssetExecutionContext, postgres: PostgresResource,
                 chunk_embeddings: Mapping[str, DayEmbeddings]) -> MaterializeResult:
    """Each day's chunks and vectors in PostgreSQL + pgvector: binary COPY into a staging table created
    in the same transaction, indexes and ANALYZE there, then swapped in for that day's partition of
    `chunks` in one transaction. Rerunning a day replaces it; it never duplicates. The configured
    model becomes the one search serves once its vectors cover every stored day."""
    with postgres.connect() as conn:
        report = loading.load_days(conn, chunk_embeddings)
    log_lines(context.log.info, report.lines())
    log_lines(context.log.warning, report.warnings())
    publish_run_metrics(context, postgres.settings(), lambda: run_metrics.load_samples(report))
    return MaterializeResult(metadata=dagster_metadata(report.metadata()))


@asset_check(asset=vector_store, description="each loaded day holds exactly the chunks its load recorded")
def day_rows_match(context: AssetCheckExecutionContext, postgres: PostgresResource,
                   embedder: EmbedderResource) -> AssetCheckResult:
    """Rows of the configured model in each of the run's days against what the day's load recorded."""
    with postgres.connect() as conn:
        return check_result(store_checks.day_rows_match(conn, checked_days(context), embedder.identity()))


@asset_check(asset=vector_store, description="warns while a loaded day has files that could not be ingested")
def no_open_dead_letters(context: AssetCheckExecutionContext, postgres: PostgresResource) -> AssetCheckResult:
    """The run's days' dead letters still open: files to fix (a warning, the rest of each day loaded)."""
    with postgres.connect() as conn:
        return check_result(store_checks.no_open_dead_letters(conn, checked_days(context)), AssetCheckSeverity.WARN)


STORE_CHECKS = [day_rows_match, no_open_dead_letters]
