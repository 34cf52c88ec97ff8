"""Many shops of one platform behind one port, as a chain with a shop per brand and platform looks to the hub,
without a process or a port per shop (200 channels would be 200 uvicorn servers).

Shop ``n`` (0-based) is served under ``/shops/<n>``: a connection's host is ``<base_url>/shops/<n>``. Each
shop has a world of its own (seeded ``seed + n``: its own catalog, customers and order stream, on the one
clock), its own credential (``shop_secret``: one shop's secret is refused by every other) and its own fault
knobs; it is built on its first request, so an idle shop costs nothing.

    with run_many_shops("shopify", 200, seed=1) as shops:
        shops.connection(17)   # the Airflow connection (JSON form) of shop 17
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from sandbox import shopify
from sandbox.clock import Clock
from sandbox.faults import Faults
from sandbox.server import create_platform_app, sandbox_connection, serve_app
from sandbox.world import DEFAULT_INTERVAL, World

_SHOP_PATH = re.compile(r"/shops/(\d+)(?=/|$)")


def shop_secret(secret: str, shop: int) -> str:
    """Shop ``shop``'s credential: distinct per shop, derived so a test or the demo can name it."""
    return f"{secret}-shop{shop}"


@dataclass
class Shop:
    world: World
    faults: Faults
    app: FastAPI = field(repr=False)


class ShopsApp:
    """ASGI app routing ``/shops/<n>/...`` to shop ``n``'s own platform app, mounted as a sub-application:
    the prefix moves from the request's path to its ``root_path``, so the shop's gateways and routes see the
    paths of a shop of its own, and the URLs it writes (``Link`` headers from ``base_url``, WooCommerce's
    OAuth base string) carry the prefix, as the client sees them."""

    def __init__(
        self,
        platform: str,
        count: int,
        *,
        seed: int,
        secret: str,
        clock: Clock,
        start: datetime | None,
        interval: timedelta | float,
        app_options: dict[str, Any],
    ) -> None:
        self.platform, self.count, self.seed, self.secret = platform, count, seed, secret
        self.clock, self.start, self.interval, self.app_options = clock, start, interval, app_options
        self._shops: dict[int, Shop] = {}
        self._lock = threading.Lock()

    def shop(self, n: int) -> Shop:
        if not 0 <= n < self.count:
            raise KeyError(n)
        with self._lock:
            if n not in self._shops:
                world = World(self.seed + n, start=self.start, interval=self.interval, clock=self.clock)
                faults = Faults(seed=self.seed + n)
                app = create_platform_app(
                    self.platform,
                    world,
                    access_token=shop_secret(self.secret, n),
                    faults=faults,
                    **self.app_options,
                )
                self._shops[n] = Shop(world, faults, app)
            return self._shops[n]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        match = _SHOP_PATH.match(scope["path"])
        if match is None or int(match.group(1)) >= self.count:
            await _not_found(send, f"no such shop: the shops are /shops/0 .. /shops/{self.count - 1}")
            return
        shop = self.shop(int(match.group(1)))
        prefix = match.group(0)
        raw_path = scope.get("raw_path") or scope["path"].encode()
        mounted = {
            **scope,
            "root_path": scope.get("root_path", "") + prefix,
            "path": scope["path"][len(prefix) :] or "/",
            "raw_path": raw_path[len(prefix) :] or b"/",
        }
        await shop.app(mounted, receive, send)


async def _not_found(send: Send, message: str) -> None:
    body = json.dumps({"errors": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 404, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@dataclass
class RunningShops:
    platform: str
    base_url: str
    count: int
    secret: str = field(repr=False)
    app: ShopsApp = field(repr=False)

    def shop_url(self, n: int) -> str:
        return f"{self.base_url}/shops/{n}"

    def shop_secret(self, n: int) -> str:
        return shop_secret(self.secret, n)

    def connection(self, n: int) -> dict[str, Any]:
        """Shop ``n``'s Airflow connection (JSON form): its URL, its own secret, the platform's extras."""
        return sandbox_connection(self.platform, self.shop_url(n), self.shop_secret(n))

    def shop(self, n: int) -> Shop:
        return self.app.shop(n)


@contextmanager
def run_many_shops(
    platform: str,
    count: int,
    *,
    seed: int = 1,
    port: int = 0,
    host: str = "127.0.0.1",
    secret: str = shopify.DEFAULT_ACCESS_TOKEN,
    start: datetime | None = None,
    interval: timedelta | float = DEFAULT_INTERVAL,
    clock: Clock | None = None,
    bucket_size: int = 40,
    leak_per_second: float = 2.0,
    shop_timezone: str = shopify.DEFAULT_SHOP_TIMEZONE,
) -> Iterator[RunningShops]:
    """Serve ``count`` shops of ``platform`` on one port until the block exits (``port=0``: a free one)."""
    app = ShopsApp(
        platform,
        count,
        seed=seed,
        secret=secret,
        clock=clock or Clock(),
        start=start,
        interval=interval,
        app_options={
            "bucket_size": bucket_size,
            "leak_per_second": leak_per_second,
            "shop_timezone": shop_timezone,
        },
    )
    with serve_app(app, host=host, port=port, name=f"sandbox-{platform}-shops") as served:
        yield RunningShops(platform, served.base_url, count, secret, app)
