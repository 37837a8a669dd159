"""The ingest DAG for one or more days: raw_documents → document_chunks → chunk_embeddings → vector_store."""


import time
from collections.abc import Mapping
from typing import Any

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetsDefinition,
    Config,
    Failure,
    MaterializeResult,
    MetadataValue,
    Output,
    asset,
)
from pydantic import Field

from assets.partitions import daily_partitions, partition_days, single_run_backfill
from pipeline.errors import ConfigError
from pipeline.ingest import stages
from pipeline.ingest.chunking import ChunkingConfig
from pipeline.ingest.context import HEADER_TOKENS
from pipeline.ingest.embedding import Embedder
from pipeline.ops import status
from pipeline.records import DayChunks, DayDocuments, DayEmbeddings
from pipeline.storage import (
    days,
    dead_letters,
    model_lifecycle,
    model_registry,
    retention,
)
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


def _log_dead_letters(context: AssetExecutionContext, letters) -> None:
    for letter in letters:
        context.log.warning(f"dead letter [{letter.stage}] {letter.source_uri}: {letter.error}. {letter.detail}")


def _log_days(context: AssetExecutionContext, lines: list[str]) -> None:
    """One log event per step, not one per day: each event is a row in Dagster's event log, and an
    unchanged rerun of a long range would otherwise spend its time writing them."""
    if lines:
        context.log.info("\n".join(lines))


@asset(io_manager_key="batch_io_manager", kinds={"python"}, **COMMON)
def raw_documents(context: AssetExecutionContext, source: SourceResource, postgres: PostgresResource,
                  retention_window: RetentionResource) -> Output[dict[str, DayDocuments]]:
    """Source documents of each ingest day, read with their structure (title, heading path, page or
    slide): PDF, Word, PowerPoint, Excel, EPUB, HTML (main content only), Markdown (front matter becomes
    metadata) and plain text. Non-text formats are parsed in parallel worker processes, each file under
    a time and memory limit. Bad files (no reader for the format, encrypted, scanned, corrupt, too large,
    binary, invalid UTF-8, empty, links escaping the landing directory) become dead letters that name
    the file and the fix; the rest of the day goes on. A day whose files have the same names, sizes,
    inodes and change times as when it was last loaded is not read again. Days older than the retention
    window are refused."""
    root = source.landing()
    run_days = partition_days(context)
    today = retention_window.today()
    for day in run_days:
        try:
            retention.require_within_window(day, today, retention_window.window_days)
        except ConfigError as exc:
            raise Failure(description=str(exc), allow_retries=False) from exc
    batches: dict[str, DayDocuments] = {}
    lines = []
    with postgres.connect() as conn:
        for day in run_days:
            batch = stages.scan_documents(conn, root, day, source.patterns, source.max_file_bytes,
                                          source.parse_limits())
            _log_dead_letters(context, batch.dead_letters)
            kept = f", {len(batch.kept)} unchanged files kept without reading them" if batch.kept else ""
            lines.append(f"{day}: {len(batch.documents)} documents read{kept}, {len(batch.dead_letters)} dead letters"
                         if batch.files_read else f"{day}: {batch.files_seen} files unchanged since the last load, not read")
            batches[day.isoformat()] = batch
    _log_days(context, lines)
    values = list(batches.values())
    return Output(batches, metadata={
        "days": len(values),
        "days_not_read": sum(not b.files_read for b in values),
        "files": sum(b.files_seen for b in values),
        "documents": sum(len(b.documents) for b in values),
        "documents_kept": sum(len(b.kept) for b in values),
        "bytes": sum(d.bytes for b in values for d in b.documents),
        "dead_letters": sum(len(b.dead_letters) for b in values),
        "seconds": round(sum(b.seconds for b in values), 3),
        "landing": root.url,
    })


class ChunkingSettings(Config):
    overlap_tokens: int = Field(default=32, ge=0, description="tokens shared by consecutive chunks")
    max_tokens: int | None = Field(default=None, ge=8, description="cap below the model's max_seq_length")
    force: bool = Field(default=False, description="rebuild days even when their input is unchanged")


@asset(io_manager_key="batch_io_manager", kinds={"python"}, **COMMON)
def document_chunks(context: AssetExecutionContext, config: ChunkingSettings, embedder: EmbedderResource,
                    source: SourceResource, postgres: PostgresResource,
                    raw_documents: Mapping[str, DayDocuments]) -> Output[dict[str, DayChunks]]:
    """Token-aware chunks cut with the embedding model's own tokenizer: never over its max_seq_length
    (header included), split at heading, paragraph, sentence, line or word boundaries, with configurable
    overlap. Each chunk gets its contextual header (title > section path, embedded with it but stored
    apart), its BM25 terms and weights, and a prior below 1 when it is a list of links. Chunk ids are
    deterministic (document id, position, content hash). A day whose files, failures, settings and
    model all match what is stored is marked unchanged and goes through the rest untouched (the model
    is loaded only when some day must be chunked)."""
    batches: dict[str, DayChunks] = {}
    lines = []
    with postgres.connect() as conn:
        info = embedder.planning_info(conn)
        settings = ChunkingConfig(max_seq_length=info.max_seq_length, max_tokens=config.max_tokens,
                                  overlap_tokens=config.overlap_tokens,
                                  reserved_tokens=HEADER_TOKENS if embedder.contextual_headers else 0)
        for key, read in raw_documents.items():
            batch, fingerprint, unchanged = stages.plan_day(
                conn, read, source.landing(), settings, info, patterns=source.patterns,
                max_file_bytes=source.max_file_bytes, max_chunks_per_document=source.max_chunks_per_document,
                force=config.force, limits=source.parse_limits())
            batches[key] = stages.unchanged_chunks(batch, fingerprint) if unchanged else stages.chunk_documents(
                batch, embedder.get().backend_tokenizer(), settings, source.max_chunks_per_document,
                fingerprint=fingerprint, contextual=embedder.contextual_headers)
            lines.append(f"{key}: unchanged since its last load; nothing to chunk, embed or rewrite" if unchanged
                         else f"{key}: {len(batches[key].chunks)} chunks from {len(batches[key].documents)} documents")
    _log_days(context, lines)
    values = list(batches.values())
    chunks = sum(len(b.chunks) for b in values)
    tokens = sum(c.token_count for b in values for c in b.chunks)
    seconds = sum(b.seconds for b in values)
    return Output(batches, metadata={
        "documents": sum(len(b.documents) for b in values),
        "days_unchanged": sum(b.unchanged for b in values),
        "chunks": chunks,
        "tokens": tokens,
        "mean_tokens_per_chunk": round(tokens / chunks, 1) if chunks else 0.0,
        "max_tokens_per_chunk": settings.budget,
        "seconds": round(seconds, 3),
        "chunks_per_second": round(chunks / seconds, 1) if seconds else 0.0,
    })


def _chunk_embeddings(context: AssetExecutionContext, embedder: EmbedderResource, postgres: PostgresResource,
                      document_chunks: Mapping[str, DayChunks]) -> Output[dict[str, DayEmbeddings]]:
    """Vectors for every chunk from the local sentence-transformers model (CUDA when present, fp16 there),
    in length-sorted batches. Content this model already embedded (same chunk hash) reuses the stored
    vector, so unchanged text is never embedded twice; a run of unchanged days never loads the model."""
    batches: dict[str, DayEmbeddings] = {}
    run_vectors: dict[str, Any] = {}  # text repeated across this run's days is embedded once
    model: Embedder | None = None
    with postgres.connect() as conn:
        info = embedder.recorded_info(conn)
        for key, batch in document_chunks.items():
            if batch.unchanged and info is not None:
                batches[key] = stages.unchanged_embeddings(batch, info)
                continue
            model = model or embedder.get()
            started = time.perf_counter()

            def progress(done: int, total: int, key: str = key, started: float = started) -> None:
                elapsed = time.perf_counter() - started
                rate = done / elapsed if elapsed else 0.0
                eta = (total - done) / rate if rate else 0.0
                context.log.info(f"{key}: embedded {done}/{total} chunks, {rate:.1f} chunks/s, ETA {eta:.0f} s")

            batches[key] = stages.embed_chunks(batch, model, conn, progress=progress, run_vectors=run_vectors)
    values = list(batches.values())
    embedded = sum(b.embedded for b in values)
    seconds = sum(b.seconds for b in values)
    return Output(batches, metadata={
        "chunks": sum(len(b.chunks) for b in values),
        "embedded": embedded,
        "reused": sum(b.reused for b in values),
        "seconds": round(seconds, 3),
        "chunks_per_second": round(embedded / seconds, 1) if seconds and embedded else 0.0,
        "model": model.info.name if model else embedder.model,
        "model_revision": model.info.revision if model else embedder.identity()[1],
        "dimension": model.info.dim if model else (info.dim if info else 0),
        "device": model.device if model else "not loaded: nothing to embed",
        "batch_size": str(model.batch_size or f"up to {model.tokens_per_batch} padded tokens") if model else "-",
    })


def embedding_asset(op_tags: Mapping[str, str] | None = None) -> AssetsDefinition:
    """The ``chunk_embeddings`` asset, its step tagged with ``op_tags``: the one step worth placing on
    other machines (a Celery queue of GPU workers: deploy/celery/gpu_definitions.py)."""
    return asset(name="chunk_embeddings", io_manager_key="batch_io_manager", kinds={"python"},
                 op_tags=dict(op_tags or {}), **COMMON)(_chunk_embeddings)


chunk_embeddings = embedding_asset()


def _sample_chunks(batches: Mapping[str, DayEmbeddings], limit: int = 5) -> str:
    """A glance at what was loaded: the first chunks of the latest rebuilt day."""
    rebuilt = [b for b in batches.values() if not b.unchanged and b.chunks]
    if not rebuilt:
        return "_no day was rebuilt in this run_"
    batch = max(rebuilt, key=lambda b: b.day)
    lines = [f"**{batch.day}** — first {min(limit, len(batch.chunks))} of {len(batch.chunks)} chunks", ""]
    for chunk in batch.chunks[:limit]:
        text = " ".join(chunk.text.split())
        text = text if len(text) <= 200 else text[:197] + "..."
        lines.append(f"- `{chunk.doc_id}#{chunk.seq}` ({chunk.token_count} tokens): {text.replace('|', '/')}")
    return "\n".join(lines)


@asset(
    kinds={"postgres", "pgvector"},
    check_specs=[
        AssetCheckSpec("day_rows_match", asset="vector_store",
                       description="each loaded day holds exactly the chunks the embedding step produced"),
        AssetCheckSpec("no_open_dead_letters", asset="vector_store",
                       description="warns while a loaded day has files that could not be ingested"),
    ],
    **COMMON,
)
def vector_store(context: AssetExecutionContext, postgres: PostgresResource,
                 chunk_embeddings: Mapping[str, DayEmbeddings]) -> MaterializeResult:
    """Each day's chunks and vectors in PostgreSQL + pgvector: binary COPY into a staging table created
    in the same transaction, indexes and ANALYZE there, then swapped in for that day's partition of
    `chunks` in one transaction. Rerunning a day replaces it; it never duplicates."""
    loads, lines = [], []
    with postgres.connect() as conn:
        for key, batch in chunk_embeddings.items():
            load = stages.load_embeddings(conn, batch)
            lines.append(f"{key}: unchanged, kept its {load.chunks} chunks as they are" if load.unchanged else
                         f"{key}: loaded {load.chunks} chunks ({load.rows_per_second:,.0f} rows/s), "
                         f"replaced {load.replaced_chunks}")
            loads.append(load)
        _log_days(context, lines)
        model_ids = {key: model_registry.find(conn, f"{b.model_name}@{b.model_revision}").id
                     for key, b in chunk_embeddings.items()}
        counts = {load.day: days.chunk_count(conn, load.day, model_ids[load.day.isoformat()]) for load in loads}
        # The configured model becomes the served one once its vectors cover every stored day.
        outcomes = [(model_id, model_lifecycle.switch_if_complete(conn, model_id))
                    for model_id in sorted(set(model_ids.values()))]
        lifecycle = "; ".join(outcome.describe(model_registry.find(conn, str(model_id))) for model_id, outcome in outcomes)
        if lifecycle:
            context.log.info(lifecycle)
        day_table = status.markdown_status(status.day_statuses(conn, [load.day for load in loads]))
        open_letters = dead_letters.open_letters(conn, days=[load.day for load in loads])
    mismatched = {str(load.day): {"in_table": counts[load.day], "produced": load.chunks}
                  for load in loads if counts[load.day] != load.chunks}
    copy_seconds = sum(load.copy_seconds for load in loads)
    copied = sum(load.chunks for load in loads if not load.unchanged)
    chunks = sum(load.chunks for load in loads)
    return MaterializeResult(
        metadata={
            "days": len(loads),
            "documents": sum(load.documents for load in loads),
            "chunks": chunks,
            "replaced_chunks": sum(load.replaced_chunks for load in loads),
            "days_unchanged": sum(load.unchanged for load in loads),
            "carried_chunks": sum(load.carried_chunks for load in loads),
            "embedding_model": lifecycle or "no day loaded",
            "per_day": MetadataValue.md(day_table),
            "sample_chunks": MetadataValue.md(_sample_chunks(chunk_embeddings)),
            "dead_letters": len(open_letters),
            "copy_seconds": round(copy_seconds, 3),
            "rows_per_second": round(copied / copy_seconds, 1) if copy_seconds else 0.0,
            "seconds": round(sum(load.seconds for load in loads), 3),
            # Days merged into one sealed block share its partition: count each partition once.
            "table_bytes": MetadataValue.int(sum({load.partition: load.table_bytes for load in loads}.values())),
            "partitions": ", ".join(sorted({load.partition for load in loads})),
        },
        check_results=[
            AssetCheckResult(check_name="day_rows_match", passed=not mismatched,
                             metadata={"mismatched_days": MetadataValue.json(mismatched)}),
            AssetCheckResult(check_name="no_open_dead_letters", passed=not open_letters,
                             severity=AssetCheckSeverity.WARN,
                             metadata={"open_dead_letters": MetadataValue.json(
                                 [f"{d['source_uri']}: {d['error']}" for d in open_letters[:50]])}),
        ],
    )
