"""Prometheus metrics (issue #29, item 3), as an operator's Prometheus meets them: ``/metrics`` of a real
``docvec serve`` process scraped after real searches, and the pipeline's run metrics pushed by the real
assets to a real Pushgateway (Debian ``prometheus-pushgateway``) and read back from it."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import pytest
from dagster import materialize
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from assets import chunk_embeddings, document_chunks, raw_documents, vector_index, vector_store
from pipeline.api.app import create_app
from pipeline.ingest.landing import LocalLanding
from pipeline.ops import run_metrics
from pipeline.query.service import OneConnection, SearchService
from pipeline.settings import Settings, load_settings
from pipeline.storage import connections
from resources import DayBatchIOManager, EmbedderResource, PostgresResource, RetentionResource, SourceResource
from tests.support.databases import fresh_database
from tests.support.engine_runs import run_days
from tests.support.network import free_port
from tests.support.pushgateway import pushgateway, scrape
from tests.support.sample import day_folder
from tests.support.serve_process import serve_process

MARKER = "quokka7f3a marmalade ledger"  # a query no label may carry
DAY = dt.date(2026, 8, 3)
Labels = dict[str, str]


def call(base: str, path: str, params: dict[str, Any] | None = None, body: dict[str, Any] | None = None,
         token: str | None = None) -> tuple[int, str]:
    url = base + path + ("?" + urllib.parse.urlencode(params) if params else "")
    headers = {"Content-Type": "application/json"} if body is not None else {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=json.dumps(body).encode() if body is not None else None, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def samples(text: str) -> list[tuple[str, Labels, float]]:
    """Every sample of an exposition, parsed as Prometheus parses it."""
    return [(s.name, dict(s.labels), s.value) for family in text_string_to_metric_families(text) for s in family.samples]


def value(text: str, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels`` (0 when none)."""
    return sum(v for n, got, v in samples(text) if n == name and labels.items() <= got.items())


def label_values(text: str) -> set[str]:
    return {v for _, labels, _ in samples(text) for v in labels.values()}


@contextmanager
def serving(settings: Settings, tmp_path: Path, *args: str, **env: str) -> Iterator[str]:
    environment = {**os.environ, "DOCVEC_HOME": str(settings.home), **env}
    with serve_process(["--pool-size", "3", *args], environment, tmp_path) as (base, _):
        yield base


def test_serve_metrics_count_requests_by_mode_and_status_errors_by_type_and_the_pool(
        loaded_sample, migrated, tmp_path) -> None:
    with serving(migrated, tmp_path) as base:
        status, before = call(base, "/metrics")
        assert status == 200
        assert value(before, "docvec_pool_connections_max") == 3  # the pool's gauges, read from get_stats()
        for name in ("docvec_pool_connections", "docvec_pool_connections_idle", "docvec_pool_requests_waiting",
                     "docvec_pool_requests_total", "docvec_pool_requests_wait_seconds_total"):
            assert any(n == name for n, _, _ in samples(before)), name

        searches: list[tuple[dict[str, Any] | None, dict[str, Any] | None]] = [
            ({"q": MARKER, "mode": "hybrid", "k": 3}, None), ({"q": "ERR-4714", "mode": "text"}, None),
            (None, {"q": MARKER, "mode": "vector", "k": 2})]
        for params, body in searches:
            assert call(base, "/search", params=params, body=body)[0] == 200
        assert call(base, "/search", params={"q": MARKER, "k": 0})[0] == 422  # refused before its mode is known
        assert call(base, "/search", params={"q": "   ", "mode": "text"})[0] == 400  # the service refuses it

        status, after = call(base, "/metrics")
        assert status == 200
        latency = "docvec_http_request_duration_seconds_count"
        moved = {(mode, code): value(after, latency, route="/search", mode=mode, status=code)
                 - value(before, latency, route="/search", mode=mode, status=code)
                 for mode, code in (("hybrid", "200"), ("text", "200"), ("vector", "200"), ("none", "422"),
                                    ("text", "400"))}
        assert moved == {("hybrid", "200"): 1, ("text", "200"): 1, ("vector", "200"): 1, ("none", "422"): 1,
                         ("text", "400"): 1}
        assert value(after, latency, route="/search", method="POST", mode="vector") == 1
        assert value(after, "docvec_http_errors_total", route="/search", type="RequestValidationError") == 1
        assert value(after, "docvec_http_errors_total", route="/search", type="ConfigError") == 1
        assert value(after, "docvec_http_errors_total") == 2  # a search that answered 200 is no error

        # Candidates per branch per search: hybrid fed both branches, vector one, text one.
        candidates = "docvec_search_candidates_count"
        assert value(after, candidates, mode="hybrid", branch="vector") == 1
        assert value(after, candidates, mode="hybrid", branch="text") == 1
        assert value(after, candidates, mode="vector", branch="vector") == 1
        assert value(after, candidates, mode="text", branch="text") == 1
        assert value(after, "docvec_search_candidates_sum", mode="hybrid", branch="vector") > 0
        assert value(after, "docvec_model_encode_seconds_count") == 2  # text mode embeds nothing
        assert value(after, "docvec_model_encode_seconds_sum") > 0
        assert value(after, "docvec_pool_requests_total") > value(before, "docvec_pool_requests_total")

        assert call(base, "/nowhere/" + MARKER.replace(" ", "-"))[0] == 404
        status, last = call(base, "/metrics")
        assert value(last, latency, route="unmatched", status="404") == 1  # the path itself is never a label
        assert "quokka7f3a" not in last and "marmalade" not in last and "ERR-4714" not in last


def test_each_app_counts_in_a_registry_of_its_own_and_errors_no_handler_answered() -> None:
    """Two apps in one process (tests, a server and its search page…) never share or collide on metrics;
    an exception no handler answers is counted by its class, never its message."""
    first, second = (create_app(SearchService(OneConnection(cast(Any, None)))) for _ in range(2))

    @first.get("/boom")
    def boom() -> None:
        raise RuntimeError(MARKER)

    client, other = TestClient(first, raise_server_exceptions=False), TestClient(second)
    assert client.get("/boom").status_code == 500
    assert client.get("/boom").status_code == 500
    text, untouched = client.get("/metrics").text, other.get("/metrics").text
    assert value(text, "docvec_http_errors_total", route="/boom", type="RuntimeError") == 2
    assert value(text, "docvec_http_request_duration_seconds_count", route="/boom", status="500", mode="none") == 2
    assert "quokka7f3a" not in text
    assert value(untouched, "docvec_http_errors_total") == 0
    assert value(untouched, "docvec_http_request_duration_seconds_count") == 0


def docvec(store: Settings, tmp_path: Path, *args: str) -> str:
    env = {**os.environ, "DATABASE_URL": str(store.database_url), "DOCVEC_HOME": str(tmp_path / "home")}
    done = subprocess.run([sys.executable, "-m", "pipeline.cli.main", *args], env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_metrics_need_the_bearer_with_auth_on_and_carry_no_query_key_or_principal(
        migrated, embedder, tmp_path) -> None:
    store = fresh_database(migrated, embedder.info.dim, "docvec_metrics_auth")  # its keys stay its own
    landing = tmp_path / "landing"
    (day_folder(landing, DAY) / "note.md").write_text("# Note\n\nThe marmalade ledger is filed by the desk.")
    with connections.connect(store) as conn:
        run_days(conn, LocalLanding(landing), [DAY], embedder)
    principal = "group:metrics-secret-principal"
    key = docvec(store, tmp_path, "keys", "create", "--principal", principal, "--tenant", "tenantsecret",
                 "--name", "prometheus").splitlines()[0]
    with serving(store, tmp_path, "--auth", "keys", DATABASE_URL=str(store.database_url)) as base:
        assert call(base, "/metrics")[0] == 401  # strangers see nothing of the traffic
        assert call(base, "/metrics", token="dvk_000000000000_nonsense")[0] == 401
        assert call(base, "/search", params={"q": MARKER}, token=key)[0] == 200
        assert call(base, "/search", params={"q": MARKER, "mode": "text"})[0] == 401
        status, body = call(base, "/metrics", token=key)
    assert status == 200
    assert value(body, "docvec_http_request_duration_seconds_count", route="/search", mode="hybrid", status="200") == 1
    assert value(body, "docvec_http_errors_total", type="Refused") >= 2
    key_id = key.split("_")[1]
    for secret in (key, key_id, key.split("_", 2)[2], principal, "metrics-secret", "tenantsecret", "prometheus",
                   "quokka7f3a", "marmalade"):
        assert secret not in body, secret
    allowed = {"/search", "/metrics", "/healthz", "unmatched", "GET", "POST", "hybrid", "vector", "text", "none",
               "Refused", *(str(code) for code in range(200, 600))}
    assert label_values(body) - allowed <= {labels["le"] for _, labels, _ in samples(body) if "le" in labels}


def test_pipeline_run_metrics_reach_a_real_pushgateway_per_asset_partition_and_day(
        migrated, embedder, tmp_path, monkeypatch) -> None:
    store = fresh_database(migrated, embedder.info.dim, "docvec_run_metrics")
    landing = tmp_path / "landing"
    folder = day_folder(landing, DAY)
    (folder / "one.md").write_text("# Kiln log\n\nThe kiln reached cone six at dawn and cooled overnight.")
    (folder / "two.md").write_text("# Glaze notes\n\nCeladon glaze crazes when the body shrinks less than it.")
    (folder / "empty.md").write_bytes(b"")  # a dead letter
    with pushgateway(tmp_path / "gateway") as gateway:
        monkeypatch.setenv(run_metrics.PUSHGATEWAY_ENV, gateway)
        monkeypatch.setenv(run_metrics.TEXTFILE_ENV, str(tmp_path / "textfiles"))
        (tmp_path / "textfiles").mkdir()
        resources = {"postgres": PostgresResource(database_url=str(store.database_url)),
                     "embedder": EmbedderResource(), "source": SourceResource(landing_dir=str(landing)),
                     "retention_window": RetentionResource(as_of=DAY.isoformat()),
                     "batch_io_manager": DayBatchIOManager(base_dir=str(tmp_path / "batches"))}
        result = materialize([raw_documents, document_chunks, chunk_embeddings, vector_store, vector_index],
                             resources=resources, partition_key=DAY.isoformat())
        assert result.success
        pushed = scrape(gateway)

    day, group = DAY.isoformat(), {"job": "docvec", "partition": DAY.isoformat()}
    read = {**group, "asset": "raw_documents", "day": day}
    assert value(pushed, "docvec_run_documents_read", **read) == 2
    assert value(pushed, "docvec_run_dead_letters", **read) == 1
    embedded = {**group, "asset": "chunk_embeddings", "day": day}
    assert value(pushed, "docvec_run_chunks_embedded", **embedded) >= 2
    assert any(n == "docvec_run_chunks_reused" and labels.items() >= embedded.items() for n, labels, _ in samples(pushed))
    loaded = {**group, "asset": "vector_store", "day": day}
    assert value(pushed, "docvec_run_chunks_loaded", **loaded) >= 2
    assert value(pushed, "docvec_run_load_seconds", **loaded) > 0
    indexed = {**group, "asset": "vector_index"}
    assert any(n == "docvec_run_index_seconds" and labels.items() >= indexed.items() for n, labels, _ in samples(pushed))
    assert value(pushed, "docvec_store_chunks", **indexed) >= 2
    assert value(pushed, "docvec_store_table_bytes", **indexed) > 0
    # Each step replaced only its own group: all four finished, and each says when.
    finished = {labels["asset"] for n, labels, _ in samples(pushed) if n == "docvec_run_finished_timestamp_seconds"}
    assert finished == {"raw_documents", "chunk_embeddings", "vector_store", "vector_index"}
    assert "Kiln" not in pushed and "empty.md" not in pushed and "kiln" not in pushed

    # The node_exporter textfiles hold the same figures, labelled with their asset and partition.
    textfile = (tmp_path / "textfiles" / f"docvec_raw_documents_{day}.prom").read_text()
    assert value(textfile, "docvec_run_documents_read", asset="raw_documents", partition=day, day=day) == 2
    assert {p.name for p in (tmp_path / "textfiles").iterdir()} == {
        f"docvec_{asset}_{day}.prom" for asset in ("raw_documents", "chunk_embeddings", "vector_store", "vector_index")}


def test_publishing_never_fails_the_step_it_warns_naming_the_setting(tmp_path) -> None:
    warnings: list[str] = []
    nowhere = f"http://127.0.0.1:{free_port()}"
    (tmp_path / "a-file").write_text("")
    target = run_metrics.Target(pushgateway=nowhere, textfile_dir=tmp_path / "a-file")
    went = run_metrics.publish("raw_documents", DAY.isoformat(), [run_metrics.Sample("documents_read", "d", 3, "x")],
                               warnings.append, target)
    assert went == []
    assert len(warnings) == 2
    assert nowhere in warnings[0] and run_metrics.PUSHGATEWAY_ENV in warnings[0]
    assert run_metrics.TEXTFILE_ENV in warnings[1] and "a-file" in warnings[1]
    went = run_metrics.publish("raw_documents", DAY.isoformat(), [], warnings.append,
                               run_metrics.Target(pushgateway="not a url at all"))
    assert went == [] and len(warnings) == 3


def test_nothing_configured_publishes_nothing(monkeypatch) -> None:
    monkeypatch.delenv(run_metrics.PUSHGATEWAY_ENV, raising=False)
    monkeypatch.delenv(run_metrics.TEXTFILE_ENV, raising=False)
    nowhere = run_metrics.Target.of(load_settings())
    assert nowhere == run_metrics.Target()
    assert run_metrics.publish("raw_documents", DAY.isoformat(), [], pytest.fail, nowhere) == []
