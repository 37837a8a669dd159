"""The binary COPY path against the real server: what goes in comes back bit for bit."""

from __future__ import annotations

import numpy as np
import psycopg
import pytest

from pipeline.storage.loader import copy_rows


def test_copy_round_trip_is_exact(conn: psycopg.Connection) -> None:
    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((500, 384)).astype(np.float32)
    rows = [(f"id-{i}", f"text {i} — ünïcode 😀", {"n": i, "tags": ["a", "b"]}, vectors[i]) for i in range(500)]
    with conn.transaction():
        conn.execute("CREATE TEMP TABLE copy_probe (id text, body text, meta jsonb, embedding vector(384))")
        stats = copy_rows(conn.cursor(), "copy_probe", ["id", "body", "meta", "embedding"],
                          ["text", "text", "jsonb", "vector"], rows)
        back = conn.execute("SELECT id, body, meta, embedding FROM copy_probe "
                            "ORDER BY (split_part(id, '-', 2))::int").fetchall()
    assert stats.rows == 500 and stats.seconds > 0
    assert [r[0] for r in back] == [r[0] for r in rows]
    assert [r[1] for r in back] == [r[1] for r in rows]
    assert back[7][2] == {"n": 7, "tags": ["a", "b"]}
    stored = np.stack([r[3].to_numpy() for r in back])
    assert stored.dtype == np.float32
    assert np.array_equal(stored, vectors), "float32 vectors survive COPY exactly"


def test_copy_refuses_wrong_dimension(conn: psycopg.Connection) -> None:
    conn.execute("CREATE TEMP TABLE copy_dim (embedding vector(3))")
    with pytest.raises(psycopg.errors.DataException, match="expected 3 dimensions, not 4"):
        copy_rows(conn.cursor(), "copy_dim", ["embedding"], ["vector"], [(np.ones(4, dtype=np.float32),)])
