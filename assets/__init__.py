"""Thin Dagster assets: each calls the engine in ``pipeline/`` and reports what it did; the checks of
each asset are ``@asset_check``s beside it. Other packages use what this package exports, never its
modules."""

from collections.abc import Iterable

from dagster import AssetChecksDefinition, AssetsDefinition

from assets.index import INDEX_CHECKS, vector_index
from assets.ingest import (
    STORE_CHECKS,
    chunk_embeddings,
    document_chunks,
    embedding_asset,
    raw_documents,
    vector_store,
)
from assets.partitions import daily_partitions
from assets.retention import RETENTION_CHECKS, retention

ALL_ASSETS = [raw_documents, document_chunks, chunk_embeddings, vector_store, vector_index, retention]
ALL_CHECKS: list[AssetChecksDefinition] = [*STORE_CHECKS, *INDEX_CHECKS, *RETENTION_CHECKS]


def with_checks(*chosen: AssetsDefinition) -> list[AssetsDefinition]:
    """``chosen`` and every check of them, to materialize together (``dagster.materialize``)."""
    keys = {key for asset in chosen for key in asset.keys}
    checks: Iterable[AssetChecksDefinition] = (c for c in ALL_CHECKS if any(k.asset_key in keys for k in c.check_keys))
    return [*chosen, *checks]


__all__ = ["ALL_ASSETS", "ALL_CHECKS", "chunk_embeddings", "daily_partitions", "document_chunks", "embedding_asset",
           "raw_documents", "retention", "vector_index", "vector_store", "with_checks"]
