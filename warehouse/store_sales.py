"""Store (POS) sales as sold: one ``store_sales`` row per receipt line, beside its ledger row (same key).

The ledger says what left (or came back to) the shelf; this row keeps what the report needs and the ledger
cannot hold: the SKU as sold (a bundle, not its components), when it was sold and, when the file gave it, the
price. Written in the sale's own transaction; idempotent by the key, so importing a file again (or a file of
lines imported before this table existed, now with prices) changes nothing already recorded.
"""

from __future__ import annotations

from sqlalchemy import Connection
from sqlalchemy.dialects.postgresql import insert

from canonical.store_files import SaleRow
from warehouse.models import store_sales


def record_store_sale(conn: Connection, row: SaleRow, location_id: int, sku_id: int, source: str) -> None:
    """Keep ``row`` as a store sale (a return when its quantity is negative), once per key."""
    conn.execute(
        insert(store_sales)
        .values(
            idempotency_key=row.key,
            location_id=location_id,
            sku_id=sku_id,
            quantity=row.quantity,
            unit_price=row.unit_price,
            amount=row.line_amount,
            currency=row.currency,
            sold_at=row.sold_at,
            source=source,
        )
        .on_conflict_do_nothing(index_elements=["idempotency_key"])
    )
