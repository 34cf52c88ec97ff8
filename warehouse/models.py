"""The warehouse schema as SQLAlchemy Core tables (one ``MetaData``).

``migrations/versions/*.py`` create the same schema by hand; ``tests/test_warehouse_schema.py`` checks that
the two agree. Conventions: bigint identity ids, ``numeric`` (unconstrained, so exact and never rounded) for
money, ``timestamptz`` for instants, ``jsonb`` for payloads, integer unit counts.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    Numeric,
    PrimaryKeyConstraint,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

LOCATION_KINDS = ("store", "warehouse")
LEDGER_KINDS = ("receive", "reserve", "release", "deduct", "restock", "adjust")
EXCEPTION_STATUSES = ("open", "resolved", "ignored")

# The identity of an open exception: one per (channel, reason, order or raw payload, sku).
EXCEPTION_SUBJECT = "coalesce(external_id, 'raw:' || raw_payload_id::text, '')"
EXCEPTION_SKU = "coalesce(sku, '')"


def _id() -> Column:
    return Column("id", BigInteger, Identity(always=False), primary_key=True)


def _now(name: str, nullable: bool = False) -> Column:
    return Column(name, DateTime(timezone=True), nullable=nullable, server_default=func.now())


def _money(name: str) -> Column:
    return Column(name, Numeric(asdecimal=True), nullable=False, server_default=text("0"))


def _count(name: str) -> Column:
    return Column(name, Integer, nullable=False, server_default=text("0"))


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


locations = Table(
    "locations",
    metadata,
    _id(),
    Column("code", Text, nullable=False, unique=True),
    Column("name", Text, nullable=False),
    Column("kind", Text, nullable=False, server_default=text("'warehouse'")),
    _now("created_at"),
    CheckConstraint(_in("kind", LOCATION_KINDS), name="kind"),
)

skus = Table(
    "skus",
    metadata,
    _id(),
    Column("code", Text, nullable=False, unique=True),
    Column("title", Text, nullable=False),
    _now("created_at"),
)

channels = Table(
    "channels",
    metadata,
    _id(),
    Column("code", Text, nullable=False, unique=True),
    Column("platform", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("fulfilment_location_id", BigInteger, ForeignKey("locations.id"), nullable=False),
    _now("created_at"),
)

channel_listings = Table(
    "channel_listings",
    metadata,
    _id(),
    Column("channel_id", BigInteger, ForeignKey("channels.id"), nullable=False),
    Column("sku_id", BigInteger, ForeignKey("skus.id"), nullable=False),
    Column("merchant_sku", Text),
    Column("channel_product_id", Text),
    Column("channel_variant_id", Text),
    _now("created_at"),
    _now("updated_at"),
    CheckConstraint("merchant_sku IS NOT NULL OR channel_product_id IS NOT NULL", name="identified"),
    # One channel SKU code, and one (product, variant) pair, name one internal SKU per channel.
    Index(
        "uq_channel_listings_merchant_sku",
        "channel_id",
        "merchant_sku",
        unique=True,
        postgresql_where=text("merchant_sku IS NOT NULL"),
    ),
    Index(
        "uq_channel_listings_product_variant",
        "channel_id",
        "channel_product_id",
        "channel_variant_id",
        unique=True,
        postgresql_where=text("channel_product_id IS NOT NULL"),
        postgresql_nulls_not_distinct=True,
    ),
    Index("ix_channel_listings_sku_id", "sku_id"),
)

stock_levels = Table(
    "stock_levels",
    metadata,
    Column("sku_id", BigInteger, ForeignKey("skus.id"), nullable=False),
    Column("location_id", BigInteger, ForeignKey("locations.id"), nullable=False),
    _count("on_hand"),
    _count("reserved"),
    _now("updated_at"),
    PrimaryKeyConstraint("sku_id", "location_id"),
    CheckConstraint("on_hand >= 0", name="on_hand_not_negative"),
    CheckConstraint("reserved >= 0", name="reserved_not_negative"),
    Index("ix_stock_levels_location_id", "location_id"),
)

raw_payloads = Table(
    "raw_payloads",
    metadata,
    _id(),
    Column("channel_id", BigInteger, ForeignKey("channels.id"), nullable=False),
    Column("external_id", Text),
    Column("digest", Text, nullable=False),  # sha256 hex of the canonical JSON (sorted keys)
    Column("payload", JSONB, nullable=False),
    _now("received_at"),
    UniqueConstraint("channel_id", "digest"),
    Index("ix_raw_payloads_channel_id_external_id", "channel_id", "external_id"),
)

orders = Table(
    "orders",
    metadata,
    _id(),
    Column("channel_id", BigInteger, ForeignKey("channels.id"), nullable=False),
    Column("external_id", Text, nullable=False),
    Column("number", Text, nullable=False),
    Column("platform", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),  # platform time
    Column("updated_at", DateTime(timezone=True), nullable=False),  # platform time: the version
    Column("currency", Text, nullable=False),
    Column("payment_status", Text, nullable=False),
    Column("fulfillment_status", Text, nullable=False),
    Column("cancelled", Boolean, nullable=False, server_default=text("false")),
    Column("cancelled_at", DateTime(timezone=True)),
    _money("subtotal"),
    _money("discount"),
    _money("shipping"),
    _money("tax"),
    _money("total"),
    _money("refunded"),
    Column("customer", JSONB),
    Column("shipping_address", JSONB),
    Column("payload_digest", Text, nullable=False),  # sha256 over the canonical order's fields: its version
    Column("raw_payload_id", BigInteger, ForeignKey("raw_payloads.id")),
    Column("needs_attention", Boolean, nullable=False, server_default=text("false")),
    _now("ingested_at"),  # first landed in the hub
    _now("changed_at"),  # last changed by the hub
    UniqueConstraint("channel_id", "external_id"),
    Index(
        "ix_orders_channel_id_needs_attention",
        "channel_id",
        postgresql_where=text("needs_attention"),
    ),
    Index("ix_orders_channel_id_updated_at", "channel_id", "updated_at"),
)

order_lines = Table(
    "order_lines",
    metadata,
    _id(),
    Column("order_id", BigInteger, ForeignKey("orders.id", ondelete="CASCADE"), nullable=False),
    Column("external_line_id", Text, nullable=False),
    Column("sku_id", BigInteger, ForeignKey("skus.id")),  # resolved through the channel's listings
    Column("merchant_sku", Text),
    Column("channel_product_id", Text),
    Column("channel_variant_id", Text),
    Column("title", Text, nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("unit_price", Numeric(asdecimal=True), nullable=False),
    Column("line_total", Numeric(asdecimal=True), nullable=False),
    _count("shipped_quantity"),
    _count("refunded_quantity"),
    _count("restocked_quantity"),
    # Absent from the newest version of the order (an order edit removed it): it reserves nothing.
    Column("removed", Boolean, nullable=False, server_default=text("false")),
    # What the hub has applied to stock for this line, and where.
    Column("location_id", BigInteger, ForeignKey("locations.id")),
    _count("reserved_quantity"),
    _count("deducted_quantity"),
    _count("restocked_applied"),
    # Ledger steps taken per kind, numbering the idempotency keys ("reserve:...#2").
    Column("ledger_steps", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    UniqueConstraint("order_id", "external_line_id"),
    CheckConstraint("quantity >= 0", name="quantity_not_negative"),
    CheckConstraint("reserved_quantity >= 0", name="reserved_not_negative"),
    Index("ix_order_lines_sku_id", "sku_id"),
)

stock_ledger = Table(
    "stock_ledger",
    metadata,
    _id(),
    Column("idempotency_key", Text, nullable=False, unique=True),
    Column("sku_id", BigInteger, ForeignKey("skus.id"), nullable=False),
    Column("location_id", BigInteger, ForeignKey("locations.id"), nullable=False),
    Column("kind", Text, nullable=False),
    Column("delta_on_hand", Integer, nullable=False, server_default=text("0")),
    Column("delta_reserved", Integer, nullable=False, server_default=text("0")),
    Column("order_id", BigInteger, ForeignKey("orders.id")),
    Column("order_line_id", BigInteger, ForeignKey("order_lines.id")),
    _now("created_at"),
    CheckConstraint(_in("kind", LEDGER_KINDS), name="kind"),
    Index("ix_stock_ledger_sku_id_location_id", "sku_id", "location_id"),
    Index("ix_stock_ledger_order_line_id", "order_line_id"),
)

sync_state = Table(
    "sync_state",
    metadata,
    Column("channel_id", BigInteger, ForeignKey("channels.id"), nullable=False),
    Column("stream", Text, nullable=False),
    Column("watermark", DateTime(timezone=True)),
    Column("last_run_at", DateTime(timezone=True)),
    Column("last_counts", JSONB),
    PrimaryKeyConstraint("channel_id", "stream"),
)

exceptions = Table(
    "exceptions",
    metadata,
    _id(),
    Column("reason", Text, nullable=False),
    Column("channel_id", BigInteger, ForeignKey("channels.id"), nullable=False),
    Column("external_id", Text),
    Column("raw_payload_id", BigInteger, ForeignKey("raw_payloads.id")),
    Column("sku", Text),
    Column("detail", Text, nullable=False),
    Column("status", Text, nullable=False, server_default=text("'open'")),
    Column("attempts", Integer, nullable=False, server_default=text("1")),
    Column("note", Text),
    _now("created_at"),
    _now("updated_at"),
    Column("resolved_at", DateTime(timezone=True)),
    CheckConstraint(_in("status", EXCEPTION_STATUSES), name="status"),
    # Re-ingesting the same bad payload bumps ``attempts`` of the open exception instead of adding one.
    Index(
        "uq_exceptions_open",
        "channel_id",
        "reason",
        text(EXCEPTION_SUBJECT),
        text(EXCEPTION_SKU),
        unique=True,
        postgresql_where=text("status = 'open'"),
    ),
    Index("ix_exceptions_status_reason", "status", "reason"),
    Index("ix_exceptions_channel_id_external_id", "channel_id", "external_id"),
)
