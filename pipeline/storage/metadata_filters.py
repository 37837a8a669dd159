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


def groups(filters: Mapping[str, str]) -> list[list[dict[str, Any]]]:
    """The filters as groups of JSON objects: the metadata must contain one object of every group. Text
    values must all be held (one group, one object); a number (page=12) matches the number readers store,
    or the same digits as text (front matter): a group of both."""
    text_values = {key: value for key, value in filters.items() if not _NUMBER.fullmatch(value)}
    found: list[list[dict[str, Any]]] = [[text_values]] if text_values else []
    found += [[{key: int(value)}, {key: value}] for key, value in filters.items() if key not in text_values]
    return found


def conditions(column: str, filters: Mapping[str, str]) -> tuple[list[sql.Composable], dict[str, Any]]:
    """One condition per group (``groups``) on ``column`` (e.g. ``c.metadata``), with named parameters: a
    containment test per object of the group, OR-ed."""
    target = sql.SQL(column)
    found: list[sql.Composable] = []
    params: dict[str, Any] = {}
    for n, group in enumerate(groups(filters)):
        tests = []
        for m, wanted in enumerate(group):
            name = f"filter_{n}_{m}"
            tests.append(sql.SQL("{c} @> {p}::jsonb").format(c=target, p=sql.Placeholder(name)))
            params[name] = json.dumps(wanted)
        found.append(sql.SQL("({})").format(sql.SQL(" OR ").join(tests)))
    return found, params
