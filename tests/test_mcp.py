"""``docvec mcp`` as an agent meets it (issue #29, item 1): real server processes launched and called with
the official MCP SDK's own client, over stdio and streamable HTTP, against a real store and the real model.
Tools are listed, searches return cited hits (the expected document first, the same hits as the Python
search), documents are fetched, the store described; bad arguments and a database that is down come back as
tool errors, never a crash. Over HTTP, ``docvec serve``'s API keys decide who may call and as whom."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.server.mcpserver.exceptions import ToolError

from pipeline.errors import ConfigError
from pipeline.mcp_server import results
from pipeline.mcp_server.server import build_server
from pipeline.mcp_server.tools import Acting, DocvecTools
from pipeline.query import search
from pipeline.query.service import OneConnection, SearchService
from pipeline.settings import Settings
from pipeline.storage import connections, tombstones
from tests.support.network import free_port
from tests.support.processes import stop, wait_until_answering
from tests.support.readers_store import store_with_readers

ROOT = Path(__file__).resolve().parents[1]
TOOLS = {"search", "fetch_document", "store_info"}
HYBRID_QUERY = "ledger batch rejected by the payment gateway"

DAY = dt.date(2026, 7, 2)
READERS = {  # who may read each document; all say "harbour ledger"
    "acme-hr.md": ["tenant:acme", "group:hr"],
    "acme-alice.md": ["tenant:acme", "alice"],
    "globex-hr.md": ["tenant:globex", "group:hr", "alice"],
    "public.md": ["*"],
}
ALICE = {"acme-alice.md", "globex-hr.md", "public.md"}


def environment(settings: Settings, **more: str) -> dict[str, str]:
    url = {"DATABASE_URL": str(settings.database_url)} if settings.database_url else {}
    return {**os.environ, **url, "DOCVEC_HOME": str(settings.home), **more}


def stdio(env: dict[str, str], log: Path, *args: str) -> Client:
    """An SDK client that launches ``docvec mcp ARGS`` (stdio) with ``env`` (its store's)."""
    params = StdioServerParameters(command=sys.executable, args=["-m", "pipeline.cli.main", "mcp", *args],
                                   env=env, cwd=str(ROOT))
    return Client(stdio_client(params, errlog=log.open("w")), read_timeout_seconds=180)


def answer(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content[0].text
    return dict(result.structured_content)


def refusal(result: Any) -> str:
    assert result.is_error, result
    text: str = result.content[0].text
    assert "\n" not in text.strip() and "Traceback" not in text, text
    return text


# --- stdio, on the sample corpus ----------------------------------------------------------------------

def test_stdio_agent_searches_fetches_and_describes_the_store(loaded_sample, migrated, conn, embedder,
                                                              tmp_path) -> None:
    log = tmp_path / "mcp-stdio.log"
    local = [h.chunk_id for h in search.search(conn, embedder, HYBRID_QUERY, k=5)]
    served = conn.execute("SELECT name || '@' || revision FROM embedding_models "
                          "WHERE activated_at IS NOT NULL ORDER BY activated_at DESC LIMIT 1").fetchone()[0]

    async def session() -> dict[str, Any]:
        seen: dict[str, Any] = {}
        async with stdio(environment(migrated), log) as client:
            listed = (await client.list_tools()).tools
            seen["tools"] = {t.name: t for t in listed}
            seen["text"] = answer(await client.call_tool("search", {"query": "ERR-4714", "mode": "text", "k": 3}))
            seen["hybrid"] = answer(await client.call_tool("search", {"query": HYBRID_QUERY, "k": 5}))
            seen["narrowed"] = answer(await client.call_tool("search", {
                "query": HYBRID_QUERY, "k": 10, "mode": "vector", "filters": {"topic": "runbooks"},
                "since": "2026-03-05", "window": 1, "documents": True}))
            top = seen["text"]["hits"][0]
            seen["document"] = answer(await client.call_tool("fetch_document", {"doc_id": top["doc_id"]}))
            seen["page"] = answer(await client.call_tool("fetch_document", {"doc_id": top["doc_id"], "max_chunks": 1}))
            seen["window"] = answer(await client.call_tool("fetch_document", {
                "doc_id": top["doc_id"], "chunk_id": top["chunk_id"], "window": 1}))
            seen["info"] = answer(await client.call_tool("store_info", {}))
            seen["bad"] = {name: refusal(await client.call_tool(tool, arguments)) for name, tool, arguments in (
                ("k=0", "search", {"query": HYBRID_QUERY, "k": 0}),
                ("k=abc", "search", {"query": HYBRID_QUERY, "k": "abc"}),
                ("mode", "search", {"query": HYBRID_QUERY, "mode": "fuzzy"}),
                ("blank", "search", {"query": "   "}),
                ("since", "search", {"query": HYBRID_QUERY, "since": "last week"}),
                ("unknown doc", "fetch_document", {"doc_id": "no/such.md"}),
                ("window", "fetch_document", {"doc_id": top["doc_id"], "chunk_id": top["chunk_id"], "window": 99}),
            )}
            seen["after"] = answer(await client.call_tool("search", {"query": "ERR-4714", "mode": "text", "k": 1}))
        return seen

    try:
        seen = anyio.run(session)
    except Exception as exc:
        raise AssertionError(f"the stdio session failed: {log.read_text()}") from exc

    assert set(seen["tools"]) == TOOLS
    assert all(t.annotations.read_only_hint and t.description for t in seen["tools"].values())
    schema = seen["tools"]["search"].input_schema["properties"]
    assert schema["mode"]["enum"] == ["vector", "text", "hybrid"] and schema["k"]["minimum"] == 1
    assert {"filters", "since", "until", "as_of", "documents", "per_doc", "window"} <= set(schema)

    top = seen["text"]["hits"][0]
    assert top["doc_id"] == "runbooks/err-4714.md" and top["rank"] == 1 and "ERR-4714" in top["text"]
    assert top["doc_id"] in top["citation"] and top["day"] in top["citation"]
    assert top["citation"] == results.citation(top["doc_id"], dt.date.fromisoformat(top["day"]), top["metadata"])
    assert [h["chunk_id"] for h in seen["hybrid"]["hits"]] == local, "the same service as the Python search"
    assert seen["hybrid"]["model"] == served == seen["info"]["model"]
    narrowed = seen["narrowed"]["hits"]
    assert narrowed and len({h["doc_id"] for h in narrowed}) == len(narrowed)
    assert all(h["metadata"]["topic"] == "runbooks" and h["day"] >= "2026-03-05" and h["context"] for h in narrowed)

    stored = conn.execute("SELECT seq, chunk_id FROM chunks c WHERE doc_id = %s AND ingest_date = %s "
                          "AND model_id = (SELECT id FROM embedding_models WHERE activated_at IS NOT NULL "
                          "ORDER BY activated_at DESC LIMIT 1) ORDER BY seq", (top["doc_id"], top["day"])).fetchall()
    document = seen["document"]
    assert [(c["seq"], c["chunk_id"]) for c in document["chunks"]] == [tuple(r) for r in stored]
    assert document["doc_id"] == top["doc_id"] and "next_first" not in document
    assert seen["page"]["chunks"][0]["seq"] == 0 and (len(stored) == 1 or seen["page"]["next_first"] == 1)
    around = [c["seq"] for c in seen["window"]["chunks"]]
    assert top["seq"] in around and around == sorted(around) and max(around) - min(around) <= 2

    info = seen["info"]
    days = conn.execute("SELECT ingest_date, count(*) FROM documents GROUP BY 1 ORDER BY 1").fetchall()
    assert [(d["day"], d["documents"]) for d in info["days"]] == [(day.isoformat(), n) for day, n in days]
    assert info["searchable_documents"] == tombstones.searchable_documents(conn) and info["chunks"] > 0

    bad = seen["bad"]
    assert "k" in bad["k=0"] and "greater than or equal to 1" in bad["k=0"]
    assert "valid integer" in bad["k=abc"] and "mode" in bad["mode"] and "'vector'" in bad["mode"]
    assert "blank" in bad["blank"] and "since" in bad["since"]
    assert "no/such.md" in bad["unknown doc"] and "window" in bad["window"]
    assert seen["after"]["hits"][0]["doc_id"] == "runbooks/err-4714.md", "a tool error is not a crash"


def test_a_database_that_is_down_is_a_tool_error(tmp_path) -> None:
    log = tmp_path / "mcp-down.log"
    down = f"postgresql://docvec:not-the-password@127.0.0.1:{free_port()}/docvec"
    env = {**os.environ, "DOCVEC_HOME": str(tmp_path / "home"), "DATABASE_URL": down,
           "DOCVEC_SEARCH_DATABASE_URL": down}

    async def session() -> tuple[set[str], str, str]:
        async with stdio(env, log, "--db-timeout", "1") as client:
            names = {t.name for t in (await client.list_tools()).tools}
            searched = refusal(await client.call_tool("search", {"query": "anything"}))
            described = refusal(await client.call_tool("store_info", {}))
        return names, searched, described

    names, searched, described = anyio.run(session)
    assert names == TOOLS
    for text in (searched, described):
        assert "database is unavailable" in text and "not-the-password" not in text, text
    assert "not-the-password" not in log.read_text()


def test_citations_name_title_section_page_and_day() -> None:
    day = dt.date(2026, 3, 4)
    assert results.citation("manual.pdf", day, {"title": "Manual", "section": "Indexes > Partial", "page": 12}) == \
        "Manual — Indexes > Partial (manual.pdf, page 12, 2026-03-04)"
    assert results.citation("deck.pptx", day, {"title": "Deck", "slide": 4}) == "Deck (deck.pptx, slide 4, 2026-03-04)"
    assert results.citation("a.pdf", day, {"page": 3, "last_page": 4}) == "a.pdf (pages 3–4, 2026-03-04)"
    assert results.citation("notes.md", day, {}) == "notes.md (2026-03-04)"


# --- permissions: a store whose documents name their readers --------------------------------------------

@pytest.fixture(scope="module")
def store(migrated, embedder, tmp_path_factory) -> Settings:
    return store_with_readers(migrated, embedder, tmp_path_factory.mktemp("landing"), "docvec_mcp_auth", DAY, READERS)


def test_without_principals_a_store_with_readers_answers_nobody(store, embedder) -> None:
    with pytest.raises(ConfigError, match="--tenant"):
        Acting.configured(None, "acme")
    with pytest.raises(ConfigError, match="invalid principal"):
        Acting.configured(["*"], None)
    with connections.connect(store, for_search=True) as conn:
        tools = DocvecTools(SearchService.over(conn, embedder), OneConnection(conn))
        for call in (lambda who: tools.search({"query": "harbour ledger"}, who), tools.store_info,
                     lambda who: tools.fetch_document("public.md", who)):
            with pytest.raises(ToolError, match="permissions are in use"):
                call(Acting())
        alice = Acting.configured(["alice"], None)
        hits = tools.search({"query": "harbour ledger", "k": 10}, alice)["hits"]
        assert {h["doc_id"] for h in hits} == ALICE
        assert tools.store_info(alice)["searchable_documents"] == len(ALICE)
        assert tools.fetch_document("public.md", alice)["chunks"]
        with pytest.raises(ToolError, match="that you can read"):
            tools.fetch_document("acme-hr.md", alice)

        async def through(server: Any) -> Any:  # the SDK's in-process client: the server's own plumbing
            async with Client(server) as client:
                return await client.call_tool("search", {"query": "harbour ledger", "k": 10})

        assert {h["doc_id"] for h in answer(anyio.run(through, build_server(tools, alice)))["hits"]} == ALICE
        assert "permissions are in use" in refusal(anyio.run(through, build_server(tools, Acting())))


def docvec(store: Settings, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "pipeline.cli.main", *args], env=environment(store), cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def post(url: str, key: str | None) -> tuple[int, dict[str, Any], Any]:
    """A raw MCP POST (tools/list) with or without a bearer key: the status the server answers."""
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}).encode()
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=body, headers=headers), timeout=30) as response:
            return response.status, {}, response.headers
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}"), exc.headers


@contextmanager
def mcp_http(store: Settings, log: Path, *args: str) -> Iterator[str]:
    """``docvec mcp --http ARGS`` on a free loopback port: its endpoint URL once it answers."""
    port = free_port()
    with log.open("w") as out:
        process = subprocess.Popen([sys.executable, "-m", "pipeline.cli.main", "mcp", "--http", "--port", str(port),
                                    *args], env=environment(store), cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}/mcp"
        try:
            wait_until_answering(lambda: post(url, None) is not None, process, "docvec mcp --http", log)
            yield url
        finally:
            stop(process)


def test_http_takes_serve_keys_and_searches_as_their_principals(store, tmp_path) -> None:
    alice = docvec(store, "keys", "create", "--principal", "alice").splitlines()[0]
    doomed = docvec(store, "keys", "create", "--principal", "alice", "--name", "to revoke").splitlines()[0]
    docvec(store, "keys", "revoke", doomed.split("_")[1])
    log = tmp_path / "mcp-http.log"

    async def session(url: str, key: str, mode: str = "auto") -> dict[str, Any]:
        http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=180)
        async with http, Client(streamable_http_client(url, http_client=http), read_timeout_seconds=180,
                                mode=mode) as client:
            names = {t.name for t in (await client.list_tools()).tools}
            found = answer(await client.call_tool("search", {"query": "harbour ledger", "k": 10}))
            info = answer(await client.call_tool("store_info", {}))
            public = answer(await client.call_tool("fetch_document", {"doc_id": "public.md"}))
            hidden = refusal(await client.call_tool("fetch_document", {"doc_id": "acme-hr.md"}))
            bad = refusal(await client.call_tool("search", {"query": "harbour ledger", "k": 0}))
        return {"names": names, "found": found, "info": info, "public": public, "hidden": hidden, "bad": bad}

    with mcp_http(store, log, "--auth", "keys") as url:
        status, detail, headers = post(url, None)
        assert status == 401 and headers["WWW-Authenticate"].startswith('Bearer realm="docvec"'), detail
        assert post(url, "dvk_nonsense")[0] == 401
        status, detail, _ = post(url, doomed)
        assert status == 403 and "revoked" in detail["detail"], detail
        try:
            seen = anyio.run(session, url, alice)
            legacy = anyio.run(session, url, alice, "legacy")  # the initialize handshake of today's agents
        except Exception as exc:
            raise AssertionError(f"the HTTP session failed: {log.read_text()}") from exc
    assert seen["names"] == TOOLS and legacy["found"] == {**seen["found"], "took_ms": legacy["found"]["took_ms"]}
    assert {h["doc_id"] for h in seen["found"]["hits"]} == ALICE, "only what alice may read"
    assert seen["info"]["searchable_documents"] == len(ALICE) and seen["info"]["document_versions"] == len(ALICE)
    assert seen["public"]["chunks"] and "acme-hr.md" in seen["hidden"] and "greater than" in seen["bad"]
    text = log.read_text()
    assert alice not in text and doomed not in text and alice.split("_", 2)[2] not in text


def test_mcp_refuses_options_that_do_not_fit_its_transport(capsys) -> None:
    from pipeline.cli.main import main

    assert main(["mcp", "--http", "--host", "0.0.0.0", "--port", str(free_port())]) == 2
    err = capsys.readouterr().err
    assert "docvec mcp --http --host 0.0.0.0" in err and "--allow-anyone-to-search" in err, err
    assert main(["mcp", "--auth", "keys"]) == 2
    assert "--auth applies to --http" in capsys.readouterr().err
    assert main(["mcp", "--tenant", "acme"]) == 2
    assert "--tenant" in capsys.readouterr().err
