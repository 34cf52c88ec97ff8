"""Telling the database's errors apart: a row the database refuses (queue that row, go on), a conflict with
another writer (run the transaction again), and the database gone (stop: nothing of the transaction was
kept, and the run is retried). Each message leaves out the SQL parameters, which hold customer data."""

from __future__ import annotations

import psycopg
from sqlalchemy.exc import DBAPIError

from warehouse.exceptions import DETAIL_LIMIT

DB_ERRORS = (DBAPIError, psycopg.Error)
RETRYABLE_SQLSTATES = {"40P01", "40001"}  # deadlock detected, serialization failure
# 08: connection exceptions; 57P: the server shutting down, crashed or not yet accepting connections.
OUTAGE_SQLSTATE_PREFIXES = ("08", "57P")


class WarehouseUnavailable(RuntimeError):
    """The warehouse database went away in the middle of a transaction: nothing of it was kept. Raised in
    place of what the next statement on the dead connection would say (SQLAlchemy's PendingRollbackError,
    which reads like a bug in the caller)."""


def is_retryable(err: BaseException) -> bool:
    return getattr(_orig(err), "sqlstate", None) in RETRYABLE_SQLSTATES


def is_outage(err: BaseException) -> bool:
    """The connection or the server failed, not the statement: nothing a row did, and nothing to queue."""
    if isinstance(err, DBAPIError) and err.connection_invalidated:
        return True
    orig = _orig(err)
    state = getattr(orig, "sqlstate", None)
    if state is None:  # a lost connection carries no SQLSTATE
        return isinstance(orig, psycopg.OperationalError)
    return state.startswith(OUTAGE_SQLSTATE_PREFIXES)


def raise_unless_the_rows_fault(err: BaseException) -> None:
    """Re-raise ``err`` when another try of the whole transaction may pass (a conflict), raise
    ``WarehouseUnavailable`` when the database is gone; return when the database refused the row itself."""
    if is_retryable(err):
        raise err
    if is_outage(err):
        raise WarehouseUnavailable(
            f"the warehouse database went away ({error_text(err)}): nothing of this transaction was kept; "
            "the run fails and is retried"
        ) from None  # not the DBAPIError: its text carries the statement's parameters


def error_text(err: BaseException | None) -> str:
    """The database's own words, first line only: never str(DBAPIError), which carries the parameters."""
    orig = _orig(err)
    message = str(orig).strip().splitlines()[0] if str(orig).strip() else ""
    return f"{type(orig).__name__}: {message}"[:DETAIL_LIMIT]


def _orig(err: BaseException | None) -> BaseException | None:
    return err.orig if isinstance(err, DBAPIError) else err
