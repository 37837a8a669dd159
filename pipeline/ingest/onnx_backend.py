"""ONNX Runtime CPU backend: the local sentence-transformers model exported once with torch, its
attention fused by ONNX Runtime's transformer optimizer, and (for ``onnx-int8``) its weights quantized
to int8. Everything is made from files already on disk; nothing is downloaded.

Why not sentence-transformers' own ONNX backend: it needs optimum-onnx, whose only release pins
transformers < 4.58 and so breaks sentence-transformers 6.
"""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from pipeline.errors import ConfigError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

log = logging.getLogger(__name__)

BACKENDS = ("torch", "onnx", "onnx-int8")
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")


def require_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise ConfigError(f"embedding backend {backend!r} is not one of {', '.join(BACKENDS)}")


def _import_onnxruntime() -> ModuleType:
    try:
        import onnxruntime
    except ImportError as exc:
        raise ConfigError("the onnx backends need onnxruntime: pip install 'docvec[onnx]' "
                          "(scripts/bootstrap.sh installs it)") from exc
    module: ModuleType = onnxruntime
    return module


def _replace_atomically(write: Callable[[str], object], target: Path) -> None:
    """Write through a temporary name and rename, so two processes exporting at once never read half a file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=target.name, suffix=".tmp", dir=target.parent)
    os.close(handle)
    try:
        write(temporary)
        os.replace(temporary, target)
    finally:
        Path(temporary).unlink(missing_ok=True)


def _export(model: SentenceTransformer, target: Path) -> None:
    import torch

    transformer: Any = model[0].auto_model  # transformers' PreTrainedModel, typed loosely by torch
    # The eager attention exports as plain MatMul/Softmax, which the optimizer fuses into one Attention
    # op; the default SDPA path exports as a pattern it does not recognise (measured 1.05× vs 1.55× int8).
    if hasattr(transformer, "set_attn_implementation"):
        transformer.set_attn_implementation("eager")
    inputs = [name for name in INPUT_NAMES if name in model.tokenizer.model_input_names]

    class SentenceEmbedding(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
            output: torch.Tensor = self.model(dict(zip(inputs, tensors, strict=True)))["sentence_embedding"]
            return output

    sample = model.tokenizer(["an example", "a slightly longer example sentence"], padding=True, return_tensors="pt")
    axes = {name: {0: "batch", 1: "sequence"} for name in inputs} | {"sentence_embedding": {0: "batch"}}
    try:
        # The tracer warns about shape-dependent Python branches; the export is checked numerically
        # against torch afterwards (``_verify``), which is what matters.
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _replace_atomically(lambda path: torch.onnx.export(
                SentenceEmbedding().eval(), tuple(sample[name] for name in inputs), path, input_names=inputs,
                output_names=["sentence_embedding"], dynamic_axes=axes, opset_version=17, dynamo=False,
            ), target)
    finally:
        if hasattr(transformer, "set_attn_implementation"):
            transformer.set_attn_implementation("sdpa")


def _optimize(source: Path, target: Path, model: SentenceTransformer) -> None:
    from onnxruntime.transformers import optimizer

    config = cast(Any, model[0]).auto_model.config
    heads, hidden = getattr(config, "num_attention_heads", 0), getattr(config, "hidden_size", 0)
    optimized = optimizer.optimize_model(str(source), model_type="bert", num_heads=heads, hidden_size=hidden)
    _replace_atomically(optimized.save_model_to_file, target)


def _quantize(source: Path, target: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # reduce_range: without AVX-512 VNNI, ONNX Runtime's u8×s8 kernels saturate 8-bit products; with full
    # range the vectors' cosine to fp32 fell to 0.925 on this machine, with 7-bit weights it is 0.992.
    # quantize_dynamic logs a generic "consider pre-processing" warning on the root logger; the
    # pre-processing it suggests fails on this graph (incomplete symbolic shapes) and is not needed.
    logging.disable(logging.WARNING)
    try:
        _replace_atomically(lambda path: quantize_dynamic(
            str(source), path, weight_type=QuantType.QInt8, per_channel=True, reduce_range=True,
            extra_options={"DefaultTensorType": 1, "MatMulConstBOnly": True},
        ), target)
    finally:
        logging.disable(logging.NOTSET)


def loaded_encoder(model: SentenceTransformer, backend: str, cache_dir: Path,
                   threads: int | None = None) -> OnnxEncoder:
    """The encoder for ``backend`` (``prepared_model``), one session with ``threads``. The fp32 one is
    checked against the torch model on every load, not only when made: its vectors are recorded under
    torch's revision, so a stale or foreign file in the cache must never be used."""
    path = prepared_model(model, backend, cache_dir)
    encoder = OnnxEncoder(path, model, threads)
    if backend == "onnx":
        _require_reproduces(encoder, model, path)
    return encoder


def prepared_model(model: SentenceTransformer, backend: str, cache_dir: Path) -> Path:
    """The ONNX file for ``backend``, made under ``cache_dir`` on first use and reused afterwards."""
    _import_onnxruntime()
    exported, optimized, quantized = (cache_dir / "model.onnx", cache_dir / "model.opt.onnx",
                                      cache_dir / "model.opt.int8.onnx")
    if not optimized.exists():
        log.info("exporting the embedding model to ONNX under %s (once)", cache_dir)
        if not exported.exists():
            _export(model, exported)
        _optimize(exported, optimized, model)
        _require_reproduces(OnnxEncoder(optimized, model), model, optimized)
    if backend == "onnx":
        return optimized
    if not quantized.exists():
        _quantize(optimized, quantized)
    return quantized


PROBE_TEXTS = ("short", "A longer sentence about partitioned PostgreSQL tables and their vector indexes.",
               "数据库索引 and emoji 🚀 in one line", "def f(x):\n    return x ** 2  # code")


def _require_reproduces(encoder: OnnxEncoder, model: SentenceTransformer, path: Path) -> None:
    """Refuse (and delete) an fp32 export at ``path`` whose vectors differ from the torch model's (a trace
    gone wrong on some architecture, a stale file), instead of silently storing or searching wrong vectors."""
    expected = model.encode(list(PROBE_TEXTS), convert_to_numpy=True, normalize_embeddings=True)
    got = encoder(PROBE_TEXTS, batch_size=len(PROBE_TEXTS))
    got /= np.linalg.norm(got, axis=1, keepdims=True)
    worst = float((expected * got).sum(axis=1).min())
    if worst < 0.999:
        path.unlink(missing_ok=True)
        raise ConfigError(f"the ONNX export of this model does not reproduce its vectors (cosine {worst:.4f} < 0.999); "
                          "use backend torch for it")


class OnnxEncoder:
    """Encodes a list of texts with an ONNX Runtime session: tokenized with the model's fast tokenizer,
    padded to the longest text of the batch, truncated at max_seq_length. ``threads``: the session's
    intra-op threads (None: ONNX Runtime's default, every core)."""

    def __init__(self, path: Path, model: SentenceTransformer, threads: int | None = None) -> None:
        onnxruntime = _import_onnxruntime()
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads is not None:  # a server's concurrent queries: each on its own thread, none spinning idle
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            if threads == 1:
                options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_str(model.tokenizer.backend_tokenizer.to_str())
        self.tokenizer.enable_truncation(max_length=int(model.max_seq_length or 512))
        pad_id = model.tokenizer.pad_token_id or 0
        self.tokenizer.enable_padding(pad_id=pad_id, pad_token=model.tokenizer.pad_token or "[PAD]")

    def __call__(self, texts: Sequence[str], batch_size: int) -> np.ndarray:
        parts = []
        for start in range(0, len(texts), batch_size):
            encodings = self.tokenizer.encode_batch(list(texts[start:start + batch_size]))
            arrays = {
                "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
                "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
                "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
            }
            parts.append(self.session.run(None, {name: arrays[name] for name in self.inputs})[0])
        return np.concatenate(parts).astype(np.float32, copy=False)
