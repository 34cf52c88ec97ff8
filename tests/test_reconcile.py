"""Issue 5: reconciliation against a real Shopify sandbox and warehouse, with five seeded faults.

A lost sync window (missing orders), a damaged order total, a tracking push recorded but never made, a
quantity changed by hand on the channel and a stock level off its ledger: one deep run finds all five,
repairs the four that are safe to repair and leaves the amount mismatch to a person, who retries it.
"""

from __future__ import annotations

import csv
import io
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
import requests
from hub_configs import hub_config
from sqlalchemy import text

from channelhub.credentials import ChannelCredentials
from channelhub.demo import seed_from_catalog
from channelhub.exception_ops import retry_exceptions, show_exception
from channelhub.platforms import channel_connector
from channelhub.reconcile import reconcile_channel
from channelhub.stock_push import as_push, push_stock
from channelhub.sync import register_config, sync_orders
from connectors.auth import Secret
from sandbox.clock import Clock
from sandbox.server import run_sandbox
from sandbox.shopify import API_PREFIX
from warehouse import exceptions as queue
from warehouse.reconciliation_log import latest_findings
from warehouse.shipment_outbox import orders_ready_to_ship
from warehouse.stock import ledger_drift, oversold
from warehouse.stock_policy import channel_stock
from warehouse.store_imports import import_text

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
START = NOW - timedelta(hours=10)
CODE = "recon_shop"
LOCATION = "WH-RECON"


@pytest.fixture(scope="module")
def shop():
    # Shopify's call-limit bucket is exercised elsewhere; here it would only make the many stock reads slow.
    with run_sandbox(
        "shopify", seed=71, start=START, interval=300, clock=Clock.frozen(NOW), leak_per_second=100.0
    ) as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def channel(engine, shop):
    config = hub_config(
        CODE, location=LOCATION, overlap_minutes=0, page_size=100, stock_policy={"locations": [LOCATION]}
    )
    register_config(engine, config)
    seed_from_catalog(engine, config.channel(CODE), shop.world.catalog)
    return config


def credentials(shop) -> ChannelCredentials:
    return ChannelCredentials(CODE, shop.base_url, secret=Secret(shop.access_token))


def shopify_order(shop, order_id: str) -> dict:
    return requests.get(
        f"{shop.base_url}{API_PREFIX}/orders/{order_id}.json",
        headers={"X-Shopify-Access-Token": shop.access_token},
        timeout=10,
    ).json()["order"]


def warehouse_orders(engine) -> set[str]:
    with engine.connect() as conn:
        return set(
            conn.execute(
                text(
                    "SELECT o.external_id FROM orders o JOIN channels c ON c.id = o.channel_id "
                    "WHERE c.code = :c"
                ),
                {"c": CODE},
            ).scalars()
        )


def ship_without_pushing(engine, order_id: str, lines: list[tuple[str, str, int]], tracking: str) -> None:
    """The warehouse ships an order and the outbox records the push as made, but it never reached Shopify."""
    out = io.StringIO()
    writer = csv.DictWriter(
        out,
        [
            "shipment_id",
            "channel",
            "order_id",
            "line_id",
            "quantity",
            "carrier",
            "tracking_number",
            "shipped_at",
        ],
    )
    writer.writeheader()
    for line_id, _, quantity in lines:
        writer.writerow(
            {
                "shipment_id": f"WMS-{order_id}",
                "channel": CODE,
                "order_id": order_id,
                "line_id": line_id,
                "quantity": quantity,
                "carrier": "UPS",
                "tracking_number": tracking,
                "shipped_at": (NOW - timedelta(hours=3)).isoformat(),
            }
        )
    report = import_text(engine, "shipments", out.getvalue(), file="wms.csv", source="wms.csv")
    assert report.ok, report.rejected
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE shipments SET push_status = 'pushed', pushed_at = now() WHERE shipment_key = :k"),
            {"k": f"WMS-{order_id}"},
        )


def test_reconciliation_finds_five_faults_and_repairs_the_four_safe_ones(engine, shop, channel, monkeypatch):
    hub_channel = channel.channel(CODE)
    creds = credentials(shop)
    connector = channel_connector(hub_channel, creds)

    # The hub's normal day, except that one sync window was lost (the next one moved the watermark on).
    sync_orders(engine, hub_channel, START, NOW - timedelta(hours=2), credentials=creds)
    sync_orders(engine, hub_channel, NOW - timedelta(minutes=30), NOW, credentials=creds)
    push_stock(engine, hub_channel, credentials=creds)
    on_channel = {
        str(shop.app.state.renderer.order_id(s.index)) for s in shop.world.updated_between(START, NOW)
    }
    missing = on_channel - warehouse_orders(engine)
    assert missing, "the lost window must hold orders"

    # Fault 2: a shipment recorded as pushed that Shopify never received.
    with engine.connect() as conn:
        (shipped_order, lines), damaged_order = orders_ready_to_ship(conn, CODE, limit=2)
    ship_without_pushing(engine, shipped_order, lines, "1ZLOST0000000001")
    assert shopify_order(shop, shipped_order)["fulfillments"] == []

    # Fault 3: a damaged order total in the warehouse (same platform version as the channel's).
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE orders SET total = total + 5 WHERE external_id = :o "
                "AND channel_id = (SELECT id FROM channels WHERE code = :c)"
            ),
            {"o": damaged_order[0], "c": CODE},
        )

    # Fault 4: someone changed a quantity by hand in the Shopify admin.
    with engine.connect() as conn:
        listings = channel_stock(conn, CODE, hub_channel.stock_policy)
    drifted = next(listing for listing in listings if listing.sellable > 0)
    assert connector.set_stock(replace(as_push(drifted), quantity=drifted.sellable + 50)).status == "pushed"

    # Fault 5: a stock level that no longer equals its ledger.
    faulty_sku = listings[-1].sku
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE stock_levels SET on_hand = on_hand + 7 "
                "WHERE sku_id = (SELECT id FROM skus WHERE code = :s) "
                "AND location_id = (SELECT id FROM locations WHERE code = :l)"
            ),
            {"s": faulty_sku, "l": LOCATION},
        )

    report = reconcile_channel(engine, hub_channel, NOW - timedelta(days=2), NOW, "deep", credentials=creds)

    found = {(f.kind, f.subject): f for f in report.findings}
    assert {subject for kind, subject in found if kind == "missing_order"} == missing
    assert all(found[("missing_order", m)].outcome == "repaired" for m in missing)
    mismatch = found[("amount_mismatch", damaged_order[0])]
    assert mismatch.outcome == "left_for_person" and mismatch.exception_id
    assert "total: channel" in mismatch.detail
    assert found[("lost_shipment", f"{shipped_order}/WMS-{shipped_order}")].outcome == "repaired"
    assert found[("stock_drift", drifted.sku)].outcome == "repaired"
    assert found[("ledger_drift", f"{faulty_sku}@{LOCATION}")].outcome == "repaired"
    assert report.outcomes["left_for_person"] == 1 and report.outcomes["repair_failed"] == 0

    # Repaired for real: the warehouse holds every order; Shopify has the tracking and lists the hub's stock.
    assert warehouse_orders(engine) >= on_channel
    tracked = shopify_order(shop, shipped_order)["fulfillments"]
    assert [f["tracking_number"] for f in tracked] == ["1ZLOST0000000001"]
    with engine.connect() as conn:
        assert ledger_drift(conn) == [] and oversold(conn) == 0
        for listing in channel_stock(conn, CODE, hub_channel.stock_policy):
            assert connector.listed_stock(as_push(listing)) == listing.sellable, listing.sku
        stored = latest_findings(conn, limit=200)
        (open_mismatch,) = queue.list_open(conn, channel=CODE, reason="amount_mismatch")
    assert {(f["kind"], f["subject"]) for f in stored if f["run_id"] == report.run_id} == set(found)
    assert open_mismatch["id"] == mismatch.exception_id
    lines_ = report.summary_lines()
    assert "orders" in lines_[1] and "missing_order" in lines_[1]
    assert any(line.startswith("  repaired ") and "left for a person 1" in line for line in lines_)

    # A second run finds only what a person still has to decide.
    again = reconcile_channel(engine, hub_channel, NOW - timedelta(days=2), NOW, "deep", credentials=creds)
    assert [(f.kind, f.outcome) for f in again.findings] == [("amount_mismatch", "left_for_person")]

    # The person retries it: the channel's version is re-applied, the exception resolves, with who and when.
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{CODE.upper()}",
        f'{{"conn_type": "http", "host": "{shop.base_url}", "password": "{shop.access_token}"}}',
    )
    (outcome,) = retry_exceptions(engine, channel, [mismatch.exception_id], "alice", "checked with finance")
    assert outcome.status == "resolved", outcome.detail
    shown = show_exception(engine, mismatch.exception_id)
    assert shown["status"] == "resolved"
    assert [(a["action"], a["actor"]) for a in shown["actions"]][-1] == ("retry", "alice")
    assert (
        reconcile_channel(
            engine, hub_channel, NOW - timedelta(days=2), NOW, "deep", credentials=creds
        ).findings
        == []
    )
