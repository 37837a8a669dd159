"""Ingest days through the engine exactly as the ingest assets run them (read → chunk → embed → load),
for tests that need stored days without Dagster, and the small things such tests share."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import psycopg

from pipeline.ingest.chunking import ChunkingConfig
from pipeline.ingest.collection import CollectionOptions
from pipeline.ingest.embedding import Embedder
from pipeline.ingest.landing import Landing
from pipeline.ingest.planning import ReadOptions, Recipe
from pipeline.ops import ingest_steps, loading
from pipeline.ops.ingest_steps import ReadReport
from pipeline.records import DayLoad


def run_days(conn: psycopg.Connection, landing: Landing, days: Sequence[dt.date], embedder: Embedder,
             config: ChunkingConfig | None = None, *, options: ReadOptions | None = None,
             snapshot: CollectionOptions | None = None, force: bool = False,
             model: Callable[..., Any] | None = None) -> tuple[ReadReport, list[DayLoad]]:
    """The days read, chunked, embedded and loaded: the recipe cuts with ``config`` (default: the
    model's own, with room for contextual headers); ``model`` is what loading the model does
    (default: the embedder; pass one that raises to prove it is never loaded)."""
    recipe = (Recipe(config, embedder.info, contextual=embedder.contextual) if config is not None
              else Recipe.of(embedder.info, contextual=embedder.contextual))
    report = ingest_steps.read_days(conn, landing, list(days), recipe, options or ReadOptions(), force=force,
                                    snapshot=snapshot)
    chunks = ingest_steps.chunk_days(report.plans, model or embedder.backend_tokenizer).batches
    embedded = ingest_steps.embed_days(conn, chunks, model or (lambda: embedder), log=lambda _: None).batches
    return report, loading.load_days(conn, embedded).loads


def never(*_: object) -> object:
    """A model loader for runs that must not load the model."""
    raise AssertionError("the model was loaded")


def write_files(root: Path, files: dict[str, str]) -> None:
    """Each text at its path below ``root`` (folders made as needed)."""
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
