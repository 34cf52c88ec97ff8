"""Transfers between locations (调拨) and purchase receipts against expected deliveries (采购入库).

Revision ID: 0013_transfers_and_receipts
Revises: 0012_order_routing
Create Date: 2026-12-07

Written by hand; ``warehouse/models.py`` declares the same schema (the schema test compares them).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013_transfers_and_receipts"
down_revision: str | Sequence[str] | None = "0012_order_routing"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)
ZERO = sa.text("0")


def _id() -> sa.Column:
    return sa.Column("id", sa.BigInteger, sa.Identity(always=False), nullable=False)


def _fk(table: str, column: str, target: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint([column], [f"{target}.id"], name=f"fk_{table}_{column}_{target}")


def _created() -> sa.Column:
    return sa.Column("created_at", TZ, nullable=False, server_default=sa.func.now())


def upgrade() -> None:
    op.create_table(
        "transfers",
        _id(),
        sa.Column("transfer_key", sa.Text, nullable=False),
        sa.Column("from_location_id", sa.BigInteger, nullable=False),
        sa.Column("to_location_id", sa.BigInteger, nullable=False),
        sa.Column("transit_location_id", sa.BigInteger, nullable=False),
        sa.Column("status", sa.Text, nullable=False, server_default=sa.text("'in_transit'")),
        sa.Column("sent_at", TZ, nullable=False),
        sa.Column("closed_at", TZ),
        sa.Column("closed_by", sa.Text),
        sa.Column("source", sa.Text, nullable=False),
        _created(),
        sa.PrimaryKeyConstraint("id", name="pk_transfers"),
        _fk("transfers", "from_location_id", "locations"),
        _fk("transfers", "to_location_id", "locations"),
        _fk("transfers", "transit_location_id", "locations"),
        sa.UniqueConstraint("transfer_key", name="uq_transfers_transfer_key"),
        sa.CheckConstraint(
            "status IN ('in_transit', 'received', 'closed_short')", name=op.f("ck_transfers_status")
        ),
        sa.CheckConstraint("from_location_id <> to_location_id", name=op.f("ck_transfers_two_locations")),
    )
    op.create_index("ix_transfers_status", "transfers", ["status"])

    op.create_table(
        "transfer_lines",
        _id(),
        sa.Column("transfer_id", sa.BigInteger, nullable=False),
        sa.Column("line_no", sa.Text, nullable=False),
        sa.Column("sku_id", sa.BigInteger, nullable=False),
        sa.Column("sent_quantity", sa.Integer, nullable=False),
        sa.Column("received_quantity", sa.Integer, nullable=False, server_default=ZERO),
        sa.Column("lost_quantity", sa.Integer, nullable=False, server_default=ZERO),
        sa.Column("accepted_excess", sa.Integer, nullable=False, server_default=ZERO),
        sa.PrimaryKeyConstraint("id", name="pk_transfer_lines"),
        _fk("transfer_lines", "transfer_id", "transfers"),
        _fk("transfer_lines", "sku_id", "skus"),
        sa.UniqueConstraint("transfer_id", "line_no", name="uq_transfer_lines_transfer_id_line_no"),
        sa.CheckConstraint("sent_quantity > 0", name=op.f("ck_transfer_lines_sent_positive")),
        sa.CheckConstraint(
            "received_quantity >= 0 AND lost_quantity >= 0 AND accepted_excess >= 0",
            name=op.f("ck_transfer_lines_counts_not_negative"),
        ),
    )

    op.create_table(
        "transfer_receipts",
        _id(),
        sa.Column("line_id", sa.BigInteger, nullable=False),
        sa.Column("receipt_key", sa.Text, nullable=False),
        sa.Column("quantity", sa.Integer, nullable=False),
        sa.Column("received_at", TZ, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        _created(),
        sa.PrimaryKeyConstraint("id", name="pk_transfer_receipts"),
        _fk("transfer_receipts", "line_id", "transfer_lines"),
        sa.UniqueConstraint("line_id", "receipt_key", name="uq_transfer_receipts_line_id_receipt_key"),
        sa.CheckConstraint("quantity > 0", name=op.f("ck_transfer_receipts_quantity_positive")),
    )

    op.create_table(
        "purchase_orders",
        _id(),
        sa.Column("po_key", sa.Text, nullable=False),
        sa.Column("supplier", sa.Text, nullable=False),
        sa.Column("location_id", sa.BigInteger, nullable=False),
        sa.Column("expected_at", TZ, nullable=False),
        sa.Column("status", sa.Text, nullable=False, server_default=sa.text("'open'")),
        sa.Column("closed_at", TZ),
        sa.Column("closed_by", sa.Text),
        sa.Column("source", sa.Text, nullable=False),
        _created(),
        sa.PrimaryKeyConstraint("id", name="pk_purchase_orders"),
        _fk("purchase_orders", "location_id", "locations"),
        sa.UniqueConstraint("po_key", name="uq_purchase_orders_po_key"),
        sa.CheckConstraint(
            "status IN ('open', 'received', 'closed_short')", name=op.f("ck_purchase_orders_status")
        ),
    )
    op.create_index("ix_purchase_orders_status", "purchase_orders", ["status"])

    op.create_table(
        "purchase_order_lines",
        _id(),
        sa.Column("purchase_order_id", sa.BigInteger, nullable=False),
        sa.Column("sku_id", sa.BigInteger, nullable=False),
        sa.Column("expected_quantity", sa.Integer, nullable=False),
        sa.Column("received_quantity", sa.Integer, nullable=False, server_default=ZERO),
        sa.Column("accepted_excess", sa.Integer, nullable=False, server_default=ZERO),
        sa.Column("rejected_excess", sa.Integer, nullable=False, server_default=ZERO),
        sa.PrimaryKeyConstraint("id", name="pk_purchase_order_lines"),
        _fk("purchase_order_lines", "purchase_order_id", "purchase_orders"),
        _fk("purchase_order_lines", "sku_id", "skus"),
        sa.UniqueConstraint(
            "purchase_order_id", "sku_id", name="uq_purchase_order_lines_purchase_order_id_sku_id"
        ),
        sa.CheckConstraint("expected_quantity > 0", name=op.f("ck_purchase_order_lines_expected_positive")),
        sa.CheckConstraint(
            "accepted_excess + rejected_excess <= greatest(received_quantity - expected_quantity, 0)",
            name=op.f("ck_purchase_order_lines_excess_decided_within_excess"),
        ),
    )

    op.create_table(
        "purchase_receipts",
        _id(),
        sa.Column("line_id", sa.BigInteger, nullable=False),
        sa.Column("receipt_key", sa.Text, nullable=False),
        sa.Column("quantity", sa.Integer, nullable=False),
        sa.Column("received_at", TZ, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        _created(),
        sa.PrimaryKeyConstraint("id", name="pk_purchase_receipts"),
        _fk("purchase_receipts", "line_id", "purchase_order_lines"),
        sa.UniqueConstraint(
            "line_id",
            "receipt_key",
            name="uq_purchase_receipts_line_id_receipt_key",
        ),
        sa.CheckConstraint("quantity > 0", name=op.f("ck_purchase_receipts_quantity_positive")),
    )


def downgrade() -> None:
    for table in (
        "purchase_receipts",
        "purchase_order_lines",
        "purchase_orders",
        "transfer_receipts",
        "transfer_lines",
        "transfers",
    ):
        op.drop_table(table)
