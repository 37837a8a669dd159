"""The sample corpus as the tests use it, and landing-zone day folders."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

# Sample days for the tests: fixed, so runs are reproducible (inside the partition range from 2026-01-01).
SAMPLE_END = dt.date(2026, 3, 7)


def day_folder(landing: Path, day: dt.date) -> Path:
    """The folder of ``day`` in a landing zone, created when missing."""
    folder = landing / day.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    return folder
