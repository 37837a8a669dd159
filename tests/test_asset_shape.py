"""The Dagster layer stays thin: every asset and asset check in assets/ is a few calls to the engine,
measured the way a reviewer would (no database, no model: read from the source)."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

ASSETS = Path(__file__).resolve().parent.parent / "assets"
MAX_BODY_LINES = 30
MAX_COMPLEXITY = 10


def decision_points(function: ast.FunctionDef) -> int:
    """Cyclomatic complexity counted as radon does, and stricter than McCabe (ruff's C901): 1, plus
    one per branch, loop, handler and case, per comprehension loop and filter, per extra operand of
    ``and``/``or`` and per conditional expression; nested functions count toward their host."""
    points = 1
    for node in ast.walk(function):
        if isinstance(node, ast.If | ast.IfExp | ast.For | ast.AsyncFor | ast.While | ast.ExceptHandler | ast.match_case):
            points += 1
        elif isinstance(node, ast.comprehension):
            points += 1 + len(node.ifs)
        elif isinstance(node, ast.BoolOp):
            points += len(node.values) - 1
    return points


def body_lines(function: ast.FunctionDef) -> int:
    """Lines of the function's body, its docstring left out."""
    body = function.body[1:] if ast.get_docstring(function) else function.body
    return body[-1].end_lineno - body[0].lineno + 1 if body else 0


def _is_asset_decorator(node: ast.expr) -> bool:
    target = node.func if isinstance(node, ast.Call) else node
    return isinstance(target, ast.Name) and target.id in ("asset", "asset_check", "multi_asset")


def asset_functions(tree: ast.Module) -> list[ast.FunctionDef]:
    """Functions decorated with ``@asset``/``@asset_check``, and those an ``asset(...)(function)`` call
    turns into one (the factory of chunk_embeddings)."""
    wrapped = {arg.id for node in ast.walk(tree)
               if isinstance(node, ast.Call) and isinstance(node.func, ast.Call) and _is_asset_decorator(node.func)
               for arg in node.args if isinstance(arg, ast.Name)}
    return [node for node in tree.body if isinstance(node, ast.FunctionDef)
            and (any(_is_asset_decorator(d) for d in node.decorator_list) or node.name in wrapped)]


def mccabe(paths: list[Path]) -> dict[str, int]:
    """McCabe complexity of every function, from ruff's C901 with the limit at 0 (each one reported)."""
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "--isolated", "--select", "C901", "--config",
                           "lint.mccabe.max-complexity=0", "--output-format", "json", *map(str, paths)],
                          capture_output=True, text=True, check=False)
    found = {}
    for diagnostic in json.loads(done.stdout):
        match = re.search(r"`(\w+)` is too complex \((\d+) > 0\)", diagnostic["message"])
        if match:
            found[f"{Path(diagnostic['filename']).name}:{match.group(1)}"] = int(match.group(2))
    return found


def test_every_asset_and_check_is_short_and_simple() -> None:
    paths = sorted(ASSETS.glob("*.py"))
    measured = {f"{path.name}:{f.name}": (body_lines(f), decision_points(f))
                for path in paths for f in asset_functions(ast.parse(path.read_text()))}
    assert {"ingest.py:raw_documents", "ingest.py:_chunk_embeddings", "ingest.py:vector_store",
            "index.py:vector_index", "index.py:retrieval_quality", "retention.py:retention"} <= set(measured)
    too_long = {name: lines for name, (lines, _) in measured.items() if lines > MAX_BODY_LINES}
    too_complex = {name: points for name, (_, points) in measured.items() if points > MAX_COMPLEXITY}
    assert too_long == {} and too_complex == {}, "move the work into a typed report of the engine (pipeline/ops)"
    by_mccabe = mccabe(paths)
    assert set(measured) <= set(by_mccabe), "ruff measured every asset"
    assert {name: cc for name, cc in by_mccabe.items() if cc > MAX_COMPLEXITY} == {}


def test_the_measures_catch_an_asset_that_does_the_engines_work() -> None:
    """The shape of vector_store before it was thinned: a loop, inline checks and metadata in the asset."""
    fat = textwrap.dedent('''
        @asset(kinds={"postgres"})
        def fat(context, postgres, batches):
            """Loads and reports."""
            loads, lines = [], []
            with postgres.connect() as conn:
                for key, batch in batches.items():
                    load = stages.load_embeddings(conn, batch)
                    lines.append(f"{key}: unchanged" if load.unchanged else f"{key}: loaded {load.chunks}")
                    loads.append(load)
                ids = {key: find(conn, b.model).id for key, b in batches.items()}
                counts = {load.day: count(conn, load.day, ids[load.day]) for load in loads}
            mismatched = {d: c for d, c in counts.items() if c and c != 0 or not c}
            copied = sum(load.chunks for load in loads if not load.unchanged)
            return {"rate": copied / 2 if copied else 0.0, "bad": [d for d in mismatched if d]}
    ''')
    [function] = asset_functions(ast.parse(fat))
    assert decision_points(function) > MAX_COMPLEXITY
    assert body_lines(function) == 11
