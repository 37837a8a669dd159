"""Index lifecycle: the pure policy branch by branch, then builds, recall and plans on a real server."""

from __future__ import annotations

import datetime as dt

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
from resources import EmbedderResource, PostgresResource, RetentionResource
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
                                      "retention_window": RetentionResource(as_of=DAY.isoformat())},
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
