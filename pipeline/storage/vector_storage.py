"""What type ``chunks.embedding`` is stored as: pgvector ``halfvec`` (16-bit floats, the default for new
stores since migration 0016) or ``vector`` (32-bit floats). The catalog says which; every module that
names the type (COPY, index operator classes, the query's cast, sanity checks) asks here, so it follows
the store, never a setting. ``DOCVEC_VECTOR_STORAGE`` only chooses what migration 0016 converts a store to.

halfvec halves the table and its HNSW/IVFFlat indexes at no measured cost in recall@10 or MRR
(benchmarks/halfvec_benchmark.py, benchmarks/RESULTS.md "halfvec storage"). Queries are still embedded
as 32-bit floats: the search casts the query to the column's type, which is what lets the index answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np
import psycopg
from pgvector import HalfVector
from psycopg import sql

from pipeline.errors import ConfigError, PreconditionError


class VectorStorage(StrEnum):
    VECTOR = "vector"  # 4 bytes a dimension
    HALFVEC = "halfvec"  # 2 bytes a dimension


DEFAULT_STORAGE = VectorStorage.HALFVEC
SETTING = "DOCVEC_VECTOR_STORAGE"


def parse_storage(text: str | None) -> VectorStorage:
    """The storage a setting names (None or empty: the default)."""
    given = (text or "").strip().lower()
    if not given:
        return DEFAULT_STORAGE
    try:
        return VectorStorage(given)
    except ValueError:
        raise ConfigError(f"{SETTING}={text!r} is not a vector storage: set it to 'halfvec' (16-bit floats, the "
                          "default) or 'vector' (32-bit floats), or unset it") from None


@dataclass(frozen=True)
class VectorColumn:
    """A table's ``embedding`` column: its pgvector type and dimension."""
    storage: VectorStorage
    dim: int

    @property
    def type_name(self) -> str:
        """The column's type as SQL writes it: ``halfvec(384)``."""
        return f"{self.storage.value}({self.dim})"

    @property
    def opclass(self) -> str:
        """The cosine operator class an HNSW or IVFFlat index on this column is built with."""
        return f"{self.storage.value}_cosine_ops"

    @property
    def norm_function(self) -> str:
        """pgvector's L2 norm of one value of this type (``vector_norm`` exists for ``vector`` only)."""
        return "vector_norm" if self.storage is VectorStorage.VECTOR else "l2_norm"

    def query(self, placeholder: str = "query") -> sql.Composed:
        """The query vector's placeholder cast to the column's type. Without the cast a ``halfvec`` column
        would be compared as ``vector`` (or by an implicit cast the index cannot count on)."""
        return sql.SQL("{}::{}").format(sql.Placeholder(placeholder), sql.SQL(self.storage.value))

    def adapt(self, vector: np.ndarray) -> Any:
        """One vector as COPY writes it into this column (a ``HalfVector`` for ``halfvec``)."""
        return vector if self.storage is VectorStorage.VECTOR else HalfVector(vector)


def as_float32(stored: Any) -> np.ndarray:
    """A vector read back from either type (pgvector's ``Vector`` or ``HalfVector``) as float32."""
    return np.asarray(stored.to_numpy(), dtype=np.float32)


def stored_column(conn: psycopg.Connection[Any], table: str = "chunks") -> VectorColumn:
    """What the catalog says ``table.embedding`` is."""
    row = conn.execute(
        "SELECT t.typname, a.atttypmod FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
        "WHERE a.attrelid = to_regclass(%s) AND a.attname = 'embedding' AND NOT a.attisdropped", (table,)
    ).fetchone()
    if row is None:
        raise PreconditionError(f"table {table} (or its embedding column) does not exist: run `docvec migrate` first")
    try:
        return VectorColumn(VectorStorage(row[0]), int(row[1]))
    except ValueError:
        raise PreconditionError(f"{table}.embedding is of type {row[0]}, which docvec does not store vectors as: "
                                "run `docvec migrate` to bring the schema to this docvec's") from None
