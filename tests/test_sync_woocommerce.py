"""End to end: sync_orders pulls a WooCommerce sandbox window into the warehouse (frozen clock, Postgres).

Every order the sandbox has in the window lands, or waits in the exception queue with its reason; checkout
drafts (listed by status=any) are skipped; lines resolve through the channel's listing map (merchant SKU,
else product/variation ids); a second run changes nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hub_configs import hub_config
from sqlalchemy import text

from channelhub.credentials import ChannelCredentials
from channelhub.demo import seed_from_catalog
from channelhub.exception_ops import retry_exceptions
from channelhub.sync import register_config, sync_orders
from connectors.auth import Secret
from sandbox.clock import Clock
from sandbox.server import run_sandbox
from sandbox.woocommerce import SANDBOX_LOGIN, wc_status
from warehouse import catalog as warehouse_catalog
from warehouse import exceptions as exception_queue
from warehouse.ingest import Rejected, ingest_orders
from warehouse.stock import ledger_drift, oversold

NOW = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
SINCE = NOW - timedelta(hours=5)
SECRET = "cs_sync_test_00112233445566778899aabbccdd"
SEED = 1  # its catalog has a simple product (TOTE) with a blank SKU on WooCommerce


@pytest.fixture(scope="module")
def shop():
    with run_sandbox(
        "woocommerce",
        seed=SEED,
        access_token=SECRET,
        start=NOW - timedelta(hours=12),
        interval=90,
        clock=Clock.frozen(NOW),
    ) as sb:
        yield sb


def make_channel(engine, shop, code: str):
    config = hub_config(
        code, "woocommerce", location="WH-WOO", overlap_minutes=0, page_size=40, batch_size=50
    )
    register_config(engine, config)
    channel = config.channel(code)
    seed_from_catalog(engine, channel, shop.world.catalog)
    # WooCommerce sends variation_id 0 for a simple product: an integrator maps those by product id alone
    # (seed_from_catalog registers the world's variant id for them, which WooCommerce never sends).
    with engine.begin() as conn:
        for variant in shop.world.catalog.mapped_variants:
            if variant.variant_title is None:
                listing = variant.listing("woocommerce")
                warehouse_catalog.upsert_listing(
                    conn, code, variant.sku, channel_product_id=str(listing.product_id)
                )
    return channel


def test_a_window_lands_completely_resolves_lines_and_a_rerun_changes_nothing(engine, shop):
    channel = make_channel(engine, shop, "woo_sync")
    credentials = ChannelCredentials(
        channel.conn_id, shop.base_url, login=SANDBOX_LOGIN, secret=Secret(SECRET)
    )
    renderer = shop.app.state.renderer
    in_window = {
        str(renderer.order_id(state.index)): state
        for state in shop.world.updated_between(SINCE, NOW - timedelta(seconds=1))
    }
    assert len(in_window) > 100
    drafts = renderer.drafts_between(SINCE, NOW - timedelta(seconds=1))  # status=any lists them too
    assert drafts

    result = sync_orders(engine, channel, SINCE, NOW, credentials=credentials)

    assert result.fetched == len(in_window) + len(drafts) and result.pages >= 3
    assert result.skipped == len(drafts)  # checkout drafts: counted, neither landed nor queued
    with engine.connect() as conn:
        landed = dict(
            conn.execute(
                text(
                    "SELECT o.external_id, o.id FROM orders o JOIN channels c ON c.id = o.channel_id "
                    "WHERE c.code = :c"
                ),
                {"c": channel.code},
            ).all()
        )
        lines = conn.execute(
            text(
                "SELECT o.external_id, l.merchant_sku, l.channel_variant_id, s.code "
                "FROM order_lines l JOIN orders o ON o.id = l.order_id "
                "JOIN channels c ON c.id = o.channel_id "
                "LEFT JOIN skus s ON s.id = l.sku_id WHERE c.code = :c"
            ),
            {"c": channel.code},
        ).all()
        queued = exception_queue.list_open(conn, channel=channel.code)
    waiting = {q["external_id"]: q["reason"] for q in queued}
    assert set(landed) | set(waiting) == set(in_window)  # nothing is lost, and no draft is an order
    assert set(waiting.values()) <= {"unknown_sku"}

    # Lines resolve to the merchant's SKU through the listing map, blank SKUs and simple products included.
    expected_sku = {
        (str(renderer.order_id(state.index)), line.index): line.variant
        for state in in_window.values()
        for line in state.order.lines
    }
    unresolved_orders = {external_id for external_id, _, _, sku in lines if sku is None}
    assert unresolved_orders == {
        order_id for (order_id, _), variant in expected_sku.items() if variant.unmapped
    } and unresolved_orders <= set(waiting)
    resolved = [(merchant_sku, variant_id, sku) for _, merchant_sku, variant_id, sku in lines if sku]
    assert any(
        merchant_sku is None and variant_id is None and sku == "TOTE"
        for merchant_sku, variant_id, sku in resolved
    )
    assert any(merchant_sku is None and variant_id is not None for merchant_sku, variant_id, _ in resolved)
    mapped_skus = {variant.sku for variant in expected_sku.values() if not variant.unmapped}
    assert {sku for _, _, sku in resolved} == mapped_skus

    again = sync_orders(engine, channel, SINCE, NOW, credentials=credentials)
    assert again.fetched == result.fetched and again.skipped == result.skipped
    assert again.counts.new == again.counts.updated == 0
    with engine.connect() as conn:
        assert len(exception_queue.list_open(conn, channel=channel.code)) == len(queued)
        assert oversold(conn) == 0 and ledger_drift(conn) == []


def test_a_queued_draft_resolves_and_a_plugin_status_lands_once_the_channel_declares_it(engine, shop):
    """Exceptions queued before the hub knew better: a checkout draft (mapping_failed under the old
    mapping) is resolved as no order; a plugin status lands once the channel's status_map names it."""
    channel = make_channel(engine, shop, "woo_retry")
    renderer = shop.app.state.renderer
    [draft_id, *_] = renderer.drafts_between(SINCE, NOW)
    draft = renderer.render_draft(renderer.draft_index_of(draft_id))
    state = next(s for s in shop.world.updated_between(SINCE, NOW) if wc_status(s) == "completed")
    plugin = {**renderer.render(state), "status": "shipped"}  # a shipment-tracking plugin's status
    refused = [
        Rejected(str(draft_id), "mapping_failed", "status: unknown value 'checkout-draft'", draft),
        Rejected(str(plugin["id"]), "mapping_failed", "status: unknown value 'shipped'", plugin),
    ]
    ingest_orders(engine, channel.code, [], refused)
    with engine.connect() as conn:
        ids = {q["external_id"]: q["id"] for q in exception_queue.list_open(conn, channel=channel.code)}
    config = hub_config(
        "woo_retry", "woocommerce", location="WH-WOO", overlap_minutes=0, status_map={"shipped": "completed"}
    )

    outcomes = retry_exceptions(engine, config, list(ids.values()), "test")

    assert {o.exception_id: o.status for o in outcomes} == dict.fromkeys(ids.values(), "resolved")
    by_id = {o.exception_id: o.detail for o in outcomes}
    assert "not an order" in by_id[ids[str(draft_id)]] and "checkout-draft" in by_id[ids[str(draft_id)]]
    with engine.connect() as conn:
        landed = conn.execute(
            text(
                "SELECT o.fulfillment_status FROM orders o JOIN channels c ON c.id = o.channel_id "
                "WHERE c.code = :c AND o.external_id = :id"
            ),
            {"c": channel.code, "id": str(plugin["id"])},
        ).scalar_one()
    assert landed == "fulfilled"
