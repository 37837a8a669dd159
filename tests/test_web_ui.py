"""The web UI as a person sees it: `dagster dev` on docvec's instance, driven in headless Chromium,
and a one-day materialization launched through the webserver's GraphQL API."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from pipeline.cli.envfile import PROJECT_ROOT, dagster_environment
from pipeline.storage import connections
from tests.support.browser import Browser, chromium_path, serves
from tests.support.databases import fresh_database, own_home
from tests.support.network import free_port
from tests.support.sample import day_folder

pytestmark = pytest.mark.browser

LAUNCH = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}"""
STATUS = "query Status($id: ID!) { runOrError(runId: $id) { __typename ... on Run { status } } }"


def graphql(port: int, query: str, variables: dict) -> dict:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", method="POST",
                                     data=json.dumps({"query": query, "variables": variables}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.load(response)


@pytest.fixture(scope="module")
def web_ui_store(migrated, embedder, tmp_path_factory):
    """A home, a store and a Dagster storage of the web UI's own: `dagster dev` runs a daemon, and a
    daemon runs the schedules that are on by default (retention at 01:15 UTC) against whatever store it
    is given."""
    if chromium_path() is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing in CI: scripts/test.sh should have installed it")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return own_home(fresh_database(migrated, embedder.info.dim, "docvec_web_ui"), tmp_path_factory.mktemp("web_ui_home"))


@pytest.fixture(scope="module")
def dagster_dev(web_ui_store):
    port = free_port()
    env = {**os.environ, **dagster_environment(web_ui_store)}
    process = subprocess.Popen(
        [str(Path(sys.executable).with_name("dagster")), "dev", "-w", str(PROJECT_ROOT / "workspace.yaml"),
         "-p", str(port), "-h", "127.0.0.1"],
        cwd=web_ui_store.home, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    if not serves(port, 120):
        os.killpg(process.pid, signal.SIGTERM)
        pytest.fail("dagster dev did not answer within 120 s")
    yield port
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)


def test_asset_graph_partitions_and_a_launched_run(dagster_dev, web_ui_store, tmp_path_factory) -> None:
    port = dagster_dev
    shots = Path(os.environ.get("DOCVEC_SCREENSHOT_DIR") or tmp_path_factory.mktemp("screenshots"))
    shots.mkdir(parents=True, exist_ok=True)
    day = dt.date.today()
    folder = day_folder(web_ui_store.landing_dir, day)
    (folder / "ui-note.md").write_text("---\ntopic: ui\n---\nA note launched from the Dagster web UI test.")

    browser = Browser()
    try:
        browser.goto(f"http://127.0.0.1:{port}/asset-groups")
        browser.wait_for_text("maintenance")
        # The first-visit community dialog (shown once per instance) is dismissed as a person would.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if "Join the Dagster community" in browser.text():
                assert browser.click_button("Skip")
                break
            time.sleep(0.5)
        browser.goto(f"http://127.0.0.1:{port}/asset-groups")
        text = browser.wait_for_text("maintenance")
        assert "ingest" in text and "Join the Dagster community" not in text
        time.sleep(2)
        browser.screenshot(shots / "asset_graph.png")

        browser.goto(f"http://127.0.0.1:{port}/assets/vector_store")
        text = browser.wait_for_text("Each day's chunks and vectors")  # the asset's docstring
        browser.screenshot(shots / "vector_store.png")

        launched = graphql(port, LAUNCH, {"params": {
            "selector": {"repositoryLocationName": "docvec", "repositoryName": "__repository__",
                         "jobName": "ingest_daily"},
            "executionMetadata": {"tags": [{"key": "dagster/partition", "value": day.isoformat()}]},
            "runConfigData": {},
        }})["data"]["launchRun"]
        assert launched["__typename"] == "LaunchRunSuccess", launched
        run_id = launched["run"]["runId"]
        deadline = time.monotonic() + 600
        status = None
        while time.monotonic() < deadline:
            status = graphql(port, STATUS, {"id": run_id})["data"]["runOrError"]["status"]
            if status in {"SUCCESS", "FAILURE", "CANCELED"}:
                break
            time.sleep(2)
        assert status == "SUCCESS", status

        browser.goto(f"http://127.0.0.1:{port}/assets/vector_store?view=partitions")
        text = browser.wait_for_text("Materialized")
        assert day.isoformat() in text
        browser.screenshot(shots / "vector_store_partitions.png")
        browser.goto(f"http://127.0.0.1:{port}/runs/{run_id}")
        browser.wait_for_text("vector_index")
        browser.screenshot(shots / "run.png")
    finally:
        browser.close()
    with connections.connect(web_ui_store) as conn:
        assert conn.execute("SELECT count(*) FROM chunks WHERE ingest_date = %s AND doc_id = 'ui-note.md'",
                            (day,)).fetchone()[0] == 1
    for name in ("asset_graph.png", "vector_store.png", "vector_store_partitions.png", "run.png"):
        assert (shots / name).stat().st_size > 10_000, name
