"""A randomly initialised cross-encoder built offline, for the reranking stage's tests and benchmark: no
cross-encoder weights are installable here, so its scores mean nothing, but its shape (and so its
latency) is a real model's."""

from __future__ import annotations

from pathlib import Path

from pipeline.ingest.embedding import DEFAULT_MODEL, resolve_model_path


def build_cross_encoder(folder: Path, *, hidden: int = 32, layers: int = 1, heads: int = 2, seed: int = 0) -> Path:
    """A sequence-classification BERT with one score per pair, saved with the bundled MiniLM's tokenizer
    into ``folder``: a directory sentence-transformers' CrossEncoder loads (``hidden`` 384, ``layers`` 6,
    ``heads`` 12 is MiniLM-L6's shape)."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    config = BertConfig(vocab_size=30522, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                        intermediate_size=hidden * 4)
    config.num_labels = 1
    BertForSequenceClassification(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(resolve_model_path(DEFAULT_MODEL)).save_pretrained(folder)
    return folder
