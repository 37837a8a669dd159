"""Checks of the store, each of one property and answered from the database: whatever ran before (this
run's steps, another run, an operator), a check says whether the property holds now for the days asked
about (``None``: every stored day), and what shows it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import psycopg

from pipeline.indexing import builds
from pipeline.ingest.embedding import Embedder
from pipeline.ops.index_upkeep import partitions_holding
from pipeline.ops.reports import CheckOutcome
from pipeline.query import evaluation
from pipeline.storage import catalog, days, dead_letters, history, index_measures, ingest_days, model_registry, retention

SHOWN_LETTERS = 50
# Where a retrieval measurement records what it was taken at, so the next check can tell whether it holds.
RETRIEVAL_RECORD = "retrieval_measurement"
T = TypeVar("T")


def day_rows_match(conn: psycopg.Connection, loaded: Sequence[dt.date] | None, model: tuple[str, str]) -> CheckOutcome:
    """Each day holds exactly the chunks its load recorded for ``model`` (name, revision); asked about
every stored day, only those this model loaded."""
    stored = model_registry.lookup(conn, *model)
    mismatched: dict[str, dict[str, int | None]] = {}
    for day in ingest_days.stored_days(conn) if loaded is None else loaded:
        recorded = ingest_days.counts(conn, day, stored.id) if stored else None
        if recorded is None and loaded is None:
            continue
        in_table = days.chunk_count(conn, day, stored.id) if stored else 0
        if recorded is None and not in_table and day not in ingest_days.stored_days(conn):
            continue  # nothing landed that day and nothing is stored for it: nothing was to load
        if recorded is None or recorded[1] != in_table:
            mismatched[str(day)] = {"in_table": in_table, "recorded": recorded[1] if recorded else None}
    return CheckOutcome(passed=not mismatched, metadata={"mismatched_days": mismatched})


def no_open_dead_letters(conn: psycopg.Connection, loaded: Sequence[dt.date] | None) -> CheckOutcome:
    """No file of these days is waiting in the dead letters (unreadable, too large, ...)."""
    letters = dead_letters.open_letters(conn, days=loaded)
    return CheckOutcome(passed=not letters, metadata={
        "open_dead_letters": [f"{d['source_uri']}: {d['error']}" for d in letters[:SHOWN_LETTERS]]})


def recall_at_10(conn: psycopg.Connection, indexed: Sequence[dt.date] | None, threshold: float) -> CheckOutcome:
    """The vector index of each partition holding these days finds at least ``threshold`` of the
    exact top 10 (as measured after its build; exact-scanned partitions need no measure)."""
    measured = _per_partition(conn, indexed, lambda table: builds.index_recall(conn, table))
    recalls = {table: recall for table, recall in measured.items() if recall is not None}
    low = {table: round(r, 3) for table, r in recalls.items() if r < threshold}
    return CheckOutcome(passed=not low, description=f"recall@10 below {threshold}: {low}" if low else None,
                        metadata={"recall_at_10": {t: round(r, 4) for t, r in recalls.items()}, "threshold": threshold})


def index_valid(conn: psycopg.Connection, indexed: Sequence[dt.date] | None) -> CheckOutcome:
    """No partition holding these days is left with an invalid (failed) vector index."""
    found = _per_partition(conn, indexed, lambda table: catalog.existing_vector_index(conn, table))
    invalid = [existing.name for existing in found.values() if existing and not existing.state.valid]
    return CheckOutcome(passed=not invalid, metadata={"invalid_indexes": invalid})


def vectors_sane(conn: psycopg.Connection, indexed: Sequence[dt.date] | None) -> CheckOutcome:
    """No vector of the partitions holding these days has zero length or the wrong dimension (pgvector
    refuses NaN and infinity itself)."""
    dim = catalog.chunks_dimension(conn)
    counted = _per_partition(conn, indexed, lambda table: index_measures.insane_vectors(conn, table, dim))
    insane = {table: bad for table, bad in counted.items() if bad}
    return CheckOutcome(passed=not insane, metadata={"bad_vectors_by_partition": insane})


def _per_partition(conn: psycopg.Connection, held: Sequence[dt.date] | None, measure: Callable[[str], T]) -> dict[str, T]:
    """``measure`` of each partition holding ``held``. A partition sealed, trimmed or dropped by a
    concurrent run after it was listed is that run's to answer for, and left out."""
    measured = {}
    for partition in partitions_holding(conn, held):
        try:
            measured[partition.table] = measure(partition.table)
        except psycopg.errors.UndefinedTable:
            continue
    return measured


def nothing_older_than_window(conn: psycopg.Connection, today: dt.date, window_days: int, *,
                              collection: bool = False) -> CheckOutcome:
    """No chunks or documents of a day older than the retention window remain; for a ``collection``,
    no history: no version that stopped being live before the window (live documents stay)."""
    if collection:
        horizon = retention.oldest_kept_day(today, window_days)
        versions = history.purgeable(conn, horizon)
        return CheckOutcome(passed=not versions, metadata={
            "history_versions_left": len(versions), "retention_horizon": str(horizon),
            "examples": ", ".join(f"{doc_id}@{day}" for doc_id, day in versions[:10]) or "none"})
    leftover = retention.days_older_than_window(conn, today, window_days)
    return CheckOutcome(passed=not leftover, metadata={
        "offending_days": [str(day) for day in leftover],
        "retention_horizon": str(retention.oldest_kept_day(today, window_days))})


def retrieval_quality(conn: psycopg.Connection, model: Callable[[], Embedder], queries_file: str | None,
                      threshold: float, *, run: str, previous: Mapping[str, Any] | None = None) -> CheckOutcome:
    """Search quality as a user sees it: hybrid recall@5 on the labelled queries (``queries_file``, else
    the sample set when the sample corpus is what is loaded) at least ``threshold``, with MRR and nDCG@10
    of hybrid and vector search beside it, measured in ``run``. The outcome's metadata carries its record
    (``RETRIEVAL_RECORD``): when nothing search reads changed since ``previous`` (the last record: same
    store version, labelled set and threshold), that measurement is the answer again, naming its run,
    and the model (``model`` loads it) is not even loaded."""
    chosen = evaluation.labelled_set_for(conn, queries_file)
    if chosen is None:
        return CheckOutcome(passed=True, description=(
            "no labelled queries for this corpus: set eval_queries to a JSONL file (see `docvec eval`)"))
    queries, source = chosen
    version = ":".join([evaluation.store_version(conn), evaluation.queries_version(queries), str(threshold)])
    if previous is not None and previous.get("version") == version:
        return _measurement(previous, remeasured=False)
    scores = {s.mode: s for s in evaluation.evaluate(conn, model(), queries, modes=("hybrid", "vector"))}
    hybrid = scores["hybrid"]
    passed = hybrid.recall_at_k >= threshold
    description = None if passed else (f"hybrid recall@5 {hybrid.recall_at_k:.3f} is below {threshold}; "
                                       f"misses: {'; '.join(hybrid.misses)}")
    figures = {"labelled_set": source, "queries": hybrid.queries,
               **{f"{mode}_{name}": getattr(s, name) for mode, s in scores.items()
                  for name in ("recall_at_k", "mrr", "ndcg_at_10")},
               "threshold_recall_at_5": threshold}
    return _measurement({"version": version, "passed": passed, "description": description, "metadata": figures,
                         "run_id": run}, remeasured=True)


def _measurement(record: Mapping[str, Any], *, remeasured: bool) -> CheckOutcome:
    return CheckOutcome(passed=bool(record["passed"]), description=record["description"], metadata={
        **record["metadata"], "measured_in_run": record["run_id"], "remeasured": remeasured,
        RETRIEVAL_RECORD: dict(record)})
