"""The ``embedding_models`` table: one row per (model name, revision) that ever embedded anything,
with its dimension and when it was activated (served by search) or retired (rolled back). The engine
looks a model up by its (name, revision) (``lookup``) or its id (``get``); a reference a person typed
(an id, a name, or ``name@revision``) is resolved by ``resolve``."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import dict_row

from pipeline.errors import ConfigError, DimensionMismatchError, StoredStateError
from pipeline.records import ModelInfo, backend_of_revision, is_contextual_revision
from pipeline.storage.vector_storage import stored_column


@dataclass(frozen=True)
class StoredModel:
    id: int
    name: str
    revision: str
    dim: int
    activated_at: dt.datetime | None
    retired_at: dt.datetime | None

    @property
    def label(self) -> str:
        return f"{self.name}@{self.revision}"

    @property
    def backend(self) -> str:
        return backend_of_revision(self.revision)

    @property
    def contextual(self) -> bool:
        """Its chunks were embedded with contextual headers."""
        return is_contextual_revision(self.revision)


_COLUMNS = "id, name, revision, dim, activated_at, retired_at"
_SERVED_ORDER = "WHERE activated_at IS NOT NULL ORDER BY activated_at DESC, id DESC"


def _select(conn: psycopg.Connection[Any], where: str, params: tuple[Any, ...] = ()) -> list[StoredModel]:
    with conn.cursor(row_factory=dict_row) as cursor:
        return [StoredModel(**row) for row in cursor.execute(f"SELECT {_COLUMNS} FROM embedding_models {where}",
                                                              params)]


def all_models(conn: psycopg.Connection[Any]) -> list[StoredModel]:
    return _select(conn, "ORDER BY id")


def lookup(conn: psycopg.Connection[Any], name: str, revision: str) -> StoredModel | None:
    """The stored (name, revision), if anything was ever embedded with it; read-only, so it also works
    on a read replica."""
    found = _select(conn, "WHERE name = %s AND revision = %s", (name, revision))
    return found[0] if found else None


def get(conn: psycopg.Connection[Any], model_id: int) -> StoredModel:
    """The stored model with this id (one the caller read from the store: its absence is inconsistent)."""
    found = _select(conn, "WHERE id = %s", (model_id,))
    if not found:
        raise StoredStateError(f"embedding model {model_id} is not registered")
    return found[0]


def resolve(conn: psycopg.Connection[Any], reference: str) -> StoredModel:
    """The stored model a person referred to: by id, by ``name`` (its latest revision) or by
    ``name@revision``; a ``ConfigError`` listing the stored models when none matches."""
    name, at, revision = reference.partition("@")
    if reference.isdigit():
        found = _select(conn, "WHERE id = %s", (int(reference),))
    elif at:
        found = [model] if (model := lookup(conn, name, revision)) else []
    else:
        found = _select(conn, "WHERE name = %s ORDER BY id DESC LIMIT 1", (name,))
    if not found:
        known = ", ".join(f"{m.id} ({m.label})" for m in all_models(conn)) or "none"
        raise ConfigError(f"no stored embedding model matches {reference!r}; stored models: {known}")
    return found[0]


def registered(conn: psycopg.Connection[Any], info: ModelInfo) -> StoredModel | None:
    """``lookup`` for a loaded model, refusing one whose dimension changed under the same revision."""
    stored = lookup(conn, info.name, info.revision)
    if stored is not None and stored.dim != info.dim:
        raise DimensionMismatchError(
            f"model {stored.label} is registered with dim {stored.dim} but now produces {info.dim}")
    return stored


def register(conn: psycopg.Connection[Any], info: ModelInfo) -> StoredModel:
    """The stored row of this (model, revision), created on first use; refuses a dimension the table
    cannot hold."""
    column = stored_column(conn)
    if info.dim != column.dim:
        raise DimensionMismatchError(
            f"model {info.name} produces {info.dim}-d vectors but chunks.embedding is {column.type_name}. "
            "Use a model with the same dimension, or migrate a fresh database for this model "
            "(DOCVEC_HOME or DATABASE_URL pointing elsewhere, then `docvec migrate`)."
        )
    existing = registered(conn, info)
    if existing is not None:
        return existing
    # Insert only when missing: an upsert would rewrite the row (and leave a dead tuple) on every call.
    conn.execute(
        """
        INSERT INTO embedding_models (name, revision, dim, normalized, max_seq_length)
        VALUES (%s, %s, %s, %s, %s) ON CONFLICT (name, revision) DO NOTHING
        """,
        (info.name, info.revision, info.dim, info.normalized, info.max_seq_length),
    )
    created = registered(conn, info)
    if created is None:  # the INSERT or a concurrent one committed it: only a dropped table gets here
        raise ConfigError(f"could not register embedding model {info.name}@{info.revision}")
    return created


def recorded_info(conn: psycopg.Connection[Any], name: str, revision: str) -> ModelInfo | None:
    """What was recorded of a model when it first embedded (dimension, sequence length, normalisation),
    so work that embeds nothing need not load it."""
    row = conn.execute("SELECT dim, max_seq_length, normalized FROM embedding_models WHERE name = %s AND revision = %s",
                       (name, revision)).fetchone()
    if row is None or row[1] is None:
        return None
    return ModelInfo(name=name, revision=revision, dim=int(row[0]), max_seq_length=int(row[1]),
                     normalized=bool(row[2]), device="not loaded")


def serving(conn: psycopg.Connection[Any]) -> StoredModel | None:
    """The model search uses: the one activated last."""
    found = _select(conn, f"{_SERVED_ORDER} LIMIT 1")
    return found[0] if found else None


def previous(conn: psycopg.Connection[Any]) -> StoredModel | None:
    """The model served before the serving one: where a rollback goes."""
    found = _select(conn, f"{_SERVED_ORDER} OFFSET 1 LIMIT 1")
    return found[0] if found else None


def mark_activated(conn: psycopg.Connection[Any], model_id: int) -> None:
    conn.execute("UPDATE embedding_models SET activated_at = clock_timestamp(), retired_at = NULL WHERE id = %s",
                 (model_id,))


def mark_retired(conn: psycopg.Connection[Any], model_id: int) -> None:
    conn.execute("UPDATE embedding_models SET retired_at = clock_timestamp() WHERE id = %s", (model_id,))


def kept_model_ids(conn: psycopg.Connection[Any], except_id: int) -> list[int]:
    """Every model but ``except_id`` that was not rolled back."""
    return [int(r[0]) for r in conn.execute(
        "SELECT id FROM embedding_models WHERE id <> %s AND retired_at IS NULL", (except_id,))]
