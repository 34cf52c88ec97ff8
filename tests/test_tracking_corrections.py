"""A corrected tracking number reaches each platform's own update call, end to end on every platform of the
registry: an order synced from the sandbox, a shipments file, the push; then the same shipment again with a
new carrier and number, the push: the channel shows the one parcel with the new number, not a second one
(where the platform declares it cannot change a parcel's number, the correction is refused and the parcel
keeps its first number).

The connectors' own tests cover the update calls in detail (including a previous number the channel never
received, which ships as new); this test follows the whole path ops use: CSV in, outbox, push.
"""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hub_configs import hub_config

from channelhub.credentials import ChannelCredentials
from channelhub.demo import seed_from_catalog
from channelhub.platforms import PLATFORMS, channel_connector
from channelhub.shipment_push import as_push, push_shipments
from channelhub.sync import register_config, sync_orders
from connectors.auth import Secret
from connectors.http import dig
from platforms.registry import DECLARATIONS
from sandbox.clock import Clock
from sandbox.server import run_sandbox, sandbox_connection
from warehouse.shipment_outbox import orders_ready_to_ship, pending_shipments
from warehouse.store_imports import import_file

NOW = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
START = NOW - timedelta(hours=6)
HEADER = [
    "shipment_id",
    "channel",
    "order_id",
    "line_id",
    "quantity",
    "carrier",
    "tracking_number",
    "shipped_at",
]


def parcels_on_the_channel(connector: Any, platform: str, order_id: str) -> list[str]:
    """The tracking numbers the channel shows on the order, one per parcel, read through its own API."""
    if platform == "woocommerce":
        return [str(t["tracking_number"]) for t in connector.shipment_trackings(order_id) or []]
    order = connector.get_order(order_id)
    if platform == "shopify":
        return [
            number
            for fulfillment in order.get("fulfillments") or []
            if fulfillment.get("status") == "success"
            for number in fulfillment.get("tracking_numbers") or [fulfillment.get("tracking_number")]
        ]
    if platform == "wechat_channels":
        parcels = dig(order, "order_detail.delivery_info.delivery_product_info") or []
        return [str(parcel["waybill_id"]) for parcel in parcels]
    if platform == "youzan":
        return [
            str(dig(dist, "express_info.express_no"))
            for delivery in order.get("delivery_order") or []
            for dist in delivery.get("dists") or []
        ]
    if platform == "pinduoduo":  # one waybill per order, once it shipped
        return [order["tracking_number"]] if order.get("order_status") in (2, 3) else []
    if platform == "jd":  # one waybill per order (JD ships whole orders)
        return [order["waybill"]] if order.get("waybill") else []
    if platform == "taobao":  # each sub-order names the waybill of its parcel
        waybills = (sub.get("invoice_no") for sub in dig(order, "orders.order") or [])
        return list(dict.fromkeys(str(number) for number in waybills if number))
    if platform == "douyin":
        return [str(package["tracking_no"]) for package in order.get("logistics_info") or []]
    raise AssertionError(f"no reader of {platform}'s parcels in this test: add one")


def write_shipment(path: Path, channel: str, order_id: str, lines, carrier: str, number: str) -> Path:
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(HEADER)
        for line_id, _sku, quantity in lines:
            writer.writerow(["WMS-1", channel, order_id, line_id, quantity, carrier, number, NOW.isoformat()])
    return path


@pytest.mark.parametrize("platform", sorted(PLATFORMS))
def test_a_corrected_tracking_number_reaches_the_channels_update_call(engine, tmp_path, platform):
    code = f"fix_{platform}"
    location = f"WH-FIX-{platform.upper()}"
    config = hub_config(code, platform, location=location, overlap_minutes=0, page_size=50)
    channel = config.channel(code)
    with run_sandbox(platform, seed=23, start=START, interval=600, clock=Clock.frozen(NOW)) as sandbox:
        conn = sandbox_connection(platform, sandbox.base_url, sandbox.access_token)
        creds = ChannelCredentials(
            code, conn["host"], conn.get("login"), Secret(conn["password"]), conn.get("extra", {})
        )
        register_config(engine, config)
        seed_from_catalog(engine, channel, sandbox.world.catalog)
        sync_orders(engine, channel, START, NOW, credentials=creds)
        with engine.connect() as db:
            [(order_id, lines)] = orders_ready_to_ship(db, code, limit=1)
        connector = channel_connector(channel, creds)

        first = write_shipment(tmp_path / "shipments_1.csv", code, order_id, lines, "SF", "SF1000000001")
        assert import_file(engine, "shipments", first).applied == len(lines)
        assert push_shipments(engine, channel, credentials=creds).outcomes == {"pushed": 1}
        assert parcels_on_the_channel(connector, platform, order_id) == ["SF1000000001"]

        fixed = write_shipment(tmp_path / "shipments_2.csv", code, order_id, lines, "YTO", "YT2000000002")
        assert import_file(engine, "shipments", fixed).units["tracking_corrected"] == 1
        with engine.connect() as db:
            [correction] = pending_shipments(db, code)
        assert correction.previous_tracking_number == "SF1000000001"
        report = push_shipments(engine, channel, credentials=creds)
        if not DECLARATIONS[platform].tracking_corrections:
            # No API call changes a shipped parcel's number there: refused with that reason, never re-shipped.
            assert report.outcomes == {"rejected": 1}, report
            assert parcels_on_the_channel(connector, platform, order_id) == ["SF1000000001"]
            again = connector.push_shipment(as_push(correction))  # as a retry from the queue would
            assert again.status == "rejected" and "cannot change a shipment's tracking number" in again.detail
            return
        assert report.outcomes == {"pushed": 1}, report
        assert parcels_on_the_channel(connector, platform, order_id) == ["YT2000000002"]

        # Pushed again (as reconciliation offers it): the channel already shows it.
        assert connector.push_shipment(_as_push(engine, code)).status == "already_done"


def _as_push(engine, channel: str):
    from channelhub.shipment_push import as_push
    from warehouse.shipment_outbox import pushed_shipments

    with engine.connect() as db:
        [shipment] = pushed_shipments(db, channel, NOW - timedelta(days=3650))
    return as_push(shipment)
