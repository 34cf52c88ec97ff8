"""End to end: sync_orders against the Youzan sandbox into the warehouse (frozen clock)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hub_configs import hub_config
from sqlalchemy import text

from channelhub.credentials import ChannelCredentials
from channelhub.demo import seed_from_catalog
from channelhub.sync import register_config, sync_orders
from connectors.auth import Secret
from sandbox import youzan as sandbox_youzan
from sandbox.clock import Clock
from sandbox.server import run_sandbox
from warehouse import exceptions as exception_queue
from warehouse.stock import ledger_drift, oversold

NOW = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
SINCE = NOW - timedelta(hours=6)


def test_every_youzan_order_in_the_window_lands_resolved_and_a_rerun_changes_nothing(engine):
    with run_sandbox(
        "youzan", seed=17, start=NOW - timedelta(hours=12), interval=120, clock=Clock.frozen(NOW)
    ) as shop:
        config = hub_config(
            "yz_sync",
            "youzan",
            location="WH-YZ",
            overlap_minutes=0,
            page_size=250,  # above Youzan's 100: the connector caps it
            batch_size=60,
        )
        register_config(engine, config)
        channel = config.channel("yz_sync")
        seed_from_catalog(engine, channel, shop.world.catalog)
        credentials = ChannelCredentials(
            "yz_sync",
            shop.base_url,
            login=sandbox_youzan.SANDBOX_LOGIN,
            secret=Secret(shop.access_token),
            extra={"kdt_id": str(sandbox_youzan.SANDBOX_KDT_ID)},
        )
        renderer = shop.app.state.renderer
        in_window = {renderer.tid(s.index): s for s in shop.world.updated_between(SINCE, NOW)}
        first = sync_orders(engine, channel, SINCE, NOW, credentials=credentials)
        again = sync_orders(engine, channel, SINCE, NOW, credentials=credentials)

    assert first.fetched == len(in_window) > 100
    with engine.connect() as conn:
        landed = set(
            conn.execute(
                text(
                    "SELECT o.external_id FROM orders o JOIN channels c ON c.id = o.channel_id"
                    " WHERE c.code = :c"
                ),
                {"c": channel.code},
            ).scalars()
        )
        queued = exception_queue.list_open(conn, channel=channel.code)
        unresolved = conn.execute(
            text(
                "SELECT o.external_id, l.merchant_sku, l.channel_product_id, l.channel_variant_id"
                " FROM order_lines l JOIN orders o ON o.id = l.order_id"
                " JOIN channels c ON c.id = o.channel_id WHERE c.code = :c AND l.sku_id IS NULL"
            ),
            {"c": channel.code},
        ).all()
        blank_sku_lines = conn.execute(
            text(
                "SELECT count(*) FROM order_lines l JOIN orders o ON o.id = l.order_id"
                " JOIN channels c ON c.id = o.channel_id"
                " WHERE c.code = :c AND l.merchant_sku IS NULL AND l.sku_id IS NOT NULL"
            ),
            {"c": channel.code},
        ).scalar_one()
        assert oversold(conn) == 0 and ledger_drift(conn) == []

    assert landed == set(in_window)  # every order in the window landed ...
    unmapped_products = {str(v.listing("youzan").product_id) for v in shop.world.catalog.unmapped_variants}
    # ... and only lines of variants the merchant never mapped stay unresolved, queued as unknown_sku
    assert all(row.channel_product_id in unmapped_products for row in unresolved)
    assert {q["external_id"] for q in queued if q["reason"] == "unknown_sku"} == {
        r.external_id for r in unresolved
    }
    assert blank_sku_lines > 0  # lines without outer_sku_id resolved through item_id/sku_id
    assert again.fetched == first.fetched
    assert again.counts.new == again.counts.updated == 0 and again.counts.unchanged == first.fetched
