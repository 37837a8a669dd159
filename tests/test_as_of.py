"""Search as of a day (``as_of``): the store as it was once that day was loaded. Each document's latest
version stored on or before the day, unless a tombstone dated by then deleted it; versions and
tombstones of later days are ignored. The same SQL scope serves the vector, text and hybrid branches and
the context window; every face takes the option (Python, ``docvec search --as-of``, ``docvec serve``).
A day before the retention horizon (history purged) is refused, never answered from a partial past."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient

from pipeline.api.app import create_app
from pipeline.cli.main import main
from pipeline.errors import ConfigError
from pipeline.ingest import deletions
from pipeline.ingest.landing_zone import open_landing
from pipeline.ingest.planning import ReadOptions, Recipe
from pipeline.ops import ingest_steps, loading
from pipeline.query import search
from pipeline.query.request import request
from pipeline.query.search_model import model_source
from pipeline.query.service import PooledConnections, SearchService
from pipeline.storage import connections
from pipeline.storage.layout import partition_name
from tests.support.sample import day_folder

MODES = ("vector", "text", "hybrid")
D1, D2, D3 = dt.date(2026, 5, 21), dt.date(2026, 5, 22), dt.date(2026, 5, 23)
HERON = "asof-heron.md"
NEWT = "asof-newt.md"
V1 = "The heron rookery census counted ninety nests on the river island."
V2 = "The heron rookery census, revised: one hundred and twelve nests on the river island."
NEWT_TEXT = "The newt pond survey found crested newts under every flat stone."
HERON_QUERY = "heron rookery census nests"
NEWT_QUERY = "newt pond survey crested newts"


@pytest.fixture(scope="module")
def history(migrated, embedder, chunking_config, tmp_path_factory) -> Path:
    """Three day folders loaded as the assets load them: the heron census landed on D1, edited on D2,
    deleted on D3 by the day's manifest; the newt survey added on D3."""
    landing = tmp_path_factory.mktemp("as_of_landing")
    (day_folder(landing, D1) / HERON).write_text(V1)
    (day_folder(landing, D2) / HERON).write_text(V2)
    (day_folder(landing, D3) / NEWT).write_text(NEWT_TEXT)
    (day_folder(landing, D3) / deletions.MANIFEST).write_text(f"{HERON}\n")
    recipe = Recipe(chunking_config, embedder.info, contextual=embedder.contextual)
    with connections.connect(migrated) as conn:
        for day in (D1, D2, D3):
            plans = ingest_steps.read_days(conn, open_landing(str(landing)), [day], recipe, ReadOptions()).plans
            chunks = ingest_steps.chunk_days(plans, embedder.backend_tokenizer).batches
            loading.load_days(conn, ingest_steps.embed_days(conn, chunks, lambda: embedder, log=lambda _: None).batches)
    return landing


@contextmanager
def purged_before(conn: psycopg.Connection, horizon: dt.date) -> Iterator[None]:
    """A retention run recorded as having purged the history from before ``horizon``."""
    (row_id,) = conn.execute("INSERT INTO history_purges (horizon, mode, versions, chunks) "
                             "VALUES (%s, 'days', 0, 0) RETURNING id", (horizon,)).fetchone()
    try:
        yield
    finally:
        conn.execute("DELETE FROM history_purges WHERE id = %s", (row_id,))


def found(conn: psycopg.Connection, embedder, query: str, doc_id: str, **options) -> dict[str, list[tuple[dt.date, str]]]:
    """Per search mode, the hits of ``doc_id`` for ``query``: (day, text)."""
    return {mode: [(h.ingest_date, h.text) for h in search.search(conn, embedder, query, k=20, mode=mode, **options)
                   if h.doc_id == doc_id] for mode in MODES}


def every_mode(*hits: tuple[dt.date, str]) -> dict[str, list[tuple[dt.date, str]]]:
    return {mode: list(hits) for mode in MODES}


def test_as_of_a_day_is_the_store_as_it_was_then_in_every_mode(history, conn, embedder) -> None:
    assert found(conn, embedder, HERON_QUERY, HERON) == every_mode(), "deleted on D3: gone now"
    assert found(conn, embedder, HERON_QUERY, HERON, as_of=D1) == every_mode((D1, V1)), \
        "as of D1: its first version (the D2 edit and the D3 tombstone are later)"
    assert found(conn, embedder, HERON_QUERY, HERON, as_of=D2) == every_mode((D2, V2)), \
        "as of D2: the edit only (the D3 tombstone is later)"
    assert found(conn, embedder, HERON_QUERY, HERON, as_of=D3) == every_mode(), "as of D3: deleted"

    assert found(conn, embedder, NEWT_QUERY, NEWT, as_of=D2) == every_mode(), "added on D3: not there as of D2"
    assert found(conn, embedder, NEWT_QUERY, NEWT, as_of=D3) == every_mode((D3, NEWT_TEXT))
    assert found(conn, embedder, NEWT_QUERY, NEWT, as_of=D3 + dt.timedelta(days=400)) == \
        found(conn, embedder, NEWT_QUERY, NEWT) == every_mode((D3, NEWT_TEXT)), "a future day is now"

    # since/until filter the versions as of the day, on top: as of D2 the live version is D2's.
    assert found(conn, embedder, HERON_QUERY, HERON, as_of=D2, until=D1) == every_mode(), "D1's is superseded by then"
    assert found(conn, embedder, HERON_QUERY, HERON, as_of=D2, since=D2, until=D3) == every_mode((D2, V2))
    assert found(conn, embedder, HERON_QUERY, HERON, as_of=D1, filters={"title": "nothing such"}) == every_mode()

    [hit] = [h for h in search.search(conn, embedder, HERON_QUERY, k=20, as_of=D1, window=1) if h.doc_id == HERON]
    assert [c["text"] for c in hit.context or []] == [V1], "the context window is the as-of version's"

    *plans, order = SearchService.over(conn, embedder).search(request(HERON_QUERY, as_of=D1), explain=True).plans
    assert len(plans) == 2, "hybrid: the vector and the text branch"
    assert order.startswith("order: "), "then how the list was ordered"
    for plan in plans:
        assert plan.count("Anti Join") == 2, f"versions and tombstones stay anti joins:\n{plan}"
        assert partition_name(D1) in plan and partition_name(D2) not in plan and partition_name(D3) not in plan, \
            f"the days after as_of are pruned:\n{plan}"


def test_as_of_before_the_retention_horizon_or_with_a_later_since_is_refused(history, conn, embedder) -> None:
    with purged_before(conn, D2):
        with pytest.raises(ConfigError) as refused:
            search.search(conn, embedder, HERON_QUERY, mode="text", as_of=D1)
        message = str(refused.value)
        assert f"as_of {D1}" in message and f"retention horizon {D2}" in message and "or later" in message
        assert found(conn, embedder, HERON_QUERY, HERON, as_of=D2) == every_mode((D2, V2)), "the horizon itself is kept"
        assert found(conn, embedder, HERON_QUERY, HERON) == every_mode(), "without as_of: the store now, as ever"
    assert found(conn, embedder, HERON_QUERY, HERON, as_of=D1)["text"] == [(D1, V1)], "no purge recorded: answered"
    with pytest.raises(ConfigError, match=f"since {D2} is after as_of {D1}"):
        search.search(conn, embedder, HERON_QUERY, mode="text", as_of=D1, since=D2)


def test_the_command_line_takes_as_of(history, migrated, conn, capsys) -> None:
    home = ["--home", str(migrated.home)]
    assert main([*home, "search", HERON_QUERY, "--mode", "text", "-k", "20", "--json", "--as-of", str(D1)]) == 0
    hits = [(h["ingest_date"], h["text"]) for h in json.loads(capsys.readouterr().out) if h["doc_id"] == HERON]
    assert hits == [(str(D1), V1)]
    with purged_before(conn, D2):
        assert main([*home, "search", HERON_QUERY, "--mode", "text", "--as-of", str(D1)]) == 2
        assert f"retention horizon {D2}" in capsys.readouterr().err


def test_the_http_api_takes_as_of(history, migrated, conn, embedder) -> None:
    service = SearchService(PooledConnections(connections.search_pool(migrated, max_size=2)), model_source(embedder))
    with TestClient(create_app(service)) as client:
        answer = client.get("/search", params={"q": HERON_QUERY, "k": 20, "as_of": str(D1)})
        assert answer.status_code == 200
        assert [(h["ingest_date"], h["text"]) for h in answer.json()["hits"] if h["doc_id"] == HERON] == [(str(D1), V1)]
        answer = client.post("/search", json={"q": HERON_QUERY, "k": 20, "mode": "text", "as_of": str(D2)})
        assert answer.status_code == 200
        assert [(h["ingest_date"], h["text"]) for h in answer.json()["hits"] if h["doc_id"] == HERON] == [(str(D2), V2)]
        with purged_before(conn, D2):
            refused = client.get("/search", params={"q": HERON_QUERY, "as_of": str(D1)})
            assert refused.status_code == 400 and f"retention horizon {D2}" in refused.json()["detail"]
        refused = client.post("/search", json={"q": HERON_QUERY, "as_of": str(D1), "since": str(D3)})
        assert refused.status_code == 400 and f"since {D3} is after as_of {D1}" in refused.json()["detail"]
