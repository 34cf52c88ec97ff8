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
from channelhub.credentials import ChannelCredentials, load_credentials
from channelhub.platforms import get_platform
from connectors.errors import ConnectorError
from connectors.pushes import ShipmentLine, ShipmentPush
from warehouse.shipment_outbox import PendingShipment, pending_shipments, record_push

log = logging.getLogger("channelhub.shipment_push")


class ShipmentPushIncomplete(RuntimeError):
    """Some shipments could not be pushed for transient reasons; the rest were, and are recorded."""


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
    connector = get_platform(channel.platform).connector(
        credentials or load_credentials(channel.conn_id), channel
    )
    failures: list[str] = []
    for shipment in pending:
        try:
            result = connector.push_shipment(as_push(shipment))
            status, detail = result.status, result.detail
        except ConnectorError as err:
            status, detail = "failed", str(err)
            failures.append(f"{shipment.shipment_key}: {err}")
        with engine.begin() as conn:
            record_push(conn, channel.code, shipment, status, detail)
        report.outcomes[status] += 1
    log.info("shipment push %s", report.summary_line())
    if failures:
        raise ShipmentPushIncomplete(
            f"{channel.code}: {len(failures)} of {len(pending)} shipment pushes failed: "
            + "; ".join(failures[:5])
        )
    return report
