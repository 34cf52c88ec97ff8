"""Reconciliation: compare one channel with the warehouse over a window and repair what is safe to repair.

Checks, in this order (each repair feeds the next check):

1. **orders**: the channel's orders updated in the window, up to the sync's watermark (newer versions are
   the next sync's to pull, not drift), against the warehouse. Missing, or older in the
   warehouse -> re-ingested (repaired). Same platform version but different content: money differs ->
   ``amount_mismatch``, status differs -> ``status_mismatch`` exception (left for a person: which side is
   right is a judgement); any other difference -> re-ingested (the channel is the source of its orders).
2. **shipments**: every shipment recorded as pushed in the window is offered to the channel again. Each
   connector's push reads the channel's order first and answers ``already_done`` when the tracking is
   there, so only a shipment the channel lost is written again (repaired).
3. **ledger**: every stock level equals the sums of its ledger rows; a level that does not is set to the
   ledger's sums (repaired: the ledger is the record of every change, levels are its running total).
4. **stock**: each listing's quantity on the channel against what the hub last pushed and should push now;
   any difference is pushed again (with the platform's compare-and-set where it has one).

Every run is recorded (``reconciliation_runs`` / ``reconciliation_findings``) and its summary printed to the
task log. Orders are reconciled before stock, so a channel's sales are in the warehouse before the
sellable quantity is computed and pushed.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Engine, select, text

from canonical.order import CanonicalOrder
from channelhub.config import ChannelConfig
from channelhub.credentials import ChannelCredentials
from channelhub.platforms import ChannelConnector, Skipped, channel_connector, get_platform
from channelhub.shipment_push import as_push as shipment_as_push
from channelhub.stock_push import as_push as stock_as_push
from channelhub.sync import ORDERS_STREAM, as_utc, sync_is_current
from connectors.errors import ConnectorError
from warehouse import reconciliation_log, shipment_outbox, stock_policy, sync_state
from warehouse.catalog import channel_id_of
from warehouse.exceptions import record_exception
from warehouse.ingest import DIGEST_PREFIX, Landed, Rejected, ingest_orders, order_digest
from warehouse.models import orders
from warehouse.reconciliation_log import Finding
from warehouse.stock import ledger_drift

log = logging.getLogger("channelhub.reconcile")

DEPTHS = ("light", "deep")
DEEP_LOOKBACK = timedelta(days=2)
MONEY_FIELDS = ("subtotal", "discount", "shipping", "tax", "total", "refunded")
STATUS_FIELDS = ("payment_status", "fulfillment_status", "cancelled")
CHECKS = ("orders", "shipments", "ledger", "stock")


@dataclass
class ReconciliationReport:
    channel: str
    depth: str
    window_start: datetime
    window_end: datetime
    run_id: int | None = None
    checked: Counter[str] = field(default_factory=Counter)
    findings: list[Finding] = field(default_factory=list)

    def found(
        self, check: str, kind: str, subject: str, detail: str, outcome: str, exception_id: int | None = None
    ) -> None:
        self.findings.append(Finding(check, kind, subject, detail, outcome, exception_id))

    @property
    def outcomes(self) -> Counter[str]:
        return Counter(f.outcome for f in self.findings)

    def outcome_line(self) -> str:
        outcomes = self.outcomes
        return (
            f"repaired {outcomes['repaired']}, left for a person {outcomes['left_for_person']}, "
            f"repair failed {outcomes['repair_failed']}"
        )

    def summary_lines(self) -> list[str]:
        """What a person reads in the task log: per check, what was compared and found, then each finding."""
        lines = [
            f"reconcile {self.channel} ({self.depth}) "
            f"[{self.window_start:%Y-%m-%d %H:%M} .. {self.window_end:%Y-%m-%d %H:%M}) run #{self.run_id}"
        ]
        for check in CHECKS:
            kinds = Counter(f.kind for f in self.findings if f.check_name == check)
            found = ", ".join(f"{kind}={n}" for kind, n in sorted(kinds.items())) or "all agree"
            lines.append(f"  {check:<9} checked {self.checked[check]:>5}: {found}")
            if check == "orders" and self.checked["orders_not_yet_synced"]:
                lines[-1] += (
                    f" ({self.checked['orders_not_yet_synced']} newer than the sync's watermark: not due)"
                )
            if check == "stock" and self.checked["stock_held_sync_stale"]:
                lines[-1] += (
                    f" ({self.checked['stock_held_sync_stale']} not raised: the channel's sync is stale)"
                )
        lines.append(f"  {self.outcome_line()}")
        for f in self.findings:
            ref = f" (exception #{f.exception_id})" if f.exception_id else ""
            lines.append(f"  - [{f.outcome}] {f.check_name}/{f.kind} {f.subject}: {f.detail}{ref}")
        return lines

    def as_dict(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "depth": self.depth,
            "run_id": self.run_id,
            "window_start": self.window_start.isoformat(),
            "window_end": self.window_end.isoformat(),
            "checked": dict(self.checked),
            "findings": {k: v for k, v in Counter(f.kind for f in self.findings).items()},
            "outcomes": dict(self.outcomes),
        }


def window_for(depth: str, window_end: datetime, interval_start: datetime | None) -> datetime:
    """Where a run's window starts: the light run covers its own interval, the deep one the last two days."""
    if depth not in DEPTHS:
        raise ValueError(f"depth {depth!r}: expected one of {', '.join(DEPTHS)}")
    if depth == "deep" or interval_start is None:
        return window_end - (DEEP_LOOKBACK if depth == "deep" else timedelta(hours=1))
    return interval_start


def reconcile_channel(
    engine: Engine,
    channel: ChannelConfig,
    window_start: datetime,
    window_end: datetime,
    depth: str = "light",
    *,
    credentials: ChannelCredentials | None = None,
) -> ReconciliationReport:
    window_start, window_end = as_utc(window_start), as_utc(window_end)
    report = ReconciliationReport(channel.code, depth, window_start, window_end)
    with engine.begin() as conn:
        report.run_id = reconciliation_log.start_run(conn, channel.code, depth, window_start, window_end)
    connector = channel_connector(channel, credentials, engine=engine)
    try:
        _check_orders(engine, channel, connector, report)
        _check_shipments(engine, channel, connector, report)
        _check_ledger(engine, report)
        _check_stock(engine, channel, connector, report)
    finally:
        lines = report.summary_lines()
        with engine.begin() as conn:
            reconciliation_log.finish_run(
                conn, report.run_id, dict(report.checked), report.findings, report.outcome_line()
            )
        log.info("%s", "\n".join(lines))
    return report


# -- orders ----------------------------------------------------------------------------------------------


def _check_orders(
    engine: Engine, channel: ChannelConfig, connector: ChannelConnector, report: ReconciliationReport
) -> None:
    platform = get_platform(channel.platform)
    landed: dict[str, Landed] = {}
    rejected: list[Rejected] = []
    for page in connector.fetch_orders(report.window_start - channel.overlap, report.window_end):
        for payload in page:
            prepared = platform.prepare(payload, channel)
            if isinstance(prepared, Skipped):
                continue  # no order (a checkout draft): nothing to compare
            if isinstance(prepared, Rejected):
                rejected.append(prepared)  # re-queued by the ingest below: nothing the channel holds is lost
            else:
                landed[prepared.canonical.external_id] = prepared  # the newest copy of a re-listed order
    with engine.connect() as conn:
        watermark = sync_state.get_watermark(conn, channel.code, ORDERS_STREAM)
        # Versions the sync has not reached yet are its business, not drift: only what it claims to have
        # pulled (updated before its watermark) is compared.
        due = {
            k: v for k, v in landed.items() if watermark is not None and v.canonical.updated_at < watermark
        }
        stored = _stored_orders(conn, channel.code, list(due))
    report.checked["orders"] = len(due) + len(rejected)
    report.checked["orders_not_yet_synced"] = len(landed) - len(due)
    landed = due
    to_ingest: list[Landed] = []
    for external_id, item in sorted(landed.items()):
        order, ours = item.canonical, stored.get(external_id)
        if ours is None:
            to_ingest.append(item)
            report.found(
                "orders",
                "missing_order",
                external_id,
                f"on the channel (updated {order.updated_at:%Y-%m-%d %H:%M:%S}) "
                "but not in the warehouse: re-ingested",
                "repaired",
            )
        elif order.updated_at > ours["updated_at"]:
            to_ingest.append(item)
            report.found(
                "orders",
                "stale_order",
                external_id,
                f"the warehouse holds the version of {ours['updated_at']:%Y-%m-%d %H:%M:%S}, "
                f"the channel one of {order.updated_at:%Y-%m-%d %H:%M:%S}: re-ingested",
                "repaired",
            )
        elif order.updated_at == ours["updated_at"]:
            # Money and status are compared field by field (a damaged row keeps its digest); the digest
            # covers every other detail.
            money = _differences(order, ours, MONEY_FIELDS)
            statuses = _differences(order, ours, STATUS_FIELDS)
            if money or statuses:
                with engine.begin() as conn:
                    for reason, diffs in (("amount_mismatch", money), ("status_mismatch", statuses)):
                        if diffs:
                            detail = f"same version ({order.updated_at:%Y-%m-%d %H:%M:%S}) but {diffs}"
                            exception_id = record_exception(
                                conn,
                                channel=channel.code,
                                reason=reason,
                                external_id=external_id,
                                detail=detail,
                                raw=item.raw,
                            )
                            report.found(
                                "orders", reason, external_id, detail, "left_for_person", exception_id
                            )
            elif order_digest(order) != ours["payload_digest"]:
                to_ingest.append(item)  # an older hub's digest (no DIGEST_PREFIX) is refreshed, not drift
                if ours["payload_digest"].startswith(DIGEST_PREFIX):
                    report.found(
                        "orders",
                        "order_drift",
                        external_id,
                        "same version, other details differ: re-ingested",
                        "repaired",
                    )
    if to_ingest or rejected:
        ingest_orders(engine, channel.code, to_ingest, rejected)


def _stored_orders(conn: Connection, channel: str, external_ids: list[str]) -> dict[str, dict[str, Any]]:
    if not external_ids:
        return {}
    rows = conn.execute(
        select(
            orders.c.external_id,
            orders.c.updated_at,
            orders.c.payload_digest,
            orders.c.currency,
            *[orders.c[name] for name in MONEY_FIELDS + STATUS_FIELDS],
        ).where(orders.c.channel_id == channel_id_of(conn, channel), orders.c.external_id.in_(external_ids))
    )
    return {row.external_id: dict(row._mapping) for row in rows}


def order_differences(conn: Connection, channel: str, order: CanonicalOrder) -> str:
    """How the warehouse's row of ``order`` differs from it in money and status ('' when it agrees)."""
    ours = _stored_orders(conn, channel, [order.external_id]).get(order.external_id)
    if ours is None:
        return "the warehouse does not hold the order"
    return "; ".join(
        d for d in (_differences(order, ours, MONEY_FIELDS), _differences(order, ours, STATUS_FIELDS)) if d
    )


def _differences(order: Any, ours: dict[str, Any], names: tuple[str, ...]) -> str:
    """``"total: channel 120.00, warehouse 130.00; ..."`` for the fields that differ, '' when none do."""
    parts = []
    for name in names:
        theirs = getattr(order.totals, name) if name in MONEY_FIELDS else getattr(order, name)
        mine = ours[name]
        if isinstance(theirs, Decimal) and Decimal(mine) == theirs:
            continue
        if theirs != mine:
            parts.append(f"{name}: channel {theirs}, warehouse {mine}")
    return "; ".join(parts)


# -- shipments -------------------------------------------------------------------------------------------


def _check_shipments(
    engine: Engine, channel: ChannelConfig, connector: ChannelConnector, report: ReconciliationReport
) -> None:
    with engine.connect() as conn:
        pushed = shipment_outbox.pushed_shipments(conn, channel.code, report.window_start - channel.overlap)
    report.checked["shipments"] = len(pushed)
    for shipment in pushed:
        subject = f"{shipment.external_order_id}/{shipment.shipment_key}"
        try:
            result = connector.push_shipment(shipment_as_push(shipment))
        except ConnectorError as err:
            report.found(
                "shipments",
                "shipment_unverified",
                subject,
                f"could not ask the channel: {err}",
                "repair_failed",
            )
            continue
        if result.status == "already_done":
            continue
        with engine.begin() as conn:
            shipment_outbox.record_push(conn, channel.code, shipment, result.status, result.detail)
        what = (
            f"recorded as pushed, but the channel did not have {shipment.carrier} {shipment.tracking_number}"
        )
        if result.status == "pushed":
            report.found("shipments", "lost_shipment", subject, f"{what}: pushed again", "repaired")
        else:
            report.found(
                "shipments",
                "lost_shipment",
                subject,
                f"{what}; pushing again was refused: {result.detail}",
                "left_for_person",
            )


# -- ledger ----------------------------------------------------------------------------------------------

REPAIR_LEVEL_SQL = """
UPDATE stock_levels l
   SET on_hand = :ledger_on_hand, reserved = :ledger_reserved, updated_at = now()
  FROM skus s, locations loc
 WHERE s.id = l.sku_id AND loc.id = l.location_id AND s.code = :sku AND loc.code = :location
   AND l.on_hand = :on_hand AND l.reserved = :reserved
"""


def _check_ledger(engine: Engine, report: ReconciliationReport) -> None:
    with engine.connect() as conn:
        report.checked["ledger"] = conn.execute(text("SELECT count(*) FROM stock_levels")).scalar_one()
        drifts = ledger_drift(conn)
    for drift in drifts:
        subject = f"{drift.sku}@{drift.location}"
        detail = (
            f"level on_hand={drift.on_hand} reserved={drift.reserved}, ledger sums "
            f"on_hand={drift.ledger_on_hand} reserved={drift.ledger_reserved}"
        )
        changed = 0
        if drift.ledger_on_hand >= 0 and drift.ledger_reserved >= 0:
            with engine.begin() as conn:
                # Only while the level is still what was read (a concurrent stock step moves level and ledger
                # together, in one transaction).
                changed = conn.execute(text(REPAIR_LEVEL_SQL), asdict(drift)).rowcount
        if changed:
            report.found(
                "ledger", "ledger_drift", subject, f"{detail}: level set to the ledger sums", "repaired"
            )
            continue
        why = (
            "the ledger sums are negative"
            if min(drift.ledger_on_hand, drift.ledger_reserved) < 0
            else ("the level row is missing or changed while checking")
        )
        with engine.begin() as conn:
            exception_id = record_exception(
                conn,
                channel=None,
                reason="ledger_drift",
                external_id=None,
                detail=f"{subject}: {detail}: {why}",
                sku=drift.sku,
            )
        report.found(
            "ledger",
            "ledger_drift",
            subject,
            f"{detail}: {why}; not repaired",
            "left_for_person",
            exception_id,
        )


# -- stock -----------------------------------------------------------------------------------------------


def _check_stock(
    engine: Engine, channel: ChannelConfig, connector: ChannelConnector, report: ReconciliationReport
) -> None:
    with stock_policy.stock_push_lock(engine, channel.code):  # no other pusher between read and record
        _repair_stock(engine, channel, connector, report)


def _repair_stock(
    engine: Engine, channel: ChannelConfig, connector: ChannelConnector, report: ReconciliationReport
) -> None:
    with engine.connect() as conn:
        listings = stock_policy.channel_stock(conn, channel.code, channel.stock_policy)
        current = sync_is_current(conn, channel)
    report.checked["stock"] = len(listings)
    pushes = [stock_as_push(listing) for listing in listings]
    for listing, push, listed in zip(listings, pushes, connector.listed_stocks(pushes), strict=True):
        if isinstance(listed, ConnectorError):
            report.found(
                "stock",
                "stock_unreadable",
                listing.sku,
                f"could not read the channel's stock: {listed}",
                "repair_failed",
            )
            continue
        if listed == listing.sellable:
            continue
        if not current and (listed is None or listed < listing.sellable):
            # The channel's sync is stale: raising its number could offer units it sold meanwhile.
            report.checked["stock_held_sync_stale"] += 1
            continue
        # Drift: the channel's number moved away from what the hub last told it; otherwise a push is just due.
        drifted = listing.pushed_quantity is not None and listed != listing.pushed_quantity
        kind = "stock_drift" if drifted else "stock_push_due"
        detail = (
            f"channel lists {listed}, hub last pushed {listing.pushed_quantity}, should be {listing.sellable}"
        )
        try:
            result = connector.set_stock(push)
        except ConnectorError as err:
            report.found("stock", kind, listing.sku, f"{detail}; pushing failed: {err}", "repair_failed")
            continue
        with engine.begin() as conn:
            stock_policy.record_push(conn, channel.code, listing, result.status, result.detail)
        if result.status == "rejected":
            report.found(
                "stock",
                kind,
                listing.sku,
                f"{detail}; the channel refused: {result.detail}",
                "left_for_person",
            )
        else:
            report.found("stock", kind, listing.sku, f"{detail}: pushed {listing.sellable}", "repaired")
