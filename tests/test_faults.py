"""Database faults on a server of the test's own (so restarting it disturbs no other test): a restart
in the middle of a day's load, a connection lost under a search; and searches that keep answering
while a day loads, an index builds and retention drops a day."""

from __future__ import annotations

import datetime as dt
import threading
import time

import psycopg
import pytest
from dagster import DagsterEventType, Failure, RetryRequested, materialize

from assets import chunk_embeddings, document_chunks, raw_documents, vector_store
from pipeline.cli import main as cli
from pipeline.errors import DatabaseUnavailableError
from pipeline.indexing import builds
from pipeline.ingest import landing_zone, stages
from pipeline.query import search
from pipeline.settings import Settings
from pipeline.storage import admin, connections, days, layout, migrate, model_registry, partitions
from resources import (
    DayBatchIOManager,
    EmbedderResource,
    PostgresResource,
    RetentionResource,
    SourceResource,
)
from tests.support.databases import fresh_database, wait_until_backend_exits
from tests.support.pg_cluster import start_cluster
from tests.support.queries import embed_query
from tests.support.sample import SAMPLE_END
from tests.support.vectors import clustered, synthetic_day

DATABASE = "docvec_faults"

# Every test here talks to PostgreSQL; the ones on a server of their own do it without the session's fixtures.
pytestmark = pytest.mark.database


@pytest.fixture()
def own_server(tmp_path, embedder):
    cluster = start_cluster(tmp_path / "pg")
    with psycopg.connect(cluster.url(), autocommit=True) as superuser:
        superuser.execute(f"CREATE DATABASE {DATABASE}")
    settings = Settings(home=tmp_path, database_url=cluster.url(DATABASE), dagster_database_url=cluster.url(DATABASE),
                        pgbouncer=False)
    migrate.upgrade(settings, embedder.info.dim)
    yield cluster, settings
    cluster.stop()


def test_a_server_restart_mid_load_is_retried_and_converges(own_server, sample_landing, tmp_path) -> None:
    cluster, settings = own_server
    day = landing_zone.list_days(sample_landing)[-1]
    resources = {
        "postgres": PostgresResource(database_url=settings.database_url, retry_wait_seconds=1),
        "embedder": EmbedderResource(),
        "source": SourceResource(landing_dir=str(sample_landing)),
        "retention_window": RetentionResource(as_of=SAMPLE_END.isoformat()),
        "batch_io_manager": DayBatchIOManager(base_dir=str(tmp_path / "batches")),
    }
    assets = [raw_documents, document_chunks, chunk_embeddings, vector_store]

    # Hold the day's lock so the load blocks inside its transaction; restart the server right then.
    holder = psycopg.connect(cluster.url(DATABASE), autocommit=True)
    holder.execute("SELECT pg_advisory_lock(%s, %s)", (partitions.DAY_LOCK, day.toordinal()))
    restarted = threading.Event()

    def restart_when_the_load_waits() -> None:
        deadline = time.monotonic() + 120
        with psycopg.connect(cluster.url(DATABASE), autocommit=True) as watcher:
            while time.monotonic() < deadline:
                waiting = watcher.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                          "AND wait_event = 'advisory'").fetchone()[0]
                if waiting:
                    break
                time.sleep(0.05)
        cluster.restart()
        restarted.set()

    thread = threading.Thread(target=restart_when_the_load_waits)
    thread.start()
    result = materialize(assets, resources=resources, partition_key=day.isoformat())
    thread.join(timeout=120)
    holder.close()
    assert restarted.is_set()
    assert result.success
    retried = [e for e in result.all_events if e.event_type == DagsterEventType.STEP_UP_FOR_RETRY]
    assert [e.step_key for e in retried] == ["vector_store"], "the interrupted load was retried, nothing else"

    produced = result.asset_materializations_for_node("chunk_embeddings")[0].metadata["chunks"].value
    with connections.connect(settings) as conn:
        rows = conn.execute("SELECT count(*), count(DISTINCT chunk_id) FROM chunks WHERE ingest_date = %s",
                            (day,)).fetchone()
        assert rows == (produced, produced)
        assert conn.execute("SELECT to_regclass(%s)", (layout.staging_name(day, day),)).fetchone()[0] is None

    again = materialize(assets, resources=resources, partition_key=day.isoformat())
    assert again.success
    assert again.asset_materializations_for_node("vector_store")[0].metadata["days_unchanged"].value == 1


def test_a_lost_connection_under_a_search_is_one_clear_error(own_server, embedder, sample_landing, capsys,
                                                            monkeypatch) -> None:
    cluster, settings = own_server
    from pipeline.ingest.chunking import ChunkingConfig

    day = landing_zone.list_days(sample_landing)[-1]
    with connections.connect(settings) as conn:
        chunks = stages.chunk_documents(stages.read_documents(sample_landing, day), embedder.backend_tokenizer(),
                                        ChunkingConfig(max_seq_length=embedder.info.max_seq_length))
        stages.load_embeddings(conn, stages.embed_chunks(chunks, embedder, conn))

    with (connections.connect(settings, for_search=True) as conn,
          psycopg.connect(cluster.url(DATABASE), autocommit=True) as superuser):
        vector, model_id = embed_query(conn, embedder, "sourdough starter")
        superuser.execute("SELECT pg_terminate_backend(%s)", (conn.info.backend_pid,))
        wait_until_backend_exits(superuser, conn.info.backend_pid)
        with pytest.raises(DatabaseUnavailableError, match="lost the database connection while searching"):
            search.search_vector(conn, vector, model_id, k=3)

    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("DAGSTER_DATABASE_URL", settings.database_url)
    cluster.stop()
    assert cli.main(["search", "sourdough starter"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("docvec: error: cannot connect to") and "Traceback" not in err
    assert cluster.password not in err and "***" in err
    assert len(err.strip().splitlines()) <= 3


def test_search_keeps_answering_during_a_load_an_index_build_and_retention(migrated, embedder) -> None:
    from benchmarks.concurrency_benchmark import search_during  # the benchmark's own measurement, at test size
    from pipeline.indexing.policy import IndexSettings
    from pipeline.storage import retention

    settings = fresh_database(migrated, embedder.info.dim, "docvec_search_under_load")
    today = dt.date(2026, 6, 30)
    loaded = [today - dt.timedelta(days=back) for back in (3, 2, 1)]
    with connections.connect(settings) as conn:
        model_id = model_registry.register(conn, embedder.info).id
        for n, day in enumerate(loaded):
            days.replace_day(conn, synthetic_day(day, clustered(4_000, seed=n), embedder.info.name,
                                                  embedder.info.revision, doc_prefix=f"day{n}"), model_id)
        new_day = synthetic_day(today, clustered(30_000, seed=9), embedder.info.name, embedder.info.revision,
                                doc_prefix="new")
        results = search_during(settings, model_id, clustered(50, seed=99), [
            ("load", lambda: days.replace_day(conn, new_day, model_id)),
            ("index build", lambda: builds.maintain_partition(conn, layout.partition_name(loaded[-1]),
                                                                    IndexSettings(exact_max_rows=1_000))),
            # Dropping a day takes milliseconds: keep searching a moment on the new set of partitions.
            ("retention", lambda: (retention.apply_retention(conn, today, window_days=3), time.sleep(0.5))),
        ])
    for result in results:
        assert result.errors == [], (result.name, result.errors[:3])
        assert result.short_results == 0, f"{result.name}: a search came back with fewer than k rows"
    assert [len(r.latencies_ms) > 0 for r in results] == [True, True, True], "searches ran during every phase"
    admin.drop_database(migrated, "docvec_search_under_load")


@pytest.mark.parametrize("errcode,retried", [
    ("disk_full", False),  # 53100: the disk stays full
    ("query_canceled", False),  # 57014: a statement timeout cancels it again
    ("insufficient_privilege", False),  # 42501: a GRANT is missing
    ("serialization_failure", True),  # 40001: another transaction won; this one may succeed next time
    ("deadlock_detected", True),  # 40P01
])
def test_only_errors_a_retry_can_get_past_are_retried(migrated, errcode, retried) -> None:
    """The server raises each error for real (PL/pgSQL RAISE with that SQLSTATE); the resource turns
    it into a step retry only where retrying can help, else into a failure carrying the server's words."""
    resource = PostgresResource(home=str(migrated.home), retries=2, retry_wait_seconds=0)
    expected = RetryRequested if retried else Failure
    with pytest.raises(expected) as raised, resource.connect() as conn:
        conn.execute(f"DO $$ BEGIN RAISE EXCEPTION 'probe of {errcode}' USING ERRCODE = '{errcode}'; END $$")
    if not retried:
        assert f"probe of {errcode}" in raised.value.description and "would fail the same way" in raised.value.description


def test_a_cancelled_statement_fails_fast_and_a_killed_session_is_retried(migrated) -> None:
    resource = PostgresResource(home=str(migrated.home), retries=2, retry_wait_seconds=0)
    with pytest.raises(Failure, match="canceling statement due to statement timeout"), resource.connect() as conn:
        conn.execute("SET statement_timeout = '50ms'")
        conn.execute("SELECT pg_sleep(2)")
    # An administrator (or a failover) terminating the session: the connection is gone, a retry reconnects.
    with pytest.raises(RetryRequested), resource.connect() as conn, connections.connect(migrated) as superuser:
        pid = conn.info.backend_pid
        superuser.execute("SELECT pg_terminate_backend(%s)", (pid,))
        wait_until_backend_exits(superuser, pid)  # terminate only signals the backend: no fixed sleep races it
        conn.execute("SELECT 1")


def test_waiting_for_a_terminated_backend_ends_when_it_is_gone(migrated) -> None:
    """The poll the fault tests rely on: it returns only once the backend has left pg_stat_activity (so
    the next statement on its connection fails every time), and gives up on one that never goes."""
    with connections.connect(migrated) as victim, connections.connect(migrated) as superuser:
        pid = victim.info.backend_pid
        with pytest.raises(TimeoutError, match=str(pid)):
            wait_until_backend_exits(superuser, pid, seconds=0.2)  # alive: never gone
        superuser.execute("SELECT pg_terminate_backend(%s)", (pid,))
        wait_until_backend_exits(superuser, pid)
        assert superuser.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone() == (0,)
        with pytest.raises(psycopg.OperationalError):
            victim.execute("SELECT 1")
    with connections.connect(migrated, autocommit=False) as in_a_transaction, pytest.raises(ValueError):
        wait_until_backend_exits(in_a_transaction, pid)
