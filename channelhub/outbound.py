"""What every push run shares: push each item through the connector, record each outcome in its own
transaction, and carry on past transient failures, which then fail the run so Airflow retries it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import TypeVar

from sqlalchemy import Connection, Engine

from connectors.errors import ConnectorError
from connectors.pushes import PushResult

T = TypeVar("T")


class PushIncomplete(RuntimeError):
    """Some items could not be pushed for transient reasons; the rest were, and are recorded."""


def push_each(
    engine: Engine,
    items: Sequence[T],
    push: Callable[[T], PushResult],
    record: Callable[[Connection, T, str, str], None],
    name: Callable[[T], str],
    what: str,
) -> Counter[str]:
    """Push ``items`` one by one; returns the outcomes by status, or raises ``PushIncomplete`` at the end
    when some failed transiently (after every item was tried and every outcome recorded)."""
    outcomes: Counter[str] = Counter()
    failures: list[str] = []
    for item in items:
        try:
            result = push(item)
            status, detail = result.status, result.detail
        except ConnectorError as err:  # transient after the client's own retries: record, go on, fail the run
            status, detail = "failed", str(err)
            failures.append(f"{name(item)}: {err}")
        with engine.begin() as conn:
            record(conn, item, status, detail)
        outcomes[status] += 1
    if failures:
        raise PushIncomplete(f"{len(failures)} of {len(items)} {what} failed: " + "; ".join(failures[:5]))
    return outcomes
