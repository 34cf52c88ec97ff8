"""End to end: sync_orders against the WeChat Channels sandbox into the warehouse (frozen clock).

Every order the sandbox has in the window lands (or is queued with a reason), lines resolve through the
listing map (merchant SKU code, else product/sku ids for lines without sku_code), and a re-run changes
nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hub_configs import hub_config
from sqlalchemy import text

from channelhub.credentials import ChannelCredentials
from channelhub.demo import seed_from_catalog
from channelhub.sync import register_config, sync_orders
from connectors.auth import Secret
from sandbox.clock import Clock
from sandbox.server import run_sandbox
from sandbox.wechat_channels import SANDBOX_LOGIN
from warehouse import exceptions as exception_queue
from warehouse.stock import ledger_drift, oversold

NOW = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
SINCE = NOW - timedelta(hours=6)
SECRET = "wx-sync-secret-0123456789abcdef"


def test_sync_lands_every_order_of_the_window_resolves_lines_and_is_idempotent(engine):
    with run_sandbox(
        "wechat_channels",
        seed=31,  # a seed whose window holds orders of unmapped variants too
        access_token=SECRET,
        start=NOW - timedelta(days=2),
        interval=timedelta(minutes=6),
        clock=Clock.frozen(NOW),
    ) as shop:
        config = hub_config(
            "wx_sync",
            "wechat_channels",
            location="WH-WX",
            overlap_minutes=0,
            page_size=250,  # capped to WeChat's 100 by the connector
            batch_size=40,
        )
        register_config(engine, config)
        channel = config.channel("wx_sync")
        seed_from_catalog(engine, channel, shop.world.catalog)
        credentials = ChannelCredentials("wx_sync", shop.base_url, login=SANDBOX_LOGIN, secret=Secret(SECRET))

        renderer = shop.app.state.renderer
        in_window = list(shop.world.updated_between(SINCE, NOW))
        expected = {renderer.order_id(state.index) for state in in_window}
        blank_sku_orders = {
            renderer.order_id(s.index)
            for s in in_window
            if any(not line.variant.listing("wechat_channels").sku for line in s.order.lines)
        }
        unmapped_orders = {
            renderer.order_id(s.index)
            for s in in_window
            if any(line.variant.unmapped for line in s.order.lines)
        }

        result = sync_orders(engine, channel, SINCE, NOW, credentials=credentials)
        assert result.fetched == len(expected) > 40
        assert result.counts.new == len(expected)  # every order lands (unknown SKUs wait on their line)

        with engine.connect() as conn:
            landed = dict(
                conn.execute(
                    text(
                        "SELECT o.external_id, o.currency FROM orders o"
                        " JOIN channels c ON c.id = o.channel_id WHERE c.code = :c"
                    ),
                    {"c": channel.code},
                ).all()
            )
            lines = conn.execute(
                text(
                    "SELECT o.external_id, l.merchant_sku, l.sku_id, s.code FROM order_lines l"
                    " JOIN orders o ON o.id = l.order_id JOIN channels c ON c.id = o.channel_id"
                    " LEFT JOIN skus s ON s.id = l.sku_id WHERE c.code = :c"
                ),
                {"c": channel.code},
            ).all()
            queued = exception_queue.list_open(conn, channel=channel.code, reason="unknown_sku")
            assert oversold(conn) == 0 and ledger_drift(conn) == []

        assert set(landed) == expected and set(landed.values()) == {"CNY"}
        assert blank_sku_orders, "the window must hold lines without sku_code"
        resolved_by_ids = [line for line in lines if line.merchant_sku is None and line.sku_id is not None]
        assert {line.external_id for line in resolved_by_ids} <= blank_sku_orders and resolved_by_ids
        unresolved = {line.external_id for line in lines if line.sku_id is None}
        assert unmapped_orders, "the window must hold orders of variants the hub has not mapped"
        assert unresolved == unmapped_orders == {q["external_id"] for q in queued}
        for line in lines:
            if line.sku_id is not None and line.merchant_sku is not None:
                assert line.code == line.merchant_sku  # the merchant SKU code maps to the same internal SKU

        again = sync_orders(engine, channel, SINCE, NOW, credentials=credentials)
        assert again.fetched == len(expected)
        assert again.counts.new == again.counts.updated == 0 and again.counts.unchanged == len(expected)
        with engine.connect() as conn:
            assert len(exception_queue.list_open(conn, channel=channel.code, reason="unknown_sku")) == len(
                queued
            )
