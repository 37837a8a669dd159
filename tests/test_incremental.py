"""Incremental, idempotent ingestion across processes: concurrency, crashes, versions, CLI backfills."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from dagster import DagsterInstance, build_sensor_context

from pipeline.cli.envfile import PROJECT_ROOT, dagster_environment
from pipeline.ingest import landing_zone, stages
from pipeline.ingest.chunking import ChunkingConfig
from pipeline.ingest.landing_zone import open_landing
from pipeline.ingest.planning import DayPlan, ReadOptions, Recipe
from pipeline.ops import ingest_steps, loading
from pipeline.query import search
from pipeline.records import DayLoad
from pipeline.settings import Settings
from pipeline.storage import connections, layout
from tests.support.databases import fresh_database, own_home
from tests.support.sample import SAMPLE_END, day_folder


def script(settings: Settings, landing: Path, day: dt.date, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "tests.ingest_day_script", str(settings.home), str(landing),
                             day.isoformat(), *extra], cwd=PROJECT_ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def day_rows(conn: psycopg.Connection, day: dt.date) -> tuple[int, int]:
    return conn.execute("SELECT count(*), count(DISTINCT chunk_id) FROM chunks WHERE ingest_date = %s",
                        (day,)).fetchone()


def test_two_processes_rebuilding_the_same_day_leave_one_copy(migrated, conn, tmp_path) -> None:
    day = dt.date(2026, 2, 10)
    folder = day_folder(tmp_path, day)
    for i in range(12):
        (folder / f"doc-{i}.md").write_text(f"Document {i} describes lighthouse number {i} and its keeper.")
    first, second = script(migrated, tmp_path, day), script(migrated, tmp_path, day)
    outputs = [p.communicate(timeout=300) for p in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, outputs
    assert day_rows(conn, day) == (12, 12), "serialised by the day lock: exactly one copy"


def test_kill_during_copy_leaves_the_previous_day_intact(migrated, conn, tmp_path) -> None:
    day = dt.date(2026, 2, 11)
    (day_folder(tmp_path, day) / "only.md").write_text("The previous, complete version of this day.")
    ok = script(migrated, tmp_path, day)
    assert ok.wait(timeout=300) == 0, ok.communicate()
    before = conn.execute("SELECT chunk_id, text FROM chunks WHERE ingest_date = %s", (day,)).fetchall()
    assert len(before) == 1

    doomed = script(migrated, tmp_path, day, "--synthetic-rows", "300000")
    deadline = time.monotonic() + 240
    copied = 0
    while time.monotonic() < deadline and doomed.poll() is None:
        # The staging table is invisible to other sessions until commit: watch the COPY itself.
        row = conn.execute("SELECT tuples_processed FROM pg_stat_progress_copy "
                           "WHERE datname = current_database() AND command = 'COPY FROM'").fetchone()
        copied = row[0] if row else 0
        if copied > 20_000:
            break
        time.sleep(0.05)
    assert doomed.poll() is None and copied > 20_000, "the COPY was caught mid-way"
    os.kill(doomed.pid, signal.SIGKILL)
    doomed.wait(timeout=30)
    for _ in range(300):  # the server notices the dead client and rolls its transaction back
        if conn.execute("SELECT count(*) FROM pg_stat_progress_copy WHERE datname = current_database()").fetchone()[0] == 0:
            break
        time.sleep(0.1)
    assert conn.execute("SELECT chunk_id, text FROM chunks WHERE ingest_date = %s", (day,)).fetchall() == before
    assert conn.execute("SELECT to_regclass(%s)", (layout.staging_name(day, day),)).fetchone()[0] is None

    rerun = script(migrated, tmp_path, day)
    assert rerun.wait(timeout=300) == 0
    assert day_rows(conn, day) == (1, 1)


def test_a_later_version_wins_and_removing_it_restores_the_earlier(conn, migrated, tmp_path, embedder,
                                                                    chunking_config) -> None:
    early, late = dt.date(2026, 2, 12), dt.date(2026, 2, 13)
    (day_folder(tmp_path, early) / "zz-guide.md").write_text("The zeppelin hangar opens at nine in the morning.")
    (day_folder(tmp_path, late) / "zz-guide.md").write_text("The zeppelin hangar now opens at ten in the morning.")

    def load(day: dt.date) -> None:
        chunks = stages.chunk_documents(stages.read_documents(tmp_path, day), embedder.backend_tokenizer(),
                                        chunking_config)
        stages.load_embeddings(conn, stages.embed_chunks(chunks, embedder, conn))

    load(early)
    load(late)
    hits = [h for h in search.search(conn, embedder, "when does the zeppelin hangar open", k=10)
            if h.doc_id == "zz-guide.md"]
    assert [(h.ingest_date, h.text) for h in hits] == [(late, "The zeppelin hangar now opens at ten in the morning.")]

    (day_folder(tmp_path, late) / "zz-guide.md").unlink()
    load(late)
    hits = [h for h in search.search(conn, embedder, "when does the zeppelin hangar open", k=10)
            if h.doc_id == "zz-guide.md"]
    assert [h.ingest_date for h in hits] == [early]


def test_sensor_requests_new_and_changed_days(tmp_path) -> None:
    from resources import RetentionResource, SourceResource
    from schedules import landing_sensor

    today = dt.date(2026, 6, 30)
    for day in (today, today - dt.timedelta(days=1), today - dt.timedelta(days=60)):
        (day_folder(tmp_path, day) / "a.md").write_text(f"note for {day}")
    resources = {"source": SourceResource(landing_dir=str(tmp_path)),
                 "retention_window": RetentionResource(as_of=today.isoformat())}
    with DagsterInstance.ephemeral() as instance:
        context = build_sensor_context(instance=instance, resources=resources)
        first = landing_sensor(context)
        keys = sorted(r.partition_key for r in first.run_requests)
        assert keys == [str(today - dt.timedelta(days=1)), str(today)], "days beyond the window are ignored"

        context = build_sensor_context(instance=instance, resources=resources, cursor=first.cursor)
        assert list(landing_sensor(context).run_requests) == [], "nothing changed, nothing requested"

        time.sleep(0.01)
        (day_folder(tmp_path, today) / "b.md").write_text("a new file")
        context = build_sensor_context(instance=instance, resources=resources, cursor=first.cursor)
        [request] = landing_sensor(context).run_requests
        assert request.partition_key == str(today)


@pytest.mark.slow
def test_cli_backfills_of_a_three_day_range(migrated, embedder, tmp_path) -> None:
    """Both CLI ways from the README, through Dagster, from a subprocess, with a home, a store and a
    Dagster storage of their own (on the session's server, named by ``DATABASE_URL``): `docvec backfill`
    starts a Dagster daemon, and a daemon runs the schedules and sensors that are on by default. Its
    retention tick at 01:15 UTC once dropped every day of the session's store older than 30 days (the
    sample's, dated March 2026) under the tests that came after."""
    isolated = own_home(fresh_database(migrated, embedder.info.dim, "docvec_cli_backfill"), tmp_path / "home")
    landing = isolated.landing_dir
    today = dt.date.today()
    days = [today - dt.timedelta(days=back) for back in (6, 5, 4, 3, 2, 1)]
    for day in days:
        for i in range(3):
            (day_folder(landing, day) / f"cli-{i}.md").write_text(f"Backfill note {i} written for {day}.")
    env = {**os.environ, **dagster_environment(isolated)}
    backfill = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "--home", str(isolated.home), "backfill",
         "--from", str(days[0]), "--to", str(days[2]), "--timeout", "600"],
        cwd=PROJECT_ROOT, env=env, text=True, capture_output=True, timeout=900, check=False)
    assert backfill.returncode == 0, backfill.stdout[-3000:] + backfill.stderr[-3000:]
    assert "3 succeeded, 0 failed" in backfill.stdout

    materialize = subprocess.run(
        [str(Path(sys.executable).with_name("dagster")), "asset", "materialize", "-m", "pipeline.definitions",
         "--select", "group:ingest", "--partition-range", f"{days[3]}...{days[5]}"],
        cwd=isolated.home, env=env, check=False, text=True, capture_output=True, timeout=900)
    assert materialize.returncode == 0, materialize.stdout[-3000:] + materialize.stderr[-3000:]
    with connections.connect(isolated) as conn:
        for day in days:
            assert day_rows(conn, day) == (3, 3), day


def _load_planned(conn: psycopg.Connection, landing: Path, day: dt.date, embedder, config: ChunkingConfig, *,
                  force: bool = False) -> tuple[DayPlan, DayLoad]:
    """One day through the engine the way the assets run it: planned once (reading only what the plan
    needs), then chunked, embedded and loaded as the plan says."""
    recipe = Recipe(config, embedder.info, contextual=embedder.contextual)
    plans = ingest_steps.read_days(conn, open_landing(str(landing)), [day], recipe, ReadOptions(), force=force).plans
    chunks = ingest_steps.chunk_days(plans, embedder.backend_tokenizer).batches
    embedded = ingest_steps.embed_days(conn, chunks, lambda: embedder, log=lambda _: None).batches
    [load] = loading.load_days(conn, embedded).loads
    return plans[day.isoformat()], load


def test_an_unchanged_day_is_not_read_again_but_any_real_change_is_seen(conn, migrated, tmp_path, embedder,
                                                                        chunking_config) -> None:
    day = dt.date(2026, 2, 14)
    note = day_folder(tmp_path, day) / "kiln.md"
    note.write_text("The kiln fires at 1200 degrees for glaze.")
    (day_folder(tmp_path, day) / "other.md").write_text("An unrelated second note about bread.")
    first, load = _load_planned(conn, tmp_path, day, embedder, chunking_config)
    assert first.files_read == 2 and not first.unchanged and not load.unchanged

    again, load = _load_planned(conn, tmp_path, day, embedder, chunking_config)
    assert again.unchanged and again.files_read == 0 and again.read.documents == [] and again.read.files_seen == 2, \
        "signature matched: no file opened"
    assert load.unchanged and load.chunks == 2

    # Same size, modification time set back: only the change time gives it away (rsync -t, touch -d).
    stat = note.stat()
    note.write_text("The kiln fires at 1300 degrees for glaze.")
    os.utime(note, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert note.stat().st_size == stat.st_size and note.stat().st_mtime_ns == stat.st_mtime_ns
    edited, load = _load_planned(conn, tmp_path, day, embedder, chunking_config)
    assert not edited.unchanged and not load.unchanged
    assert edited.files_read == 1 and [k.doc_id for k in edited.read.kept] == ["other.md"], "only the changed file read"
    assert conn.execute("SELECT text FROM chunks WHERE ingest_date = %s AND doc_id = 'kiln.md'",
                        (day,)).fetchone()[0] == "The kiln fires at 1300 degrees for glaze."


def test_touched_files_are_read_once_and_settings_changes_still_rebuild(conn, migrated, tmp_path, embedder,
                                                                       chunking_config) -> None:
    day = dt.date(2026, 2, 15)
    note = day_folder(tmp_path, day) / "loom.md"
    note.write_text("The loom weaves twelve rows per minute. " * 40)
    _load_planned(conn, tmp_path, day, embedder, chunking_config)

    os.utime(note)  # touched: new times, same bytes
    touched, load = _load_planned(conn, tmp_path, day, embedder, chunking_config)
    assert touched.files_read == 1 and touched.unchanged and load.unchanged, \
        "read to compare contents, found equal, nothing rewritten"
    after, _ = _load_planned(conn, tmp_path, day, embedder, chunking_config)
    assert after.unchanged and after.files_read == 0, "the new signature was recorded"

    # Files listed as at the last load but the chunking settings changed: the day is read once and rebuilt.
    smaller = type(chunking_config)(max_seq_length=chunking_config.max_seq_length, max_tokens=64, overlap_tokens=0)
    planned, load = _load_planned(conn, tmp_path, day, embedder, smaller)
    assert planned.files_read == 1 and not planned.unchanged and not load.unchanged
    assert load.chunks > 1 and day_rows(conn, day) == (load.chunks, load.chunks)
    forced, load = _load_planned(conn, tmp_path, day, embedder, smaller, force=True)
    assert forced.files_read == 1 and not forced.unchanged and not load.unchanged
    assert day_rows(conn, day) == (load.chunks, load.chunks)


def test_a_changed_day_under_new_settings_reads_each_file_once_and_keeps_nothing(conn, migrated, tmp_path, embedder,
                                                                                 chunking_config) -> None:
    """One decision: a day whose files and settings both changed is planned in one pass. Before, the
    scan read the changed file and kept the others, then the plan found the kept chunks cut with other
    settings and read the whole day again."""
    day = dt.date(2026, 2, 16)
    folder = day_folder(tmp_path, day)
    for name in ("a.md", "b.md", "c.md"):
        (folder / name).write_text(f"Note {name} about the weaving of {name} cloth. " * 30)
    _load_planned(conn, tmp_path, day, embedder, chunking_config)
    (folder / "a.md").write_text("Note a.md, rewritten, about the dyeing of wool. " * 30)
    smaller = type(chunking_config)(max_seq_length=chunking_config.max_seq_length, max_tokens=64, overlap_tokens=0)
    plan, load = _load_planned(conn, tmp_path, day, embedder, smaller)
    assert plan.files_read == 3 and plan.read.kept == () and len(plan.read.documents) == 3, \
        "each file read once, none kept: their stored chunks were cut with other settings"
    assert not plan.unchanged and load.kept_chunks == 0 and day_rows(conn, day) == (load.chunks, load.chunks)
    tokens = conn.execute("SELECT max(token_count) FROM chunks WHERE ingest_date = %s", (day,)).fetchone()[0]
    assert tokens <= 64, "every chunk of the day was cut with the new settings"


def test_an_unchanged_rerun_loads_no_model_and_reuses_the_last_measurement(migrated, embedder, sample_landing,
                                                                            tmp_path) -> None:
    """The whole ingest DAG twice in fresh processes on one Dagster instance: the first run embeds and
    measures retrieval quality; the rerun finds every day unchanged and never imports torch or
    sentence-transformers (which cost seconds), reporting the earlier measurement with its run."""
    isolated = fresh_database(migrated, embedder.info.dim, "docvec_unchanged_rerun")
    sample_days = landing_zone.list_days(sample_landing)
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "dagster"), "DOCVEC_HOME": str(tmp_path / "home")}
    (tmp_path / "dagster").mkdir()
    command = [sys.executable, "-m", "tests.materialize_script", isolated.database_url, str(sample_landing),
               str(sample_days[0]), str(sample_days[-1]), SAMPLE_END.isoformat()]

    def run() -> dict:
        done = subprocess.run(command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=600,
                              check=False)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        return json.loads(done.stdout.strip().splitlines()[-1])

    first, rerun = run(), run()
    assert first["heavy_modules"] and first["days_unchanged"] == 0 and first["retrieval_remeasured"] is True
    assert rerun["success"] and rerun["days_unchanged"] == len(sample_days)
    assert rerun["heavy_modules"] == [], "nothing to embed, so no model was loaded"
    assert rerun["retrieval_passed"] == first["retrieval_passed"] and rerun["retrieval_remeasured"] is False
