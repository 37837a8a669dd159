"""The suite's plugins: test tiers (markers from what each test needs, and the guard that keeps them
honest) and the shared fixtures, one real embedded PostgreSQL and one real bundled model per session.
Helpers tests import live in tests/support, never here."""

pytest_plugins = [
    "tests.support.tiers",
    "tests.support.fixtures.database",
    "tests.support.fixtures.model",
    "tests.support.fixtures.sample",
    "pytester",  # tests/test_tiers.py runs small suites of its own
]
