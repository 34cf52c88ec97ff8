"""Personal data retention: what the warehouse keeps of a buyer once their order is done (issue 17).

An order is closed when it is cancelled, fully fulfilled, fully refunded or voided (``models.CLOSED_ORDER``).
Once it has been closed for the retention period, measured from its last change on the platform
(``updated_at``: a closed order's last change is its closing or later, so the period never starts early; no
platform here gives a close time for every closed order), ``erase_closed_orders``

1. blanks the canonical order's ``customer`` (id, name, e-mail, phone: a WeChat or Youzan customer id is the
   buyer's openid) and the receiver's name, phone, street and postal code in ``shipping_address``; country,
   province, city and district stay, for reports by region (they name no one);
2. masks every raw payload of the order (``raw_payloads`` of its channel and external id: each version, and
   the rejects and mismatches queued about it) with the caller's ``erase``, which knows the platform's paths
   (the warehouse knows no platform's fields): its ``personal`` paths were masked before it was stored, this
   masks its ``fulfilment`` paths too;
3. marks both with ``personal_data_erased_at``. The order's ``payload_digest`` and the raw payloads' digests
   stay as they were, so the same version synced again is unchanged (nothing is restored) and its payload
   finds its row (nothing is stored again); a new version lands whole and clears the mark
   (``warehouse.ingest``): the order is live again, and retention takes it again once it is closed long
   enough.

``erase_exception_payloads`` masks, the same way, the raw payloads of orders that never landed (their
schema_invalid, mapping_failed or apply_failed exceptions) once no exception about them is open and the
last one was closed before the cutoff.

Each batch is one transaction; rows are taken with ``SKIP LOCKED``, so an order an ingest holds is left for
the next run, never waited on (nor half-erased). A rerun finds nothing more to do.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, text

from warehouse.exceptions import canonical_json
from warehouse.ingest import LANDING_REASONS
from warehouse.models import CLOSED_ORDER

# (platform, stored payload) -> the payload with every personal and fulfilment path masked.
Erase = Callable[[str, Any], Any]

# What erasure leaves in a canonical order's JSON (the keys set to null; the others are kept).
ERASED_CUSTOMER = {"external_id": None, "name": None, "email": None, "phone": None}
ERASED_ADDRESS = {"name": None, "phone": None, "address1": None, "address2": None, "postal_code": None}


@dataclass
class RetentionCounts:
    orders: int = 0  # canonical orders blanked
    order_payloads: int = 0  # raw payloads of those orders masked
    exception_payloads: int = 0  # raw payloads of orders that never landed masked
    inbox_bodies: int = 0  # webhook deliveries' bodies dropped (events never applied: failed, or pending)

    def as_dict(self) -> dict[str, int]:
        return {
            "orders": self.orders,
            "order_payloads": self.order_payloads,
            "exception_payloads": self.exception_payloads,
            "inbox_bodies": self.inbox_bodies,
        }


DUE_ORDERS = f"""
  FROM orders
 WHERE personal_data_erased_at IS NULL AND ({CLOSED_ORDER}) AND updated_at < :cutoff
"""

# Raw payloads of orders that never landed, whose exceptions are all closed since before the cutoff.
DUE_EXCEPTION_PAYLOADS = """
  WITH closed AS (
       SELECT channel_id, external_id, raw_payload_id FROM exceptions
        WHERE channel_id IS NOT NULL AND reason = ANY(CAST(:reasons AS text[]))
          AND status <> 'open' AND resolved_at < :cutoff),
       candidates AS (
       SELECT raw_payload_id AS id FROM closed WHERE raw_payload_id IS NOT NULL
        UNION
       SELECT r.id FROM closed c
         JOIN raw_payloads r ON r.channel_id = c.channel_id AND r.external_id = c.external_id)
SELECT {columns}
  FROM raw_payloads r JOIN candidates USING (id)
 WHERE r.personal_data_erased_at IS NULL
   AND NOT EXISTS (SELECT 1 FROM orders o WHERE o.channel_id = r.channel_id AND o.external_id = r.external_id)
   AND NOT EXISTS (SELECT 1 FROM exceptions e
                    WHERE e.channel_id = r.channel_id AND e.external_id = r.external_id
                      AND (e.status = 'open' OR e.resolved_at >= :cutoff))
   AND NOT EXISTS (SELECT 1 FROM exceptions e
                    WHERE e.raw_payload_id = r.id AND (e.status = 'open' OR e.resolved_at >= :cutoff))
"""


# Webhook deliveries received before the cutoff that still hold their body: an applied event drops it at once
# (webhook_inbox.mark_done); one never applied keeps the buyer's data unmasked until the period is over. Its
# event id, topic and order id stay, so a pending row is still applied (the order fetched by id).
DUE_INBOX_BODIES = """
  FROM webhook_inbox WHERE received_at < :cutoff AND (raw_body <> '' OR order_payload IS NOT NULL)
"""


def due(conn: Connection, cutoff: datetime) -> RetentionCounts:
    """What a run with this cutoff would erase (a dry run)."""
    orders = conn.execute(text(f"SELECT count(*) {DUE_ORDERS}"), {"cutoff": cutoff}).scalar_one()
    order_payloads = conn.execute(
        text(
            f"""
            SELECT count(*) FROM raw_payloads r
              JOIN (SELECT channel_id, external_id {DUE_ORDERS}) o
                ON r.channel_id = o.channel_id AND r.external_id = o.external_id
             WHERE r.personal_data_erased_at IS NULL
            """
        ),
        {"cutoff": cutoff},
    ).scalar_one()
    exception_payloads = conn.execute(
        text(DUE_EXCEPTION_PAYLOADS.format(columns="count(*)")),
        {"cutoff": cutoff, "reasons": list(LANDING_REASONS)},
    ).scalar_one()
    inbox_bodies = conn.execute(text(f"SELECT count(*) {DUE_INBOX_BODIES}"), {"cutoff": cutoff}).scalar_one()
    return RetentionCounts(orders, order_payloads, exception_payloads, inbox_bodies)


def erase_closed_orders(
    engine: Engine, cutoff: datetime, erase: Erase, batch_size: int = 500
) -> RetentionCounts:
    """Blank every order closed before ``cutoff`` (by its last change) and mask its raw payloads, in
    batches of ``batch_size`` orders, oldest first."""
    counts = RetentionCounts()
    while True:
        with engine.begin() as conn:
            rows = conn.execute(
                text(
                    f"SELECT id, channel_id, external_id {DUE_ORDERS} "
                    "ORDER BY updated_at, id LIMIT :limit FOR UPDATE SKIP LOCKED"
                ),
                {"cutoff": cutoff, "limit": batch_size},
            ).all()
            if not rows:
                return counts
            conn.execute(
                text(
                    """
                    UPDATE orders
                       SET customer = CASE WHEN jsonb_typeof(customer) = 'object'
                                           THEN customer || CAST(:customer AS jsonb) ELSE customer END,
                           shipping_address = CASE WHEN jsonb_typeof(shipping_address) = 'object'
                                                   THEN shipping_address || CAST(:address AS jsonb)
                                                   ELSE shipping_address END,
                           personal_data_erased_at = now()
                     WHERE id = ANY(CAST(:ids AS bigint[]))
                    """
                ),
                {
                    "customer": json.dumps(ERASED_CUSTOMER),
                    "address": json.dumps(ERASED_ADDRESS),
                    "ids": [row.id for row in rows],
                },
            )
            payloads = conn.execute(
                text(
                    """
                    SELECT r.id, r.channel_id, r.payload
                      FROM raw_payloads r
                      JOIN unnest(CAST(:channel_ids AS bigint[]), CAST(:external_ids AS text[]))
                           AS k(channel_id, external_id)
                        ON r.channel_id = k.channel_id AND r.external_id = k.external_id
                     WHERE r.personal_data_erased_at IS NULL
                     ORDER BY r.id
                       FOR UPDATE OF r
                    """
                ),
                {
                    "channel_ids": [row.channel_id for row in rows],
                    "external_ids": [row.external_id for row in rows],
                },
            ).all()
            _mask_payloads(conn, payloads, erase)
        counts.orders += len(rows)
        counts.order_payloads += len(payloads)


def erase_exception_payloads(engine: Engine, cutoff: datetime, erase: Erase, batch_size: int = 500) -> int:
    """Mask the raw payloads of orders that never landed, once every exception about them was closed
    before ``cutoff``; returns how many."""
    erased = 0
    while True:
        with engine.begin() as conn:
            payloads = conn.execute(
                text(
                    DUE_EXCEPTION_PAYLOADS.format(columns="r.id, r.channel_id, r.payload")
                    + " ORDER BY r.id LIMIT :limit FOR UPDATE OF r SKIP LOCKED"
                ),
                {"cutoff": cutoff, "reasons": list(LANDING_REASONS), "limit": batch_size},
            ).all()
            if not payloads:
                return erased
            _mask_payloads(conn, payloads, erase)
        erased += len(payloads)


def erase_inbox_bodies(engine: Engine, cutoff: datetime) -> int:
    """Drop the bodies of webhook deliveries received before ``cutoff`` that still hold one; how many."""
    with engine.begin() as conn:
        ids = (
            conn.execute(text(f"SELECT id {DUE_INBOX_BODIES} FOR UPDATE SKIP LOCKED"), {"cutoff": cutoff})
            .scalars()
            .all()
        )
        if ids:
            conn.execute(
                text("UPDATE webhook_inbox SET raw_body = '', order_payload = NULL WHERE id = ANY(:ids)"),
                {"ids": list(ids)},
            )
    return len(ids)


def _mask_payloads(conn: Connection, payloads: Sequence[Any], erase: Erase) -> None:
    """Overwrite each payload with ``erase`` of it and mark it; its digest stays that of the payload as it
    landed (the same payload fetched again must find this row, not store its fulfilment data anew)."""
    if not payloads:
        return
    platforms = dict(conn.execute(text("SELECT id, platform FROM channels")).tuples().all())
    conn.execute(
        text(
            """
            UPDATE raw_payloads r SET payload = CAST(v.payload AS json), personal_data_erased_at = now()
              FROM unnest(CAST(:ids AS bigint[]), CAST(:payloads AS text[])) AS v(id, payload)
             WHERE r.id = v.id
            """
        ),
        {
            "ids": [row.id for row in payloads],
            "payloads": [canonical_json(erase(platforms[row.channel_id], row.payload)) for row in payloads],
        },
    )
