"""Store (POS) sales as sold, with their price when the sales file gives one (sales reports).

Revision ID: 0016_store_sales
Revises: 0015_pos_feed
Create Date: 2026-12-07

Written by hand; ``warehouse/models.py`` declares the same schema (the schema test compares them). The POS
lines imported before this revision exist only as ledger rows: they are copied in (no price; the ledger row's
time as the time sold). Bundle lines (keys ending ``@<component>``) name only their components there and are
left out.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016_store_sales"
down_revision: str | Sequence[str] | None = "0015_pos_feed"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "store_sales",
        sa.Column("id", sa.BigInteger, sa.Identity(always=False), nullable=False),
        sa.Column("idempotency_key", sa.Text, nullable=False),
        sa.Column("location_id", sa.BigInteger, nullable=False),
        sa.Column("sku_id", sa.BigInteger, nullable=False),
        sa.Column("quantity", sa.Integer, nullable=False),
        sa.Column("unit_price", sa.Numeric(asdecimal=True)),
        sa.Column("amount", sa.Numeric(asdecimal=True)),
        sa.Column("currency", sa.Text),
        sa.Column("sold_at", TZ, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("created_at", TZ, nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("id", name="pk_store_sales"),
        sa.UniqueConstraint("idempotency_key", name="uq_store_sales_idempotency_key"),
        sa.ForeignKeyConstraint(
            ["location_id"], ["locations.id"], name="fk_store_sales_location_id_locations"
        ),
        sa.ForeignKeyConstraint(["sku_id"], ["skus.id"], name="fk_store_sales_sku_id_skus"),
        sa.CheckConstraint("quantity <> 0", name=op.f("ck_store_sales_quantity_not_zero")),
        sa.CheckConstraint("amount IS NULL OR amount >= 0", name=op.f("ck_store_sales_amount_not_negative")),
    )
    op.create_index("ix_store_sales_sold_at", "store_sales", ["sold_at"])
    op.create_index("ix_store_sales_location_id_sold_at", "store_sales", ["location_id", "sold_at"])
    op.execute(
        """
        INSERT INTO store_sales (idempotency_key, location_id, sku_id, quantity, sold_at, source)
        SELECT idempotency_key, location_id, sku_id, -delta_on_hand, created_at, 'ledger (before 0016)'
          FROM stock_ledger
         WHERE idempotency_key LIKE 'pos:%' AND idempotency_key NOT LIKE '%@%'
           AND kind IN ('deduct', 'restock') AND delta_on_hand <> 0
        """
    )


def downgrade() -> None:
    op.drop_table("store_sales")
