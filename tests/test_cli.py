"""The ``docvec`` command line against the session's real server and model."""

from __future__ import annotations

import json

import psycopg
import pytest

from pipeline.cli.main import main
from pipeline.storage import connections, layout
from tests.support.fresh_process import run_light
from tests.support.sample import SAMPLE_END


def test_search_prints_ranked_results(migrated, capsys, loaded_sample) -> None:
    code = main(["--home", str(migrated.home), "search", "container ship stuck in the Suez canal", "-k", "3"])
    out = capsys.readouterr().out
    assert code == 0
    assert "1. similarity" in out and "shipping/suez-blockage.txt" in out.splitlines()[1]


def test_search_json_with_filter(migrated, capsys, loaded_sample) -> None:
    code = main(["--home", str(migrated.home), "search", "honey", "--filter", "topic=beekeeping", "--json", "-k", "4"])
    hits = json.loads(capsys.readouterr().out)
    assert code == 0 and len(hits) == 4
    assert all(hit["metadata"]["topic"] == "beekeeping" for hit in hits)
    assert all(0.0 < hit["similarity"] <= 1.0 for hit in hits)


def test_text_search_never_loads_the_model(migrated, loaded_sample) -> None:
    """Text mode reads stored rows only: in a fresh process it imports neither torch nor
    sentence-transformers (each costs seconds), yet finds the document."""
    out = run_light("import sys\n"
                    "from pipeline.cli.main import main\n"
                    "code = main(['search', '--mode', 'text', 'container ship Suez canal', '-k', '3'])\n"
                    "assert code == 0, code\n", migrated.home)
    assert "shipping/suez-blockage.txt" in out and "text " in out


def test_bad_filter_is_a_clear_error(migrated, capsys) -> None:
    code = main(["--home", str(migrated.home), "search", "x", "--filter", "oops"])
    assert code == 2
    assert "is not key=value" in capsys.readouterr().err


def test_migrate_sql(migrated, capsys) -> None:
    assert main(["--home", str(migrated.home), "migrate", "--sql", "--embedding-dim", "384"]) == 0
    assert "CREATE TABLE chunks" in capsys.readouterr().out


def test_status_reports_each_loaded_day(migrated, capsys, loaded_sample) -> None:
    from tests.support.sample import SAMPLE_END

    assert main(["--home", str(migrated.home), "status", "--today", str(SAMPLE_END)]) == 0
    out = capsys.readouterr().out
    assert "oldest kept day" in out
    sample_day = [line for line in out.splitlines() if line.startswith(str(SAMPLE_END))]
    assert sample_day and "exact scan" in sample_day[0]
    columns = sample_day[0].split()
    assert int(columns[1].replace(",", "")) > 40 and int(columns[2].replace(",", "")) > 40


def test_doctor_reports_server_data_settings_and_statements(migrated, capsys, loaded_sample) -> None:
    code = main(["--home", str(migrated.home), "doctor", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == (1 if report["problems"] else 0)
    major = int(report["server_version"].split(".")[0].split()[0])  # "18.4", "14.12 (Debian 14.12-1)"
    assert report["pgvector_version"].startswith("0.8") and major >= 14, "compared as numbers: '9' >= '14' as text"
    assert report["chunks"] > 0 and report["days"] >= 7 and report["dim"] == 384
    assert {s["name"] for s in report["settings"]} == {"shared_buffers", "maintenance_work_mem", "work_mem"}
    assert report["statements"] is None and "shared_preload_libraries" in report["statements_hint"]
    assert "***" in report["connection"] or "@" not in report["connection"]

    main(["--home", str(migrated.home), "doctor"])
    text = capsys.readouterr().out
    assert "pgvector 0.8" in text and "top statements (pg_stat_statements)" in text and "problems:" in text


def test_doctor_flags_low_memory_settings_and_invalid_indexes(migrated, loaded_sample) -> None:
    from pipeline.ops import doctor

    partition = layout.partition_name(SAMPLE_END)
    with connections.connect(migrated) as conn:
        conn.execute("SET work_mem = '1MB'")
        # A unique index over duplicate values fails mid-build and, built CONCURRENTLY, stays behind INVALID.
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(f"CREATE UNIQUE INDEX CONCURRENTLY doctor_probe ON {partition} (ingest_date)")
        try:
            report = doctor.diagnose(conn)
        finally:
            conn.execute("DROP INDEX CONCURRENTLY IF EXISTS doctor_probe")
    problems = "\n".join(report.problems)
    assert "work_mem is 1.0 MB; 16.0 MB recommended" in problems
    assert "ALTER SYSTEM SET work_mem = '16MB'; SELECT pg_reload_conf()" in problems  # how to fix it
    assert "index doctor_probe on" in problems and "INVALID" in problems
