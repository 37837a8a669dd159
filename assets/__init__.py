"""Thin Dagster assets: each calls the engine in ``pipeline/`` and reports what it did. Other packages
use what this package exports, never its modules."""

from assets.index import vector_index
from assets.ingest import chunk_embeddings, document_chunks, embedding_asset, raw_documents, vector_store
from assets.partitions import daily_partitions
from assets.retention import retention

ALL_ASSETS = [raw_documents, document_chunks, chunk_embeddings, vector_store, vector_index, retention]

__all__ = ["ALL_ASSETS", "chunk_embeddings", "daily_partitions", "document_chunks", "embedding_asset", "raw_documents",
           "retention", "vector_index", "vector_store"]
