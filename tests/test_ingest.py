"""The engine end to end on real PostgreSQL and the real model: idempotency, reuse, bad input."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import psycopg
import pytest

from pipeline.errors import DimensionMismatchError, InvalidVectorError
from pipeline.ingest import stages
from pipeline.ingest.chunking import ChunkingConfig
from pipeline.ingest.embedding import Embedder
from pipeline.storage import dead_letters, layout
from tests.support.sample import day_folder


def run_day(conn: psycopg.Connection, landing: Path, day: dt.date, embedder: Embedder, config: ChunkingConfig):
    documents = stages.read_documents(landing, day)
    chunks = stages.chunk_documents(documents, embedder.backend_tokenizer(), config)
    embeddings = stages.embed_chunks(chunks, embedder, conn)
    return embeddings, stages.load_embeddings(conn, embeddings)


def chunk_ids(conn: psycopg.Connection, day: dt.date) -> list[str]:
    return [r[0] for r in conn.execute("SELECT chunk_id FROM chunks WHERE ingest_date = %s ORDER BY 1", (day,))]


def test_rerunning_a_day_replaces_it_and_embeds_nothing(conn, tmp_path, embedder, chunking_config) -> None:
    day = dt.date(2026, 2, 1)
    folder = day_folder(tmp_path, day)
    body = " ".join(f"Sentence {i} is about alpine lake number {i * 7}." for i in range(200))
    (folder / "a.md").write_text(f"---\ntopic: t\n---\n# Alpha\n\n{body}")
    (folder / "b.txt").write_text("Beta document about rivers and lakes.")
    first, load = run_day(conn, tmp_path, day, embedder, chunking_config)
    assert first.embedded == len(first.chunks) > 2 and first.reused == 0
    ids = chunk_ids(conn, day)
    assert len(ids) == load.chunks == len(first.chunks)

    second, reload = run_day(conn, tmp_path, day, embedder, chunking_config)
    assert second.embedded == 0 and second.reused == len(second.chunks)
    assert reload.replaced_chunks == load.chunks
    assert chunk_ids(conn, day) == ids, "same input, same ids, no duplicates"
    assert conn.execute("SELECT count(*) FROM documents WHERE ingest_date = %s", (day,)).fetchone()[0] == 2
    storage = conn.execute(
        "SELECT attstorage FROM pg_attribute WHERE attrelid = %s::regclass AND attname = 'embedding'",
        (layout.partition_name(day),)).fetchone()[0]
    assert storage == "p", "the day partition keeps vectors inline (STORAGE PLAIN)"


def test_removed_and_edited_documents_leave_no_stale_chunks(conn, tmp_path, embedder, chunking_config) -> None:
    day = dt.date(2026, 2, 2)
    folder = day_folder(tmp_path, day)
    (folder / "keep.md").write_text("Keep this note about violins.")
    (folder / "drop.md").write_text("This note about trombones will be deleted.")
    run_day(conn, tmp_path, day, embedder, chunking_config)
    (folder / "drop.md").unlink()
    (folder / "keep.md").write_text("Keep this note about violins, now edited to mention cellos.")
    result, _ = run_day(conn, tmp_path, day, embedder, chunking_config)
    assert result.embedded == 1
    texts = [r[0] for r in conn.execute("SELECT text FROM chunks WHERE ingest_date = %s", (day,))]
    assert texts == ["Keep this note about violins, now edited to mention cellos."]


def test_bad_files_are_dead_lettered_and_the_rest_loads(conn, tmp_path, embedder, chunking_config) -> None:
    day = dt.date(2026, 2, 3)
    folder = day_folder(tmp_path, day)
    (folder / "good.md").write_text("A perfectly good note about herons.")
    (folder / "binary.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    (folder / "latin1.txt").write_bytes("café crème".encode("latin-1"))
    (folder / "empty.md").write_text("  \n\t\n")
    (folder / "utf16.txt").write_bytes("UTF-16 text with a BOM about owls".encode("utf-16"))
    outside = tmp_path / "secret.txt"
    outside.write_text("outside the day folder")
    (tmp_path / "elsewhere").mkdir()
    (folder / "escape.txt").symlink_to(tmp_path.parent / "etc_passwd_stand_in.txt")
    result, load = run_day(conn, tmp_path, day, embedder, chunking_config)
    assert sorted(d.doc_id for d in result.documents) == ["good.md", "utf16.txt"]
    letters = {row["source_uri"]: row for row in dead_letters.open_letters(conn, [day])}
    assert set(letters) == {f"{day}/binary.txt", f"{day}/latin1.txt", f"{day}/empty.md", f"{day}/escape.txt"}
    assert "binary" in letters[f"{day}/binary.txt"]["error"]
    assert "not valid UTF-8" in letters[f"{day}/latin1.txt"]["error"]
    assert "iconv" in letters[f"{day}/latin1.txt"]["detail"], "the dead letter says how to fix it"
    assert "outside the landing directory" in letters[f"{day}/escape.txt"]["error"]
    assert load.chunks == 2

    (folder / "latin1.txt").write_text("café crème", encoding="utf-8")  # the fix
    for name in ("binary.txt", "empty.md", "escape.txt"):
        (folder / name).unlink()
    run_day(conn, tmp_path, day, embedder, chunking_config)
    assert dead_letters.open_letters(conn, [day]) == [], "fixing a file and rerunning its day clears its dead letter"
    resolved = conn.execute("SELECT count(*) FROM dead_letters WHERE ingest_date = %s AND resolved_at IS NOT NULL",
                            (day,)).fetchone()[0]
    assert resolved == 4


def test_vectors_of_the_wrong_shape_or_nan_are_refused(conn, tmp_path, embedder, chunking_config) -> None:
    day = dt.date(2026, 2, 4)
    (day_folder(tmp_path, day) / "x.md").write_text("Some text about kites.")
    embeddings, _ = run_day(conn, tmp_path, day, embedder, chunking_config)
    wrong = embeddings.__class__(**{**embeddings.__dict__, "vectors": np.ones((1, 768), dtype=np.float32)})
    with pytest.raises(DimensionMismatchError, match=r"768 dimensions but chunks.embedding is halfvec\(384\)"):
        stages.load_embeddings(conn, wrong)
    nan = embeddings.__class__(**{**embeddings.__dict__, "vectors": np.full((1, 384), np.nan, dtype=np.float32)})
    # NaN is not a dimension problem: it is named for what it is, with the chunk it came from.
    with pytest.raises(InvalidVectorError, match=r"NaN/infinite .*first: chunk \w+ of x.md"):
        stages.load_embeddings(conn, nan)
    assert len(chunk_ids(conn, day)) == 1, "a refused load leaves the previous day intact"


def test_missing_landing_dir_names_the_fix(tmp_path) -> None:
    from pipeline.errors import ConfigError

    with pytest.raises(ConfigError, match=r"does not exist.*landing_dir"):
        stages.read_documents(tmp_path / "nope", dt.date(2026, 2, 5))


def test_text_repeated_across_days_of_one_run_is_embedded_once(conn, migrated, tmp_path, embedder,
                                                               chunking_config) -> None:
    first, second = dt.date(2026, 2, 20), dt.date(2026, 2, 21)
    for day in (first, second):
        folder = tmp_path / day.isoformat()
        folder.mkdir()
        (folder / "same.md").write_text("The ferry to the lighthouse island leaves every forty minutes.")
    run_vectors: dict = {}
    results = []
    for day in (first, second):  # as chunk_embeddings does: every day embedded before any is stored
        chunks = stages.chunk_documents(stages.read_documents(tmp_path, day), embedder.backend_tokenizer(),
                                        chunking_config)
        results.append(stages.embed_chunks(chunks, embedder, conn, run_vectors=run_vectors))
    assert [(r.embedded, r.reused) for r in results] == [(1, 0), (0, 1)]
    assert (results[0].vectors == results[1].vectors).all()
