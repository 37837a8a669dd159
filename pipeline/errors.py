"""Errors that carry a message fit for a person: what went wrong, where, and what to do.

The types say what kind of failure it is, so that callers decide by type, never by message text:

- ``DatabaseUnavailableError``: the server refused or lost the connection; retrying may succeed (the
  only failure ``docvec serve`` answers with 503, and one a Dagster step retries).
- ``ContentionError``: other runs kept changing what this one waited for; retrying later may succeed.
- ``ConfigError``: a setting, argument or request is invalid; the caller must change it (400 over HTTP).
- ``PreconditionError``: the system is not in a state to do this (a schema not migrated, no model served,
  pgvector missing, a privilege not granted); an operator must act first. ``DatabaseSetupError`` is the
  database's kind of it.
- ``StoredStateError``: what is stored contradicts itself or what a step just did (a query that must
  return a row returned none, an index build came out invalid); a bug or outside interference.
- ``BadInputError`` / ``UnreadableDocument``: one source file cannot be ingested: a dead letter.
"""

from __future__ import annotations


class DocvecError(Exception):
    """Base of docvec's own errors."""


class TransientError(DocvecError):
    """Retrying the same work later may succeed."""


class ConfigError(DocvecError):
    """A setting, argument or request is missing or invalid; the message names it and the fix."""


class PreconditionError(DocvecError):
    """The system is not ready for this yet (not migrated, nothing served, a grant missing); the message
    says what to run or ask for first."""


class DatabaseSetupError(PreconditionError):
    """The database cannot be used as configured (pgvector missing or too old, a privilege missing, a
    connection without the autocommit a step needs); the message says how to fix it."""


class NothingServedError(PreconditionError):
    """No embedding model is served yet: nothing was ingested, so there is nothing to search."""


class ListingError(DocvecError):
    """The source could not be listed in full (a folder that cannot be read, a listing that failed half-way):
    nothing is decided from a partial listing, so nothing is deleted; retry once the source reads again."""


class StoredStateError(DocvecError):
    """Stored state is inconsistent: with itself, or with what a step has just done. Not retried."""


class BadInputError(DocvecError):
    """One source file cannot be ingested; it is dead-lettered and the rest of the day loads."""

    def __init__(self, source: str, reason: str, fix: str) -> None:
        super().__init__(f"{source}: {reason}. {fix}")
        self.source = source
        self.reason = reason
        self.fix = fix


class DimensionMismatchError(PreconditionError):
    """A vector's dimension differs from its model's or from the table column's: the wrong model for
    this store."""


class DatabaseUnavailableError(TransientError):
    """The connection was refused, or lost mid-way (restart, failover, network); retrying may succeed."""


class InvalidVectorError(DocvecError):
    """A vector is NaN, infinite or all zeros: the model (or its input) misbehaved, not the schema."""


class ContentionError(TransientError):
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
