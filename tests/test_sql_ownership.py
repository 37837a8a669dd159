"""Only ``pipeline/storage`` runs SQL: every statement on docvec's tables (and the server's catalogs) has
one owner there, and the rest of the engine calls it. Checked on the source, so a new ``conn.execute``
elsewhere fails here before review."""

from __future__ import annotations

import ast
from pathlib import Path

ENGINE = Path(__file__).resolve().parents[1] / "pipeline"
RUNS_SQL = {"execute", "executemany", "cursor"}  # COPY needs a cursor first


def _sql_calls(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    return [f"{path.relative_to(ENGINE.parent)}:{node.lineno} .{node.func.attr}()"
            for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in RUNS_SQL]


def test_only_storage_runs_sql() -> None:
    outside = [call for path in sorted(ENGINE.rglob("*.py")) if "storage" not in path.relative_to(ENGINE).parts
               for call in _sql_calls(path)]
    assert outside == [], "SQL outside pipeline/storage (move the statement into the module that owns its table):\n" \
        + "\n".join(outside)


def test_the_check_sees_a_statement() -> None:
    probe = ENGINE / "storage" / "catalog.py"
    assert _sql_calls(probe), "the scan must find the statements storage does run"
