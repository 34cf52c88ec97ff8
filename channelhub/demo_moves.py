"""The demo's transfer (调拨): stock leaves one location, waits in transit, partly arrives at another.

``make demo-once`` calls ``demo_transfer(engine)`` after the first sync: it picks the SKU with the most free
units at the source, sends a few to a demo store (created when missing), receives part of them, and prints the
stock at the source, in transit and at the destination after each step. The same rules and code as the
``transfers`` / ``transfer_receipts`` files and ``channelhub transfer``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import Engine, desc, select

from canonical.store_files import TransferReceiptRow, TransferRow
from warehouse import catalog
from warehouse.import_rows import CatalogLookups
from warehouse.models import locations, skus, stock_levels
from warehouse.stock import stock_level
from warehouse.transfers import TRANSIT_CODE, receive_line, send_line

DEMO_STORE = "STORE-DEMO-01"

Levels = dict[str, tuple[int, int]]  # location code -> (on_hand, reserved)


def demo_transfer(
    engine: Engine,
    source: str = "WH-MAIN",
    destination: str = DEMO_STORE,
    units: int = 4,
    received: int | None = None,
    out: Callable[[str], None] = print,
) -> dict[str, Levels]:
    """Send ``units`` (fewer if fewer are free) of the SKU with the most free units at ``source`` to
    ``destination`` (a store, created if missing), receive ``received`` of them (default: half, rounded up),
    and print the stock at source, transit and destination before, after sending and after the receipt.

    Returns {"before" | "sent" | "received": {location code: (on_hand, reserved)}}; {} when ``source`` has no
    free unit of any SKU."""
    with engine.begin() as conn:
        if conn.execute(select(locations.c.id).where(locations.c.code == destination)).first() is None:
            catalog.upsert_location(conn, destination, "Demo store (transfers)", "store")
        best = conn.execute(
            select(skus.c.code, (stock_levels.c.on_hand - stock_levels.c.reserved).label("free"))
            .join(skus, skus.c.id == stock_levels.c.sku_id)
            .join(locations, locations.c.id == stock_levels.c.location_id)
            .where(locations.c.code == source)
            .order_by(desc("free"), skus.c.code)
            .limit(1)
        ).first()
    if best is None or best.free <= 0:
        out(f"transfer demo: no free stock at {source} to send")
        return {}
    sku, units = best.code, min(units, best.free)
    received = (units + 1) // 2 if received is None else received
    now = datetime.now(UTC)
    transfer_id = f"DEMO-{now:%Y%m%d%H%M%S%f}"
    where = (source, TRANSIT_CODE, destination)

    def levels() -> Levels:
        with engine.connect() as conn:
            return {code: stock_level(conn, sku, code) for code in where}

    def show(step: str, now_levels: Levels) -> None:
        cells = "  ".join(f"{code} on_hand={oh} reserved={rs}" for code, (oh, rs) in now_levels.items())
        out(f"  {step:<28} {cells}")

    steps: dict[str, Levels] = {"before": levels()}
    out(f"transfer {transfer_id}: {units} x {sku} {source} -> {destination}")
    show("before", steps["before"])
    lookups, counts = CatalogLookups("demo"), Counter[str]()
    with engine.begin() as conn:
        raw = {"transfer_id": transfer_id, "line_no": "1", "sku": sku, "quantity": str(units)}
        send_line(
            lookups, conn, TransferRow(1, raw, transfer_id, "1", source, destination, sku, units, now), counts
        )
    steps["sent"] = levels()
    show(f"sent {units} (in transit)", steps["sent"])
    with engine.begin() as conn:
        raw = {
            "transfer_id": transfer_id,
            "receipt_id": "R1",
            "line_no": "1",
            "received_quantity": str(received),
        }
        row = TransferReceiptRow(1, raw, transfer_id, "R1", "1", None, received, now)
        receive_line(lookups, conn, row, counts)
    steps["received"] = levels()
    show(f"received {received} of {units}", steps["received"])
    out(f"  transit counts for no channel; `channelhub transfer list --id {transfer_id}` shows the transfer")
    return steps
