"""Tell each channel about the shipments the warehouse reported: warehouse outbox -> connector -> outcome.

Each pending shipment is pushed once with its tracking; "already shipped with this tracking" counts as done,
a refusal becomes a ``push_failed`` exception, and transient trouble keeps it pending: the other shipments
go on, and the run then fails so Airflow retries it.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy import Engine

from channelhub.config import ChannelConfig
from channelhub.credentials import ChannelCredentials
from channelhub.outbound import push_each
from channelhub.platforms import channel_connector
from connectors.pushes import ShipmentLine, ShipmentPush
from warehouse.shipment_outbox import PendingShipment, pending_shipments, record_push

log = logging.getLogger("channelhub.shipment_push")


@dataclass
class ShipmentPushReport:
    channel: str
    pending: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)

    def summary_line(self) -> str:
        outcomes = ", ".join(f"{k}={v}" for k, v in sorted(self.outcomes.items())) or "nothing to push"
        return f"{self.channel}: {self.pending} shipments pending: {outcomes}"


def as_push(shipment: PendingShipment) -> ShipmentPush:
    return ShipmentPush(
        external_order_id=shipment.external_order_id,
        shipment_key=shipment.shipment_key,
        carrier=shipment.carrier,
        tracking_number=shipment.tracking_number,
        lines=tuple(
            ShipmentLine(
                line.external_line_id, line.quantity, line.channel_product_id, line.channel_variant_id
            )
            for line in shipment.lines
        ),
        shipped_at=shipment.shipped_at,
        completes_order=shipment.completes_order,
        previous_tracking_number=shipment.previous_tracking_number,
    )


def push_shipments(
    engine: Engine, channel: ChannelConfig, *, credentials: ChannelCredentials | None = None
) -> ShipmentPushReport:
    report = ShipmentPushReport(channel.code)
    with engine.connect() as conn:
        pending = pending_shipments(conn, channel.code)
    report.pending = len(pending)
    if not pending:
        return report
    connector = channel_connector(channel, credentials, engine=engine)
    try:
        report.outcomes = push_each(
            engine,
            pending,
            lambda shipment: connector.push_shipment(as_push(shipment)),
            lambda conn, shipment, status, detail: record_push(conn, channel.code, shipment, status, detail),
            lambda shipment: shipment.shipment_key,
            f"shipment pushes to {channel.code}",
        )
    finally:
        log.info("shipment push %s", report.summary_line())
    return report
