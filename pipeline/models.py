"""Embedding-model lifecycle: which model search serves, shadow sets, the atomic switch and rollback.

Ingestion always builds the *configured* model's vectors; search always reads the *serving* model's.
When they differ, the configured model's vectors form a shadow set beside the serving one (same day
partitions, their own rows, nothing reused across models). Once the shadow set covers every stored day
with the same content, ``switch_if_complete`` makes it the serving model in one UPDATE: a search sees
the old model or the new one, never both. ``rollback`` goes back to the model served before, whose rows
are kept until retention drops their days."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import psycopg
from psycopg.rows import dict_row

from pipeline import layout
from pipeline.embedding import backend_of_revision
from pipeline.errors import ConfigError

# Serialises activations, so two runs finishing a shadow build at once cannot both switch.
ACTIVATION_LOCK = 0x646F6D6C  # "doml"


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


@dataclass(frozen=True)
class ModelCoverage:
    model: StoredModel
    stored_days: list[dt.date]
    missing_days: list[dt.date]  # stored days this model has no vectors for, or vectors of older content

    @property
    def complete(self) -> bool:
        return not self.missing_days


_MODEL_COLUMNS = "id, name, revision, dim, activated_at, retired_at"


def _model(row: dict) -> StoredModel:
    return StoredModel(**row)


def all_models(conn: psycopg.Connection) -> list[StoredModel]:
    with conn.cursor(row_factory=dict_row) as cursor:
        return [_model(r) for r in cursor.execute(f"SELECT {_MODEL_COLUMNS} FROM embedding_models ORDER BY id")]


def serving_model(conn: psycopg.Connection) -> StoredModel | None:
    """The model search uses: the one activated last."""
    with conn.cursor(row_factory=dict_row) as cursor:
        row = cursor.execute(f"SELECT {_MODEL_COLUMNS} FROM embedding_models WHERE activated_at IS NOT NULL "
                             "ORDER BY activated_at DESC, id DESC LIMIT 1").fetchone()
    return _model(row) if row else None


def previous_model(conn: psycopg.Connection) -> StoredModel | None:
    """The model served before the serving one: where a rollback goes."""
    with conn.cursor(row_factory=dict_row) as cursor:
        row = cursor.execute(f"SELECT {_MODEL_COLUMNS} FROM embedding_models WHERE activated_at IS NOT NULL "
                             "ORDER BY activated_at DESC, id DESC OFFSET 1 LIMIT 1").fetchone()
    return _model(row) if row else None


def find_model(conn: psycopg.Connection, reference: str) -> StoredModel:
    """A stored model by id, ``name`` (the latest revision of it) or ``name@revision``."""
    models = all_models(conn)
    if reference.isdigit():
        found = [m for m in models if m.id == int(reference)]
    elif "@" in reference:
        found = [m for m in models if m.label == reference]
    else:
        found = [m for m in models if m.name == reference][-1:]
    if not found:
        known = ", ".join(f"{m.id} ({m.label})" for m in models) or "none"
        raise ConfigError(f"no stored embedding model matches {reference!r}; stored models: {known}")
    return found[0]


def stored_days(conn: psycopg.Connection) -> list[dt.date]:
    """Every day with a loaded partition, whichever model loaded it."""
    return [r[0] for r in conn.execute(
        f"SELECT DISTINCT ingest_date FROM ingest_days WHERE {layout.partition_exists_sql('ingest_date')} ORDER BY 1")]


def coverage(conn: psycopg.Connection, model: StoredModel) -> ModelCoverage:
    """Which stored days the model's vectors cover. A day counts when this model's load of it was made
    from the same files as the day's latest load by any model."""
    rows = conn.execute(
        f"""
        WITH latest AS (
            SELECT DISTINCT ON (ingest_date) ingest_date, content_fingerprint
            FROM ingest_days ORDER BY ingest_date, loaded_at DESC
        )
        SELECT l.ingest_date, m.ingest_date IS NOT NULL
               AND m.content_fingerprint IS NOT DISTINCT FROM l.content_fingerprint
        FROM latest l LEFT JOIN ingest_days m ON m.ingest_date = l.ingest_date AND m.model_id = %s
        WHERE {layout.partition_exists_sql('l.ingest_date')}
        ORDER BY l.ingest_date
        """,
        (model.id,),
    ).fetchall()
    return ModelCoverage(model=model, stored_days=[r[0] for r in rows], missing_days=[r[0] for r in rows if not r[1]])


def _activate(conn: psycopg.Connection, model_id: int) -> None:
    conn.execute("UPDATE embedding_models SET activated_at = clock_timestamp(), retired_at = NULL WHERE id = %s",
                 (model_id,))


def activate_first(conn: psycopg.Connection, model_id: int) -> bool:
    """Serve ``model_id`` when no model is served yet (the first load of a new store). Runs inside the
    caller's transaction, so the first day becomes searchable in the same commit that loads it."""
    if serving_model(conn) is not None:  # the usual case: no lock, so day loads never queue here
        return False
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (ACTIVATION_LOCK,))
    if serving_model(conn) is not None:
        return False
    _activate(conn, model_id)
    return True


@dataclass(frozen=True)
class SwitchOutcome:
    serving: StoredModel
    switched_from: StoredModel | None = None
    missing_days: tuple[dt.date, ...] = ()

    @property
    def switched(self) -> bool:
        return self.switched_from is not None

    def describe(self, configured: StoredModel) -> str:
        if self.switched:
            return f"search switched from {self.switched_from.label} to {self.serving.label}"
        if configured.id == self.serving.id:
            return f"search serves {self.serving.label}"
        if configured.retired_at is not None:
            return f"{configured.label} was rolled back; search serves {self.serving.label}"
        days = ", ".join(str(d) for d in self.missing_days[:10]) + (" …" if len(self.missing_days) > 10 else "")
        return (f"shadow build of {configured.label}: {len(self.missing_days)} stored days still to embed ({days}); "
                f"search serves {self.serving.label} until then")


def switch_if_complete(conn: psycopg.Connection, model_id: int) -> SwitchOutcome:
    """Make ``model_id`` the serving model if it covers every stored day and was not rolled back."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (ACTIVATION_LOCK,))
        model = find_model(conn, str(model_id))
        serving = serving_model(conn)
        if serving is None:
            _activate(conn, model.id)
            return SwitchOutcome(serving=find_model(conn, str(model.id)))
        if serving.id == model.id:
            return SwitchOutcome(serving=serving)
        state = coverage(conn, model)
        if model.retired_at is not None or not state.complete:
            return SwitchOutcome(serving=serving, missing_days=tuple(state.missing_days))
        _activate(conn, model.id)
        return SwitchOutcome(serving=find_model(conn, str(model.id)), switched_from=serving)


def require_buildable(conn: psycopg.Connection, name: str, revision: str) -> None:
    """Refuse to ingest with a model that was rolled back: its new days would be invisible to search."""
    row = conn.execute("SELECT retired_at FROM embedding_models WHERE name = %s AND revision = %s",
                       (name, revision)).fetchone()
    if row is not None and row[0] is not None:
        serving = serving_model(conn)
        raise ConfigError(
            f"embedding model {name}@{revision} was rolled back at {row[0]:%Y-%m-%d %H:%M} UTC and search serves "
            f"{serving.label if serving else 'no model'}. Set the embedder's model back to the served one, or run "
            f"`docvec model activate {name}@{revision}` to undo the rollback."
        )


def activate(conn: psycopg.Connection, reference: str, *, allow_incomplete: bool = False) -> SwitchOutcome:
    """Serve the stored model ``reference`` now. Refused while it lacks stored days, unless told."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (ACTIVATION_LOCK,))
        model = find_model(conn, reference)
        serving = serving_model(conn)
        if serving is not None and serving.id == model.id:
            return SwitchOutcome(serving=serving)
        state = coverage(conn, model)
        if state.missing_days and not allow_incomplete:
            raise ConfigError(
                f"{model.label} has no current vectors for {len(state.missing_days)} stored days "
                f"({', '.join(map(str, state.missing_days[:10]))}); serving it would hide them. Build them first "
                f"(`docvec model build {model.id}`), or pass --allow-incomplete."
            )
        _activate(conn, model.id)
        return SwitchOutcome(serving=find_model(conn, str(model.id)), switched_from=serving)


def rollback(conn: psycopg.Connection, *, allow_incomplete: bool = False) -> SwitchOutcome:
    """Serve the previously served model again and retire the current one, so it is not switched back
    to automatically."""
    with conn.transaction():
        serving, previous = serving_model(conn), previous_model(conn)
        if serving is None or previous is None:
            raise ConfigError("there is no previously served embedding model to roll back to "
                              "(`docvec model list` shows the history)")
        outcome = activate(conn, str(previous.id), allow_incomplete=allow_incomplete)
        conn.execute("UPDATE embedding_models SET retired_at = clock_timestamp() WHERE id = %s", (serving.id,))
        return outcome


def carried_model_ids(conn: psycopg.Connection, loading_model_id: int) -> list[int]:
    """Other models whose rows a day rebuild keeps: every one not rolled back. Retention bounds them."""
    return [r[0] for r in conn.execute(
        "SELECT id FROM embedding_models WHERE id <> %s AND retired_at IS NULL", (loading_model_id,))]


def summary(conn: psycopg.Connection) -> str:
    """One line for status output: the served model, and any shadow build under way."""
    serving = serving_model(conn)
    if serving is None:
        return "search serves: no model yet"
    parts = [f"search serves {serving.label} ({serving.dim}-d)"]
    for model in all_models(conn):
        if model.id != serving.id and model.retired_at is None and model.activated_at is None:
            state = coverage(conn, model)
            if state.stored_days and len(state.missing_days) < len(state.stored_days):
                parts.append(f"shadow {model.label}: {len(state.stored_days) - len(state.missing_days)}/"
                             f"{len(state.stored_days)} days built")
    return "; ".join(parts)
