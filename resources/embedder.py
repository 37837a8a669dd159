from __future__ import annotations

from dataclasses import replace
from typing import Any

import psycopg
from dagster import ConfigurableResource
from pydantic import Field

from pipeline.ingest.embedding import (
    DEFAULT_MODEL,
    Embedder,
    load_embedder,
    model_identity,
)
from pipeline.records import ModelInfo
from pipeline.storage import model_registry


class EmbedderResource(ConfigurableResource):
    """The sentence-transformers model that embeds chunks and queries (local only, never downloaded)."""

    model: str = Field(default=DEFAULT_MODEL, description="model name (bundled or in the local HF cache) or a local path")
    device: str = Field(default="auto", description="auto (CUDA when present, else CPU), cpu, cuda, cuda:1, mps")
    batch_size: int | None = Field(default=None, ge=1, description="texts per forward pass; default: as many as fit "
                                   "65,536 padded tokens on CUDA, 2,048 on CPU (1,024 with the onnx backends)")
    normalize: bool = Field(default=True, description="unit-length vectors, so cosine = dot product")
    backend: str = Field(default="torch", description="torch (CPU or CUDA, fp16 on CUDA), onnx (ONNX Runtime, CPU) "
                         "or onnx-int8 (int8 weights, faster on CPU; recorded as its own model revision)")
    contextual_headers: bool = Field(default=True, description="embed each chunk after its header (document title "
                                     "> section path), stored apart from its text; part of the model revision, so "
                                     "switching it is a shadow build")

    def get(self) -> Embedder:
        return load_embedder(self.model, device=self.device, batch_size=self.batch_size, normalize=self.normalize,
                             backend=self.backend, contextual=self.contextual_headers)

    def identity(self) -> tuple[str, str]:
        """(name, revision) its vectors are stored under, without loading the model."""
        return model_identity(self.model, self.backend, self.contextual_headers)

    def recorded_info(self, conn: psycopg.Connection[Any]) -> ModelInfo | None:
        """What the store recorded of the configured model when it first embedded here (dimension,
        sequence length), so a run that embeds nothing can plan without loading it; None if it never did."""
        name, revision = self.identity()
        recorded = model_registry.recorded_info(conn, name, revision)
        return replace(recorded, normalized=self.normalize) if recorded else None

    def planning_info(self, conn: psycopg.Connection[Any]) -> ModelInfo:
        """``recorded_info``, or the loaded model's when the store has none yet."""
        return self.recorded_info(conn) or self.get().info
