"""Loading the embedded days of a run into the store, and what the load did: each day swapped in (or
left as it is when unchanged), the configured model switched to once it covers every stored day, and
the loaded days' state as ``docvec status`` shows it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import psycopg

from pipeline.ingest import deletions, stages
from pipeline.ops import status
from pipeline.ops.reports import Markdown, Metadata, rate
from pipeline.records import DayEmbeddings, DayLoad
from pipeline.storage import model_lifecycle, model_registry

SAMPLE_CHUNKS = 5


@dataclass(frozen=True)
class LoadReport:
    """What ``load_days`` did: one ``DayLoad`` per day, the model lifecycle's outcome in words, the
    loaded days' status table and a glance at what was loaded."""
    loads: list[DayLoad]
    lifecycle: str
    day_table: Markdown
    sample: Markdown
    open_dead_letters: int

    def lines(self) -> list[str]:
        """One line per day, then the model lifecycle's outcome, for the run's log."""
        days = [f"{load.day}: unchanged, kept its {load.chunks} chunks as they are" if load.unchanged else
                f"{load.day}: loaded {load.chunks} chunks ({load.rows_per_second:,.0f} rows/s), "
                f"replaced {load.replaced_chunks}" for load in self.loads]
        deleted = [f"{load.day}: its tombstones ({deletions.MANIFEST}, or files gone from a collection) hid "
                   f"{load.deleted} documents from search" for load in self.loads if load.deleted]
        return [*days, *deleted, self.lifecycle] if self.lifecycle else [*days, *deleted]

    def warnings(self) -> list[str]:
        """Lines for the run's log at warning level: manifest ids that match no stored document."""
        return [f"{load.day}: {deletions.MANIFEST} names {len(load.deleted_unknown)} documents docvec does not hold "
                f"on or before that day (nothing to delete; check the ids, paths below the day folder): "
                f"{', '.join(load.deleted_unknown[:20])}" for load in self.loads if load.deleted_unknown]

    def metadata(self) -> Metadata:
        """What the step did, as plain values for its asset's metadata."""
        loads = self.loads
        copy_seconds = sum(load.copy_seconds for load in loads)
        return {
            "days": len(loads),
            "documents": sum(load.documents for load in loads),
            "chunks": sum(load.chunks for load in loads),
            "replaced_chunks": sum(load.replaced_chunks for load in loads),
            "days_unchanged": sum(load.unchanged for load in loads),
            "carried_chunks": sum(load.carried_chunks for load in loads),
            "documents_deleted": sum(load.deleted for load in loads),
            "deleted_ids_unknown": ", ".join(i for load in loads for i in load.deleted_unknown) or "none",
            "embedding_model": self.lifecycle or "no day loaded",
            "per_day": self.day_table,
            "sample_chunks": self.sample,
            "dead_letters": self.open_dead_letters,
            "copy_seconds": round(copy_seconds, 3),
            "rows_per_second": rate(sum(load.chunks for load in loads if not load.unchanged), copy_seconds),
            "seconds": round(sum(load.seconds for load in loads), 3),
            # Days merged into one sealed block share its partition: count each partition once.
            "table_bytes": sum({load.partition: load.table_bytes for load in loads}.values()),
            "partitions": ", ".join(sorted({load.partition for load in loads})),
        }


def load_days(conn: psycopg.Connection, batches: Mapping[str, DayEmbeddings]) -> LoadReport:
    """Load every day of ``batches``, then switch search to each model they were embedded with once
    its vectors cover every stored day."""
    loads = [stages.load_embeddings(conn, batch) for batch in batches.values()]
    lifecycle = "; ".join(_switch_when_complete(conn, name, revision)
                          for name, revision in sorted({(b.model_name, b.model_revision) for b in batches.values()}))
    statuses = status.day_statuses(conn, [load.day for load in loads])
    return LoadReport(loads=loads, lifecycle=lifecycle, day_table=Markdown(status.markdown_status(statuses)),
                      sample=sample_chunks(batches), open_dead_letters=sum(s.open_dead_letters for s in statuses))


def _switch_when_complete(conn: psycopg.Connection, name: str, revision: str) -> str:
    model = model_registry.lookup(conn, name, revision)
    if model is None:  # load_embeddings refused an unregistered model before this
        return f"{name}@{revision} is not registered"
    return model_lifecycle.switch_if_complete(conn, model.id).describe(model)


def sample_chunks(batches: Mapping[str, DayEmbeddings], limit: int = SAMPLE_CHUNKS) -> Markdown:
    """A glance at what was loaded: the first chunks of the latest rebuilt day, by id and size. Never
    their text: Dagster's event log keeps metadata for good, and `docvec forget` must be able to erase
    every copy of a document's text (``docvec search`` shows it instead)."""
    rebuilt = [b for b in batches.values() if not b.unchanged and b.chunks]
    if not rebuilt:
        return Markdown("_no day was rebuilt in this run_")
    batch = max(rebuilt, key=lambda b: b.day)
    lines = [f"**{batch.day}** — first {min(limit, len(batch.chunks))} of {len(batch.chunks)} chunks", ""]
    for chunk in batch.chunks[:limit]:
        lines.append(f"- `{chunk.doc_id}#{chunk.seq}` ({chunk.token_count} tokens)")
    return Markdown("\n".join(lines))
