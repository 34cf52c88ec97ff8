"""The sandboxes serve exactly the bytes they always served: sha256 of rendered orders and of real Shopify
listing pages, against digests recorded before the renderers and the world were optimised.

A change to any rendered byte (key order, a number's format, an id, a time, a draw of the world's RNG) fails
here. When a change is meant, record the new digests (``python tests/test_sandbox_render_identical.py``) and
say why in the commit.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient

from sandbox import shopify, wechat_channels, woocommerce, youzan
from sandbox.clock import Clock
from sandbox.faults import Faults
from sandbox.world import World

START = datetime(2024, 11, 1, 3, 7, 11, tzinfo=UTC)  # the stream crosses the end of US daylight time
INTERVAL = 120.0
ORDERS = 700
# Clocks: early (pending, paid), mid (fulfilled, cancelled, refunded), late (closed, every event done).
CLOCKS = (3600.0 * 9, 86400.0 * 1.5, 86400.0 * 5)
WANTED = frozenset({"id", "updated_at", "line_items", "customer", "refunds", "shipping_lines"})
TOKEN = "shpat_identity"
# Recorded with the sandbox as of 344547c (before the render and world optimisations). Recorded again since,
# each time on purpose: "pages" when the Shopify sandbox moved from 2024-10 to 2026-10 (the Link headers' URLs
# carry the version; asked at /admin/api/2024-10/, the old digest still comes out: the bodies did not change);
# "renders" for issue 16 when WooCommerce line items gained their stock meta (_reduced_stock,
# _restock_refunded_items) and a unit dropped before payment became a 0.00 refund, and a WeChat order came to
# list one after-sale order per refunded product (was one per refund); "renders" for issue 19 when the world's
# per-platform listings came in the registry's (sorted) order: ``repr(state)`` shows that dict, the rendered
# bytes are unchanged (checked: the digest of the renders alone is the same in either order); "renders" for
# issue 19 again when Douyin joined the registry: the world's listings dict (in ``repr(state)``) gained its
# listings, the four renderers' bytes are unchanged (checked: the renders-only digest with and without
# Douyin's id space is the same).
EXPECTED = {
    "renders": "9e0aced152fee221c966287ce1fb273a497ac649b9ee8effe8d343bd7accd75d",
    "pages": "e1481c8ff31d4ec57290d68728ab94543924248983024d3f92abeb8f8a58fa83",
}


def _world(seed: int, now: datetime) -> World:
    world = World(seed, start=START, interval=INTERVAL, clock=Clock.frozen(now))
    for index in range(3, ORDERS, 41):  # what the hub pushed back: a fulfilment on some orders
        created = world.timeline(index).created_ts
        world.overlay.record_fulfillment(
            index, created + 4000 + index % 7, ((0, 1),), "UPS", f"1Z{index:016d}", f"https://t/{index}"
        )
    return world


def render_digest() -> str:
    """Every platform's render of every order at every clock (Shopify in two shop time zones)."""
    digest = hashlib.sha256()
    for seed in (1, 20261124):
        world = _world(seed, START)
        renderers = [
            shopify.ShopifyRenderer(world, shop_timezone=tz) for tz in ("America/New_York", "Asia/Kolkata")
        ]
        renderers[0].set_tracking(10, 1, shopify.Tracking("", "N-10", "", 1_800_000_000))
        others = (
            woocommerce.WooRenderer(world),
            wechat_channels.WeChatChannelsRenderer(world),
            youzan.YouzanRenderer(world),
        )
        for offset in CLOCKS:
            now_ts = START.timestamp() + offset
            for index in range(ORDERS):
                state = world.state(index, now_ts)
                digest.update(repr(state).encode())
                if state is None:
                    continue
                for renderer in renderers:
                    digest.update(renderer.render_json(state).encode())
                digest.update(renderers[0].render_json(state, WANTED).encode())
                for other in others:
                    digest.update(json.dumps(other.render(state), sort_keys=True, default=str).encode())
    return digest.hexdigest()


def pages_digest() -> str:
    """Bodies and Link headers of a Shopify backfill's listing pages (24 h ``updated_at`` windows)."""
    now = START + timedelta(seconds=INTERVAL * ORDERS)
    world = _world(20261124, now)
    app = shopify.create_app(
        world, access_token=TOKEN, faults=Faults(seed=1), bucket_size=10**6, leak_per_second=10**6
    )
    client = TestClient(app)
    digest = hashlib.sha256()
    low = START
    while low < now:
        high = min(low + timedelta(hours=24), now)
        url: str | None = f"{shopify.API_PREFIX}/orders.json"
        params: dict[str, str] | None = {
            "status": "any",
            "limit": "250",
            "updated_at_min": low.isoformat(),
            "updated_at_max": high.isoformat(),
        }
        while url:
            response = client.get(url, params=params, headers={"X-Shopify-Access-Token": TOKEN})
            link = response.headers.get("Link", "")
            digest.update(response.content + link.encode())
            following = re.findall(r'<([^>]*)>;\s*rel="next"', link)
            url, params = (following[0], None) if following else (None, None)
        low = high
    return digest.hexdigest()


def test_renders_are_byte_identical() -> None:
    assert render_digest() == EXPECTED["renders"]


def test_listing_pages_are_byte_identical() -> None:
    assert pages_digest() == EXPECTED["pages"]


if __name__ == "__main__":
    print(json.dumps({"renders": render_digest(), "pages": pages_digest()}, indent=4))
