"""The ``/_sandbox/*`` routes every simulator shares (no auth): faults, clock, state and catalog.

They let the demo, the tests and a person steer a running sandbox; each platform adds its own facts to
``/_sandbox/state`` through ``state_extra`` and its listing ids to ``/_sandbox/catalog``. Also the one fault
every platform renders alike: an answer held back past the client's read timeout (``hold_back_answers``).
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from fastapi import FastAPI, Request, Response

from sandbox.faults import Faults
from sandbox.world import World


class RequestStats:
    """Thread-safe counters of what a sandbox served (``api_requests``, ``throttled``, ...)."""

    def __init__(self, *names: str) -> None:
        self._counts = dict.fromkeys(names, 0)
        self._lock = threading.Lock()

    def count(self, name: str) -> None:
        with self._lock:
            self._counts[name] = self._counts.get(name, 0) + 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        content=json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode(),
        status_code=status,
        media_type="application/json; charset=utf-8",
        headers=headers,
    )


def hold_back_answers(app: FastAPI, faults: Faults, prefixes: tuple[str, ...]) -> None:
    """``Faults.timeout_rate``: the platform acts on a request under ``prefixes``, then holds its answer
    back for ``hang_seconds`` (a client with a shorter read timeout gives up, not knowing whether a write
    landed). Register it after the platform's gateway middleware: it wraps whatever the gateway answers."""

    @app.middleware("http")
    async def hang(request: Request, call_next: Callable[[Request], Any]) -> Response:
        if not request.url.path.startswith(prefixes):
            return await call_next(request)
        response = await call_next(request)
        if (seconds := faults.hang()) > 0:
            await asyncio.sleep(seconds)
        return response


def add_admin_routes(
    app: FastAPI,
    *,
    platform: str,
    world: World,
    faults: Faults,
    stats: RequestStats,
    state_extra: Callable[[], dict[str, Any]] = dict,
) -> None:
    @app.get("/_sandbox/faults")
    def get_faults() -> Response:
        return json_response(faults.to_dict())

    @app.post("/_sandbox/faults")
    async def set_faults(request: Request) -> Response:
        try:
            changes = await request.json()
            if not isinstance(changes, dict):
                raise ValueError("send a JSON object of fault settings")
            return json_response(faults.update(**changes))
        except ValueError as error:
            return json_response({"errors": str(error)}, 400)

    def clock_view() -> dict[str, Any]:
        return {
            "now": world.clock.now().isoformat(),
            "frozen": world.clock.is_frozen,
            "offset_seconds": world.clock.offset.total_seconds(),
            # What the platform itself reads: the clock plus Faults.clock_skew_seconds.
            "platform_now": world.now().isoformat(),
        }

    @app.get("/_sandbox/clock")
    def get_clock() -> Response:
        return json_response(clock_view())

    @app.post("/_sandbox/clock")
    async def set_clock(request: Request) -> Response:
        """Body: any of {"freeze": bool, "set": ISO time with offset, "advance_seconds": n}, in that order."""
        try:
            body = await request.json()
            if not isinstance(body, dict) or set(body) - {"freeze", "set", "advance_seconds"}:
                raise ValueError('send {"freeze": bool, "set": ISO time, "advance_seconds": number}')
            if body.get("freeze") is True:
                world.clock.freeze()
            elif body.get("freeze") is False:
                world.clock.unfreeze()
            if body.get("set"):
                at = datetime.fromisoformat(str(body["set"]).replace("Z", "+00:00"))
                if at.tzinfo is None:
                    raise ValueError("set must be an ISO-8601 time with a UTC offset")
                world.clock.set(at)
            if body.get("advance_seconds"):
                world.clock.advance(timedelta(seconds=float(body["advance_seconds"])))
        except ValueError as error:
            return json_response({"errors": {"clock": str(error)}}, 400)
        return json_response(clock_view())

    @app.get("/_sandbox/state")
    def get_state() -> Response:
        return json_response(
            {
                "platform": platform,
                "seed": world.seed,
                "start": world.start.isoformat(),
                "interval_seconds": world.interval_seconds,
                "clock": clock_view(),
                "orders_created": world.order_count(),
                "catalog_variants": len(world.catalog.variants),
                "overlay": world.overlay.summary(),
                "faults": faults.to_dict(),
                "requests": stats.snapshot(),
                **state_extra(),
            }
        )

    @app.get("/_sandbox/catalog")
    def get_catalog() -> Response:
        return json_response(
            {
                "variants": [
                    {
                        "sku": v.sku,
                        "title": v.title,
                        "price": f"{v.price:.2f}",
                        "unmapped": v.unmapped,
                        "opening_stock": v.opening_stock,
                        **v.platform_ids(platform),
                    }
                    for v in world.catalog.variants
                ]
            }
        )
