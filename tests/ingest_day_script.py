"""Run by tests in a separate process: ingest one day through the engine, like a Dagster run would.

usage: python -m tests.ingest_day_script HOME LANDING DAY [--synthetic-rows N]
With --synthetic-rows the day is N synthetic chunks (random unit vectors), to make a COPY long enough
to be interrupted on purpose.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import numpy as np

from pipeline.ingest import stages
from pipeline.ingest.chunking import ChunkingConfig
from pipeline.ingest.embedding import load_embedder
from pipeline.settings import load_settings
from pipeline.storage import connections, days, model_registry
from tests.support.vectors import synthetic_day


def main(argv: list[str]) -> int:
    home, landing, day = Path(argv[0]), Path(argv[1]), dt.date.fromisoformat(argv[2])
    settings = load_settings(home=home)
    embedder = load_embedder()
    with connections.connect(settings) as conn:
        if len(argv) > 4 and argv[3] == "--synthetic-rows":
            rows = int(argv[4])
            vectors = np.random.default_rng(0).standard_normal((rows, embedder.info.dim)).astype(np.float32)
            batch = synthetic_day(day, vectors, embedder.info.name, embedder.info.revision)
            days.replace_day(conn, batch, model_registry.register(conn, embedder.info).id)
            return 0
        config = ChunkingConfig(max_seq_length=embedder.info.max_seq_length)
        chunks = stages.chunk_documents(stages.read_documents(landing, day), embedder.backend_tokenizer(), config)
        load = stages.load_embeddings(conn, stages.embed_chunks(chunks, embedder, conn))
        print(f"loaded {load.chunks}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
