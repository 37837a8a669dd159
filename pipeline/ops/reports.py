"""What an engine step reports to whoever runs it (the Dagster assets and checks, a script): plain
values, so the engine stays free of the orchestrator. ``Markdown`` marks text meant to be rendered;
dicts and lists are JSON; everything else is a number, a string or a flag."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

Metadata = dict[str, Any]
LogLines = Callable[[str], None]


class Markdown(str):
    """Text to render as Markdown (a table, a list of samples)."""

    __slots__ = ()


def log_lines(log: LogLines, lines: Sequence[str]) -> None:
    """One log event for many lines: each event is a row in an orchestrator's event log, and an
    unchanged rerun of a long range of days would otherwise spend its time writing them."""
    if lines:
        log("\n".join(lines))


@dataclass(frozen=True)
class CheckOutcome:
    """The answer of one check of one property: whether it holds, what shows it, and (when it does
    not) what is wrong in a sentence."""
    passed: bool
    metadata: Metadata = field(default_factory=dict)
    description: str | None = None


def rate(count: float, seconds: float, digits: int = 1) -> float:
    """``count`` per second, 0 when nothing was timed."""
    return round(count / seconds, digits) if seconds and count else 0.0
