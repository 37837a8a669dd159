"""Permissions enforced by PostgreSQL (issue #28, item 2 and part of 5): a search as principals runs as
``docvec_reader`` with row-level security deciding every row; tests try to get in. Property-based:
over random readers for every document and random callers, no hit of any mode or option is ever a
document the caller may not read, and the caller finds every document it may read. A direct SQL
session in the reader role sees nothing without principals, and nothing through a partition.

(Who may read comes with the documents at ingest: tests/test_permissions_ingest.py. Here the readers
are set on the stored versions directly, the way an admin fix would, to aim at enforcement alone.)"""

from __future__ import annotations

import datetime as dt
import json
import os
import uuid
from collections.abc import Sequence
from pathlib import Path

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pgvector import SparseVector
from psycopg import sql
from sqlalchemy.engine import make_url

from pipeline.errors import ConfigError
from pipeline.ingest.landing import LocalLanding
from pipeline.lexical.bm25 import query_terms
from pipeline.lexical.terms import TERM_SPACE
from pipeline.query import search
from pipeline.query.request import request
from pipeline.query.service import SearchService
from pipeline.settings import Settings
from pipeline.storage import connections, readable_search, urls
from tests.support.databases import fresh_database
from tests.support.engine_runs import run_days
from tests.support.readers_store import chunks_out_of_step
from tests.support.sample import day_folder

DAY = dt.date(2026, 7, 1)
PRINCIPALS = ("alice", "bob", "carol", "group:hr", "group:eng", "tenant:acme", "tenant:globex")
# One document per unique word; every document also says "harbour schedule" (a query all of them match).
WORDS = ("amberlith", "brontavel", "corvessa", "dumaquil", "estrovine", "falquarry", "gintober", "hollistrum",
         "ivorquane", "jastremel")
MODES = ("text", "vector", "hybrid")


@pytest.fixture(scope="module")
def store(migrated, embedder, tmp_path_factory) -> Settings:
    """Ten one-chunk documents in one day, loaded through the engine."""
    base = fresh_database(migrated, embedder.info.dim, "docvec_permissions")
    landing = tmp_path_factory.mktemp("landing")
    folder = day_folder(landing, DAY)
    for n, word in enumerate(WORDS):
        (folder / f"doc-{n}.md").write_text(f"# Note {n}\n\nThe harbour schedule note {word} is kept by the desk.")
    with connections.connect(base) as conn:
        run_days(conn, LocalLanding(landing), [DAY], embedder)
    return base


@pytest.fixture(scope="module")
def reader_login(migrated):
    """A login in docvec_reader, as a DBA would create one for an application."""
    role, password = f"docvec_perm_reader_{os.getpid()}", uuid.uuid4().hex
    with psycopg.connect(urls.server_url(migrated), autocommit=True) as admin:
        admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {} IN ROLE docvec_reader").format(
            sql.Identifier(role), sql.Literal(password)))
    yield role, password
    with psycopg.connect(urls.server_url(migrated), autocommit=True) as admin:
        admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def set_readers(conn: psycopg.Connection, readers: dict[str, Sequence[str]]) -> None:
    """The stored versions' readers, as the owner sets them."""
    with conn.transaction():
        for doc_id, names in readers.items():
            conn.execute("UPDATE documents SET readers = %s WHERE doc_id = %s", (sorted(names), doc_id))


def may_read(readers: Sequence[str], principals: Sequence[str]) -> bool:
    return "*" in readers or bool(set(readers) & set(principals))


readers_strategy = st.lists(st.sets(st.sampled_from((*PRINCIPALS, "*")), max_size=3), min_size=len(WORDS),
                            max_size=len(WORDS))
caller_strategy = st.sets(st.sampled_from(PRINCIPALS), min_size=1, max_size=3)


@pytest.fixture(params=["index walk", "exact"])
def vector_plan(request, monkeypatch) -> str:
    """Each plan a vector search as principals may take (storage/readable_search.py), forced."""
    monkeypatch.setattr(readable_search, "EXACT_MAX_READABLE_CHUNKS", 0 if request.param == "index walk" else 10**9)
    return str(request.param)


@settings(max_examples=20, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(assigned=readers_strategy, caller=caller_strategy)
def test_no_search_ever_returns_what_the_caller_may_not_read(store, embedder, vector_plan, assigned, caller) -> None:
    readers = {f"doc-{n}.md": sorted(names) for n, names in enumerate(assigned)}
    readable = {doc for doc, names in readers.items() if may_read(names, sorted(caller))}
    with connections.connect(store) as conn:
        set_readers(conn, readers)
        for mode in MODES:
            for options in ({}, {"documents": True}, {"window": 1}, {"per_doc": 1, "k": 20},
                            {"filters": {"path": "doc-3.md"}}):
                hits = search.search(conn, embedder, "harbour schedule note", mode=mode, principals=sorted(caller),
                                     **{"k": 10, **options})
                seen = {h.doc_id for h in hits}
                assert seen <= readable, (mode, options, seen - readable)
                for hit in hits:  # neighbours come from the hit's own (readable) version: its word only
                    word = WORDS[int(hit.doc_id[4:-3])]
                    assert all(word in c["text"] for c in hit.context or ()), (mode, options)
            if mode == "text":  # every readable document is found by its own word; no other one by it
                for n, word in enumerate(WORDS):
                    found = [h.doc_id for h in search.search(conn, embedder, word, mode=mode, k=3,
                                                             principals=sorted(caller))]
                    doc = f"doc-{n}.md"
                    assert (doc in found) == (doc in readable), (mode, word, found)
            if mode == "hybrid":  # the feedback terms --explain names come from readable chunks only
                explained = SearchService.over(conn, embedder).search(
                    request("harbour schedule note"), explain=True, principals=sorted(caller)).plans[-1]
                hidden = {WORDS[n] for n in range(len(WORDS)) if f"doc-{n}.md" not in readable}
                assert not {w for w in hidden if w in explained}, (explained, hidden)
            everything = {h.doc_id for h in search.search(conn, embedder, "harbour schedule note", mode=mode, k=10,
                                                          principals=sorted(caller))}
            assert everything == readable, f"{mode}: each principal sees all it may read"


def test_a_reader_session_sees_nothing_without_principals(store, embedder, reader_login) -> None:
    role, password = reader_login
    url = make_url(store.database_url).set(username=role, password=password).render_as_string(hide_password=False)
    with connections.connect(store) as owner:
        set_readers(owner, {f"doc-{n}.md": ["group:hr"] for n in range(len(WORDS))} | {"doc-0.md": ["*"]})
        partitions = [r[0] for r in owner.execute(
            "SELECT c.relname FROM pg_inherits h JOIN pg_class c ON c.oid = h.inhrelid "
            "WHERE h.inhparent = 'chunks'::regclass")]
        owner.execute("INSERT INTO dead_letters (source_uri, ingest_date, stage, error) "
                      "VALUES ('2026-07-01/hr/secret-plan.pdf', %s, 'read', 'encrypted') ON CONFLICT DO NOTHING", (DAY,))
    with psycopg.connect(url, autocommit=True) as reader:
        assert reader.execute("SELECT count(DISTINCT doc_id) FROM chunks").fetchone()[0] == 1, "only the public one"
        assert [r[0] for r in reader.execute(
            "SELECT DISTINCT doc_id FROM docvec_readable_text_matches(%s, '[]', %s::sparsevec, %s, NULL, NULL, NULL, "
            "'[]', NULL)", (HARBOUR, HARBOUR_WEIGHTS, model_id(store)))] == ["doc-0.md"], "the text function too"
        assert [r[0] for r in reader.execute("SELECT doc_id FROM documents")] == ["doc-0.md"]
        assert reader.execute("SELECT count(*) FROM dead_letters").fetchone()[0] == 0, "failed files' paths are hidden"
        reader.execute("SELECT set_config('docvec.principals', '{group:hr}', false)")
        assert reader.execute("SELECT count(DISTINCT doc_id) FROM chunks").fetchone()[0] == len(WORDS)
        reader.execute("SELECT set_config('docvec.principals', '{\"x\"} OR true', false)")  # not an array: refused
        with pytest.raises(psycopg.errors.InvalidTextRepresentation):
            reader.execute("SELECT count(*) FROM chunks")
        reader.execute("RESET docvec.principals")
        for table in partitions:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                reader.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table)))
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            reader.execute("UPDATE documents SET readers = '{*}'")


# Every document holds both words: candidates by any of them, or by all of them.
HARBOUR = sorted(query_terms("harbour schedule"))
HARBOUR_WEIGHTS = SparseVector(dict.fromkeys(HARBOUR, 1.0), TERM_SPACE).to_text()
EVERY_PATH = json.dumps([[{"path": f"doc-{n}.md"} for n in range(len(WORDS))]])  # one filter group: any of them


def model_id(store: Settings) -> int:
    """The stored chunks' model, read as the owner: a reader who may read nothing would find none, and a
    function called with no model would return nothing whatever it let through."""
    with connections.connect(store) as owner:
        row = owner.execute("SELECT DISTINCT model_id FROM chunks").fetchone()
    assert row is not None
    return int(row[0])


def test_only_the_reader_role_may_execute_the_text_function(store, migrated) -> None:
    """The SECURITY DEFINER function reads as the tables' owner: a login outside docvec_reader (PUBLIC)
    may not call it, and it cannot be made to resolve a caller's objects (its search_path is fixed)."""
    role, password = f"docvec_perm_public_{os.getpid()}", uuid.uuid4().hex
    with psycopg.connect(urls.server_url(migrated), autocommit=True) as admin:
        admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role), sql.Literal(password)))
    try:
        url = make_url(store.database_url).set(username=role, password=password).render_as_string(hide_password=False)
        with psycopg.connect(url, autocommit=True) as stranger, pytest.raises(psycopg.errors.InsufficientPrivilege):
            stranger.execute("SELECT * FROM docvec_readable_text_matches('{1}', '[]', '{}/10'::sparsevec, 1, "
                             "NULL, NULL, NULL, '[]', NULL)")
        with connections.connect(store) as owner:
            settings = owner.execute(
                "SELECT p.prosecdef, p.proconfig, has_function_privilege('public', p.oid, 'EXECUTE') "
                "FROM pg_proc p WHERE p.proname = 'docvec_readable_text_matches'").fetchone()
        assert settings is not None and settings[0], "SECURITY DEFINER"
        assert any(c.startswith("search_path=") and c.endswith("pg_temp") for c in settings[1]), settings[1]
        assert not settings[2], "PUBLIC may not execute it"
    finally:
        with psycopg.connect(urls.server_url(migrated), autocommit=True) as admin:
            admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


tenant_strategy = st.none() | st.sampled_from(("acme", "globex", "initech"))


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(assigned=readers_strategy, caller=st.sets(st.sampled_from(PRINCIPALS), max_size=3), tenant=tenant_strategy)
def test_a_reader_session_reads_a_chunk_exactly_when_it_may_read_its_version(store, reader_login, assigned, caller,
                                                                             tenant) -> None:
    """The chunks policy reads the readers on the chunk row (migration 0015), which the triggers on
    documents keep equal to its version's: a reader session sees the same documents through either table,
    and exactly those its principals and tenant admit, whatever readers were set since."""
    role, password = reader_login
    url = make_url(store.database_url).set(username=role, password=password).render_as_string(hide_password=False)
    readers = {f"doc-{n}.md": sorted(names) for n, names in enumerate(assigned)}
    expected = {doc for doc, names in readers.items() if may_read(names, sorted(caller))
                and (tenant is None or f"tenant:{tenant}" in names)}
    with connections.connect(store) as owner:
        set_readers(owner, readers)
        assert chunks_out_of_step(owner) == []
    with psycopg.connect(url, autocommit=True) as reader, reader.transaction():
        reader.execute("SELECT set_config('docvec.principals', %s, true), set_config('docvec.tenant', %s, true)",
                       ("{" + ",".join(f'"{p}"' for p in sorted(caller)) + "}", tenant or ""))
        through_chunks = {r[0] for r in reader.execute("SELECT DISTINCT doc_id FROM chunks")}
        through_documents = {r[0] for r in reader.execute("SELECT doc_id FROM documents")}
        # The text search's SECURITY DEFINER function (migration 0017) reads as the owner: it must apply
        # the same rights itself, through each way it finds candidates.
        through_text = {r[0] for r in reader.execute(
            "SELECT DISTINCT doc_id FROM docvec_readable_text_matches(%s, '[]', %s::sparsevec, %s, NULL, NULL, NULL, "
            "'[]', NULL)",
            (HARBOUR, HARBOUR_WEIGHTS, model_id(store)))}
        through_all_of = {r[0] for r in reader.execute(
            "SELECT DISTINCT doc_id FROM docvec_readable_text_matches('{}', %s, %s::sparsevec, %s, NULL, %s, NULL, %s, "
            "1000)", (json.dumps([HARBOUR]), HARBOUR_WEIGHTS, model_id(store), DAY, EVERY_PATH))}
    assert through_chunks == through_documents == through_text == through_all_of == expected


def test_searching_as_principals_checks_them_and_leaves_the_session_as_it_was(store, embedder) -> None:
    with connections.connect(store) as conn:
        set_readers(conn, {f"doc-{n}.md": ["alice"] for n in range(len(WORDS))})
        assert search.search(conn, embedder, WORDS[0], mode="text", k=3, principals=["bob"]) == []
        assert [h.doc_id for h in search.search(conn, embedder, WORDS[0], mode="text", k=3,
                                                principals=["alice"])] == ["doc-0.md"]
        for bad in (["*"], ["a b"], ["x,y"], ["{alice}"], ['"'], [""], ["a" * 201]):
            with pytest.raises(ConfigError, match="invalid principal"):
                search.search(conn, embedder, WORDS[0], mode="text", principals=bad)
        role = conn.execute("SELECT current_user, current_setting('docvec.principals', true)").fetchone()
        assert role is not None and role[0] != "docvec_reader" and not role[1], "role and principals ended with it"
        # Filters and queries built to break out change nothing.
        for query, filters in (("' OR 1=1 --", {}), (WORDS[0], {"path": "x' OR '1'='1"}),
                               (WORDS[0], {"readers": "*"}), ("x" * 2000, {})):
            hits = search.search(conn, embedder, query, mode="hybrid", k=5, principals=["bob"], filters=filters)
            assert hits == [], (query, filters)


def test_the_cli_searches_as_a_principal(store, embedder, capsys, monkeypatch, tmp_path: Path) -> None:
    from pipeline.cli.main import main

    with connections.connect(store) as conn:
        set_readers(conn, {f"doc-{n}.md": ["group:hr"] for n in range(len(WORDS))})
    monkeypatch.setenv("DATABASE_URL", store.database_url)
    monkeypatch.setenv("DOCVEC_HOME", str(tmp_path))
    assert main(["search", WORDS[1], "--mode", "text", "--as", "bob", "--json"]) == 0
    assert capsys.readouterr().out.strip() == "[]"
    assert main(["search", WORDS[1], "--mode", "text", "--as", "bob", "--as", "group:hr", "--json"]) == 0
    assert '"doc_id": "doc-1.md"' in capsys.readouterr().out
