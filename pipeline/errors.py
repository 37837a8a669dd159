"""Errors that carry a message fit for a person: what went wrong, where, and what to do."""

from __future__ import annotations


class DocvecError(Exception):
    """Base of docvec's own errors."""


class ConfigError(DocvecError):
    """A setting is missing or invalid; the message names it and the fix."""


class DatabaseSetupError(DocvecError):
    """The database cannot be used as configured; the message says how to fix it."""


class BadInputError(DocvecError):
    """One source file cannot be ingested; it is dead-lettered and the rest of the day loads."""

    def __init__(self, source: str, reason: str, fix: str) -> None:
        super().__init__(f"{source}: {reason}. {fix}")
        self.source = source
        self.reason = reason
        self.fix = fix


class DimensionMismatchError(DocvecError):
    """A vector's dimension differs from its model's or from the table column's."""


class DatabaseUnavailableError(DocvecError):
    """The connection was lost or refused mid-way (restart, failover, network); retrying may succeed."""


class InvalidVectorError(DocvecError):
    """A vector is NaN, infinite or all zeros: the model (or its input) misbehaved, not the schema."""


class ContentionError(DocvecError):
    """Other runs kept changing what this one waited for (a partition being sealed or trimmed over and
    over); retrying later may succeed."""


class UnreadableDocument(DocvecError):
    """A reader could not turn a file into text: ``reason`` says what is wrong with it, ``fix`` what to
    do. The caller names the file and dead-letters it."""

    def __init__(self, reason: str, fix: str) -> None:
        super().__init__(f"{reason}. {fix}")
        self.reason = reason
        self.fix = fix

    def __reduce__(self) -> tuple[type[UnreadableDocument], tuple[str, str]]:
        return type(self), (self.reason, self.fix)  # crosses process boundaries from the parse workers
