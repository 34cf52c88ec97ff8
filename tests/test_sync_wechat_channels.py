"""WeChat Channels' own sync quirk: twenty processes of one channel share one access token through the
warehouse. (A window landing completely, lines resolving through the listing map and a re-run changing
nothing are contracts every platform keeps: tests/test_platform_contracts.py.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import requests

from sandbox.clock import Clock
from sandbox.server import run_sandbox
from sandbox.wechat_channels import SANDBOX_LOGIN

NOW = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
SECRET = "wx-sync-secret-0123456789abcdef"


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
