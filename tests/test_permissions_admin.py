"""Readers visible to an admin (#28, item 1): ``docvec search --json`` gives each hit's document version's
readers, read in one query as the connection's own role, or as the ``--as`` principals, who then see the
readers only of versions they may read anyway."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from pipeline.cli.main import main
from pipeline.cli.query_commands import hit_readers
from pipeline.ingest.landing import LocalLanding
from pipeline.ingest.permissions import PermissionSettings
from pipeline.ingest.planning import ReadOptions
from pipeline.query import search
from pipeline.settings import Settings
from pipeline.storage import connections
from tests.support.databases import fresh_database
from tests.support.engine_runs import run_days
from tests.support.sample import day_folder

DAY = dt.date(2026, 7, 2)
DOCS = {
    "hr.md": "---\nreaders: [group:hr, alice]\n---\n\n# Pay\n\nThe harbour quillmont payroll note.",
    "open.md": "# Open\n\nThe harbour quillmont timetable for everyone.",
    "board.md": "---\nreaders: [group:board]\n---\n\n# Deck\n\nThe harbour quillmont board deck.",
}


@pytest.fixture(scope="module")
def store(migrated, embedder, tmp_path_factory) -> Settings:
    base = fresh_database(migrated, embedder.info.dim, "docvec_permissions_admin")
    landing = tmp_path_factory.mktemp("landing")
    folder = day_folder(landing, DAY)
    for name, text in DOCS.items():
        (folder / name).write_text(text)
    (folder / ".docvec-readers").write_text("open.md *\n")
    with connections.connect(base) as conn:
        run_days(conn, LocalLanding(landing), [DAY], embedder,
                 options=ReadOptions(permissions=PermissionSettings(enabled=True)))
    return base


def searched(capsys, *args: str) -> dict[str, list[str] | None]:
    assert main(["search", "quillmont", "--mode", "text", "--json", *args]) == 0
    return {hit["doc_id"]: hit["readers"] for hit in json.loads(capsys.readouterr().out)}


def test_search_json_shows_each_hits_readers_to_an_admin(store, capsys, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DATABASE_URL", store.database_url)
    monkeypatch.setenv("DOCVEC_HOME", str(tmp_path))
    assert searched(capsys) == {"hr.md": ["alice", "group:hr"], "open.md": ["*"], "board.md": ["group:board"]}
    assert searched(capsys, "--as", "alice") == {"hr.md": ["alice", "group:hr"], "open.md": ["*"]}
    assert searched(capsys, "--as", "bob") == {"open.md": ["*"]}
    assert main(["search", "quillmont", "--mode", "text"]) == 0
    assert "readers" not in capsys.readouterr().out, "the plain listing is unchanged"


def test_readers_as_principals_are_only_those_they_may_read(store, embedder) -> None:
    with connections.connect(store) as conn:
        hits = search.search(conn, embedder, "quillmont", mode="text", k=10)
        assert {hit.doc_id for hit in hits} == set(DOCS)
        assert hit_readers(conn, hits, ["bob"]) == {("open.md", DAY): ("*",)}, "bob learns nothing of hr or board"
        assert hit_readers(conn, hits, None)[("board.md", DAY)] == ("group:board",)
        assert hit_readers(conn, [], ["bob"]) == {}
