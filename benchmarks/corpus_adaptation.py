"""Can the bundled model be adapted to a user's own corpus, with nothing but that corpus? Issue #30's
targets on git's manual are out of reach of every ranking constant (benchmarks/retrieval_sweep.py) and
no stronger encoder is installable here, so the last lever docvec could build itself is fine-tuning
all-MiniLM-L6-v2 on pairs it makes from the chunks it already has, with no labelled question:

- ``ict`` (inverse cloze task): a sentence drawn from a chunk is the query, the chunk without that
  sentence (kept in 10% of pairs) and with its contextual header the positive;
- ``heading``: the chunk's title > section path is the query, its text the positive.

Each variant trains one epoch with in-batch negatives (the multiple-negatives ranking loss
sentence-transformers uses, written out here: its trainer needs ``datasets``, which docvec does not
install), then the corpus is embedded again and scored in memory against the questions, which the
training never sees, beside the bundled model's own vectors: vectors ranked exactly, BM25 and fusion as
benchmarks/header_recipes.py scores them. A variant worth building would gain on both corpora.

Usage: ``python -m benchmarks.corpus_adaptation [--corpus git-docs python-docs] [--variants ict heading]``
(no database; one epoch is ~8 minutes on git's manual on two cores).
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import re
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from benchmarks import smoke
from benchmarks.header_recipes import chunked, columns, corpus_and_questions, figures, measure
from benchmarks.retrieval_benchmark import CORPORA
from pipeline.ingest import context
from pipeline.ingest.embedding import DEFAULT_MODEL, Embedder, load_embedder, resolve_model_path
from pipeline.query import evaluation
from pipeline.records import ChunkRecord, DayDocuments

SENTENCE_BREAK = re.compile(r"(?<=[.!?:])\s+|\n+")
SCALE = 20.0  # sentence-transformers' MultipleNegativesRankingLoss default
LABEL_WIDTH = 22  # the model column of the table


def training_pairs(chunks: Sequence[ChunkRecord], variant: str, rng: random.Random) -> list[tuple[str, str]]:
    """(query, positive) pairs made from the corpus alone."""
    pairs = []
    for chunk in chunks:
        if variant == "ict":
            sentences = [s.strip() for s in SENTENCE_BREAK.split(chunk.text) if 4 <= len(s.split()) <= 40]
            if sentences:
                sentence = rng.choice(sentences)
                rest = chunk.text if rng.random() < 0.1 else chunk.text.replace(sentence, " ")
                pairs.append((sentence, context.embedded_text(chunk.context, rest)))
        else:
            heading = " > ".join(part for part in (chunk.metadata.get("title"), chunk.metadata.get("section")) if part)
            if heading:
                pairs.append((heading, chunk.text))
    return pairs


def fine_tune(pairs: list[tuple[str, str]], out: Path, *, batch: int, learning_rate: float, seq: int,
              rng: random.Random) -> tuple[int, float]:
    """One epoch over ``pairs``; saves the model to ``out``; returns (steps, seconds)."""
    import torch
    from sentence_transformers import SentenceTransformer

    torch.manual_seed(7)  # dropout: the same pairs give the same model
    model = SentenceTransformer(resolve_model_path(DEFAULT_MODEL), device="cpu")
    full_length = model.max_seq_length
    model.max_seq_length = seq  # 128 (the model's own training length) takes half the time of 256
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate)
    model.train()
    rng.shuffle(pairs)
    started, steps = time.perf_counter(), 0
    for start in range(0, len(pairs) - batch + 1, batch):
        group = pairs[start:start + batch]
        queries, positives = (model(model.preprocess(list(texts)))["sentence_embedding"]
                              for texts in zip(*group, strict=True))
        logits = (torch.nn.functional.normalize(queries, dim=-1)
                  @ torch.nn.functional.normalize(positives, dim=-1).T) * SCALE
        loss = torch.nn.functional.cross_entropy(logits, torch.arange(len(group)))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        steps += 1
    model.eval()
    model.max_seq_length = full_length
    model.save(str(out))
    return steps, time.perf_counter() - started


def row(corpus: str, name: str, measured: tuple[int, float, dict[str, tuple[float, float, float]]], extra: str) -> str:
    """One model's row: ``measure``'s figures, then ``extra`` (how it was trained)."""
    count, _, scores = measured
    return f"{figures(corpus, name, LABEL_WIDTH, count, scores)}  {extra}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", nargs="+", choices=sorted(CORPORA), default=sorted(CORPORA))
    parser.add_argument("--variants", nargs="+", choices=("ict", "heading"), default=["ict", "heading"])
    parser.add_argument("--batch", type=int, default=32, help="pairs per step (in-batch negatives: batch - 1)")
    parser.add_argument("--learning-rate", type=float, default=2e-5)
    parser.add_argument("--seq", type=int, default=128, help="tokens per text while training")
    parser.add_argument("--limit-pages", type=int, help="only each corpus's first N pages (default: all)")
    parser.add_argument("--limit-questions", type=int, help="only the first N questions (default: all)")
    args = smoke.parse_args(parser, {"limit_pages": 3, "limit_questions": 5, "batch": 4, "seq": 32,
                                     "variants": ["ict"], "corpus": ["python-docs"]})
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    base = load_embedder(contextual=True, backend="onnx")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; one epoch per variant, batch {args.batch}, "
          f"learning rate {args.learning_rate}, {args.seq} tokens; vectors ranked exactly")
    print(f"{columns('model', LABEL_WIDTH)}  training")
    for name in dict.fromkeys(args.corpus):
        documents, queries = corpus_and_questions(name, args.limit_pages, args.limit_questions)
        with tempfile.TemporaryDirectory() as tmp:
            chunks = chunked(documents, base, context.RECIPE).chunks
            print(row(name, "bundled MiniLM", scored(documents, base, queries), "-"), flush=True)
            for variant in args.variants:
                rng = random.Random(7)
                pairs = training_pairs(chunks, variant, rng)
                out = Path(tmp) / f"adapted-{variant}"
                steps, seconds = fine_tune(pairs, out, batch=args.batch, learning_rate=args.learning_rate,
                                           seq=args.seq, rng=rng)
                adapted = Embedder(str(out), contextual=True, backend="onnx", export_dir=Path(tmp) / "onnx")
                print(row(name, f"adapted, {variant}", scored(documents, adapted, queries),
                          f"{len(pairs):,} pairs, {steps} steps, {seconds:.0f} s"), flush=True)


def scored(documents: DayDocuments, embedder: Embedder,
           queries: Sequence[evaluation.LabelledQuery]) -> tuple[int, float, dict[str, tuple[float, float, float]]]:
    """``embedder``'s pass over the corpus, scored as ``header_recipes`` scores a recipe."""
    query_vectors: np.ndarray = embedder.encode([q.query for q in queries])
    return measure(documents, embedder, context.RECIPE, queries, query_vectors)


if __name__ == "__main__":
    main()
