"""Reconciliation on every platform's sandbox: after a clean sync and stock push it finds nothing (no false
alarm from any platform's mapping or stock read), and a quantity changed by hand on the channel is found
and pushed back."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hub_configs import hub_config

from channelhub.credentials import ChannelCredentials
from channelhub.demo import seed_from_catalog
from channelhub.platforms import channel_connector
from channelhub.reconcile import reconcile_channel
from channelhub.stock_push import as_push, push_stock
from channelhub.sync import register_config, sync_orders
from connectors.auth import Secret
from sandbox.clock import Clock
from sandbox.server import run_sandbox, sandbox_connection
from warehouse.stock_policy import channel_stock

NOW = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
START = NOW - timedelta(hours=6)


@pytest.mark.parametrize("platform", ["shopify", "woocommerce", "wechat_channels", "youzan", "douyin"])
def test_a_clean_channel_reconciles_to_no_findings_and_hand_edits_are_pushed_back(engine, platform):
    code = f"recon_{platform}"
    location = f"WH-{platform.upper()}"
    config = hub_config(
        code,
        platform,
        location=location,
        overlap_minutes=0,
        page_size=50,
        stock_policy={"locations": [location]},
    )
    channel = config.channel(code)
    # Shopify's call-limit bucket is exercised elsewhere; here it would only slow the per-listing reads.
    fast = {"leak_per_second": 100.0}
    with run_sandbox(
        platform, seed=17, start=START, interval=600, clock=Clock.frozen(NOW), **fast
    ) as sandbox:
        conn = sandbox_connection(platform, sandbox.base_url, sandbox.access_token)
        creds = ChannelCredentials(
            code,
            conn["host"],
            login=conn.get("login"),
            secret=Secret(conn["password"]),
            extra=conn.get("extra", {}),
        )
        register_config(engine, config)
        seed_from_catalog(engine, channel, sandbox.world.catalog)
        sync_orders(engine, channel, START, NOW, credentials=creds)
        push_stock(engine, channel, credentials=creds)

        clean = reconcile_channel(engine, channel, NOW - timedelta(days=2), NOW, "deep", credentials=creds)
        assert clean.findings == []
        assert clean.checked["orders"] > 0 and clean.checked["stock"] > 0

        with engine.connect() as db:
            listing = next(
                item for item in channel_stock(db, code, channel.stock_policy) if item.sellable > 1
            )
        connector = channel_connector(channel, creds)
        assert (
            connector.set_stock(replace(as_push(listing), quantity=listing.sellable - 1)).status == "pushed"
        )
        assert connector.listed_stock(as_push(listing)) == listing.sellable - 1

        drift = reconcile_channel(engine, channel, NOW - timedelta(hours=1), NOW, "light", credentials=creds)
        assert [(f.kind, f.subject, f.outcome) for f in drift.findings] == [
            ("stock_drift", listing.sku, "repaired")
        ]
        assert connector.listed_stock(as_push(listing)) == listing.sellable
