"""End to end: sync_orders against the WeChat Channels sandbox into the warehouse (frozen clock).

Every order the sandbox has in the window lands (or is queued with a reason), lines resolve through the
listing map (merchant SKU code, else product/sku ids for lines without sku_code), and a re-run changes
nothing. Twenty processes of one channel share one access token through the warehouse.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import requests
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


# -- one token for every process of a channel ---------------------------------------------------------------

# One sync or push process of the channel: builds its connector the hub's way (``channel_connector`` with the
# warehouse engine, so tokens live in ``platform_tokens``), says "ready", then makes one call per stdin line
# (a stock push, or the first page of a window's orders) and prints what its authenticator fetched.
CHILD = r"""
import json, os, sys
from datetime import UTC, datetime, timedelta

from sqlalchemy import create_engine

from channelhub.config import ChannelConfig
from channelhub.credentials import ChannelCredentials
from channelhub.platforms import channel_connector
from connectors.auth import Secret
from connectors.pushes import StockPush

args = json.loads(os.environ.pop("WX_CHILD"))
channel = ChannelConfig(
    code="wx_many", platform="wechat_channels", name="wx_many", conn_id="wx_many", fulfilment_location="WH",
    schedule=timedelta(minutes=5), overlap=timedelta(minutes=10), start_date=datetime(2026, 1, 1, tzinfo=UTC),
    page_size=100, batch_size=100, enabled=True,
)
credentials = ChannelCredentials(
    "wx_many", args["base_url"], login=args["appid"], secret=Secret(args["secret"])
)
connector = channel_connector(channel, credentials, engine=create_engine(args["database_url"], pool_size=1))
end = datetime.fromisoformat(args["now"])
print("ready", flush=True)
for line in sys.stdin:
    if args["push"]:
        done = connector.set_stock(StockPush(None, args["product_id"], args["sku_id"], int(line))).status
    else:
        pages = connector.fetch_orders(end - timedelta(minutes=30), end)
        done = len(next(pages, []))
        pages.close()
    auth = connector.client.auth
    print(json.dumps({"done": done, "fetched": auth.fetch_count, "forced": auth.forced_count}), flush=True)
"""
PROCESSES = 20


def test_twenty_processes_of_one_channel_share_one_token_per_expiry(engine, database_url):
    """20 sync/push processes of one channel start at once against a sandbox that revokes a token when it
    issues another: the platform issues one token; when it expires, one renewal; when calls refuse the token
    while stable_token still hands it out, one forced renewal (WeChat allows 20 a day) for all of them."""
    with run_sandbox(
        "wechat_channels",
        seed=41,
        access_token=SECRET,
        start=NOW - timedelta(days=1),
        interval=timedelta(minutes=10),
        clock=Clock.frozen(NOW),
    ) as shop:
        ids = shop.world.catalog.variants[0].platform_ids("wechat_channels")
        listed = len(list(shop.world.updated_between(NOW - timedelta(minutes=30), NOW)))
        assert 0 < listed <= 100  # one page
        base = {
            "base_url": shop.base_url,
            "appid": SANDBOX_LOGIN,
            "secret": SECRET,
            "database_url": database_url,
            "now": NOW.isoformat(),
            "product_id": ids["product_id"],
            "sku_id": ids["variant_id"],
        }
        children = [
            subprocess.Popen(
                [sys.executable, "-c", CHILD],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                env={**os.environ, "WX_CHILD": json.dumps({**base, "push": n % 2 == 0})},
            )
            for n in range(PROCESSES)
        ]
        try:
            assert [child.stdout.readline().strip() for child in children] == ["ready"] * PROCESSES

            def together(quantity: int) -> list[dict]:
                for child in children:  # every child waits on its stdin: they all go at once
                    child.stdin.write(f"{quantity}\n")
                    child.stdin.flush()
                return [json.loads(child.stdout.readline()) for child in children]

            def wechat() -> dict:
                state = requests.get(f"{shop.base_url}/_sandbox/state", timeout=5).json()
                return {**state["wechat"], "asked": state["requests"]["stable_token_requests"]}

            first = together(5)
            assert all(r["done"] in ("pushed", listed) for r in first), first
            assert sum(r["fetched"] for r in first) == 1
            assert (wechat()["asked"], wechat()["stable_tokens_issued"]) == (1, 1)

            requests.post(f"{shop.base_url}/_sandbox/wechat", json={"expire_tokens": True}, timeout=5)
            second = together(6)
            assert all(r["done"] in ("pushed", listed) for r in second), second
            assert sum(r["fetched"] for r in second) == 2
            assert (wechat()["asked"], wechat()["stable_tokens_issued"]) == (2, 2)

            requests.post(f"{shop.base_url}/_sandbox/wechat", json={"distrust_tokens": True}, timeout=5)
            third = together(7)
            assert all(r["done"] in ("pushed", listed) for r in third), third
            assert sum(r["forced"] for r in third) == 1
            state = wechat()
            assert (state["asked"], state["stable_tokens_issued"], state["force_refreshes"]) == (4, 3, 1)
            assert state["tokens_issued"] == 3  # not one from cgi-bin/token
        finally:
            for child in children:
                child.stdin.close()
            for child in children:
                child.wait(timeout=30)
