"""Running a few lines of Python in a fresh interpreter, to see what they import: a test process has
the model loaded already, so only a new one can show that a path never needs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HEAVY_MODULES = ("torch", "sentence_transformers", "transformers")


def run_light(code: str, home: Path) -> str:
    """Run ``code`` in a new interpreter on the docvec home ``home``; fail unless it exits 0 having
    imported none of ``HEAVY_MODULES`` (each costs seconds). Returns what it printed."""
    check = (f"\nimport sys\nheavy = sorted(m for m in {HEAVY_MODULES!r} if m in sys.modules)\n"
             "assert not heavy, f'imported {heavy}'\n")
    env = {**os.environ, "DOCVEC_HOME": str(home)}
    result = subprocess.run([sys.executable, "-c", code + check], capture_output=True, text=True, env=env,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout
