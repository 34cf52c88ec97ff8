"""Returns and exchanges (退换货): returns received at a store or warehouse, their lines, and the units of a
channel order line physically returned.

Revision ID: 0014_returns
Revises: 0013_transfers_and_receipts
Create Date: 2026-12-07

Written by hand; ``warehouse/models.py`` declares the same schema (the schema test compares them).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014_returns"
down_revision: str | Sequence[str] | None = "0013_transfers_and_receipts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column(
        "order_lines",
        sa.Column("returned_quantity", sa.Integer, nullable=False, server_default=sa.text("0")),
    )
    op.create_table(
        "returns",
        sa.Column("id", sa.BigInteger, sa.Identity(always=False), nullable=False),
        sa.Column("location_id", sa.BigInteger, nullable=False),
        sa.Column("return_key", sa.Text, nullable=False),
        sa.Column("channel_id", sa.BigInteger),
        sa.Column("order_id", sa.BigInteger),
        sa.Column("returned_at", TZ, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("created_at", TZ, nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("id", name="pk_returns"),
        sa.ForeignKeyConstraint(["location_id"], ["locations.id"], name="fk_returns_location_id_locations"),
        sa.ForeignKeyConstraint(["channel_id"], ["channels.id"], name="fk_returns_channel_id_channels"),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"], name="fk_returns_order_id_orders"),
        sa.UniqueConstraint("location_id", "return_key", name="uq_returns_location_id_return_key"),
        sa.CheckConstraint(
            "(channel_id IS NULL) = (order_id IS NULL)", name=op.f("ck_returns_order_of_a_channel")
        ),
    )
    op.create_index("ix_returns_order_id", "returns", ["order_id"])
    op.create_table(
        "return_lines",
        sa.Column("id", sa.BigInteger, sa.Identity(always=False), nullable=False),
        sa.Column("return_id", sa.BigInteger, nullable=False),
        sa.Column("line_no", sa.Text, nullable=False),
        sa.Column("sku_id", sa.BigInteger, nullable=False),
        sa.Column("quantity", sa.Integer, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("disposition", sa.Text, nullable=False),
        sa.Column("stock_location_id", sa.BigInteger, nullable=False),
        sa.Column("order_line_id", sa.BigInteger),
        sa.Column("exchange_order_line_id", sa.BigInteger),
        sa.Column("created_at", TZ, nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("id", name="pk_return_lines"),
        sa.ForeignKeyConstraint(
            ["return_id"], ["returns.id"], name="fk_return_lines_return_id_returns", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["sku_id"], ["skus.id"], name="fk_return_lines_sku_id_skus"),
        sa.ForeignKeyConstraint(
            ["stock_location_id"], ["locations.id"], name="fk_return_lines_stock_location_id_locations"
        ),
        sa.ForeignKeyConstraint(
            ["order_line_id"], ["order_lines.id"], name="fk_return_lines_order_line_id_order_lines"
        ),
        sa.ForeignKeyConstraint(
            ["exchange_order_line_id"],
            ["order_lines.id"],
            name="fk_return_lines_exchange_order_line_id_order_lines",
        ),
        sa.UniqueConstraint("return_id", "line_no", name="uq_return_lines_return_id_line_no"),
        sa.CheckConstraint("quantity > 0", name=op.f("ck_return_lines_quantity_positive")),
        sa.CheckConstraint(
            "disposition IN ('sellable', 'damaged')", name=op.f("ck_return_lines_disposition")
        ),
    )
    op.create_index("ix_return_lines_order_line_id", "return_lines", ["order_line_id"])


def downgrade() -> None:
    op.drop_table("return_lines")
    op.drop_table("returns")
    op.drop_column("order_lines", "returned_quantity")
