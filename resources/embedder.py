from __future__ import annotations

from dagster import ConfigurableResource
from pydantic import Field

from pipeline.embedding import DEFAULT_MODEL, Embedder, load_embedder


class EmbedderResource(ConfigurableResource):
    """The sentence-transformers model that embeds chunks and queries (local only, never downloaded)."""

    model: str = Field(default=DEFAULT_MODEL, description="model name (bundled or in the local HF cache) or a local path")
    device: str = Field(default="auto", description="auto (CUDA when present, else CPU), cpu, cuda, cuda:1, mps")
    batch_size: int = Field(default=64, ge=1, description="texts per forward pass")
    normalize: bool = Field(default=True, description="unit-length vectors, so cosine = dot product")

    def get(self) -> Embedder:
        return load_embedder(self.model, device=self.device, batch_size=self.batch_size, normalize=self.normalize)
