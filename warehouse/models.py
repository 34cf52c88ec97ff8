"""The warehouse schema as SQLAlchemy Core tables (one ``MetaData``).

``migrations/versions/*.py`` create the same schema by hand; ``tests/test_warehouse_schema.py`` checks that
the two agree. Conventions: bigint identity ids, ``numeric`` (unconstrained, so exact and never rounded) for
money, ``timestamptz`` for instants, ``jsonb`` for payloads, integer unit counts.
"""

from __future__ import annotations

from sqlalchemy import (
    DDL,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    PrimaryKeyConstraint,
    Table,
    Text,
    UniqueConstraint,
    event,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSON, JSONB

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)
DEFAULT_MAX_UNITS_PER_ROW = 100_000  # per store row, unless the location's config says otherwise

# transit: units on their way between two locations (调拨 in transit); damaged: units kept but not sellable
# (a return with a damage reason). Neither counts for any channel (``SELLABLE_LOCATION_KINDS``).
LOCATION_KINDS = ("store", "warehouse", "transit", "damaged")
SELLABLE_LOCATION_KINDS = ("store", "warehouse")
LEDGER_KINDS = ("receive", "reserve", "release", "deduct", "restock", "adjust", "transfer_out", "transfer_in")
EXCEPTION_STATUSES = ("open", "resolved", "ignored")
PUSH_STATUSES = ("pending", "pushed", "failed")
WEBHOOK_STATUSES = ("pending", "applied", "no_order", "failed")

# An order nothing is left to do for: its personal data is blanked once it has been closed for the retention
# period (warehouse.retention). A fully refunded or voided order has nothing left to ship either.
CLOSED_ORDER = "cancelled OR fulfillment_status = 'fulfilled' OR payment_status IN ('refunded', 'voided')"

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
    # A store row (count, POS line) of more units waits for a person instead of moving stock.
    Column("max_units_per_row", Integer, nullable=False, server_default=text(str(DEFAULT_MAX_UNITS_PER_ROW))),
    # Where it is (order routing's "nearest": same city, then same province, as the shipping address says).
    Column("province", Text),
    Column("city", Text),
    CheckConstraint(_in("kind", LOCATION_KINDS), name="kind"),
    CheckConstraint("max_units_per_row > 0", name="max_units_per_row"),
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
    # What the channel was last told it may sell (stock push), and when.
    Column("pushed_quantity", Integer),
    Column("pushed_at", DateTime(timezone=True)),
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

# "Reserved never exceeds on hand", kept by the database itself and not only by the conditional updates: a
# deferred constraint trigger checks each touched level's final state at commit (a count may lower on-hand
# below what is reserved and release reservations after it, in the same transaction).
RESERVED_WITHIN_ON_HAND = (
    """
CREATE FUNCTION stock_levels_reserved_within_on_hand() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM stock_levels l
                WHERE l.sku_id = NEW.sku_id AND l.location_id = NEW.location_id
                  AND l.reserved > l.on_hand) THEN
        RAISE EXCEPTION 'stock level of sku % at location % reserves more than is on hand',
            NEW.sku_id, NEW.location_id
            USING ERRCODE = 'check_violation', CONSTRAINT = 'reserved_within_on_hand';
    END IF;
    RETURN NULL;
END
$$
""",
    """
CREATE CONSTRAINT TRIGGER reserved_within_on_hand AFTER INSERT OR UPDATE ON stock_levels
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION stock_levels_reserved_within_on_hand()
""",
)
for _statement in RESERVED_WITHIN_ON_HAND:  # DDL formats its text: RAISE's % placeholders doubled
    event.listen(stock_levels, "after_create", DDL(_statement.replace("%", "%%")))

raw_payloads = Table(
    "raw_payloads",
    metadata,
    _id(),
    # NULL: a payload of no channel (a row of a store/warehouse import file).
    Column("channel_id", BigInteger, ForeignKey("channels.id")),
    Column("external_id", Text),
    Column("digest", Text, nullable=False),  # sha256 hex of the canonical JSON (sorted keys)
    # json text as the hub wrote it (lz4 where the server has it): migration 0017 says why not jsonb.
    Column("payload", JSON, nullable=False),
    _now("received_at"),
    # When retention masked its personal and fulfilment paths (its digest stays that of the payload as
    # landed: the same payload fetched again finds this row and is not stored again).
    Column("personal_data_erased_at", DateTime(timezone=True)),
    UniqueConstraint("channel_id", "digest", postgresql_nulls_not_distinct=True),
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
    # When retention blanked its customer and address and masked every raw payload of it; NULL again once a
    # new version lands (or a payload of it is stored unmasked), for retention to take it again.
    Column("personal_data_erased_at", DateTime(timezone=True)),
    UniqueConstraint("channel_id", "external_id"),
    Index(
        "ix_orders_channel_id_needs_attention",
        "channel_id",
        postgresql_where=text("needs_attention"),
    ),
    Index("ix_orders_channel_id_updated_at", "channel_id", "updated_at"),
    # Closed orders whose personal data is still held, by age: what retention is due to blank (small: it
    # holds only the closed orders of the retention period).
    Index(
        "ix_orders_personal_data_due",
        "updated_at",
        postgresql_where=text(f"personal_data_erased_at IS NULL AND ({CLOSED_ORDER})"),
    ),
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
    # Units the hub's own warehouse/stores reported shipped (sum of shipment_lines); stock counts
    # max(shipped_quantity, this): the same shipment reported by both sides deducts once.
    _count("warehouse_shipped_quantity"),
    # A bundle line's stock acts on the bundle's components: {component sku id: units per line unit}, as
    # applied (a recipe changed later must not release what was never reserved). NULL: the line's own SKU.
    Column("applied_components", JSONB),
    # Units physically returned at a store or warehouse (sum of return_lines, warehouse.returns): only these
    # come back to stock; the platform's restocked_quantity is a claim (see warehouse.ingest).
    _count("returned_quantity"),
    UniqueConstraint("order_id", "external_line_id"),
    CheckConstraint("quantity >= 0", name="quantity_not_negative"),
    CheckConstraint("reserved_quantity >= 0", name="reserved_not_negative"),
    Index("ix_order_lines_sku_id", "sku_id"),
    Index(
        "ix_order_lines_applied_components",
        "applied_components",
        postgresql_using="gin",
        postgresql_where=text("applied_components IS NOT NULL"),
    ),
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

# The ledger is append-only: a correction is a new row, never an edit of history (migration 0001).
for _statement in (
    """
CREATE FUNCTION stock_ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'stock_ledger is append-only (%% refused)', TG_OP
        USING ERRCODE = 'restrict_violation';
END $$
""",
    "CREATE TRIGGER stock_ledger_append_only BEFORE UPDATE OR DELETE ON stock_ledger "
    "FOR EACH ROW EXECUTE FUNCTION stock_ledger_append_only()",
):
    event.listen(stock_ledger, "after_create", DDL(_statement))

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
    # NULL: a problem of no channel (a bad row of a store/warehouse import file).
    Column("channel_id", BigInteger, ForeignKey("channels.id")),
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
        postgresql_nulls_not_distinct=True,  # channel-less problems are one per subject too
    ),
    Index("ix_exceptions_status_reason", "status", "reason"),
    Index("ix_exceptions_channel_id_external_id", "channel_id", "external_id"),
)

# -- store and warehouse systems in (CSV imports) ---------------------------------------------------

shipments = Table(
    "shipments",
    metadata,
    _id(),
    Column("channel_id", BigInteger, ForeignKey("channels.id"), nullable=False),
    Column("order_id", BigInteger, ForeignKey("orders.id"), nullable=False),
    Column("shipment_key", Text, nullable=False),  # the sender's shipment id, unique per channel
    Column("carrier", Text),
    Column("tracking_number", Text),
    Column("shipped_at", DateTime(timezone=True), nullable=False),
    Column("location_id", BigInteger, ForeignKey("locations.id"), nullable=False),
    Column("source", Text, nullable=False),  # the file it came in
    _now("created_at"),
    # Pushing the tracking back to the channel.
    Column("push_status", Text, nullable=False, server_default=text("'pending'")),
    Column("pushed_at", DateTime(timezone=True)),
    _count("push_attempts"),
    Column("push_error", Text),
    # A correction (the same shipment id with a new tracking number): what the channel may still hold.
    Column("previous_carrier", Text),
    Column("previous_tracking_number", Text),
    Column("corrected_at", DateTime(timezone=True)),
    UniqueConstraint("channel_id", "shipment_key"),
    CheckConstraint(_in("push_status", PUSH_STATUSES), name="push_status"),
    Index("ix_shipments_order_id", "order_id"),
    Index(
        "ix_shipments_channel_id_push_status",
        "channel_id",
        "push_status",
        postgresql_where=text("push_status <> 'pushed'"),
    ),
)

# -- short-lived platform tokens, shared by every process (warehouse.token_cache) ----------------------

platform_tokens = Table(
    "platform_tokens",
    metadata,
    Column("key", Text, nullable=False),  # derived from the credential, reveals nothing
    Column("sealed", Text, nullable=False),  # the token, encrypted with a key derived from the app secret
    Column("expires_at", DateTime(timezone=True), nullable=False),
    _count("renewals"),
    _now("updated_at"),
    PrimaryKeyConstraint("key"),
)

shipment_lines = Table(
    "shipment_lines",
    metadata,
    _id(),
    Column("shipment_id", BigInteger, ForeignKey("shipments.id", ondelete="CASCADE"), nullable=False),
    Column("order_line_id", BigInteger, ForeignKey("order_lines.id"), nullable=False),
    Column("quantity", Integer, nullable=False),
    # The file row's line reference ("line:<external line id>" or "sku:<code>"): its idempotency identity.
    Column("line_ref", Text, nullable=False),
    UniqueConstraint("shipment_id", "order_line_id"),
    CheckConstraint("quantity > 0", name="quantity_positive"),
    Index("ix_shipment_lines_order_line_id", "order_line_id"),
)

stock_counts = Table(
    "stock_counts",
    metadata,
    _id(),
    Column("idempotency_key", Text, nullable=False, unique=True),  # count:<location>:<sku>:<id or time>
    Column("sku_id", BigInteger, ForeignKey("skus.id"), nullable=False),
    Column("location_id", BigInteger, ForeignKey("locations.id"), nullable=False),
    Column("count_id", Text),
    Column("counted_quantity", Integer, nullable=False),
    Column("counted_at", DateTime(timezone=True), nullable=False),
    Column("on_hand_before", Integer, nullable=False),  # what the hub believed: the variance is the delta
    Column("source", Text, nullable=False),
    _now("created_at"),
    CheckConstraint("counted_quantity >= 0", name="counted_not_negative"),
    Index("ix_stock_counts_sku_id_location_id_counted_at", "sku_id", "location_id", "counted_at"),
)

# A bundle is sold as one SKU and built from components: its sellable quantity is computed from theirs.
sku_components = Table(
    "sku_components",
    metadata,
    Column("bundle_sku_id", BigInteger, ForeignKey("skus.id"), nullable=False),
    Column("component_sku_id", BigInteger, ForeignKey("skus.id"), nullable=False),
    Column("quantity", Integer, nullable=False),
    PrimaryKeyConstraint("bundle_sku_id", "component_sku_id"),
    CheckConstraint("quantity > 0", name="positive_quantity"),
    CheckConstraint("bundle_sku_id <> component_sku_id", name="not_itself"),
)

# Every stock push attempt: what the channel was told (or refused), when.
stock_push_log = Table(
    "stock_push_log",
    metadata,
    _id(),
    Column("listing_id", BigInteger, ForeignKey("channel_listings.id"), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("previous_quantity", Integer),
    Column("status", Text, nullable=False),
    Column("detail", Text, nullable=False, server_default=""),
    _now("created_at"),
    CheckConstraint("status IN ('pushed', 'already_done', 'rejected', 'failed')", name="known_status"),
    Index("ix_stock_push_log_listing_id_created_at", "listing_id", "created_at"),
)

# -- ops: who did what to an exception, reconciliation findings, open alerts ----------------------------

EXCEPTION_ACTIONS = ("retry", "resolve", "ignore", "note", "auto_resolve")
FINDING_OUTCOMES = ("repaired", "left_for_person", "repair_failed")

# Every action on an exception, by whom and when (the queue's audit trail).
exception_actions = Table(
    "exception_actions",
    metadata,
    _id(),
    Column("exception_id", BigInteger, ForeignKey("exceptions.id"), nullable=False),
    Column("action", Text, nullable=False),
    Column("actor", Text, nullable=False),  # a person's login, or "airflow:<dag_id>"
    Column("note", Text),
    Column("outcome", Text, nullable=False, server_default=""),  # what came of it, e.g. "still failing: ..."
    _now("created_at"),
    CheckConstraint(_in("action", EXCEPTION_ACTIONS), name="action"),
    Index("ix_exception_actions_exception_id", "exception_id"),
)

# One run of a reconciliation job over one channel's window: what it checked and how it ended.
reconciliation_runs = Table(
    "reconciliation_runs",
    metadata,
    _id(),
    Column("channel_id", BigInteger, ForeignKey("channels.id"), nullable=False),
    Column("depth", Text, nullable=False),  # light (hourly) | deep (daily, two days)
    Column("window_start", DateTime(timezone=True), nullable=False),
    Column("window_end", DateTime(timezone=True), nullable=False),
    _now("started_at"),
    Column("finished_at", DateTime(timezone=True)),
    Column("checked", JSONB, nullable=False, server_default=text("'{}'::jsonb")),  # {check: items compared}
    Column("summary", Text, nullable=False, server_default=""),
    CheckConstraint("depth IN ('light', 'deep')", name="depth"),
    Index("ix_reconciliation_runs_channel_id_started_at", "channel_id", "started_at"),
)

reconciliation_findings = Table(
    "reconciliation_findings",
    metadata,
    _id(),
    Column("run_id", BigInteger, ForeignKey("reconciliation_runs.id", ondelete="CASCADE"), nullable=False),
    Column("check_name", Text, nullable=False),  # orders | shipments | stock | ledger
    Column("kind", Text, nullable=False),  # missing_order, amount_mismatch, lost_shipment, stock_drift, ...
    Column("subject", Text, nullable=False),  # the order, shipment, listing or SKU@location concerned
    Column("detail", Text, nullable=False),
    Column("outcome", Text, nullable=False),
    Column("exception_id", BigInteger, ForeignKey("exceptions.id")),  # what a person is left with
    _now("created_at"),
    CheckConstraint(_in("outcome", FINDING_OUTCOMES), name="outcome"),
    Index("ix_reconciliation_findings_run_id", "run_id"),
)

# Alerts that fired and have not cleared: one notification when a problem starts, one when it ends.
open_alerts = Table(
    "open_alerts",
    metadata,
    Column("key", Text, primary_key=True),  # e.g. "stale_sync:<channel>"
    Column("message", Text, nullable=False),
    _now("opened_at"),
)

# The webhook receiver's durable inbox (warehouse.webhook_inbox): every verified event is stored here before
# the platform gets its 200, so a receiver killed before applying it loses nothing (the sweeper finishes it).
webhook_inbox = Table(
    "webhook_inbox",
    metadata,
    _id(),
    Column("channel_id", BigInteger, ForeignKey("channels.id"), nullable=False),
    Column("event_id", Text, nullable=False),  # the platform's id of the event: a redelivery is a duplicate
    Column("topic", Text, nullable=False),
    Column("order_external_id", Text),  # None: the event is about no order (app/uninstalled, a ping)
    Column("order_payload", JSONB),  # the order as its API renders it, when the body carried it whole
    Column("raw_body", LargeBinary, nullable=False),  # the exact bytes the signature was verified on
    Column("headers", JSONB, nullable=False, server_default=text("'{}'::jsonb")),  # lower-cased, none secret
    _now("received_at"),
    Column("status", Text, nullable=False, server_default="pending"),
    _count("attempts"),
    Column("next_attempt_at", DateTime(timezone=True)),  # a failed apply's backoff; None: at once
    Column("applied_at", DateTime(timezone=True)),
    Column("last_error", Text),
    CheckConstraint(_in("status", WEBHOOK_STATUSES), name="status"),
    UniqueConstraint("channel_id", "event_id"),
    Index("ix_webhook_inbox_status_received_at", "status", "received_at"),
)

# -- order routing (issue 21, capability 1): per-channel rules and the history of moved lines ---------------

# A channel's routing rules as configured (warehouse.routing.RoutingRules.as_json; location codes); NULL: the
# channel reserves at its fulfilment location, as before routing existed.
channels.append_column(Column("routing", JSONB))

ROUTE_CAUSES = ("move", "away")

# Every reservation a person moved to another location (channelhub route move|away): who, why, from where.
line_routes = Table(
    "line_routes",
    metadata,
    _id(),
    Column("order_line_id", BigInteger, ForeignKey("order_lines.id", ondelete="CASCADE"), nullable=False),
    Column("from_location_id", BigInteger, ForeignKey("locations.id"), nullable=False),
    Column("to_location_id", BigInteger, ForeignKey("locations.id"), nullable=False),
    Column("units", Integer, nullable=False),  # line units whose reservation moved
    Column("cause", Text, nullable=False),  # move: one order's line(s) by hand; away: a location drained
    Column("actor", Text, nullable=False),
    Column("note", Text),
    # The ledger keys of the move (its release and its reserve), for finding it in the ledger.
    Column("release_key", Text, nullable=False),
    Column("reserve_key", Text, nullable=False),
    _now("created_at"),
    CheckConstraint(_in("cause", ROUTE_CAUSES), name="cause"),
    CheckConstraint("units > 0", name="units_positive"),
    Index("ix_line_routes_order_line_id", "order_line_id"),
)


# -- POS feed (issue 21, capability 6: warehouse.pos_documents) ---------------------------------------------
# Each document a store system posted to the live feed, once per (location, the POS's document id): posting it
# again answers ``result`` and changes nothing; the same id with another body (``digest``) is refused.
POS_DOCUMENT_TYPES = ("sale", "return", "count")
POS_DOCUMENT_STATUSES = ("applied", "partial", "rejected")  # every line applied | some | none

pos_documents = Table(
    "pos_documents",
    metadata,
    _id(),
    Column("location_id", BigInteger, ForeignKey("locations.id"), nullable=False),
    Column("document_id", Text, nullable=False),
    Column("type", Text, nullable=False),
    Column("digest", Text, nullable=False),  # sha256 of the body's canonical JSON
    Column("status", Text, nullable=False),
    Column("body", JSONB, nullable=False),  # the document as posted (sales reports read prices here)
    Column("result", JSONB, nullable=False),  # the answer: per line applied | already_applied | rejected
    _now("received_at"),
    CheckConstraint(_in("type", POS_DOCUMENT_TYPES), name="type"),
    CheckConstraint(_in("status", POS_DOCUMENT_STATUSES), name="status"),
    UniqueConstraint("location_id", "document_id"),
)


# -- sales reports (issue 21, capability 7): store (POS) sales as sold, with their price if the file has it --

# One row per POS receipt line, written by the sales import beside its ledger row (same key): the ledger says
# what left the shelf, this says what was sold and for how much (warehouse.sales_report reads it).
store_sales = Table(
    "store_sales",
    metadata,
    _id(),
    Column("idempotency_key", Text, nullable=False, unique=True),  # pos:<location>:<receipt>:<line>
    Column("location_id", BigInteger, ForeignKey("locations.id"), nullable=False),
    Column("sku_id", BigInteger, ForeignKey("skus.id"), nullable=False),  # as sold (a bundle itself)
    Column("quantity", Integer, nullable=False),  # negative: a return over the counter
    Column("unit_price", Numeric(asdecimal=True)),  # NULL: the file gave no price
    Column("amount", Numeric(asdecimal=True)),  # the line's money (positive); NULL: no price given
    Column("currency", Text),
    Column("sold_at", DateTime(timezone=True), nullable=False),
    Column("source", Text, nullable=False),
    _now("created_at"),
    CheckConstraint("quantity <> 0", name="quantity_not_zero"),
    CheckConstraint("amount IS NULL OR amount >= 0", name="amount_not_negative"),
    Index("ix_store_sales_sold_at", "sold_at"),
    Index("ix_store_sales_location_id_sold_at", "location_id", "sold_at"),
)

# -- moves: transfers between locations (调拨) and purchase receipts (采购入库) ---------------------------
# Rules in docs/transfers-and-receipts.md; applied by warehouse.transfers and warehouse.purchase_receipts.

TRANSFER_STATUSES = ("in_transit", "received", "closed_short")
PURCHASE_ORDER_STATUSES = ("open", "received", "closed_short")

# A transfer: units left ``from_location`` for the transit location; they reach ``to_location`` on receipt.
transfers = Table(
    "transfers",
    metadata,
    _id(),
    Column("transfer_key", Text, nullable=False, unique=True),  # the sender's transfer id (调拨单号)
    Column("from_location_id", BigInteger, ForeignKey("locations.id"), nullable=False),
    Column("to_location_id", BigInteger, ForeignKey("locations.id"), nullable=False),
    Column("transit_location_id", BigInteger, ForeignKey("locations.id"), nullable=False),
    Column("status", Text, nullable=False, server_default=text("'in_transit'")),
    Column("sent_at", DateTime(timezone=True), nullable=False),
    Column("closed_at", DateTime(timezone=True)),
    Column("closed_by", Text),
    Column("source", Text, nullable=False),  # the file (or "cli") its first line came in
    _now("created_at"),
    CheckConstraint(_in("status", TRANSFER_STATUSES), name="status"),
    CheckConstraint("from_location_id <> to_location_id", name="two_locations"),
    Index("ix_transfers_status", "status"),
)

transfer_lines = Table(
    "transfer_lines",
    metadata,
    _id(),
    Column("transfer_id", BigInteger, ForeignKey("transfers.id"), nullable=False),
    Column("line_no", Text, nullable=False),
    Column("sku_id", BigInteger, ForeignKey("skus.id"), nullable=False),
    Column("sent_quantity", Integer, nullable=False),
    _count("received_quantity"),  # every unit the destination reported, beyond sent ones included
    _count("lost_quantity"),  # sent, never received, written off transit when the transfer was closed
    _count("accepted_excess"),  # received beyond sent, moved from the source on a person's word
    UniqueConstraint("transfer_id", "line_no"),
    CheckConstraint("sent_quantity > 0", name="sent_positive"),
    CheckConstraint(
        "received_quantity >= 0 AND lost_quantity >= 0 AND accepted_excess >= 0", name="counts_not_negative"
    ),
)

transfer_receipts = Table(
    "transfer_receipts",
    metadata,
    _id(),
    Column("line_id", BigInteger, ForeignKey("transfer_lines.id"), nullable=False),
    Column("receipt_key", Text, nullable=False),  # the destination's receipt id
    Column("quantity", Integer, nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("source", Text, nullable=False),
    _now("created_at"),
    UniqueConstraint("line_id", "receipt_key"),
    CheckConstraint("quantity > 0", name="quantity_positive"),
)

# An expected delivery (采购单): what a supplier is to deliver at a location, received against it.
purchase_orders = Table(
    "purchase_orders",
    metadata,
    _id(),
    Column("po_key", Text, nullable=False, unique=True),  # the purchase order's id (采购单号)
    Column("supplier", Text, nullable=False),
    Column("location_id", BigInteger, ForeignKey("locations.id"), nullable=False),
    Column("expected_at", DateTime(timezone=True), nullable=False),
    Column("status", Text, nullable=False, server_default=text("'open'")),
    Column("closed_at", DateTime(timezone=True)),
    Column("closed_by", Text),
    Column("source", Text, nullable=False),
    _now("created_at"),
    CheckConstraint(_in("status", PURCHASE_ORDER_STATUSES), name="status"),
    Index("ix_purchase_orders_status", "status"),
)

purchase_order_lines = Table(
    "purchase_order_lines",
    metadata,
    _id(),
    Column("purchase_order_id", BigInteger, ForeignKey("purchase_orders.id"), nullable=False),
    Column("sku_id", BigInteger, ForeignKey("skus.id"), nullable=False),
    Column("expected_quantity", Integer, nullable=False),
    _count("received_quantity"),  # every unit received against the line; on hand up to expected_quantity
    # Units received beyond expected wait for a person: accepted ones went on hand, rejected ones back.
    _count("accepted_excess"),
    _count("rejected_excess"),
    UniqueConstraint("purchase_order_id", "sku_id"),
    CheckConstraint("expected_quantity > 0", name="expected_positive"),
    CheckConstraint(
        "accepted_excess + rejected_excess <= greatest(received_quantity - expected_quantity, 0)",
        name="excess_decided_within_excess",
    ),
)

purchase_receipts = Table(
    "purchase_receipts",
    metadata,
    _id(),
    Column("line_id", BigInteger, ForeignKey("purchase_order_lines.id"), nullable=False),
    Column("receipt_key", Text, nullable=False),  # the receiving location's receipt id (入库单号)
    Column("quantity", Integer, nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("source", Text, nullable=False),
    _now("created_at"),
    UniqueConstraint("line_id", "receipt_key"),
    CheckConstraint("quantity > 0", name="quantity_positive"),
)

# -- returns and exchanges (退换货, warehouse.returns) ---------------------------------------------------

RETURN_DISPOSITIONS = ("sellable", "damaged")

# A return received at a store or warehouse: of a channel order (channel_id and order_id), or a walk-in one.
returns = Table(
    "returns",
    metadata,
    _id(),
    Column("location_id", BigInteger, ForeignKey("locations.id"), nullable=False),  # where it was received
    Column("return_key", Text, nullable=False),  # the store system's return id, unique per location
    Column("channel_id", BigInteger, ForeignKey("channels.id")),
    Column("order_id", BigInteger, ForeignKey("orders.id")),
    Column("returned_at", DateTime(timezone=True), nullable=False),
    Column("source", Text, nullable=False),  # the file (or the caller) it came from
    _now("created_at"),
    UniqueConstraint("location_id", "return_key"),
    CheckConstraint("(channel_id IS NULL) = (order_id IS NULL)", name="order_of_a_channel"),
    Index("ix_returns_order_id", "order_id"),
)

return_lines = Table(
    "return_lines",
    metadata,
    _id(),
    Column("return_id", BigInteger, ForeignKey("returns.id", ondelete="CASCADE"), nullable=False),
    Column("line_no", Text, nullable=False),
    Column("sku_id", BigInteger, ForeignKey("skus.id"), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("reason", Text, nullable=False),
    Column("disposition", Text, nullable=False),
    # Where the units went: the receiving location (sellable) or its damaged location.
    Column("stock_location_id", BigInteger, ForeignKey("locations.id"), nullable=False),
    Column("order_line_id", BigInteger, ForeignKey("order_lines.id")),  # NULL: a walk-in return
    # An exchange: the replacement's line of a hub-side order (channel ``exchanges``) that reserves it.
    Column("exchange_order_line_id", BigInteger, ForeignKey("order_lines.id")),
    _now("created_at"),
    UniqueConstraint("return_id", "line_no"),
    CheckConstraint("quantity > 0", name="quantity_positive"),
    CheckConstraint(_in("disposition", RETURN_DISPOSITIONS), name="disposition"),
    Index("ix_return_lines_order_line_id", "order_line_id"),
)
