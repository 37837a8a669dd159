from __future__ import annotations

from dagster import ConfigurableResource
from pydantic import Field

from pipeline.ingest.embedding import (
    DEFAULT_MODEL,
    Embedder,
    load_embedder,
    model_identity,
)


class EmbedderResource(ConfigurableResource):
    """The sentence-transformers model that embeds chunks and queries (local only, never downloaded)."""

    model: str = Field(default=DEFAULT_MODEL, description="model name (bundled or in the local HF cache) or a local path")
    device: str = Field(default="auto", description="auto (CUDA when present, else CPU), cpu, cuda, cuda:1, mps")
    batch_size: int | None = Field(default=None, ge=1, description="texts per forward pass; default: as many as fit "
                                   "65,536 padded tokens on CUDA, 2,048 on CPU (1,024 with the onnx backends)")
    normalize: bool = Field(default=True, description="unit-length vectors, so cosine = dot product")
    backend: str = Field(default="torch", description="torch (CPU or CUDA, fp16 on CUDA), onnx (ONNX Runtime, CPU) "
                         "or onnx-int8 (int8 weights, faster on CPU; recorded as its own model revision)")

    def get(self) -> Embedder:
        return load_embedder(self.model, device=self.device, batch_size=self.batch_size, normalize=self.normalize,
                             backend=self.backend)

    def identity(self) -> tuple[str, str]:
        """(name, revision) its vectors are stored under, without loading the model."""
        return model_identity(self.model, self.backend)
