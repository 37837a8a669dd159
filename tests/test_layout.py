"""Sealed blocks: the pure sealing plan, then a block's whole life on a real server — sealed by the
vector_index asset, searched through one index, a day reloaded inside it, trimmed by retention."""

from __future__ import annotations

import datetime as dt
import itertools
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import numpy as np
import psycopg
import pytest
from dagster import ExecuteInProcessResult, materialize

from assets import vector_index as vector_index_asset
from pipeline.errors import ConfigError
from pipeline.indexing import builds, sealing
from pipeline.indexing.policy import Action, IndexKind, IndexSettings
from pipeline.ops import doctor, status, store_checks
from pipeline.query import search
from pipeline.query.request import SearchRequest
from pipeline.query.service import refuse_lost_history
from pipeline.storage import (
    catalog,
    connections,
    days,
    history,
    index_measures,
    ingest_days,
    layout,
    model_registry,
    partitions,
    retention,
    urls,
)
from pipeline.storage.layout import LayoutSettings, StoredPartition
from pipeline.storage.vector_indexes import walked_ef_search
from resources import EmbedderResource, PostgresResource, RetentionResource, SourceResource
from tests.support.databases import fresh_database
from tests.support.queries import term_stats_match_a_recount
from tests.support.vectors import clustered, synthetic_day

FIRST, LAST = layout.aligned_block(dt.date(2026, 5, 1), 5)
DAYS = [FIRST + dt.timedelta(days=n) for n in range(5)]
TODAY = LAST + dt.timedelta(days=3)  # every day of the block is older than seal_after_days = 2
ROWS = 2_000  # per day: exact scans alone (exact_max_rows 5,000), an HNSW index once five are sealed
INDEXING = IndexSettings(exact_max_rows=5_000)


def part(first: str, last: str) -> StoredPartition:
    a, b = dt.date.fromisoformat(first), dt.date.fromisoformat(last)
    return StoredPartition(layout.partition_name(a, b), a, b, 0, 0)


def test_aligned_blocks_and_names() -> None:
    first, last = layout.aligned_block(dt.date(2026, 5, 3), 10)
    assert (last - first).days == 9 and first <= dt.date(2026, 5, 3) <= last
    assert layout.aligned_block(first, 10) == layout.aligned_block(last, 10) == (first, last)
    assert layout.aligned_block(last + dt.timedelta(days=1), 10)[0] == last + dt.timedelta(days=1)
    assert layout.partition_name(first) == f"chunks_{first:%Y%m%d}"
    assert layout.parse_partition_name(layout.partition_name(first, last)) == (first, last)
    assert layout.parse_partition_name("chunks_stage_20260501") is None
    for bad in ({"block_days": 0}, {"seal_after_days": -1}):
        with pytest.raises(ConfigError):
            LayoutSettings(**bad)


B = dt.date(2026, 5, 1)  # an aligned 5-day block is (B0, B0 + 4); the cases below are built on it
B0, B4 = layout.aligned_block(B, 5)


def d(offset: int) -> str:
    return (B0 + dt.timedelta(days=offset)).isoformat()


@pytest.mark.parametrize("stored,today,settings,expected", [
    # two sealed days of one block: merged
    ([part(d(0), d(0)), part(d(1), d(1))], d(10), LayoutSettings(5), [[d(0), d(1)]]),
    # a block plus the next sealed day of the same aligned block: the block grows
    ([part(d(0), d(2)), part(d(3), d(3))], d(10), LayoutSettings(5), [[d(0), d(3)]]),
    # one partition alone in its block: nothing to merge
    ([part(d(0), d(2)), part(d(5), d(5))], d(10), LayoutSettings(5), []),
    # days not yet sealed (yesterday, today) stay day partitions
    ([part(d(0), d(0)), part(d(1), d(1)), part(d(2), d(2))], d(2), LayoutSettings(5), []),
    ([part(d(0), d(0)), part(d(1), d(1)), part(d(2), d(2))], d(4), LayoutSettings(5), [[d(0), d(1)]]),
    # seal_after_days = 0: every day but today is sealed, yesterday included
    ([part(d(0), d(0)), part(d(1), d(1)), part(d(2), d(2))], d(2), LayoutSettings(5, 0), [[d(0), d(1)]]),
    ([part(d(0), d(1)), part(d(2), d(2)), part(d(3), d(3))], d(3), LayoutSettings(5, 0), [[d(0), d(2)]]),
    # two aligned blocks at once
    ([part(d(0), d(0)), part(d(1), d(1)), part(d(5), d(5)), part(d(6), d(6))], d(10), LayoutSettings(5),
     [[d(0), d(1)], [d(5), d(6)]]),
    # block_days = 1: per-day partitions, never merged
    ([part(d(0), d(0)), part(d(1), d(1))], d(10), LayoutSettings(1), []),
    # a partition spanning two aligned blocks (block_days changed since) is left alone
    ([part(d(3), d(6)), part(d(7), d(7)), part(d(8), d(8))], d(20), LayoutSettings(5), [[d(7), d(8)]]),
    # window_block: every sealed partition in one block, across aligned blocks
    ([part(d(3), d(6)), part(d(7), d(7)), part(d(8), d(8))], d(20), LayoutSettings(5, window_block=True),
     [[d(3), d(8)]]),
    ([part(d(0), d(0)), part(d(5), d(5)), part(d(11), d(11))], d(20), LayoutSettings(5, window_block=True),
     [[d(0), d(11)]]),
    # ... once a second sealed partition joins the block; today stays open
    ([part(d(0), d(8)), part(d(9), d(9))], d(9), LayoutSettings(5, 0, window_block=True), []),
    ([part(d(0), d(8)), part(d(9), d(9)), part(d(10), d(10))], d(10), LayoutSettings(5, 0, window_block=True),
     [[d(0), d(9)]]),
])
def test_plan_sealing(stored, today, settings, expected) -> None:
    groups = layout.plan_sealing(stored, dt.date.fromisoformat(today), B0 - dt.timedelta(days=30), settings)
    assert [[*[p.first.isoformat() for p in g][:1], g[-1].last.isoformat()] for g in groups] == expected


def test_plan_sealing_leaves_out_a_partition_that_dwarfs_its_block() -> None:
    """A living collection's first snapshot (every document) beside days of a few changes: merging it would
    rewrite the collection for each sealed day. It stays, and the days beside it merge without it; once the
    changes reach 1/block_days of it, merging it costs no more than block_days times what they add."""
    def sized(first: int, last: int, rows: int) -> StoredPartition:
        return replace(part(d(first), d(last)), rows=rows)

    def plan(stored: list[StoredPartition]) -> list[list[str]]:
        groups = layout.plan_sealing(stored, B0 + dt.timedelta(days=10), B0 - dt.timedelta(days=30), LayoutSettings(5))
        return [[p.table for p in g] for g in groups]

    snapshot = sized(0, 0, 10_000)
    assert plan([snapshot, sized(1, 1, 100)]) == []
    assert plan([snapshot, sized(1, 1, 100), sized(2, 2, 100), sized(3, 3, 100)]) == [
        [part(d(1), d(1)).table, part(d(2), d(2)).table, part(d(3), d(3)).table]]
    assert plan([snapshot, sized(1, 3, 1_500), sized(4, 4, 500)]) == [
        [snapshot.table, part(d(1), d(3)).table, part(d(4), d(4)).table]]
    # in the middle of its block: the runs on either side merge apart (a block may not span it)
    assert plan([sized(0, 0, 10), sized(1, 1, 10), sized(2, 2, 10_000), sized(3, 3, 10), sized(4, 4, 10)]) == [
        [part(d(0), d(0)).table, part(d(1), d(1)).table], [part(d(3), d(3)).table, part(d(4), d(4)).table]]
    # days of like size (a day-folder store) always merge whole
    assert plan([sized(0, 3, 4_000), sized(4, 4, 1_000)]) == [[part(d(0), d(3)).table, part(d(4), d(4)).table]]
    # one block for the window takes the snapshot too: that block is the point of the setting
    window = layout.plan_sealing([snapshot, sized(1, 1, 100)], B0 + dt.timedelta(days=10), B0 - dt.timedelta(days=30),
                                 LayoutSettings(5, window_block=True))
    assert [[p.table for p in g] for g in window] == [[snapshot.table, part(d(1), d(1)).table]]


def test_plan_sealing_leaves_expired_days_to_retention() -> None:
    stored = [part(d(0), d(0)), part(d(1), d(1)), part(d(2), d(2))]
    for settings in (LayoutSettings(5), LayoutSettings(5, window_block=True)):
        groups = layout.plan_sealing(stored, B0 + dt.timedelta(days=10), B0 + dt.timedelta(days=1), settings)
        assert [[p.table for p in g] for g in groups] == [[stored[1].table, stored[2].table]]
    # the window's block straddling the edge joins the plan (the seal may leave its expired days out);
    # a partition wholly before the edge stays retention's
    stored = [part(d(0), d(1)), part(d(2), d(5)), part(d(6), d(6)), part(d(7), d(7))]
    groups = layout.plan_sealing(stored, B0 + dt.timedelta(days=7), B0 + dt.timedelta(days=3),
                                 LayoutSettings(5, 0, window_block=True))
    assert [[p.table for p in g] for g in groups] == [[stored[1].table, stored[2].table]]


@pytest.fixture(scope="module")
def five_days(migrated, embedder):
    """A database of its own with five days of one aligned block and today, clustered real-size vectors."""
    isolated = fresh_database(migrated, embedder.info.dim, "docvec_layout_probe")
    vectors = {day: clustered(ROWS, seed=day.toordinal()) for day in [*DAYS, TODAY]}
    batches = {day: synthetic_day(day, v, embedder.info.name, embedder.info.revision, documents=40,
                                  doc_prefix=f"doc-{day:%d}") for day, v in vectors.items()}
    with connections.connect(isolated) as conn:
        model_id = model_registry.register(conn, embedder.info).id
        for batch in batches.values():
            days.replace_day(conn, batch, model_id)
    return isolated, model_id, vectors, batches, embedder.info


def chunk_ids(conn: psycopg.Connection, day: dt.date) -> set[str]:
    return {r[0] for r in conn.execute("SELECT chunk_id FROM chunks WHERE ingest_date = %s", (day,))}


def run_vector_index(database_url: str, today: dt.date, config: dict[str, object], *,
                     window_days: int = retention.DEFAULT_WINDOW_DAYS,
                     source: SourceResource | None = None) -> ExecuteInProcessResult:
    """The vector_index asset materialized for ``today``'s partition, as today's run, with ``config``
    (a retention window of ``window_days``; ``source``: day folders unless given)."""
    return materialize(
        [vector_index_asset], partition_key=today.isoformat(),
        resources={"postgres": PostgresResource(database_url=database_url), "embedder": EmbedderResource(),
                   "retention_window": RetentionResource(as_of=today.isoformat(), window_days=window_days),
                   "source": source or SourceResource()},
        run_config={"ops": {"vector_index": {"config": config}}})


def test_a_block_from_sealing_to_retention(five_days) -> None:
    settings, model_id, vectors, batches, info = five_days
    queries = [vectors[day][n] for day in DAYS for n in (0, 7)]
    with connections.connect(settings) as conn:
        exact = [[h.chunk_id for h in search.search_vector(conn, q, model_id, k=10)] for q in queries]
        ids_before = {day: chunk_ids(conn, day) for day in DAYS}
    block = layout.partition_name(FIRST, LAST)

    # Sealed by the vector_index asset (today's run), with the policy's index built before the swap.
    result = run_vector_index(settings.database_url, TODAY, {"exact_max_rows": 5_000, "block_days": 5})
    assert result.success
    [event] = result.get_asset_materialization_events()
    assert event.materialization.metadata["sealed"].value == {block: [layout.partition_name(d) for d in DAYS]}

    with connections.connect(settings) as conn:
        assert [p.table for p in catalog.partitions(conn)] == [block, layout.partition_name(TODAY)]
        index = catalog.existing_vector_index(conn, block)
        assert index is not None and index.state.kind == IndexKind.HNSW and index.state.built_rows == 5 * ROWS
        assert {day: chunk_ids(conn, day) for day in DAYS} == ids_before, "sealing moves rows, loses none"
        sealed = [[h.chunk_id for h in search.search_vector(conn, q, model_id, k=10)] for q in queries]
        assert [s[0] for s in sealed] == [e[0] for e in exact]
        assert np.mean([len(set(s) & set(e)) / 10 for s, e in zip(sealed, exact, strict=True)]) >= 0.95
        plan = search.explain_vector(conn, queries[0], model_id)
        assert index.name in plan and not any(f" on {layout.partition_name(day)} " in plan for day in DAYS), plan
        assert sealing.seal_days(conn, TODAY, FIRST, LayoutSettings(block_days=5), INDEXING) == [], "idempotent"
        assert ingest_days.has_fingerprint(conn, DAYS[1], batches[DAYS[1]].fingerprint), \
            "a sealed day is still known unchanged"
        assert "sealed" in next(s.index for s in status.day_statuses(conn, [DAYS[1]]))

        # A sealed day reloaded with new content: the block is rebuilt around it, its other days untouched.
        changed = synthetic_day(DAYS[2], clustered(300, seed=99), info.name, info.revision, documents=30,
                                doc_prefix="changed")
        load = days.replace_day(conn, changed, model_id)
        assert load.partition == block and load.replaced_chunks == ROWS and load.carried_chunks == 4 * ROWS
        assert conn.execute("SELECT count(*) FROM chunks WHERE ingest_date = %s", (DAYS[2],)).fetchone()[0] == 300
        assert {day: chunk_ids(conn, day) for day in DAYS if day != DAYS[2]} == {
            day: ids for day, ids in ids_before.items() if day != DAYS[2]}
        rebuilt = catalog.existing_vector_index(conn, block)
        assert rebuilt is not None and rebuilt.state.kind == IndexKind.HNSW and rebuilt.state.valid
        assert rebuilt.name != index.name and rebuilt.name in search.explain_vector(conn, queries[0], model_id), \
            "the block got its index back before the swap: search never exact-scans it"
        assert builds.maintain_partition(conn, block, INDEXING).plan.action == Action.KEEP

        # Retention whose edge falls inside the block: two days dropped, the rest rebuilt with its index.
        window = (TODAY - DAYS[2]).days + 1
        preview = retention.apply_retention(conn, TODAY, window, dry_run=True)
        block_bytes = catalog.partition_for(conn, LAST).bytes
        assert preview.days == DAYS[:2] and preview.rows == 2 * ROWS
        assert [p.kept_as for p in preview.dropped] == ["(rebuilt)"]
        assert 0 < preview.bytes < block_bytes / 2, "a trimmed block frees its expired share, not its whole size"
        with psycopg.connect(urls.docvec_url(settings), autocommit=True) as holder:
            holder.execute("SELECT pg_advisory_lock(%s, %s)", (partitions.DAY_LOCK, LAST.toordinal()))
            busy = retention.apply_retention(conn, TODAY, window)
            holder.execute("SELECT pg_advisory_unlock(%s, %s)", (partitions.DAY_LOCK, LAST.toordinal()))
        assert busy.dropped == [] and busy.skipped_busy == DAYS[:2], "a day of the block is being loaded: retried"
        trimmed = retention.apply_retention(conn, TODAY, window)
        kept_as = layout.partition_name(DAYS[2], LAST)
        assert trimmed.days == DAYS[:2] and trimmed.rows == 2 * ROWS
        assert [p.kept_as for p in trimmed.dropped] == [kept_as]
        assert [p.table for p in catalog.partitions(conn)] == [kept_as, layout.partition_name(TODAY)]
        assert conn.execute("SELECT count(*) FROM chunks WHERE ingest_date < %s", (DAYS[2],)).fetchone()[0] == 0
        assert {day: chunk_ids(conn, day) for day in DAYS[3:]} == {day: ids_before[day] for day in DAYS[3:]}
        kept_index = catalog.existing_vector_index(conn, kept_as)
        assert kept_index is not None and kept_index.state.kind == IndexKind.HNSW
        assert kept_index.name in search.explain_vector(conn, vectors[LAST][0], model_id)
        assert retention.days_older_than_window(conn, TODAY, window) == []
        assert retention.apply_retention(conn, TODAY, window).dropped == [], "rerunning is a no-op"


def test_sealing_after_zero_days_leaves_only_today_open(migrated, embedder) -> None:
    """``seal_after_days: 0`` in the asset's run config: yesterday is merged into its block by the
    run that loads today, so a search walks one partition fewer; today stays a day partition."""
    isolated = fresh_database(migrated, embedder.info.dim, "docvec_layout_seal_zero")
    today = LAST
    loaded = [today - dt.timedelta(days=2), today - dt.timedelta(days=1), today]
    with connections.connect(isolated) as conn:
        model_id = model_registry.register(conn, embedder.info).id
        for day in loaded:
            days.replace_day(conn, synthetic_day(day, clustered(300, seed=day.toordinal()), embedder.info.name,
                                                 embedder.info.revision, documents=10, doc_prefix=f"z{day:%d}"),
                             model_id)
    result = run_vector_index(isolated.database_url, today, {"block_days": 5, "seal_after_days": 0})
    assert result.success
    block = layout.partition_name(loaded[0], loaded[1])
    [event] = result.get_asset_materialization_events()
    assert event.materialization.metadata["sealed"].value == {block: [layout.partition_name(d) for d in loaded[:2]]}
    with connections.connect(isolated) as conn:
        assert [p.table for p in catalog.partitions(conn)] == [block, layout.partition_name(today)]
        assert conn.execute("SELECT count(*) FROM chunks").fetchone()[0] == 900


@pytest.mark.parametrize("mode", ["days", "collection"])
def test_one_block_for_the_window(migrated, embedder, mode) -> None:
    """``window_block`` through the asset, over two days of a 4-day window: the sealed days go into one
    block, so a search walks two HNSW graphs (block and today). The next day's seal grows that block by
    yesterday; with day folders it leaves out the day that fell out of the window, with that day's term
    statistics, so retention has only documents left to delete and no block to rebuild. A collection's
    old days hold live documents: its seal carries them."""
    isolated = fresh_database(migrated, embedder.info.dim, f"docvec_layout_window_{mode}")
    today, window = LAST, 4
    loaded = [today - dt.timedelta(days=n) for n in range(3, -1, -1)]  # the window's four days
    tomorrow = today + dt.timedelta(days=1)

    def load(conn: psycopg.Connection, model_id: int, day: dt.date) -> None:
        days.replace_day(conn, synthetic_day(day, clustered(300, seed=day.toordinal()), embedder.info.name,
                                             embedder.info.revision, documents=10, doc_prefix=f"w{day:%d}"), model_id)

    with connections.connect(isolated) as conn:
        model_id = model_registry.register(conn, embedder.info).id
        for day in loaded:
            load(conn, model_id, day)

    def seal(on: dt.date) -> ExecuteInProcessResult:
        result = run_vector_index(isolated.database_url, on, {"window_block": True, "seal_after_days": 0,
                                                              "exact_max_rows": 200},
                                  window_days=window, source=SourceResource(mode=mode))
        assert result.success
        return result

    seal(today)
    first_block = layout.partition_name(loaded[0], loaded[2])
    with connections.connect(isolated) as conn:
        assert [p.table for p in catalog.partitions(conn)] == [first_block, layout.partition_name(today)]
        walk = search.vector_walk(conn)
        assert walk.hnsw_indexes == 2, "the block and today: two graphs to walk"
        assert walk.ann.ef_search == walked_ef_search(walk.recorded_ef_search, [900, 300]) \
            > walked_ef_search(walk.recorded_ef_search, [300, 300]), \
            "the block holds three of the four days' rows: its graph walks nearly one index's list"
        load(conn, model_id, tomorrow)

    result = seal(tomorrow)
    [event] = result.get_asset_materialization_events()
    metadata = {k: v.value for k, v in event.materialization.metadata.items()}
    expired = loaded[0]
    with connections.connect(isolated) as conn:
        stored = [p.table for p in catalog.partitions(conn)]
        counts = dict(conn.execute("SELECT ingest_date, count(*) FROM chunks GROUP BY 1").fetchall())
        assert term_stats_match_a_recount(conn), "BM25 statistics are a recount of what the block holds"
        if mode == "days":
            grown = layout.partition_name(loaded[1], today)
            assert stored == [grown, layout.partition_name(tomorrow)]
            assert metadata["sealed_without_expired_days"] == {grown: f"{expired}..{expired}"}
            assert expired not in counts and all(counts[day] == 300 for day in [*loaded[1:], tomorrow])
            assert conn.execute("SELECT count(*) FROM documents WHERE ingest_date = %s", (expired,)).fetchone()[0] > 0
            assert store_checks.day_rows_match(conn, None, (embedder.info.name, embedder.info.revision)).passed, \
                "a day no partition covers is not counted as stored"
            assert history.horizon(conn) == loaded[1]
            with pytest.raises(ConfigError, match="before the retention horizon"):
                refuse_lost_history(conn, SearchRequest(q="anything", as_of=expired))
            purged = retention.apply_retention(conn, tomorrow, window)
            assert [p.kept_as for p in purged.dropped] == [] and purged.documents_deleted > 0, \
                "retention deletes the day's documents and rebuilds nothing"
            assert retention.days_older_than_window(conn, tomorrow, window) == []
        else:
            grown = layout.partition_name(expired, today)
            assert stored == [grown, layout.partition_name(tomorrow)]
            assert metadata["sealed_without_expired_days"] == {} and history.horizon(conn) is None
            assert all(counts[day] == 300 for day in [*loaded, tomorrow]), "a collection's seal keeps its old days"
        assert search.vector_walk(conn).hnsw_indexes == 2


def test_runs_that_race_a_seal_plan_around_it(migrated, embedder) -> None:
    """Parallel backfills seal, reload and index the same partitions. A reader whose snapshot still
    lists a partition dropped since plans without it (CI caught ``int(None)`` on its size); an index
    upkeep or retention trim of a partition sealed meanwhile leaves it to the seal or the next run; and a reload
    waiting for an index
    build on its partition does not block searches while it waits."""
    isolated = fresh_database(migrated, embedder.info.dim, "docvec_layout_race")
    race_days = [FIRST, FIRST + dt.timedelta(days=1)]
    with connections.connect(isolated) as conn:
        model_id = model_registry.register(conn, embedder.info).id
        for day in race_days:
            days.replace_day(conn, synthetic_day(day, clustered(50, seed=day.toordinal()), embedder.info.name,
                                                  embedder.info.revision, documents=5), model_id)
    block = layout.partition_name(FIRST, race_days[1])
    dim = embedder.info.dim

    with connections.connect(isolated, autocommit=False) as reader, connections.connect(isolated) as other:
        reader.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        reader.execute("SELECT 1")  # the snapshot: both day partitions listed in pg_inherits
        listed = catalog.partitions(other)
        [outcome] = sealing.seal_days(other, TODAY, FIRST, LayoutSettings(block_days=5), INDEXING)
        assert outcome.partition == block
        assert [p.table for p in catalog.partitions(reader)] == [], "both were dropped after the snapshot"
        doctor.diagnose(reader)
        reader.rollback()
        assert builds.upkeep(other, listed[0].table, INDEXING) is None, "sealed meanwhile: left to the seal"
        assert retention._purge(other, listed[1], race_days[1], lambda _: None) is None, "trimmed next run, not failed"
        kept = builds.upkeep(other, block, INDEXING)
        assert kept is not None and kept.outcome.rows == 100 and index_measures.insane_vectors(other, block, dim) == 0

    # An index build in progress on the block (CREATE INDEX CONCURRENTLY's lock, held open here).
    changed = synthetic_day(race_days[0], clustered(30, seed=7), embedder.info.name, embedder.info.revision, documents=3)
    with connections.connect(isolated, autocommit=False) as build, connections.connect(isolated) as watcher:
        build.execute(f"LOCK TABLE {block} IN SHARE UPDATE EXCLUSIVE MODE")
        with ThreadPoolExecutor(1) as pool:
            def reload() -> str | None:
                with connections.connect(isolated) as loader:
                    return days.replace_day(loader, changed, model_id).partition
            loading = pool.submit(reload)
            try:
                waiting = "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = %s::regclass"
                deadline = time.monotonic() + 30
                while not watcher.execute(waiting, (block,)).fetchone()[0]:
                    assert time.monotonic() < deadline and not loading.done(), "the reload never waited for the build"
                    time.sleep(0.05)
                with watcher.transaction():
                    watcher.execute("SET LOCAL lock_timeout = '2s'")
                    assert watcher.execute("SELECT count(*) FROM chunks").fetchone()[0] == 100, \
                        "searches read on while the reload waits for the build"
            finally:
                build.commit()  # the build ends either way, so the reload's thread can finish
            assert loading.result(timeout=60) == block
        assert watcher.execute("SELECT count(*) FROM chunks").fetchone()[0] == 80


def test_a_day_loaded_into_a_planned_seal_range_makes_the_seal_wait_for_the_next_run(migrated, embedder) -> None:
    """A seal planned over days 1 and 3 while a run loads day 2 (CI caught the block's ATTACH refusing:
    it would overlap the new day's partition): the claim sees the new partition and the seal does
    nothing; the next plan seals all three."""
    isolated = fresh_database(migrated, embedder.info.dim, "docvec_layout_seal_gap")
    first, middle, last = FIRST, FIRST + dt.timedelta(days=1), FIRST + dt.timedelta(days=2)
    with connections.connect(isolated) as conn:
        model_id = model_registry.register(conn, embedder.info).id

        def load(day: dt.date) -> None:
            days.replace_day(conn, synthetic_day(day, clustered(20, seed=day.toordinal()), embedder.info.name,
                                                  embedder.info.revision, documents=2), model_id)
        load(first)
        load(last)
        planned = catalog.partitions(conn)
        load(middle)  # between the plan and the claim
        assert partitions.rebuild(conn, planned, first, last, partitions.same_index(None)) is None
        assert [p.table for p in catalog.partitions(conn)] == [layout.partition_name(d) for d in (first, middle, last)]
        [outcome] = sealing.seal_days(conn, TODAY, FIRST, LayoutSettings(block_days=5), INDEXING)
        assert outcome.partition == layout.partition_name(first, last)
        assert conn.execute("SELECT count(*) FROM chunks").fetchone()[0] == 60


def contiguous(values: list) -> bool:
    """Each distinct value in one run."""
    seen: set = set()
    for n, value in enumerate(values):
        if n and value == values[n - 1]:
            continue
        if value in seen:
            return False
        seen.add(value)
    return True


def physical_rows(conn: psycopg.Connection, table: str) -> dict[dt.date, list[tuple]]:
    """Per day, (readers, doc_id, seq) of the partition's rows in the order they lie in its heap."""
    rows = conn.execute(f'SELECT ingest_date, readers, doc_id, seq FROM "{table}" ORDER BY ctid').fetchall()
    by_day: dict[dt.date, list[tuple]] = {}
    for day, readers, doc_id, seq in rows:
        by_day.setdefault(day, []).append((tuple(readers), doc_id, seq))
    return by_day


def grouped(rows: list[tuple]) -> bool:
    """Equal readers together, each document's chunks together and in sequence."""
    documents = [doc_id for _, doc_id, _ in rows]
    in_sequence = all(a[2] < b[2] for a, b in itertools.pairwise(rows) if a[1] == b[1])
    return contiguous([readers for readers, _, _ in rows]) and contiguous(documents) and in_sequence


def test_partitions_are_written_grouped_by_readers(migrated, embedder) -> None:
    """partitions.GROUPED_ORDER: a day's load and a seal write chunks with equal readers together, so a
    caller who may read few reads few pages. A readers change after the load rewrites chunk rows wherever
    there is room; the seal groups them again."""
    isolated = fresh_database(migrated, embedder.info.dim, "docvec_layout_grouped")
    with connections.connect(isolated) as conn:
        model_id = model_registry.register(conn, embedder.info).id
        for day in DAYS:
            batch = synthetic_day(day, clustered(120, seed=day.toordinal()), embedder.info.name,
                                  embedder.info.revision, documents=12, doc_prefix=f"doc-{day:%d}")
            documents = [replace(doc, readers=("group:few",) if n % 3 == 0 else ("*",))
                         for n, doc in enumerate(batch.documents)]
            days.replace_day(conn, replace(batch, documents=documents), model_id)
        loaded = physical_rows(conn, layout.partition_name(DAYS[0]))[DAYS[0]]
        assert grouped(loaded), loaded
        assert len({readers for readers, _, _ in loaded}) == 2
        conn.execute("UPDATE documents SET readers = CASE WHEN doc_id LIKE '%-4.md' THEN '{group:rare}'::text[] "
                     "ELSE '{*}' END WHERE doc_id LIKE '%-3.md' OR doc_id LIKE '%-4.md'")
        assert not all(grouped(rows) for day in DAYS for rows in physical_rows(conn, layout.partition_name(day)).values())
        assert sealing.seal_days(conn, TODAY, FIRST, LayoutSettings(block_days=5), INDEXING)
        sealed = physical_rows(conn, layout.partition_name(FIRST, LAST))
        assert sorted(sealed) == DAYS
        for day, rows in sealed.items():
            assert grouped(rows), (day, rows)
            assert len({readers for readers, _, _ in rows}) == 3
