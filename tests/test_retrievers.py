"""The LangChain and LlamaIndex retrievers (issue #29, item 2) with the real libraries: sync and async, in
process on the sample store and over HTTP against a real ``docvec serve`` process (one per module, with
API keys), their documents and nodes carrying docvec's own hits: same order, text and metadata as the
search service gives for the same query, and what an API key bound to a principal may read only."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from langchain_core.documents import Document
from llama_index.core.schema import MetadataMode, NodeWithScore

from pipeline.api import keys
from pipeline.errors import ConfigError, TransientError
from pipeline.integrations import langchain, llamaindex
from pipeline.integrations.client import (
    NOT_FOR_MODELS,
    DocvecSearch,
    SearchRefusedError,
    SearchServerError,
    SearchUnavailableError,
    hit_metadata,
)
from pipeline.query import search
from pipeline.query.hits import SearchHit
from pipeline.settings import Settings
from pipeline.storage import api_keys, connections
from tests.support.network import free_port
from tests.support.readers_store import store_with_readers
from tests.support.serve_process import serve_process

SAMPLE_QUERY = "ledger batch rejected by the payment gateway"
DAY = dt.date(2026, 7, 3)
# Who may read each document of the module's own store (all say "harbour ledger", the query run on it).
READERS = {"alice-notes.md": ["alice"], "hr-only.md": ["group:hr"], "public.md": ["*"]}
ALICE_SEES = {"alice-notes.md", "public.md"}
QUERY = "harbour ledger"
SCORES = ("score", "similarity", "text_score", "document_score")


def hit(**changes: Any) -> SearchHit:
    values: dict[str, Any] = {
        "rank": 1, "similarity": 0.8, "doc_id": "guide.md", "ingest_date": dt.date(2026, 3, 5), "seq": 2,
        "chunk_id": "guide.md:2", "text": "Restart the gateway.",
        "metadata": {"title": "Guide", "section": "Ops > Restart", "page": 4, "topic": "runbooks"},
        "text_score": None, "score": 0.8}
    return SearchHit(**{**values, **changes})


def rows(results: Sequence[Document | NodeWithScore]) -> list[tuple[str, str, dict[str, Any]]]:
    """(id, text, metadata) of LangChain documents or LlamaIndex nodes, in their order."""
    if results and isinstance(results[0], NodeWithScore):
        for result in results:
            assert isinstance(result, NodeWithScore) and result.score == result.node.metadata["score"]
        return [(r.node.node_id, r.node.get_content(), r.node.metadata) for r in results]
    return [(r.id or "", r.page_content, r.metadata) for r in results]


def expected(hits: Sequence[SearchHit]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(h.chunk_id, h.text, hit_metadata(h)) for h in hits]


def same_hits(got: list[tuple[str, str, dict[str, Any]]], want: list[tuple[str, str, dict[str, Any]]],
              exact: bool = True) -> None:
    """The same chunks in the same order with the same metadata; scores equal, or within float noise
    when another process embedded the query (``exact=False``)."""
    assert [row[:2] for row in got] == [row[:2] for row in want]
    for (_, _, mine), (_, _, theirs) in zip(got, want, strict=True):
        if exact:
            assert mine == theirs
            continue
        assert {k: v for k, v in mine.items() if k not in SCORES} == {k: v for k, v in theirs.items() if k not in SCORES}
        for key in SCORES:
            assert (mine.get(key) is None) == (theirs.get(key) is None), key
            if theirs.get(key) is not None:
                assert mine[key] == pytest.approx(theirs[key], rel=1e-4, abs=1e-6), key


def test_documents_and_nodes_carry_docvecs_metadata_and_options_are_checked_when_made() -> None:
    found = hit(text_score=3.5, document_score=0.03, context=[{"seq": 1, "text": "Before."}])
    document = langchain.document(found)
    assert document.page_content == "Restart the gateway." and document.id == "guide.md:2"
    assert document.metadata == {"title": "Guide", "section": "Ops > Restart", "page": 4, "topic": "runbooks",
                                 "doc_id": "guide.md", "chunk_id": "guide.md:2", "seq": 2, "day": "2026-03-05",
                                 "rank": 1, "score": 0.8, "similarity": 0.8, "text_score": 3.5,
                                 "document_score": 0.03, "context": [{"seq": 1, "text": "Before."}]}
    node = llamaindex.node(found)
    assert node.node.node_id == "guide.md:2" and node.score == 0.8 and node.node.metadata == document.metadata
    # What LlamaIndex puts in a prompt or an embedding: the text and where it is from, not ids and scores.
    for mode in (MetadataMode.LLM, MetadataMode.EMBED):
        shown = node.node.get_content(metadata_mode=mode)
        assert all(f"{key}: {value}" in shown for key, value in (("section", "Ops > Restart"), ("page", 4),
                                                                   ("doc_id", "guide.md"), ("day", "2026-03-05")))
        assert "Restart the gateway." in shown and not any(f"{key}:" in shown for key in NOT_FOR_MODELS), shown
    # docvec's keys win over a chunk's metadata of the same name; "where present": nothing invented.
    plain = hit_metadata(hit(metadata={"score": "mine"}, similarity=None, text_score=1.0))
    assert plain["score"] == 0.8 and plain["similarity"] is None and "title" not in plain and "page" not in plain

    for make in (lambda: langchain.DocvecRetriever(base_url="http://127.0.0.1:1", k=0),
                 lambda: llamaindex.DocvecRetriever(base_url="http://127.0.0.1:1", mode="fuzzy"),
                 lambda: llamaindex.DocvecRetriever(base_url="http://127.0.0.1:1", per_document=2),
                 lambda: langchain.DocvecRetriever(base_url="http://127.0.0.1:1", principals=["alice"]),
                 lambda: llamaindex.DocvecRetriever(api_key="dvk_x_y", settings=None),
                 lambda: langchain.DocvecRetriever(base_url="ftp://docs.example.test"),
                 lambda: DocvecSearch(tenant="acme"),
                 lambda: DocvecSearch(settings=Settings(Path("/nowhere"), None, None, False),
                                      database_url="postgresql://x@127.0.0.1:1/x")):
        with pytest.raises(ConfigError):
            make()
    with pytest.raises(ConfigError, match="empty"):
        langchain.DocvecRetriever(base_url="http://127.0.0.1:1").invoke("  ")


def test_in_process_retrievers_return_the_services_hits(loaded_sample, migrated, conn, embedder) -> None:
    options: list[dict[str, Any]] = [
        {"k": 5},
        {"k": 8, "mode": "text", "filters": {"topic": "runbooks"}, "since": dt.date(2026, 3, 5)},
        {"k": 4, "mode": "vector", "window": 1, "per_doc": 1, "as_of": dt.date(2026, 12, 31)},
    ]
    for option in options:
        want = expected(search.search(conn, embedder, SAMPLE_QUERY, **option))
        assert want, option
        named = {key: option.pop(key) for key in ("k", "mode", "filters", "since") if key in option}
        chain = langchain.DocvecRetriever(settings=migrated, embedder=embedder, **named, search_options=option)
        index = llamaindex.DocvecRetriever(settings=migrated, embedder=embedder, **named, **option)
        try:
            got = rows(chain.invoke(SAMPLE_QUERY))
            same_hits(got, want)
            same_hits(rows(asyncio.run(chain.ainvoke(SAMPLE_QUERY))), want)
            same_hits(rows(index.retrieve(SAMPLE_QUERY)), want)
            same_hits(rows(asyncio.run(index.aretrieve(SAMPLE_QUERY))), want)
        finally:
            chain.close()
            index.close()
        first = got[0][2]
        assert first["rank"] == 1 and dt.date.fromisoformat(first["day"]) and first["title"], first
        assert all(row[2]["topic"] == "runbooks" for row in got) or "filters" not in named
        assert all(row[2].get("context") for row in got) or "window" not in option


@pytest.fixture(scope="module")
def store(migrated, embedder, tmp_path_factory) -> Settings:
    """A store of the module's own whose documents say who may read them."""
    return store_with_readers(migrated, embedder, tmp_path_factory.mktemp("landing"), "docvec_retrievers", DAY, READERS,
                              note="# Note {n}\n\n## Filing\n\nThe harbour ledger entry {entry} is filed by the desk.")


@pytest.fixture(scope="module")
def alice_key(store) -> str:
    made = keys.new_key()
    with connections.connect(store) as conn:
        api_keys.create(conn, key_id=made.key_id, secret_sha256=made.secret_sha256, principals=["alice"], tenant=None,
                        name="retrievers test", rate=None)
    return made.key


@pytest.fixture(scope="module")
def served(store, alice_key, tmp_path_factory) -> Iterator[str]:
    """The one ``docvec serve`` of the module: API keys required."""
    home = tmp_path_factory.mktemp("serve_home")
    env = {**os.environ, "DATABASE_URL": str(store.database_url), "DOCVEC_HOME": str(home)}
    with serve_process(["--auth", "keys"], env, home) as (base, _):
        yield base


def test_over_http_the_keys_principal_decides_and_hits_equal_the_services(served, store, alice_key, embedder) -> None:
    with connections.connect(store) as conn:
        want = expected(search.search(conn, embedder, QUERY, k=10, principals=["alice"]))
        everyone = {row[2]["doc_id"] for row in expected(search.search(conn, embedder, QUERY, k=10))}
    assert {row[2]["doc_id"] for row in want} == ALICE_SEES and everyone == set(READERS)

    chain = langchain.DocvecRetriever(base_url=served + "/", api_key=alice_key, timeout=60)
    index = llamaindex.DocvecRetriever(base_url=served, api_key=alice_key, timeout=60)
    local = llamaindex.DocvecRetriever(settings=store, embedder=embedder, principals=["alice"])
    try:
        same_hits(rows(chain.invoke(QUERY)), want, exact=False)
        same_hits(rows(asyncio.run(chain.ainvoke(QUERY))), want, exact=False)
        same_hits(rows(index.retrieve(QUERY)), want, exact=False)
        same_hits(rows(asyncio.run(index.aretrieve(QUERY))), want, exact=False)
        same_hits(rows(local.retrieve(QUERY)), want)
        text = langchain.DocvecRetriever(base_url=served, api_key=alice_key, mode="text", k=1).invoke(QUERY)
        assert len(text) == 1 and text[0].metadata["similarity"] is None and text[0].metadata["section"]
    finally:
        for retriever in (chain, index, local):
            retriever.close()


def test_bad_keys_and_base_urls_are_clear_errors_without_the_key(served, alice_key) -> None:
    wrong = alice_key[:-1] + ("A" if alice_key[-1] != "A" else "B")
    for key, status in ((wrong, 401), (None, 401)):
        chain = langchain.DocvecRetriever(base_url=served, api_key=key)
        index = llamaindex.DocvecRetriever(base_url=served, api_key=key)
        assert wrong not in repr(chain) and wrong not in repr(index) and alice_key not in repr(chain)
        attempts = (lambda c=chain: c.invoke(QUERY), lambda c=chain: asyncio.run(c.ainvoke(QUERY)),
                    lambda i=index: i.retrieve(QUERY), lambda i=index: asyncio.run(i.aretrieve(QUERY)))
        for attempt in attempts:
            with pytest.raises(SearchRefusedError) as refused:
                attempt()
            message = str(refused.value)
            assert refused.value.status == status and f"{served} answered 401" in message, message
            assert refused.value.detail in message and "api_key" in message, message
            assert wrong not in message and alice_key not in message and isinstance(refused.value, ConfigError)

    with pytest.raises(SearchRefusedError, match=r"answered 404 .*base_url must be the root"):
        llamaindex.DocvecRetriever(base_url=served + "/api", api_key=alice_key).retrieve(QUERY)
    nowhere = f"http://127.0.0.1:{free_port()}"
    for attempt in (lambda: langchain.DocvecRetriever(base_url=nowhere, api_key=alice_key).invoke(QUERY),
                    lambda: asyncio.run(llamaindex.DocvecRetriever(base_url=nowhere, api_key=alice_key).aretrieve(QUERY))):
        with pytest.raises(SearchUnavailableError) as unreachable:
            attempt()
        assert f"docvec serve at {nowhere} cannot be reached" in str(unreachable.value)
        assert isinstance(unreachable.value, TransientError) and alice_key not in str(unreachable.value)
    assert issubclass(SearchRefusedError, SearchServerError)


# Run in a process of its own: the extras hidden first, then with them, every connection recorded.
ISOLATED = r"""
import asyncio, json, os, sys

outside = []
LOCAL = ("127.0.0.1", "::1", "localhost", None)
def audit(event, args):  # every outside connection is recorded and refused
    if event == "socket.connect" and isinstance(args[1], tuple) and args[1][0] not in LOCAL:
        outside.append(repr(args[1]))
    elif event == "socket.getaddrinfo" and args[0] not in LOCAL:
        outside.append(repr(args[0]))
    elif event == "urllib.Request":
        outside.append(args[0])
    else:
        return
    raise OSError(f"no network in this test: {outside[-1]}")
sys.addaudithook(audit)

report = {}
sys.modules["langchain_core"] = sys.modules["llama_index"] = None
import pipeline.cli.main, pipeline.integrations.client
for name in ("langchain", "llamaindex"):
    try:
        __import__(f"pipeline.integrations.{name}")
    except ImportError as exc:
        report[name] = str(exc)
del sys.modules["langchain_core"], sys.modules["llama_index"]

before = dict(os.environ)
from pipeline.integrations import langchain, llamaindex
chain = langchain.DocvecRetriever(mode="text", k=3)
index = llamaindex.DocvecRetriever(mode="text", k=3)
report["chunks"] = [[d.id for d in chain.invoke("harbour ledger")],
                    [d.id for d in asyncio.run(chain.ainvoke("harbour ledger"))],
                    [n.node.node_id for n in index.retrieve("harbour ledger")],
                    [n.node.node_id for n in asyncio.run(index.aretrieve("harbour ledger"))]]
report["content"] = index.retrieve("harbour ledger")[0].node.get_content(metadata_mode="llm")
chain.close(); index.close()
report["environment changed"] = sorted(set(os.environ.items()) ^ set(before.items()))
report["outside"] = outside
print(json.dumps(report))
"""


def test_extras_are_optional_and_nothing_is_downloaded(store, tmp_path) -> None:
    env = {**os.environ, "DATABASE_URL": str(store.database_url), "DOCVEC_HOME": str(tmp_path / "home")}
    for name in ("NLTK_DATA", "TIKTOKEN_CACHE_DIR", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        env.pop(name, None)  # nothing set for it: what matters is that nothing is fetched
    done = subprocess.run([sys.executable, "-c", ISOLATED], env=env, capture_output=True, text=True, timeout=300,
                          check=False, cwd=Path(__file__).parent.parent)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert "pip install 'docvec[langchain]'" in report["langchain"]
    assert "pip install 'docvec[llamaindex]'" in report["llamaindex"]
    chunks = report["chunks"]
    assert chunks[0] and all(found == chunks[0] for found in chunks), chunks
    assert "harbour ledger" in report["content"]
    assert report["outside"] == [] and report["environment changed"] == [], report
