"""The ``docvec`` command line against the session's real server and model."""

from __future__ import annotations

import json

from pipeline.cli import main


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


def test_bad_filter_is_a_clear_error(migrated, capsys) -> None:
    code = main(["--home", str(migrated.home), "search", "x", "--filter", "oops"])
    assert code == 2
    assert "is not key=value" in capsys.readouterr().err


def test_migrate_sql(migrated, capsys) -> None:
    assert main(["--home", str(migrated.home), "migrate", "--sql", "--embedding-dim", "384"]) == 0
    assert "CREATE TABLE chunks" in capsys.readouterr().out


def test_status_reports_each_loaded_day(migrated, capsys, loaded_sample) -> None:
    from tests.conftest import SAMPLE_END

    assert main(["--home", str(migrated.home), "status", "--today", str(SAMPLE_END)]) == 0
    out = capsys.readouterr().out
    assert "oldest kept day" in out
    sample_day = [line for line in out.splitlines() if line.startswith(str(SAMPLE_END))]
    assert sample_day and "exact scan" in sample_day[0]
    columns = sample_day[0].split()
    assert int(columns[1].replace(",", "")) > 40 and int(columns[2].replace(",", "")) > 40
