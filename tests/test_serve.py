"""`docvec serve` as an application meets it: a real server process on a free port, called over HTTP."""

from __future__ import annotations

import json
import os
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

from pipeline.query import search
from pipeline.settings import Settings
from tests.support.databases import fresh_database
from tests.support.network import free_port
from tests.support.serve_process import serve_process
from tests.support.tcp_relay import Relay


def call(base: str, path: str, params: dict[str, Any] | list[tuple[str, Any]] | None = None,
         body: dict[str, Any] | None = None, method: str | None = None) -> tuple[int, Any]:
    url = base + path + ("?" + urllib.parse.urlencode(params, doseq=True) if params else "")
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json"} if data else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            payload = response.read()
            status = response.status
    except urllib.error.HTTPError as exc:
        payload, status = exc.read(), exc.code
    try:
        return status, json.loads(payload)
    except ValueError:
        return status, payload.decode()


@contextmanager
def serving(settings: Settings, tmp_path: Path, **env: str) -> Iterator[str]:
    environment = {**os.environ, "DOCVEC_HOME": str(settings.home), **env}
    # 503 counts as up: a server whose database is down still answers, and says so.
    with serve_process(["--db-timeout", "2"], environment, tmp_path, ready=(200, 503)) as (base, _):
        yield base


def test_serve_answers_every_search_option_over_http(loaded_sample, migrated, conn, embedder, tmp_path) -> None:
    with serving(migrated, tmp_path) as base:
        status, health = call(base, "/healthz")
        served = conn.execute("SELECT name || '@' || revision FROM embedding_models "
                              "WHERE activated_at IS NOT NULL ORDER BY activated_at DESC LIMIT 1").fetchone()[0]
        assert status == 200 and health["status"] == "ok" and health["model"] == served

        status, text = call(base, "/search", {"q": "ERR-4714", "mode": "text", "k": 3})
        assert status == 200 and text["hits"][0]["doc_id"] == "runbooks/err-4714.md"
        assert text["hits"][0]["similarity"] is None and text["hits"][0]["text_score"] > 0

        query = "ledger batch rejected by the payment gateway"
        status, hybrid = call(base, "/search", {"q": query, "k": 5})
        local = search.search(conn, embedder, query, k=5)
        assert status == 200 and [h["chunk_id"] for h in hybrid["hits"]] == [h.chunk_id for h in local]
        assert hybrid["model"] == served and hybrid["took_ms"] > 0

        body = {"q": query, "k": 10, "mode": "vector", "filters": {"topic": "runbooks"}, "since": "2026-03-05", "window": 1}
        status, filtered = call(base, "/search", body=body, method="POST")
        assert status == 200 and filtered["hits"]
        assert all(h["metadata"]["topic"] == "runbooks" and h["ingest_date"] >= "2026-03-05" for h in filtered["hits"])
        assert all(h["context"] for h in filtered["hits"])
        status, documents = call(base, "/search", [("q", query), ("documents", "true"), ("k", 5),
                                                  ("filter", "topic=runbooks")])
        doc_ids = [h["doc_id"] for h in documents["hits"]]
        assert status == 200 and len(doc_ids) == len(set(doc_ids)) and documents["hits"][0]["document_score"] is not None

        for params, code, words in (({"q": query, "k": 0}, 422, "greater than or equal to 1"),
                                    ({"q": query, "mode": "fuzzy"}, 422, "vector"),
                                    ({"q": ""}, 422, "at least 1 character"),
                                    ({"q": query, "since": "yesterday"}, 422, "date"),
                                    ({"q": query, "filter": "novalue"}, 400, "not key=value"),
                                    ({}, 422, "Field required")):
            status, error = call(base, "/search", params)
            assert status == code and words in json.dumps(error), (params, error)
        assert call(base, "/search", {"q": query}, method="DELETE")[0] == 405, "no write path"

        status, spec = call(base, "/openapi.json")
        assert status == 200 and {"/search", "/healthz"} <= set(spec["paths"])
        assert {p["name"] for p in spec["paths"]["/search"]["get"]["parameters"]} >= {
            "q", "k", "mode", "since", "until", "filter", "per_doc", "documents", "window", "fusion", "vector_weight",
            "opening_weight", "rrf_k", "ef_search", "probes"}
        assert call(base, "/docs")[0] == 200


def test_serve_answers_by_error_type_before_anything_is_served(migrated, embedder, tmp_path) -> None:
    """A reachable store that serves nothing yet: healthy, no model; a search is the operator's to fix
    (500 naming it, never 503 "unavailable"); a blank query is the client's (400)."""
    empty = fresh_database(migrated, embedder.info.dim, "docvec_serve_nothing_served")
    with serving(migrated, tmp_path, DATABASE_URL=str(empty.database_url)) as base:
        status, health = call(base, "/healthz")
        assert status == 200 and (health["status"], health["database"], health["model"]) == ("ok", "ok", None)
        for params in ({"q": "anything"}, {"q": "anything", "mode": "text"}):
            status, error = call(base, "/search", params)
            assert status == 500 and "no embedding model is served yet" in error["detail"], (params, error)
        status, error = call(base, "/search", body={"q": "   ", "k": 3}, method="POST")
        assert status == 400 and "the search query is empty" in error["detail"], error


def _server_socket(info: psycopg.ConnectionInfo) -> socket.socket:
    host = info.host
    if host.startswith("/"):
        sock = socket.socket(socket.AF_UNIX)
        sock.connect(f"{host}/.s.PGSQL.{info.port}")
        return sock
    return socket.create_connection((host, info.port))


def test_serve_answers_503_while_the_database_is_lost_and_recovers(loaded_sample, migrated, conn, tmp_path) -> None:
    relay = Relay(lambda: _server_socket(conn.info), free_port())
    relay.start()
    password = f":{urllib.parse.quote(conn.info.password)}" if conn.info.password else ""
    url = f"postgresql://{conn.info.user}{password}@127.0.0.1:{relay.port}/{conn.info.dbname}"
    try:
        with serving(migrated, tmp_path, DATABASE_URL=url) as base:
            assert call(base, "/search", {"q": "ERR-4714", "mode": "text"})[0] == 200
            relay.stop()
            status, error = call(base, "/search", {"q": "ERR-4714", "mode": "text"})
            assert status == 503 and "database is unavailable" in error["detail"], error
            assert password.strip(":") == "" or conn.info.password not in json.dumps(error)
            assert call(base, "/healthz")[0] == 503
            relay.start()
            deadline = time.monotonic() + 30
            while (status := call(base, "/search", {"q": "ERR-4714", "mode": "text"})[0]) != 200:
                assert status == 503 and time.monotonic() < deadline, status
                time.sleep(0.5)
            assert call(base, "/healthz")[1]["status"] == "ok"
    finally:
        relay.stop()
