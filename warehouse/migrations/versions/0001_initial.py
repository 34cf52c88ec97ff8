"""The warehouse: catalog, stock levels and ledger, raw payloads, orders, sync state, exception queue.

Revision ID: 0001_initial
Revises:
Create Date: 2026-11-24

Written by hand; ``warehouse/models.py`` declares the same schema (the schema test compares them).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001_initial"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)


def _id() -> sa.Column:
    return sa.Column("id", sa.BigInteger, sa.Identity(always=False), nullable=False)


def _now(name: str) -> sa.Column:
    return sa.Column(name, TZ, nullable=False, server_default=sa.func.now())


def _money(name: str) -> sa.Column:
    return sa.Column(name, sa.Numeric(), nullable=False, server_default=sa.text("0"))


def _count(name: str) -> sa.Column:
    return sa.Column(name, sa.Integer, nullable=False, server_default=sa.text("0"))


def _fk(table: str, column: str, target: str, ondelete: str | None = None) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{target}.id"], name=f"fk_{table}_{column}_{target}", ondelete=ondelete
    )


# Names are final (op.f): the target metadata's naming convention must not prefix them again.


def upgrade() -> None:
    # Time is UTC inside: sessions of this database read timestamptz values in UTC. (Values are instants
    # either way; a role that may not alter the database just keeps its own session default.)
    op.execute(
        """
        DO $$ BEGIN
            EXECUTE format('ALTER DATABASE %I SET timezone TO %L', current_database(), 'UTC');
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE NOTICE 'not allowed to set the database time zone; sessions keep their default';
        END $$
        """
    )

    op.create_table(
        "locations",
        _id(),
        sa.Column("code", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False, server_default=sa.text("'warehouse'")),
        _now("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_locations"),
        sa.UniqueConstraint("code", name="uq_locations_code"),
        sa.CheckConstraint("kind IN ('store', 'warehouse')", name=op.f("ck_locations_kind")),
    )
    op.create_table(
        "skus",
        _id(),
        sa.Column("code", sa.Text, nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        _now("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_skus"),
        sa.UniqueConstraint("code", name="uq_skus_code"),
    )
    op.create_table(
        "channels",
        _id(),
        sa.Column("code", sa.Text, nullable=False),
        sa.Column("platform", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("fulfilment_location_id", sa.BigInteger, nullable=False),
        _now("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_channels"),
        sa.UniqueConstraint("code", name="uq_channels_code"),
        _fk("channels", "fulfilment_location_id", "locations"),
    )
    op.create_table(
        "channel_listings",
        _id(),
        sa.Column("channel_id", sa.BigInteger, nullable=False),
        sa.Column("sku_id", sa.BigInteger, nullable=False),
        sa.Column("merchant_sku", sa.Text),
        sa.Column("channel_product_id", sa.Text),
        sa.Column("channel_variant_id", sa.Text),
        _now("created_at"),
        _now("updated_at"),
        sa.PrimaryKeyConstraint("id", name="pk_channel_listings"),
        _fk("channel_listings", "channel_id", "channels"),
        _fk("channel_listings", "sku_id", "skus"),
        sa.CheckConstraint(
            "merchant_sku IS NOT NULL OR channel_product_id IS NOT NULL",
            name=op.f("ck_channel_listings_identified"),
        ),
    )
    op.create_index(
        "uq_channel_listings_merchant_sku",
        "channel_listings",
        ["channel_id", "merchant_sku"],
        unique=True,
        postgresql_where=sa.text("merchant_sku IS NOT NULL"),
    )
    op.create_index(
        "uq_channel_listings_product_variant",
        "channel_listings",
        ["channel_id", "channel_product_id", "channel_variant_id"],
        unique=True,
        postgresql_where=sa.text("channel_product_id IS NOT NULL"),
        postgresql_nulls_not_distinct=True,
    )
    op.create_index("ix_channel_listings_sku_id", "channel_listings", ["sku_id"])

    op.create_table(
        "stock_levels",
        sa.Column("sku_id", sa.BigInteger, nullable=False),
        sa.Column("location_id", sa.BigInteger, nullable=False),
        _count("on_hand"),
        _count("reserved"),
        _now("updated_at"),
        sa.PrimaryKeyConstraint("sku_id", "location_id", name="pk_stock_levels"),
        _fk("stock_levels", "sku_id", "skus"),
        _fk("stock_levels", "location_id", "locations"),
        sa.CheckConstraint("on_hand >= 0", name=op.f("ck_stock_levels_on_hand_not_negative")),
        sa.CheckConstraint("reserved >= 0", name=op.f("ck_stock_levels_reserved_not_negative")),
    )
    op.create_index("ix_stock_levels_location_id", "stock_levels", ["location_id"])

    op.create_table(
        "raw_payloads",
        _id(),
        sa.Column("channel_id", sa.BigInteger, nullable=False),
        sa.Column("external_id", sa.Text),
        sa.Column("digest", sa.Text, nullable=False),
        sa.Column("payload", postgresql.JSONB, nullable=False),
        _now("received_at"),
        sa.PrimaryKeyConstraint("id", name="pk_raw_payloads"),
        _fk("raw_payloads", "channel_id", "channels"),
        sa.UniqueConstraint("channel_id", "digest", name="uq_raw_payloads_channel_id_digest"),
    )
    op.create_index("ix_raw_payloads_channel_id_external_id", "raw_payloads", ["channel_id", "external_id"])

    op.create_table(
        "orders",
        _id(),
        sa.Column("channel_id", sa.BigInteger, nullable=False),
        sa.Column("external_id", sa.Text, nullable=False),
        sa.Column("number", sa.Text, nullable=False),
        sa.Column("platform", sa.Text, nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.Column("currency", sa.Text, nullable=False),
        sa.Column("payment_status", sa.Text, nullable=False),
        sa.Column("fulfillment_status", sa.Text, nullable=False),
        sa.Column("cancelled", sa.Boolean, nullable=False, server_default=sa.text("false")),
        sa.Column("cancelled_at", TZ),
        _money("subtotal"),
        _money("discount"),
        _money("shipping"),
        _money("tax"),
        _money("total"),
        _money("refunded"),
        sa.Column("customer", postgresql.JSONB),
        sa.Column("shipping_address", postgresql.JSONB),
        sa.Column("payload_digest", sa.Text, nullable=False),
        sa.Column("raw_payload_id", sa.BigInteger),
        sa.Column("needs_attention", sa.Boolean, nullable=False, server_default=sa.text("false")),
        _now("ingested_at"),
        _now("changed_at"),
        sa.PrimaryKeyConstraint("id", name="pk_orders"),
        _fk("orders", "channel_id", "channels"),
        _fk("orders", "raw_payload_id", "raw_payloads"),
        # Invariant 1: one order per (channel, external id), enforced here and used by ON CONFLICT.
        sa.UniqueConstraint("channel_id", "external_id", name="uq_orders_channel_id_external_id"),
    )
    op.create_index(
        "ix_orders_channel_id_needs_attention",
        "orders",
        ["channel_id"],
        postgresql_where=sa.text("needs_attention"),
    )
    op.create_index("ix_orders_channel_id_updated_at", "orders", ["channel_id", "updated_at"])

    op.create_table(
        "order_lines",
        _id(),
        sa.Column("order_id", sa.BigInteger, nullable=False),
        sa.Column("external_line_id", sa.Text, nullable=False),
        sa.Column("sku_id", sa.BigInteger),
        sa.Column("merchant_sku", sa.Text),
        sa.Column("channel_product_id", sa.Text),
        sa.Column("channel_variant_id", sa.Text),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("quantity", sa.Integer, nullable=False),
        sa.Column("unit_price", sa.Numeric(), nullable=False),
        sa.Column("line_total", sa.Numeric(), nullable=False),
        _count("shipped_quantity"),
        _count("refunded_quantity"),
        _count("restocked_quantity"),
        sa.Column("removed", sa.Boolean, nullable=False, server_default=sa.text("false")),
        sa.Column("location_id", sa.BigInteger),
        _count("reserved_quantity"),
        _count("deducted_quantity"),
        _count("restocked_applied"),
        sa.Column("ledger_steps", postgresql.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.PrimaryKeyConstraint("id", name="pk_order_lines"),
        _fk("order_lines", "order_id", "orders", ondelete="CASCADE"),
        _fk("order_lines", "sku_id", "skus"),
        _fk("order_lines", "location_id", "locations"),
        sa.UniqueConstraint("order_id", "external_line_id", name="uq_order_lines_order_id_external_line_id"),
        sa.CheckConstraint("quantity >= 0", name=op.f("ck_order_lines_quantity_not_negative")),
        sa.CheckConstraint("reserved_quantity >= 0", name=op.f("ck_order_lines_reserved_not_negative")),
    )
    op.create_index("ix_order_lines_sku_id", "order_lines", ["sku_id"])

    op.create_table(
        "stock_ledger",
        _id(),
        sa.Column("idempotency_key", sa.Text, nullable=False),
        sa.Column("sku_id", sa.BigInteger, nullable=False),
        sa.Column("location_id", sa.BigInteger, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("delta_on_hand", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("delta_reserved", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("order_id", sa.BigInteger),
        sa.Column("order_line_id", sa.BigInteger),
        _now("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_stock_ledger"),
        sa.UniqueConstraint("idempotency_key", name="uq_stock_ledger_idempotency_key"),
        _fk("stock_ledger", "sku_id", "skus"),
        _fk("stock_ledger", "location_id", "locations"),
        _fk("stock_ledger", "order_id", "orders"),
        _fk("stock_ledger", "order_line_id", "order_lines"),
        sa.CheckConstraint(
            "kind IN ('receive', 'reserve', 'release', 'deduct', 'restock', 'adjust')",
            name=op.f("ck_stock_ledger_kind"),
        ),
    )
    op.create_index("ix_stock_ledger_sku_id_location_id", "stock_ledger", ["sku_id", "location_id"])
    op.create_index("ix_stock_ledger_order_line_id", "stock_ledger", ["order_line_id"])
    # The ledger is append-only: a correction is a new row, never an edit of history.
    op.execute(
        """
        CREATE FUNCTION stock_ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'stock_ledger is append-only (% refused)', TG_OP
                USING ERRCODE = 'restrict_violation';
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER stock_ledger_append_only BEFORE UPDATE OR DELETE ON stock_ledger "
        "FOR EACH ROW EXECUTE FUNCTION stock_ledger_append_only()"
    )

    op.create_table(
        "sync_state",
        sa.Column("channel_id", sa.BigInteger, nullable=False),
        sa.Column("stream", sa.Text, nullable=False),
        sa.Column("watermark", TZ),
        sa.Column("last_run_at", TZ),
        sa.Column("last_counts", postgresql.JSONB),
        sa.PrimaryKeyConstraint("channel_id", "stream", name="pk_sync_state"),
        _fk("sync_state", "channel_id", "channels"),
    )

    op.create_table(
        "exceptions",
        _id(),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("channel_id", sa.BigInteger, nullable=False),
        sa.Column("external_id", sa.Text),
        sa.Column("raw_payload_id", sa.BigInteger),
        sa.Column("sku", sa.Text),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False, server_default=sa.text("'open'")),
        sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("1")),
        sa.Column("note", sa.Text),
        _now("created_at"),
        _now("updated_at"),
        sa.Column("resolved_at", TZ),
        sa.PrimaryKeyConstraint("id", name="pk_exceptions"),
        _fk("exceptions", "channel_id", "channels"),
        _fk("exceptions", "raw_payload_id", "raw_payloads"),
        sa.CheckConstraint("status IN ('open', 'resolved', 'ignored')", name=op.f("ck_exceptions_status")),
    )
    # One OPEN exception per (channel, reason, order or raw payload, sku): a retry bumps ``attempts``.
    op.create_index(
        "uq_exceptions_open",
        "exceptions",
        [
            "channel_id",
            "reason",
            sa.text("coalesce(external_id, 'raw:' || raw_payload_id::text, '')"),
            sa.text("coalesce(sku, '')"),
        ],
        unique=True,
        postgresql_where=sa.text("status = 'open'"),
    )
    op.create_index("ix_exceptions_status_reason", "exceptions", ["status", "reason"])
    op.create_index("ix_exceptions_channel_id_external_id", "exceptions", ["channel_id", "external_id"])


def downgrade() -> None:
    for table in ("exceptions", "sync_state", "stock_ledger"):
        op.drop_table(table)
    op.execute("DROP FUNCTION IF EXISTS stock_ledger_append_only()")
    for table in (
        "order_lines",
        "orders",
        "raw_payloads",
        "stock_levels",
        "channel_listings",
        "channels",
        "skus",
    ):
        op.drop_table(table)
    op.drop_table("locations")
    op.execute("DO $$ BEGIN EXECUTE format('ALTER DATABASE %I RESET timezone', current_database()); END $$")
