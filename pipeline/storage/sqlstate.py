"""Which driver errors are which of docvec's error types, decided by class and SQLSTATE, never by
message text: a lost or refused connection becomes ``DatabaseUnavailableError`` (one clear sentence,
the driver's error chained), and ``is_transient`` says whether a retry can get past an error."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from pipeline.errors import DatabaseUnavailableError, TransientError

# Server states a retry can get past: the server shut down or restarted under us, is still starting, or
# chose this transaction as the loser of a serialization conflict or deadlock. Everything else (a full
# disk, a cancelled statement, a missing privilege) fails the same way again.
_RETRYABLE_SQLSTATES = frozenset({
    "57P01",  # admin_shutdown
    "57P02",  # crash_shutdown
    "57P03",  # cannot_connect_now
    "40001",  # serialization_failure
    "40P01",  # deadlock_detected
})


def is_transient(exc: BaseException | None) -> bool:
    """Whether retrying the work may succeed: docvec said so by the error's type, the connection was lost
    or refused (libpq reports those without a SQLSTATE, or in class 08), or the server said so by its
    SQLSTATE (see above)."""
    if isinstance(exc, TransientError):
        return True
    if not isinstance(exc, psycopg.Error):
        return False
    state = exc.sqlstate
    if state is None:
        return isinstance(exc, psycopg.OperationalError)
    return state.startswith("08") or state in _RETRYABLE_SQLSTATES


def first_line(exc: BaseException, default: str = "connection lost") -> str:
    """What the server or driver said, without its context lines (and so without any URL it echoed)."""
    return (str(exc).strip().splitlines() or [default])[0]


@contextmanager
def connection_guard(doing: str) -> Iterator[None]:
    """A lost connection while ``doing`` something becomes one clear sentence instead of a driver
    traceback; the original stays chained for ``--verbose`` logs. Other errors pass unchanged."""
    try:
        yield
    except psycopg.OperationalError as exc:
        if not is_transient(exc):
            raise
        raise DatabaseUnavailableError(
            f"lost the database connection while {doing} ({first_line(exc)}). The server may be restarting or "
            "unreachable: retry in a moment; `docvec doctor` checks it."
        ) from exc
