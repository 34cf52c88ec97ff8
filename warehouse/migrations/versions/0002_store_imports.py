"""Store and warehouse systems in: shipments (with tracking-push bookkeeping), stock counts, the units the
hub's warehouse shipped per order line, and channel-less exceptions and raw payloads (bad import rows).

Revision ID: 0002_store_imports
Revises: 0001_initial
Create Date: 2026-11-25

Written by hand; ``warehouse/models.py`` declares the same schema (the schema test compares them).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_store_imports"
down_revision: str | Sequence[str] | None = "0001_initial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)
EXCEPTION_SUBJECT = "coalesce(external_id, 'raw:' || raw_payload_id::text, '')"
EXCEPTION_SKU = "coalesce(sku, '')"


def _id() -> sa.Column:
    return sa.Column("id", sa.BigInteger, sa.Identity(always=False), nullable=False)


def _fk(table: str, column: str, target: str, ondelete: str | None = None) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{target}.id"], name=f"fk_{table}_{column}_{target}", ondelete=ondelete
    )


def _open_exceptions_index(nulls_not_distinct: bool) -> None:
    op.create_index(
        "uq_exceptions_open",
        "exceptions",
        ["channel_id", "reason", sa.text(EXCEPTION_SUBJECT), sa.text(EXCEPTION_SKU)],
        unique=True,
        postgresql_where=sa.text("status = 'open'"),
        postgresql_nulls_not_distinct=nulls_not_distinct,
    )


def upgrade() -> None:
    # A bad row of a count or store-sales file belongs to no channel: its exception and raw row have none.
    # NULLS NOT DISTINCT keeps "one open exception per problem" (and one raw payload per digest) for them.
    op.alter_column("exceptions", "channel_id", existing_type=sa.BigInteger, nullable=True)
    op.drop_index("uq_exceptions_open", table_name="exceptions")
    _open_exceptions_index(nulls_not_distinct=True)
    op.alter_column("raw_payloads", "channel_id", existing_type=sa.BigInteger, nullable=True)
    op.drop_constraint("uq_raw_payloads_channel_id_digest", "raw_payloads", type_="unique")
    op.execute(
        "ALTER TABLE raw_payloads ADD CONSTRAINT uq_raw_payloads_channel_id_digest "
        "UNIQUE NULLS NOT DISTINCT (channel_id, digest)"
    )

    op.add_column(
        "order_lines",
        sa.Column("warehouse_shipped_quantity", sa.Integer, nullable=False, server_default=sa.text("0")),
    )

    op.create_table(
        "shipments",
        _id(),
        sa.Column("channel_id", sa.BigInteger, nullable=False),
        sa.Column("order_id", sa.BigInteger, nullable=False),
        sa.Column("shipment_key", sa.Text, nullable=False),
        sa.Column("carrier", sa.Text),
        sa.Column("tracking_number", sa.Text),
        sa.Column("shipped_at", TZ, nullable=False),
        sa.Column("location_id", sa.BigInteger, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("created_at", TZ, nullable=False, server_default=sa.func.now()),
        sa.Column("push_status", sa.Text, nullable=False, server_default=sa.text("'pending'")),
        sa.Column("pushed_at", TZ),
        sa.Column("push_attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("push_error", sa.Text),
        sa.PrimaryKeyConstraint("id", name="pk_shipments"),
        _fk("shipments", "channel_id", "channels"),
        _fk("shipments", "order_id", "orders"),
        _fk("shipments", "location_id", "locations"),
        sa.UniqueConstraint("channel_id", "shipment_key", name="uq_shipments_channel_id_shipment_key"),
        sa.CheckConstraint(
            "push_status IN ('pending', 'pushed', 'failed')", name=op.f("ck_shipments_push_status")
        ),
    )
    op.create_index("ix_shipments_order_id", "shipments", ["order_id"])
    op.create_index(
        "ix_shipments_channel_id_push_status",
        "shipments",
        ["channel_id", "push_status"],
        postgresql_where=sa.text("push_status <> 'pushed'"),
    )

    op.create_table(
        "shipment_lines",
        _id(),
        sa.Column("shipment_id", sa.BigInteger, nullable=False),
        sa.Column("order_line_id", sa.BigInteger, nullable=False),
        sa.Column("quantity", sa.Integer, nullable=False),
        sa.Column("line_ref", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_shipment_lines"),
        _fk("shipment_lines", "shipment_id", "shipments", ondelete="CASCADE"),
        _fk("shipment_lines", "order_line_id", "order_lines"),
        sa.UniqueConstraint(
            "shipment_id", "order_line_id", name="uq_shipment_lines_shipment_id_order_line_id"
        ),
        sa.CheckConstraint("quantity > 0", name=op.f("ck_shipment_lines_quantity_positive")),
    )
    op.create_index("ix_shipment_lines_order_line_id", "shipment_lines", ["order_line_id"])

    op.create_table(
        "stock_counts",
        _id(),
        sa.Column("idempotency_key", sa.Text, nullable=False),
        sa.Column("sku_id", sa.BigInteger, nullable=False),
        sa.Column("location_id", sa.BigInteger, nullable=False),
        sa.Column("count_id", sa.Text),
        sa.Column("counted_quantity", sa.Integer, nullable=False),
        sa.Column("counted_at", TZ, nullable=False),
        sa.Column("on_hand_before", sa.Integer, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("created_at", TZ, nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("id", name="pk_stock_counts"),
        _fk("stock_counts", "sku_id", "skus"),
        _fk("stock_counts", "location_id", "locations"),
        sa.UniqueConstraint("idempotency_key", name="uq_stock_counts_idempotency_key"),
        sa.CheckConstraint("counted_quantity >= 0", name=op.f("ck_stock_counts_counted_not_negative")),
    )
    op.create_index(
        "ix_stock_counts_sku_id_location_id_counted_at",
        "stock_counts",
        ["sku_id", "location_id", "counted_at"],
    )


def downgrade() -> None:
    op.drop_table("stock_counts")
    op.drop_table("shipment_lines")
    op.drop_table("shipments")
    op.drop_column("order_lines", "warehouse_shipped_quantity")
    # Channel-less rows cannot survive NOT NULL again: they go with the feature that made them.
    op.execute("DELETE FROM exceptions WHERE channel_id IS NULL")
    op.execute(
        "DELETE FROM raw_payloads r WHERE r.channel_id IS NULL "
        "AND NOT EXISTS (SELECT 1 FROM exceptions e WHERE e.raw_payload_id = r.id) "
        "AND NOT EXISTS (SELECT 1 FROM orders o WHERE o.raw_payload_id = r.id)"
    )
    op.drop_constraint("uq_raw_payloads_channel_id_digest", "raw_payloads", type_="unique")
    op.create_unique_constraint("uq_raw_payloads_channel_id_digest", "raw_payloads", ["channel_id", "digest"])
    op.alter_column("raw_payloads", "channel_id", existing_type=sa.BigInteger, nullable=False)
    op.drop_index("uq_exceptions_open", table_name="exceptions")
    _open_exceptions_index(nulls_not_distinct=False)
    op.alter_column("exceptions", "channel_id", existing_type=sa.BigInteger, nullable=False)
