"""What transfers and purchase receipts share: keyed ledger moves and discrepancies queued for a person."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection

from warehouse import exceptions as queue
from warehouse.stock import LedgerRow, Step, apply_steps, write_ledger


def apply_entries(conn: Connection, entries: Sequence[LedgerRow]) -> list[int | None]:
    """Apply ledger rows to their levels, each by the conditional step (a step that takes units applies only
    while that many are free: on_hand - reserved), locked in (sku, location) order like every other writer.

    Returns each step's availability after it, or None where it did not apply; the ledger rows are written
    only when every step applied. A caller that gets a None must roll back (its savepoint), as the steps
    that did apply are not undone here."""
    results = apply_steps(
        conn, [Step(e.sku_id, e.location_id, e.delta_on_hand, e.delta_reserved) for e in entries]
    )
    if all(result is not None for result in results):
        write_ledger(conn, entries)
    return results


def queue_discrepancy(conn: Connection, reason: str, subject: str, sku: str, detail: str) -> int:
    """Open (or refresh) the one exception a person works for this document and SKU; returns its id."""
    record = queue.ExceptionRecord(reason, subject, detail, None, sku)
    return queue.upsert_exceptions(conn, None, [record])[0]


def resolve_discrepancy(conn: Connection, reason: str, subject: str, sku: str, actor: str, note: str) -> None:
    """Close the open exception of this document and SKU (a person decided it), logged with who and why."""
    found = queue.ExceptionFilter(reason=reason, external_id=subject, sku=sku)
    for row in queue.search(conn, found):
        queue.close(conn, row["id"], status="resolved", actor=actor, note=note)
