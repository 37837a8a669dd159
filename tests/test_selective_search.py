"""A search as principals who may read few documents is answered exactly from the readable ones
(storage/readable_search.py; issue #28's 1%-within-2× target): both plans return the same hits for the
same caller and scope, the exact one honours every Scope rule (latest version, tombstones, as_of,
since/until, filters), a caller who may read nothing gets no hits without a search, ``--explain`` says
which plan ran, and the probe finds the readable versions in the GIN index on ``readers`` (migration
0014). The property-based leakage test in tests/test_permissions.py runs over both plans."""

from __future__ import annotations

import datetime as dt

import pytest

from pipeline.ingest import deletions
from pipeline.ingest.landing import LocalLanding
from pipeline.query import search
from pipeline.query.request import request
from pipeline.query.service import SearchService
from pipeline.settings import Settings
from pipeline.storage import access, connections, readable_search
from tests.support.databases import fresh_database
from tests.support.engine_runs import run_days
from tests.support.sample import day_folder

D1, D2, D3 = dt.date(2026, 8, 1), dt.date(2026, 8, 2), dt.date(2026, 8, 3)
QUERY = "the harbour schedule note"
EXACT, WALK = 10**9, 0  # EXACT_MAX_READABLE_CHUNKS that forces each plan (0: only "nothing readable" skips the walk)
READERS = {"doc-a.md": ["alice"], "doc-b.md": ["alice", "group:ops"], "doc-c.md": ["bob"], "doc-d.md": ["*"],
           "doc-e.md": ["alice"], "doc-f.md": ["group:ops"]}


@pytest.fixture(scope="module")
def store(migrated, embedder, tmp_path_factory) -> Settings:
    """Three days: doc-a changed on D2 (two versions), doc-b deleted by D2's manifest, doc-e and doc-f
    first landed on D3."""
    base = fresh_database(migrated, embedder.info.dim, "docvec_selective")
    landing = tmp_path_factory.mktemp("landing")
    texts = {D1: {"doc-a.md": "first draft", "doc-b.md": "ferry timetable", "doc-c.md": "crane rota",
                  "doc-d.md": "pilot boarding"},
             D2: {"doc-a.md": "second draft, revised"},
             D3: {"doc-e.md": "tug bookings", "doc-f.md": "berth allocation"}}
    for day, files in texts.items():
        for name, words in files.items():
            (day_folder(landing, day) / name).write_text(f"# {name}\n\nThe harbour schedule note: {words}.")
    (day_folder(landing, D2) / deletions.MANIFEST).write_text("doc-b.md\n")
    with connections.connect(base) as conn:
        run_days(conn, LocalLanding(landing), [D1, D2, D3], embedder)
        with conn.transaction():
            for doc_id, names in READERS.items():
                conn.execute("UPDATE documents SET readers = %s WHERE doc_id = %s", (names, doc_id))
    return base


def hits(settings: Settings, embedder, limit: int, monkeypatch, principals, **options) -> list[tuple[str, dt.date]]:
    monkeypatch.setattr(readable_search, "EXACT_MAX_READABLE_CHUNKS", limit)
    with connections.connect(settings) as conn:
        found = search.search(conn, embedder, QUERY, mode="vector", principals=principals, **{"k": 10, **options})
    return [(h.doc_id, h.ingest_date) for h in found]


def plan(settings: Settings, embedder, limit: int, monkeypatch, principals, **options) -> str:
    monkeypatch.setattr(readable_search, "EXACT_MAX_READABLE_CHUNKS", limit)
    with connections.connect(settings) as conn:
        result = SearchService.over(conn, embedder).search(request(QUERY, mode="vector", **options), explain=True,
                                                           principals=principals)
    return result.plans[0]


SCOPES = ({}, {"k": 2}, {"as_of": D1}, {"as_of": D2}, {"since": D2}, {"until": D1}, {"since": D1, "until": D2},
          {"filters": {"path": "doc-a.md"}}, {"filters": {"path": "doc-e.md"}, "as_of": D2},
          # k=1: with a pool of k, only scope conditions applied inside the pool keep the hit right.
          {"k": 1}, {"k": 1, "since": D2}, {"k": 1, "until": D1}, {"k": 1, "as_of": D1},
          {"k": 1, "filters": {"path": "doc-a.md"}}, {"k": 1, "filters": {"path": "doc-d.md"}})


@pytest.mark.parametrize("pool_factor", [readable_search.POOL_FACTOR, 1])
@pytest.mark.parametrize("principals", [["alice"], ["group:ops"], ["bob", "group:ops"], ["carol"]])
def test_both_plans_return_the_same_hits_in_every_scope(store, embedder, monkeypatch, principals, pool_factor) -> None:
    """With the default pool and with a pool of k (which sends every scope where a superseded or deleted
    version is among the nearest k readable chunks to the complete statement)."""
    monkeypatch.setattr(readable_search, "POOL_FACTOR", pool_factor)
    for options in SCOPES:
        exact = hits(store, embedder, EXACT, monkeypatch, principals, **options)
        walked = hits(store, embedder, WALK, monkeypatch, principals, **options)
        assert exact == walked, (principals, options)


def test_the_exact_plan_honours_versions_tombstones_dates_and_filters(store, embedder, monkeypatch) -> None:
    alice = ["alice"]
    assert "docvec plan: exact nearest" in plan(store, embedder, EXACT, monkeypatch, alice)
    now = hits(store, embedder, EXACT, monkeypatch, alice)
    assert sorted(now) == [("doc-a.md", D2), ("doc-d.md", D1), ("doc-e.md", D3)], \
        "doc-a's latest version only; doc-b deleted; doc-c and doc-f not alice's"
    assert sorted(hits(store, embedder, EXACT, monkeypatch, alice, as_of=D1)) == [
        ("doc-a.md", D1), ("doc-b.md", D1), ("doc-d.md", D1)], "as of D1: the first version, before the deletion"
    assert sorted(hits(store, embedder, EXACT, monkeypatch, alice, since=D2)) == [("doc-a.md", D2), ("doc-e.md", D3)]
    assert sorted(hits(store, embedder, EXACT, monkeypatch, alice, until=D1)) == [("doc-d.md", D1)], \
        "until D1: doc-a's first version is not its latest, so it is not there"
    assert hits(store, embedder, EXACT, monkeypatch, alice, filters={"path": "doc-e.md"}) == [("doc-e.md", D3)]
    assert len(hits(store, embedder, EXACT, monkeypatch, alice, k=1)) == 1


def test_the_version_rules_cover_every_readable_version_when_the_pool_holds_too_few(store, embedder,
                                                                                    monkeypatch) -> None:
    """alice may read five chunks: doc-a's two versions, doc-b's (deleted on D2), doc-d's and doc-e's. A
    pool of 5 for k=5 holds all five but only three current versions, and it is full, so a sixth chunk
    could be current: the complete statement answers, with the same three hits."""
    alice = ["alice"]
    current = [("doc-a.md", D2), ("doc-d.md", D1), ("doc-e.md", D3)]
    monkeypatch.setattr(readable_search, "POOL_FACTOR", 1)
    assert sorted(hits(store, embedder, EXACT, monkeypatch, alice, k=5)) == current
    assert "held fewer than 5 current versions" in plan(store, embedder, EXACT, monkeypatch, alice, k=5)
    # The nearest readable chunk to doc-a's first draft is that superseded version itself: a pool of one
    # holds no current version, and the answer comes from the complete statement.
    monkeypatch.setattr(readable_search, "EXACT_MAX_READABLE_CHUNKS", EXACT)
    with connections.connect(store) as conn:
        found = search.search(conn, embedder, "# doc-a.md The harbour schedule note: first draft.", mode="vector",
                              k=1, principals=alice)
    assert [(h.doc_id, h.ingest_date) for h in found] == [("doc-a.md", D2)]
    monkeypatch.setattr(readable_search, "POOL_FACTOR", 2)
    assert sorted(hits(store, embedder, EXACT, monkeypatch, alice, k=5)) == current, "a pool of 10 held them all"
    assert "version rules tested on the nearest 10 readable chunks" in plan(store, embedder, EXACT, monkeypatch,
                                                                          alice, k=5)


def test_the_exact_plan_returns_the_true_nearest_readable_chunks(store, embedder, monkeypatch) -> None:
    """Unrestricted (the owner's exact scan of these unindexed days) and then kept to what alice may read:
    the exact plan's hits, in the same order, with the same distances."""
    with connections.connect(store) as conn:
        everything = search.search(conn, embedder, QUERY, mode="vector", k=50)
    readable = [h for h in everything if "alice" in READERS[h.doc_id] or "*" in READERS[h.doc_id]]
    monkeypatch.setattr(readable_search, "EXACT_MAX_READABLE_CHUNKS", EXACT)
    with connections.connect(store) as conn:
        exact = search.search(conn, embedder, QUERY, mode="vector", k=50, principals=["alice"])
    assert [(h.chunk_id, round(h.similarity or 0, 5)) for h in exact] == \
        [(h.chunk_id, round(h.similarity or 0, 5)) for h in readable]


def test_a_caller_who_may_read_nothing_gets_no_hits_without_a_search(store, embedder, monkeypatch) -> None:
    with connections.connect(store) as owner:
        owner.execute("UPDATE documents SET readers = '{dave}' WHERE doc_id = 'doc-d.md'")  # no public document
        try:
            for limit in (EXACT, WALK):
                assert hits(store, embedder, limit, monkeypatch, ["nobody"]) == []
                assert plan(store, embedder, limit, monkeypatch, ["nobody"]).startswith("docvec plan: nothing readable")
            with connections.connect(store) as conn, access.acting_as(conn, ["nobody"]):
                assert readable_search.readable_share(conn).versions == 0
        finally:
            owner.execute("UPDATE documents SET readers = '{*}' WHERE doc_id = 'doc-d.md'")


def test_explain_shows_the_plan_that_ran(store, embedder, monkeypatch) -> None:
    exact = plan(store, embedder, EXACT, monkeypatch, ["alice"])
    # Every version alice may read counts (doc-a's two, doc-b's deleted one): a bound on the exact plan's work.
    assert exact.startswith("docvec plan: exact nearest over the 5 readable chunks of 5 document versions"), exact
    assert "version rules tested on the nearest 40 readable chunks" in exact, exact
    assert "documents_doc_latest_idx" in exact or "documents d" in exact, "the latest-version rule ran on the pool"
    walked = plan(store, embedder, WALK, monkeypatch, ["alice"])
    assert walked.startswith("docvec plan: vector index walk"), walked
    with connections.connect(store) as conn:  # the owner: no probe, the walk's plan as before
        owner = SearchService.over(conn, embedder).search(request(QUERY, mode="vector"), explain=True)
    assert not owner.plans[0].startswith("docvec plan")


def test_the_probe_finds_the_readable_versions_in_the_readers_index(store) -> None:
    """Migration 0014: the GIN index on readers, and a documents policy it can answer (migration 0012's
    ``... OR '*' = ANY(readers)`` cannot use it). Without either, this plan is a sequential scan."""
    with connections.connect(store) as conn, access.acting_as(conn, ["group:ops"]):
        conn.execute("SET LOCAL enable_seqscan = off")
        shown = "\n".join(r[0] for r in conn.execute("EXPLAIN " + readable_search.PROBE, (10,)))
        assert "documents_readers_idx" in shown, shown
        assert readable_search.readable_share(conn).versions == 3, "doc-b, doc-d (public) and doc-f"


def test_a_caller_the_planner_expects_to_read_far_more_than_the_bound_walks_without_the_probe(
        store, embedder, monkeypatch) -> None:
    """With a bound of 1 readable chunk, alice (5 chunks) is expected to read over ESTIMATE_MARGIN times
    as many: the walk runs without counting, says so, and returns what the exact plan returns."""
    monkeypatch.setattr(readable_search, "ESTIMATE_MARGIN", 1)
    with connections.connect(store) as conn:
        conn.execute("ANALYZE chunks")
        with access.acting_as(conn, ["alice"]):
            expected = readable_search.expected_readable_chunks(conn)
    assert expected >= 2, "the planner's estimate, from the statistics of chunks.readers"
    shown = plan(store, embedder, 1, monkeypatch, ["alice"])
    assert shown.startswith("docvec plan: vector index walk (HNSW iterative scan): the planner expects"), shown
    assert hits(store, embedder, 1, monkeypatch, ["alice"]) == hits(store, embedder, EXACT, monkeypatch, ["alice"])


def test_the_tenant_condition_is_an_index_condition_not_a_filter_per_row(store) -> None:
    """Migration 0018: the readers and tenant conditions are one restrictive policy, so both reach the GIN
    index on ``chunks.readers`` (computed once per scan); as two policies the tenant's was a second
    security level, tested on every row (no array operator is leakproof)."""
    with connections.connect(store) as conn:
        policies = conn.execute("SELECT tablename, count(*) FROM pg_policies WHERE 'docvec_reader' = ANY(roles) "
                                "AND tablename IN ('chunks', 'documents') GROUP BY tablename").fetchall()
        assert sorted(policies) == [("chunks", 1), ("documents", 1)]
        for tenant in (None, "acme"):
            with access.acting_as(conn, ["group:ops"], tenant=tenant):
                conn.execute("SET LOCAL enable_seqscan = off")
                shown = "\n".join(r[0] for r in conn.execute("EXPLAIN SELECT chunk_id FROM chunks"))
            index_conditions = [line for line in shown.splitlines() if "Index Cond" in line]
            assert index_conditions and all("docvec.tenant" in line for line in index_conditions), shown
            assert not any("Filter" in line and "docvec.tenant" in line for line in shown.splitlines()), shown


def test_a_callers_share_is_reused_for_a_while_but_never_a_share_of_nothing(store, embedder, monkeypatch) -> None:
    """The probe runs once per caller and database for SHARE_REUSE_SECONDS; a caller who could read nothing
    is counted at every search, so a grant shows at the next one."""
    counted: list[str] = []
    count = readable_search.counted_share
    monkeypatch.setattr(readable_search, "counted_share", lambda conn: counted.append("probe") or count(conn))
    alice = hits(store, embedder, EXACT, monkeypatch, ["alice"])
    assert hits(store, embedder, EXACT, monkeypatch, ["alice"]) == alice and len(counted) == 1
    assert "as counted by this caller's search under 60 s ago" in plan(store, embedder, EXACT, monkeypatch, ["alice"])
    hits(store, embedder, EXACT, monkeypatch, ["bob"])
    hits(store, embedder, WALK, monkeypatch, ["alice"])
    monkeypatch.setattr(readable_search, "EXACT_MAX_READABLE_CHUNKS", EXACT)
    with connections.connect(store) as conn:
        SearchService.over(conn, embedder).search(request(QUERY, mode="vector"), principals=["alice"], tenant="acme")
    assert len(counted) == 4, "another caller, another bound, another tenant: counted"
    with connections.connect(store) as owner:
        owner.execute("UPDATE documents SET readers = '{alice,bob}' WHERE doc_id = 'doc-c.md'")
        owner.execute("SELECT pg_stat_force_next_flush()")  # the statistics hold the write now, not in ~10 s
        try:
            assert ("doc-c.md", D1) in hits(store, embedder, EXACT, monkeypatch, ["alice"])
            assert len(counted) == 5, "documents written (a grant): counted afresh"
        finally:
            owner.execute("UPDATE documents SET readers = '{bob}' WHERE doc_id = 'doc-c.md'")
    monkeypatch.setattr(readable_search, "SHARE_REUSE_SECONDS", 0)
    hits(store, embedder, EXACT, monkeypatch, ["alice"])
    hits(store, embedder, EXACT, monkeypatch, ["alice"])
    assert len(counted) == 7, "0: counted for every search"
    monkeypatch.setattr(readable_search, "SHARE_REUSE_SECONDS", 60)
    with connections.connect(store) as owner:
        owner.execute("UPDATE documents SET readers = '{dave}' WHERE doc_id = 'doc-d.md'")  # no public document
        try:
            assert hits(store, embedder, EXACT, monkeypatch, ["nobody"]) == []
            owner.execute("UPDATE documents SET readers = '{nobody}' WHERE doc_id = 'doc-c.md'")
            assert hits(store, embedder, EXACT, monkeypatch, ["nobody"]) == [("doc-c.md", D1)], "granted: seen at once"
            assert len(counted) == 9
        finally:
            owner.execute("UPDATE documents SET readers = '{*}' WHERE doc_id = 'doc-d.md'")
            owner.execute("UPDATE documents SET readers = '{bob}' WHERE doc_id = 'doc-c.md'")
