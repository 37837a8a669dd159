"""halfvec storage (migration 0016): new stores hold 16-bit floats; a store at 0015 moves to them with its
chunks and indexes, and back; ``DOCVEC_VECTOR_STORAGE=vector`` keeps 32-bit floats working end to end."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import numpy as np
import pytest

from pipeline.errors import ConfigError
from pipeline.indexing import builds
from pipeline.indexing.policy import IndexSettings
from pipeline.query import search
from pipeline.settings import Settings
from pipeline.storage import catalog, connections, days, index_measures, layout, migrate, model_registry
from pipeline.storage.vector_storage import VectorStorage, parse_storage, stored_column
from tests.support.databases import fresh_database
from tests.support.vectors import clustered, synthetic_day

INDEXED, SMALL = dt.date(2026, 6, 1), dt.date(2026, 6, 2)
POLICY = IndexSettings(exact_max_rows=1_000)  # 3,000 rows get an HNSW index, 200 stay exact
BEFORE = "0015_chunk_readers"


def test_storage_setting_is_checked() -> None:
    assert parse_storage(None) is VectorStorage.HALFVEC and parse_storage(" Vector ") is VectorStorage.VECTOR
    with pytest.raises(ConfigError, match=r"DOCVEC_VECTOR_STORAGE='float16'.*'halfvec'.*'vector'"):
        parse_storage("float16")


def _load(settings: Settings, embedder) -> tuple[int, np.ndarray]:
    vectors = clustered(3_200, seed=31)
    with connections.connect(settings) as conn:
        model_id = model_registry.register(conn, embedder.info).id
        days.replace_day(conn, synthetic_day(INDEXED, vectors[:3_000], embedder.info.name, embedder.info.revision), model_id)
        days.replace_day(conn, synthetic_day(SMALL, vectors[3_000:], embedder.info.name, embedder.info.revision,
                                             doc_prefix="small"), model_id)
        for day in (INDEXED, SMALL):
            builds.upkeep(conn, layout.partition_name(day), POLICY)
    return model_id, vectors


def _half(vectors: np.ndarray) -> np.ndarray:
    return vectors.astype(np.float16).astype(np.float32)


def _stored(conn, model_id: int, day: dt.date, rows: range) -> np.ndarray:
    """The stored vectors of ``synthetic_day``'s chunks ``rows`` (found by their content hash), as reused."""
    hashes = [f"{day:%Y%m%d}{i:056x}" for i in rows]
    found = days.reusable_vectors(conn, model_id, hashes)
    assert all(found[h].dtype == np.float32 for h in hashes)
    return np.stack([found[h] for h in hashes])


def _column(conn) -> tuple[str, str]:
    """The column's type and storage (PLAIN: 'p'), as the catalog says."""
    row = conn.execute("SELECT format_type(atttypid, atttypmod), attstorage FROM pg_attribute "
                       "WHERE attrelid = 'chunks'::regclass AND attname = 'embedding'").fetchone()
    return row[0], row[1]


def _index(conn) -> tuple[str, str, dict]:
    found = catalog.existing_vector_index(conn, layout.partition_name(INDEXED))
    assert found is not None and found.state.valid
    definition, comment = conn.execute("SELECT pg_get_indexdef(to_regclass(%s)), obj_description(to_regclass(%s))",
                                       (found.name, found.name)).fetchone()
    return found.name, definition, json.loads(comment)


def _searches(conn, vectors: np.ndarray, model_id: int) -> list[list[tuple[str, float]]]:
    return [[(h.chunk_id, h.similarity) for h in search.search_vector(conn, q, model_id, k=10)]
            for q in vectors[[0, 700, 1_500, 2_900, 3_100]]]


def _same_results(before, after) -> None:
    """The same hits up to float16 rounding: similarities within 2e-3, ids the same but for near-ties."""
    for old, new in zip(before, after, strict=True):
        assert len({c for c, _ in old} & {c for c, _ in new}) >= 9, (old, new)
        assert np.allclose([s for _, s in old], [s for _, s in new], atol=2e-3)


def test_upgrade_from_0015_with_chunks_and_indexes_and_back(migrated, embedder) -> None:
    probe = fresh_database(migrated, embedder.info.dim, "docvec_halfvec_upgrade")
    with connections.connect(probe) as conn:
        assert _column(conn) == ("halfvec(384)", "p"), "a new store holds halfvec by default, inline"
    migrate.downgrade(probe, embedder.info.dim, BEFORE)
    model_id, vectors = _load(probe, embedder)
    with connections.connect(probe) as conn:
        assert _column(conn) == ("vector(384)", "p")
        name, definition, record = _index(conn)
        assert "vector_cosine_ops" in definition and record["recall_at_10"] >= 0.9
        before = _searches(conn, vectors, model_id)

    migrate.upgrade(probe, embedder.info.dim)
    assert migrate.stored_vectors(probe) == "halfvec(384)", "what `docvec up` reports"
    with connections.connect(probe) as conn:
        assert _column(conn) == ("halfvec(384)", "p"), "converted, and still PLAIN (the type change resets it)"
        assert stored_column(conn).storage is VectorStorage.HALFVEC
        same_name, definition, kept = _index(conn)
        assert same_name == name and "halfvec_cosine_ops" in definition and "m='16'" in definition
        assert kept == {k: v for k, v in record.items() if k != "recall_at_10"}, "recall is measured again, not kept"
        assert builds.index_recall(conn, layout.partition_name(INDEXED)) >= 0.9
        plan = search.explain_vector(conn, vectors[0], model_id, k=10)
        assert f"Index Scan using {name}" in plan and "'[384 dims]'::halfvec" in plan, plan
        after = _searches(conn, vectors, model_id)
        _same_results(before, after)
        assert index_measures.insane_vectors(conn, layout.partition_name(INDEXED), 384) == 0
        assert np.array_equal(_stored(conn, model_id, INDEXED, range(5)), _half(vectors[:5])), "rounded to float16"

    migrate.downgrade(probe, embedder.info.dim, BEFORE)
    with connections.connect(probe) as conn:
        assert _column(conn) == ("vector(384)", "p")
        back_name, definition, _ = _index(conn)
        assert back_name == name and "vector_cosine_ops" in definition
        assert f"Index Scan using {name}" in search.explain_vector(conn, vectors[0], model_id, k=10)
        _same_results(after, _searches(conn, vectors, model_id))


def test_vector_storage_keeps_32_bit_floats(migrated, embedder) -> None:
    """``DOCVEC_VECTOR_STORAGE=vector``: the loader, index builds, checks and search on 32-bit floats, with
    the vectors stored exactly as given (halfvec would round them)."""
    chosen = dataclasses.replace(migrated, vector_storage="vector")
    store = fresh_database(chosen, embedder.info.dim, "docvec_vector_storage")
    model_id, vectors = _load(store, embedder)
    with connections.connect(store) as conn:
        assert _column(conn) == ("vector(384)", "p")
        name, definition, record = _index(conn)
        assert "vector_cosine_ops" in definition and record["recall_at_10"] >= 0.9
        plan = search.explain_vector(conn, vectors[0], model_id, k=10)
        assert f"Index Scan using {name}" in plan and "'[384 dims]'::vector" in plan, plan
        hits = search.search_vector(conn, vectors[5], model_id, k=1)
        assert hits[0].similarity == pytest.approx(1.0, abs=1e-6)
        assert np.array_equal(_stored(conn, model_id, INDEXED, range(5)), vectors[:5]), "32-bit floats, unrounded"
        assert index_measures.insane_vectors(conn, layout.partition_name(INDEXED), 384) == 0


def test_halfvec_rounds_and_reads_back_as_float32(conn, embedder) -> None:
    """The default store: COPY writes halfvec, reused vectors come back as float32 (rounded to 16 bits)."""
    vectors = clustered(20, seed=32)
    day = dt.date(2026, 6, 9)
    model_id = model_registry.register(conn, embedder.info).id
    days.replace_day(conn, synthetic_day(day, vectors, embedder.info.name, embedder.info.revision,
                                         doc_prefix="halfvec-probe"), model_id)
    assert stored_column(conn).storage is VectorStorage.HALFVEC
    assert np.array_equal(_stored(conn, model_id, day, range(20)), _half(vectors))
