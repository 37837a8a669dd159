"""Metadata filters (``topic=runbooks``, ``page=12``) as SQL over a ``jsonb`` metadata column, the one
definition search (``chunk_search``) and erasure (``erasure.matching_ids``) share, so ``docvec forget
--filter`` erases exactly what ``docvec search --filter`` finds."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from psycopg import sql

_NUMBER = re.compile(r"-?\d{1,15}")


def conditions(column: str, filters: Mapping[str, str]) -> tuple[list[sql.Composable], dict[str, Any]]:
    """One condition per group of pairs on ``column`` (e.g. ``c.metadata``), with named parameters:
    text values must all be held (one containment test); a number (page=12) matches the number readers
    store, or the same digits as text (front matter)."""
    target = sql.SQL(column)
    found: list[sql.Composable] = []
    params: dict[str, Any] = {}
    text_values = {key: value for key, value in filters.items() if not _NUMBER.fullmatch(value)}
    if text_values:
        found.append(sql.SQL("{c} @> %(filters)s::jsonb").format(c=target))
        params["filters"] = json.dumps(text_values)
    for n, (key, value) in enumerate((k, v) for k, v in filters.items() if k not in text_values):
        found.append(sql.SQL("({c} @> %({a})s::jsonb OR {c} @> %({b})s::jsonb)").format(
            c=target, a=sql.SQL(f"number_{n}"), b=sql.SQL(f"digits_{n}")))
        params[f"number_{n}"] = json.dumps({key: int(value)})
        params[f"digits_{n}"] = json.dumps({key: value})
    return found, params
