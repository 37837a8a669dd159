"""What each ingest step did, as Prometheus metrics an operator graphs: per run and day, documents read,
dead letters, chunks embedded and reused, load and index seconds, and the store's size.

Where they go (both, either or neither, from the environment of the process that runs the step):

- ``DOCVEC_PUSHGATEWAY_URL`` (``http://host:9091``): pushed to that Prometheus Pushgateway as job
  ``docvec``, grouped by ``asset`` and ``partition`` (the day, or ``FIRST...LAST`` for a range run as
  one): each step's push replaces only its own group, so the four ingest steps of a run never erase
  each other's figures;
- ``DOCVEC_METRICS_TEXTFILE_DIR``: written to ``docvec_<asset>_<partition>.prom`` there (atomically,
  with ``asset`` and ``partition`` as labels), for node_exporter's textfile collector.

Publishing never fails the step: a gateway that does not answer, or a folder that cannot be written,
is a warning in the run's log naming it and the setting. No metric carries document text or a path:
labels are the asset, the partition and the day."""

from __future__ import annotations

import http.client
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import psycopg
from prometheus_client import CollectorRegistry, Gauge, push_to_gateway, write_to_textfile

from pipeline.ops.index_upkeep import IndexUpkeepReport
from pipeline.ops.ingest_steps import EmbedReport, ReadReport
from pipeline.ops.loading import LoadReport
from pipeline.ops.reports import LogLines
from pipeline.settings import Settings
from pipeline.storage import catalog

PUSHGATEWAY_ENV = "DOCVEC_PUSHGATEWAY_URL"
TEXTFILE_ENV = "DOCVEC_METRICS_TEXTFILE_DIR"
JOB = "docvec"
PUSH_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class Sample:
    """One value: its metric name (without the ``docvec_`` prefix), its help, and the day it is of
    (None: of the whole run)."""
    name: str
    help: str
    value: float
    day: str | None = None


@dataclass(frozen=True)
class Target:
    """Where run metrics go (nothing configured: nowhere)."""
    pushgateway: str | None = None
    textfile_dir: Path | None = None

    @classmethod
    def of(cls, settings: Settings) -> Target:
        """Where ``settings`` say (``DOCVEC_PUSHGATEWAY_URL``, ``DOCVEC_METRICS_TEXTFILE_DIR``)."""
        return cls(settings.pushgateway_url, settings.metrics_textfile_dir)


def read_samples(report: ReadReport) -> list[Sample]:
    """raw_documents: per day, documents read, files seen and dead letters; the run's read seconds."""
    samples = []
    for day, plan in report.plans.items():
        samples += [Sample("documents_read", "Documents read (parsed or kept) for the day", len(plan.read.documents), day),
                    Sample("files_seen", "Files the day's listing held", plan.read.files_seen, day),
                    Sample("dead_letters", "Files of the day that could not be ingested", len(plan.read.dead_letters),
                           day),
                    Sample("day_unchanged", "1 when the day was unchanged since its last load", int(plan.unchanged), day)]
    seconds = sum(plan.read.seconds for plan in report.plans.values())
    return [*samples, Sample("read_seconds", "Seconds reading the run's days", seconds)]


def embed_samples(report: EmbedReport) -> list[Sample]:
    """chunk_embeddings: per day, chunks embedded, reused (stored vectors of the same content) and seconds."""
    samples = []
    for day, batch in report.batches.items():
        samples += [Sample("chunks_embedded", "Chunks the model embedded for the day", batch.embedded, day),
                    Sample("chunks_reused", "Chunks whose stored vector was reused", batch.reused, day),
                    Sample("embed_seconds", "Seconds embedding the day", batch.seconds, day)]
    return samples


def load_samples(report: LoadReport) -> list[Sample]:
    """vector_store: per day, chunks and documents loaded and the load's seconds."""
    samples = []
    for load in report.loads:
        day = load.day.isoformat()
        samples += [Sample("chunks_loaded", "Chunks the day holds after the load", load.chunks, day),
                    Sample("documents_loaded", "Documents the day holds after the load", load.documents, day),
                    Sample("load_seconds", "Seconds loading the day (COPY, indexes, swap)", load.seconds, day)]
    return [*samples, Sample("open_dead_letters", "Open dead letters of the run's days", report.open_dead_letters)]


def index_samples(conn: psycopg.Connection, report: IndexUpkeepReport) -> list[Sample]:
    """vector_index: the run's index seconds (sealing and builds), and the store's size after it."""
    outcomes = [kept.outcome for kept in report.partitions]
    seconds = sum(o.seconds for o in report.sealed) + sum(o.build_seconds for o in outcomes)
    table_bytes, index_bytes = catalog.schema_sizes(conn)
    totals = catalog.chunk_totals(conn)
    return [Sample("index_seconds", "Seconds sealing days and building vector indexes", seconds),
            Sample("store_table_bytes", "Bytes of the store's tables", table_bytes),
            Sample("store_index_bytes", "Bytes of the store's indexes", index_bytes),
            Sample("store_chunks", "Chunks stored (the planner's count)", totals.chunks),
            Sample("store_partitions", "Partitions of the chunks table", totals.partitions)]


def registry_of(asset: str, partition: str, samples: Sequence[Sample], *, labelled: bool = False) -> CollectorRegistry:
    """The samples as gauges ``docvec_run_<name>`` (``docvec_store_<…>`` as they are), with a ``day``
    label where they are of a day, and the time the step finished. ``labelled``: also ``asset`` and
    ``partition`` labels (a textfile has no grouping key to carry them)."""
    registry = CollectorRegistry(auto_describe=True)
    extra = {"asset": asset, "partition": partition} if labelled else {}
    gauges: dict[str, Gauge] = {}
    finished = Sample("finished_timestamp_seconds", "When the step finished (Unix time)", time.time())
    for sample in [*samples, finished]:
        name = f"docvec_{sample.name}" if sample.name.startswith("store_") else f"docvec_run_{sample.name}"
        labels = {**extra, **({"day": sample.day} if sample.day is not None else {})}
        gauge = gauges.get(name) or gauges.setdefault(name, Gauge(name, sample.help, list(labels), registry=registry))
        (gauge.labels(**labels) if labels else gauge).set(sample.value)
    return registry


def publish(asset: str, partition: str, samples: Sequence[Sample], warn: LogLines, where: Target) -> list[str]:
    """The step's samples to the Pushgateway and textfile folder ``where`` names; what failed is a
    warning through ``warn``, never an error. Returns where they went."""
    went = []
    if where.pushgateway:
        try:
            push_to_gateway(where.pushgateway, job=JOB, registry=registry_of(asset, partition, samples),
                            grouping_key={"asset": asset, "partition": partition}, timeout=PUSH_TIMEOUT_SECONDS)
            went.append(where.pushgateway)
        except (OSError, ValueError, http.client.HTTPException) as exc:  # down, refused, or not a URL
            warn(f"run metrics of {asset} ({partition}) were not pushed to {where.pushgateway} ({exc}); the run goes "
                 f"on: check that the Pushgateway is up and {PUSHGATEWAY_ENV} is its URL (http://host:9091), or unset it")
    if where.textfile_dir is not None:
        path = where.textfile_dir / f"docvec_{asset}_{partition}.prom"
        try:
            write_to_textfile(str(path), registry_of(asset, partition, samples, labelled=True))
            went.append(str(path))
        except OSError as exc:
            warn(f"run metrics of {asset} ({partition}) were not written to {path} ({exc}); the run goes on: make "
                 f"{where.textfile_dir} a folder this process may write ({TEXTFILE_ENV}), or unset it")
    return went
