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
from typing import Any

import psycopg

from pipeline.errors import ConfigError
from pipeline.storage import ingest_days, model_registry
from pipeline.storage.model_registry import StoredModel

# Serialises activations, so two runs finishing a shadow build at once cannot both switch.
ACTIVATION_LOCK = 0x646F6D6C  # "doml"


@dataclass(frozen=True)
class ModelCoverage:
    model: StoredModel
    stored_days: list[dt.date]
    missing_days: list[dt.date]  # stored days this model has no vectors for, or vectors of older content

    @property
    def complete(self) -> bool:
        return not self.missing_days


def coverage(conn: psycopg.Connection[Any], model: StoredModel) -> ModelCoverage:
    """Which stored days the model's vectors cover (see ``ingest_days.covered_days``)."""
    covered = ingest_days.covered_days(conn, model.id)
    return ModelCoverage(model=model, stored_days=list(covered),
                         missing_days=[day for day, current in covered.items() if not current])


def missing_days(conn: psycopg.Connection[Any], name: str, revision: str) -> list[dt.date]:
    """Stored days a model (stored or not yet) would have to embed to cover the store."""
    stored = model_registry.lookup(conn, name, revision)
    return coverage(conn, stored).missing_days if stored else ingest_days.stored_days(conn)


def _lock(conn: psycopg.Connection[Any]) -> None:
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (ACTIVATION_LOCK,))


def activate_first(conn: psycopg.Connection[Any], model_id: int) -> bool:
    """Serve ``model_id`` when no model is served yet (the first load of a new store). Runs inside the
    caller's transaction, so the first day becomes searchable in the same commit that loads it."""
    if model_registry.serving(conn) is not None:  # the usual case: no lock, so day loads never queue here
        return False
    _lock(conn)
    if model_registry.serving(conn) is not None:
        return False
    model_registry.mark_activated(conn, model_id)
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
        if self.switched_from is not None:
            return f"search switched from {self.switched_from.label} to {self.serving.label}"
        if configured.id == self.serving.id:
            return f"search serves {self.serving.label}"
        if configured.retired_at is not None:
            return f"{configured.label} was rolled back; search serves {self.serving.label}"
        shown = ", ".join(str(d) for d in self.missing_days[:10]) + (" …" if len(self.missing_days) > 10 else "")
        return (f"shadow build of {configured.label}: {len(self.missing_days)} stored days still to embed ({shown}); "
                f"search serves {self.serving.label} until then")


def _switch_to(conn: psycopg.Connection[Any], model: StoredModel, serving: StoredModel | None) -> SwitchOutcome:
    model_registry.mark_activated(conn, model.id)
    return SwitchOutcome(serving=model_registry.get(conn, model.id), switched_from=serving)


def switch_if_complete(conn: psycopg.Connection[Any], model_id: int) -> SwitchOutcome:
    """Make ``model_id`` the serving model if it covers every stored day and was not rolled back."""
    with conn.transaction():
        _lock(conn)
        model = model_registry.get(conn, model_id)
        serving = model_registry.serving(conn)
        if serving is None:
            return _switch_to(conn, model, None)
        if serving.id == model.id:
            return SwitchOutcome(serving=serving)
        state = coverage(conn, model)
        if model.retired_at is not None or not state.complete:
            return SwitchOutcome(serving=serving, missing_days=tuple(state.missing_days))
        return _switch_to(conn, model, serving)


def require_buildable(conn: psycopg.Connection[Any], name: str, revision: str) -> None:
    """Refuse to ingest with a model that was rolled back: its new days would be invisible to search."""
    stored = model_registry.lookup(conn, name, revision)
    if stored is not None and stored.retired_at is not None:
        serving = model_registry.serving(conn)
        raise ConfigError(
            f"embedding model {stored.label} was rolled back at {stored.retired_at:%Y-%m-%d %H:%M} UTC and search "
            f"serves {serving.label if serving else 'no model'}. Set the embedder's model back to the served one, "
            f"or run `docvec model activate {stored.label}` to undo the rollback."
        )


def activate(conn: psycopg.Connection[Any], model_id: int, *, allow_incomplete: bool = False) -> SwitchOutcome:
    """Serve the stored model ``model_id`` now. Refused while it lacks stored days, unless told."""
    with conn.transaction():
        _lock(conn)
        model = model_registry.get(conn, model_id)
        serving = model_registry.serving(conn)
        if serving is not None and serving.id == model.id:
            return SwitchOutcome(serving=serving)
        state = coverage(conn, model)
        if state.missing_days and not allow_incomplete:
            raise ConfigError(
                f"{model.label} has no current vectors for {len(state.missing_days)} stored days "
                f"({', '.join(map(str, state.missing_days[:10]))}); serving it would hide them. Build them first "
                f"(`docvec model build {model.id}`), or pass --allow-incomplete."
            )
        return _switch_to(conn, model, serving)


def rollback(conn: psycopg.Connection[Any], *, allow_incomplete: bool = False) -> SwitchOutcome:
    """Serve the previously served model again and retire the current one, so it is not switched back
    to automatically."""
    with conn.transaction():
        serving, previous = model_registry.serving(conn), model_registry.previous(conn)
        if serving is None or previous is None:
            raise ConfigError("there is no previously served embedding model to roll back to "
                              "(`docvec model list` shows the history)")
        outcome = activate(conn, previous.id, allow_incomplete=allow_incomplete)
        model_registry.mark_retired(conn, serving.id)
        return outcome


def carried_model_ids(conn: psycopg.Connection[Any], loading_model_id: int) -> list[int]:
    """Other models whose rows a day rebuild keeps: every one not rolled back. Retention bounds them."""
    return model_registry.kept_model_ids(conn, loading_model_id)


def summary(conn: psycopg.Connection[Any]) -> str:
    """One line for status output: the served model, and any shadow build under way."""
    serving = model_registry.serving(conn)
    if serving is None:
        return "search serves: no model yet"
    parts = [f"search serves {serving.label} ({serving.dim}-d)"]
    for model in model_registry.all_models(conn):
        if model.id != serving.id and model.retired_at is None and model.activated_at is None:
            state = coverage(conn, model)
            if state.stored_days and len(state.missing_days) < len(state.stored_days):
                parts.append(f"shadow {model.label}: {len(state.stored_days) - len(state.missing_days)}/"
                             f"{len(state.stored_days)} days built")
    return "; ".join(parts)
