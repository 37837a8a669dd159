"""Index lifecycle: the pure policy branch by branch, then builds, recall and plans on a real server."""

from __future__ import annotations

import datetime as dt

import psycopg
import pytest
from dagster import materialize

from assets import vector_index as vector_index_asset
from assets import with_checks
from pipeline.errors import ConfigError
from pipeline.indexing import builds
from pipeline.indexing.policy import (
    Action,
    IndexKind,
    IndexSettings,
    IndexState,
    PartitionStats,
    ivfflat_lists,
    ivfflat_probes,
    plan_index,
)
from pipeline.query import search
from pipeline.storage import catalog, connections, days, index_measures, layout, model_registry, vector_indexes
from resources import EmbedderResource, PostgresResource, RetentionResource, SourceResource
from tests.support.databases import fresh_database
from tests.support.vectors import clustered, synthetic_day

GiB = 1024**3
SETTINGS = IndexSettings(exact_max_rows=20_000)


def stats(rows: int, memory: int = 4 * GiB, model_id: int = 1) -> PartitionStats:
    return PartitionStats(rows=rows, dim=384, model_id=model_id, maintenance_work_mem_bytes=memory)


@pytest.mark.parametrize("rows,current,settings,action,kind,why", [
    (5_000, IndexState(), SETTINGS, Action.KEEP, IndexKind.NONE, "exact scan"),
    (5_000, IndexState(IndexKind.HNSW, built_rows=30_000, model_id=1), SETTINGS, Action.DROP, IndexKind.NONE, "exact"),
    (50_000, IndexState(), SETTINGS, Action.CREATE, IndexKind.HNSW, "hnsw preferred"),
    (50_000, IndexState(), IndexSettings(preferred=IndexKind.IVFFLAT), Action.CREATE, IndexKind.IVFFLAT, "ivfflat"),
    (5_000_000, IndexState(), SETTINGS, Action.CREATE, IndexKind.IVFFLAT, "would not fit"),
    (50_000, IndexState(IndexKind.HNSW, valid=False, model_id=1), SETTINGS, Action.REBUILD, IndexKind.HNSW, "invalid"),
    (50_000, IndexState(IndexKind.HNSW, built_rows=50_000, model_id=2, params=(("ef_construction", 64), ("m", 16))),
     SETTINGS, Action.REBUILD, IndexKind.HNSW, "another model"),
    (50_000, IndexState(IndexKind.HNSW, built_rows=50_000, model_id=1, params=(("ef_construction", 64), ("m", 16))),
     SETTINGS, Action.KEEP, IndexKind.HNSW, "fits"),
    (50_000, IndexState(IndexKind.HNSW, built_rows=50_000, model_id=1, params=(("ef_construction", 64), ("m", 8))),
     SETTINGS, Action.REBUILD, IndexKind.HNSW, "policy now wants"),
    (90_000, IndexState(IndexKind.IVFFLAT, built_rows=40_000, model_id=1, params=(("lists", 40),)),
     IndexSettings(preferred=IndexKind.IVFFLAT), Action.REBUILD, IndexKind.IVFFLAT, "stale"),
    (60_000, IndexState(IndexKind.IVFFLAT, built_rows=40_000, model_id=1, params=(("lists", 40),)),
     IndexSettings(preferred=IndexKind.IVFFLAT), Action.KEEP, IndexKind.IVFFLAT, "fits"),
    (50_000, IndexState(IndexKind.IVFFLAT, built_rows=50_000, model_id=1, params=(("lists", 50),)),
     SETTINGS, Action.REBUILD, IndexKind.HNSW, "policy now wants hnsw"),
])
def test_policy_branches(rows, current, settings, action, kind, why) -> None:
    memory = 64 * 1024**2 if why == "would not fit" else 4 * GiB
    plan = plan_index(stats(rows, memory=memory), current, settings)
    assert (plan.action, plan.kind) == (action, kind), plan
    assert why in plan.reason


def test_ivfflat_sizing() -> None:
    assert ivfflat_lists(50_000) == 50 and ivfflat_lists(1_000_000) == 1000 and ivfflat_lists(4_000_000) == 2000
    assert ivfflat_probes(100) == 10 and ivfflat_probes(1) == 1
    plan = plan_index(stats(200_000), IndexState(), IndexSettings(preferred=IndexKind.IVFFLAT))
    assert plan.spec.params_dict == {"lists": 200} and dict(plan.spec.search_params) == {"probes": 15}


@pytest.mark.parametrize("kwargs", [{"exact_max_rows": -1}, {"preferred": IndexKind.NONE}, {"hnsw_m": 1},
                                    {"hnsw_m": 40, "hnsw_ef_construction": 64}, {"rebuild_growth": 1.0}])
def test_bad_policy_settings_are_refused(kwargs) -> None:
    with pytest.raises(ConfigError):
        IndexSettings(**kwargs)


DAY = dt.date(2026, 4, 1)
ROWS = 25_000  # above the policy's exact-scan threshold, where the planner prefers the index too


@pytest.fixture(scope="module")
def indexed_db(migrated, embedder):
    """A database of its own with one day of clustered vectors: real neighbourhoods, meaningful recall."""
    isolated = fresh_database(migrated, embedder.info.dim, "docvec_index_probe")
    # Low intrinsic dimension, like sentence embeddings (the index benchmark's generator): isotropic
    # noise around a few centres makes neighbours near-ties, and recall then swings with the build.
    vectors = clustered(ROWS, seed=11)
    batch = synthetic_day(DAY, vectors, embedder.info.name, embedder.info.revision,
                          metadata=lambda i: {"shard": str(i % 20)}, documents=400)
    with connections.connect(isolated) as conn:
        model_id = model_registry.register(conn, embedder.info).id
        days.replace_day(conn, batch, model_id)
    return isolated, model_id, vectors


def plan_text(conn, vectors, model_id, **kwargs) -> str:
    return search.explain_vector(conn, vectors[0], model_id, k=10, **kwargs)


@pytest.mark.parametrize("kind", [IndexKind.HNSW, IndexKind.IVFFLAT])
def test_build_recall_plan_and_drop(indexed_db, kind) -> None:
    settings, model_id, vectors = indexed_db
    partition = layout.partition_name(DAY)
    logs: list[str] = []
    with connections.connect(settings) as conn:
        policy = IndexSettings(preferred=kind)  # the default policy: 25k rows get an index
        outcome = builds.maintain_partition(conn, partition, policy, log=logs.append)
        assert outcome.plan.action in (Action.CREATE, Action.REBUILD) and outcome.index_name
        existing = catalog.existing_vector_index(conn, partition)
        assert existing is not None and existing.state.valid and existing.state.kind == kind
        assert existing.state.built_rows == ROWS
        checked_with = dict(outcome.plan.spec.search_params)
        assert dict(existing.state.search_params) == checked_with, "the index records what its recall was checked with"
        # Search runs with exactly those parameters (it used probes = 10 whatever the index, while the
        # check measured sqrt(lists)), so the recall measured here is the recall users get.
        served = search.ann_settings(conn)
        assert (served.ef_search if kind == IndexKind.HNSW else served.probes) == next(iter(checked_with.values()))
        recall = index_measures.recall_at_k(conn, partition, samples=50)
        assert recall >= 0.95, recall
        plan = plan_text(conn, vectors, model_id)
        assert outcome.index_name in plan, "search uses the index"
        assert "'[384 dims]'::halfvec" in plan, "the query vector is elided from the printed plan"
        again = builds.maintain_partition(conn, partition, policy)
        assert again.plan.action == Action.KEEP and again.index_name == outcome.index_name

        filtered = search.search_vector(conn, vectors[0], model_id, k=10, filters={"shard": "7"})
        assert len(filtered) == 10, "iterative scans keep a 5%-selective filter from starving the results"
        assert all(h.metadata["shard"] == "7" for h in filtered)

        dropped = builds.maintain_partition(conn, partition, IndexSettings(exact_max_rows=1_000_000))
        assert dropped.plan.action == Action.DROP
        assert catalog.existing_vector_index(conn, partition) is None
        plan = plan_text(conn, vectors, model_id)
        assert "Seq Scan" in plan and "hnsw" not in plan and "ivfflat" not in plan, plan
    assert any("built" in line for line in logs)


def test_vector_index_asset_and_checks(indexed_db) -> None:
    settings, _, _ = indexed_db

    def run():
        return materialize(with_checks(vector_index_asset), partition_key=DAY.isoformat(),
                           resources={"postgres": PostgresResource(database_url=settings.database_url),
                                      "embedder": EmbedderResource(),
                                      "retention_window": RetentionResource(as_of=DAY.isoformat()),
                                      "source": SourceResource()},
                           run_config={"ops": {"vector_index": {"config": {"exact_max_rows": 1000}}}})

    result = run()
    assert result.success
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks == {"recall_at_10": True, "index_valid": True, "vectors_sane": True, "retrieval_quality": True}
    [retrieval] = [c for c in result.get_asset_check_evaluations() if c.check_name == "retrieval_quality"]
    assert "no labelled queries" in retrieval.description, "synthetic data: nothing to judge it by, and it says so"
    [event] = result.get_asset_materialization_events()
    meta = event.materialization.metadata
    assert meta["indexed_partitions"].value == 1 and meta["min_recall_at_10"].value >= 0.95
    assert meta["index_kinds"].value == "hnsw"

    # Recall is measured once, after the build, and recorded with the index; the check reads it back.
    partition = layout.partition_name(DAY)
    with connections.connect(settings) as conn:
        index = catalog.existing_vector_index(conn, partition)
        assert index.state.recall_at_10 == meta["min_recall_at_10"].value
        vector_indexes.record_recall(conn, index.name, 0.5)  # as if the build had come out poor
    again = run()
    [recall] = [c for c in again.get_asset_check_evaluations() if c.check_name == "recall_at_10"]
    assert not recall.passed and "below 0.95" in recall.description, "the kept index is not measured again"
    assert recall.metadata["recall_at_10"].value == {partition: 0.5}
    [event] = again.get_asset_materialization_events()
    assert event.materialization.metadata["actions"].value[partition].startswith("keep")


@pytest.mark.parametrize("recorded,rows,expected", [
    (64, [], 64), (64, [500], 64), (64, [500] * 2, 46), (64, [500] * 4, 32), (64, [500] * 7, 25),
    (64, [500] * 16, 16), (64, [500] * 100, 16),
    (40, [500] * 4, 20), (12, [500] * 9, 12),  # never above what the indexes record, even under the floor
    (64, [967_000, 33_000], 63),  # one block holds nearly every row: it walks nearly one index's list
    (64, [333_000] * 3 + [33_000] * 3, 36),  # three blocks and three days: about three indexes' worth
    (64, [0, 0, 0, 0], 32),  # no index knows its rows: each counts as one
])
def test_walked_ef_search(recorded, rows, expected) -> None:
    assert vector_indexes.walked_ef_search(recorded, rows) == expected


WALK_DAYS = [dt.date(2026, 5, 1) + dt.timedelta(days=n) for n in range(4)]
WALK_ROWS = 3_000  # per day, each above the policy's threshold below: four HNSW indexes


def test_a_search_over_several_indexes_walks_each_with_a_shorter_list(migrated, embedder) -> None:
    """A search whose days lie in several HNSW-indexed partitions shortens each index's candidate list
    (``walked_ef_search``) by the rows of the indexes its range walks, and still finds the exact nearest."""
    isolated = fresh_database(migrated, embedder.info.dim, "docvec_index_walk")
    policy = IndexSettings(exact_max_rows=1_000)
    with connections.connect(isolated) as conn:
        model_id = model_registry.register(conn, embedder.info).id
        for n, day in enumerate(WALK_DAYS):
            days.replace_day(conn, synthetic_day(day, clustered(WALK_ROWS, seed=50 + n), embedder.info.name,
                                                 embedder.info.revision, documents=300, doc_prefix=f"w{n}"), model_id)
            builds.maintain_partition(conn, layout.partition_name(day), policy)
        conn.execute("ANALYZE chunks")
        recorded = catalog.search_settings(conn).ef_search
        assert recorded == 64, "what the policy's HNSW indexes record (m=16)"
        walked = {(since, until): catalog.recorded_search(conn, since, until).hnsw_walked for since, until in [
            (None, None), (WALK_DAYS[2], None), (None, WALK_DAYS[0]), (WALK_DAYS[1], WALK_DAYS[2]),
            (WALK_DAYS[3] + dt.timedelta(days=1), None)]}
        assert list(walked.values()) == [4, 2, 1, 2, 0]
        assert search.ann_settings(conn).ef_search == 32
        assert search.ann_settings(conn, since=WALK_DAYS[3]).ef_search == recorded, "one index: what it records"
        assert search.ann_settings(conn, as_of=WALK_DAYS[1]).ef_search == 46, "as_of ends the days read"
        assert search.ann_settings(conn, ef_search=100).ef_search == 100, "the caller's value wins"
        plan = plan_text(conn, [clustered(1, seed=7)[0]], model_id)
        assert "docvec plan: hnsw.ef_search 32 per index over 4 HNSW indexes (the indexes record 64 for one)" in plan

        queries = clustered(30, seed=77)
        recalls = []
        for query in queries:
            with conn.transaction():  # the exact answer: no index
                conn.execute("SET LOCAL enable_indexscan = off")
                exact = {h.chunk_id for h in search.search_vector(conn, query, model_id, k=10)}
            found = search.search_vector(conn, query, model_id, k=10)
            assert len(found) == 10
            recalls.append(len(exact & {h.chunk_id for h in found}) / 10)
        assert sum(recalls) / len(recalls) >= 0.95, recalls
        pool = search.search_vector(conn, queries[0], model_id, k=50)  # hybrid's pool: more than the list per index
        assert len(pool) == 50 and len({h.chunk_id for h in pool}) == 50, "iterative scans go past ef_search"


def test_ann_settings_hold_for_the_transaction_only(migrated) -> None:
    """A search's ANN settings (one statement) apply inside its transaction and are gone after it: a pooled
    connection's next user, a PgBouncer transaction's next client, starts from the server's own."""
    with connections.connect(migrated) as conn:
        conn.execute("SELECT NULL::halfvec")  # pgvector loaded: its settings are real, not placeholders
        settings = ["work_mem", "hnsw.ef_search", "ivfflat.probes", "hnsw.iterative_scan", "ivfflat.iterative_scan"]

        def current() -> list[str]:
            return [conn.execute("SELECT current_setting(%s)", (name,)).fetchone()[0] for name in settings]

        before = current()
        with conn.transaction():
            vector_indexes.apply_ann_settings(conn, vector_indexes.AnnSettings(ef_search=77, probes=9))
            assert current() == ["64MB", "77", "9", "relaxed_order", "relaxed_order"]
        assert current() == before
        with conn.transaction():
            vector_indexes.apply_ann_settings(conn, vector_indexes.AnnSettings(ef_search=33, probes=2),
                                              iterative=False)
            assert current()[1:] == ["33", "2", *before[3:]], "an index's recall check walks without iterating"
        with pytest.raises(psycopg.errors.InvalidParameterValue), conn.transaction():
            vector_indexes.apply_ann_settings(conn, vector_indexes.AnnSettings(ef_search=0))
