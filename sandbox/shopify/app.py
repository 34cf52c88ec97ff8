"""The Shopify sandbox's app: the gateway (token, versions, REST leaky bucket and GraphQL cost bucket,
injected faults), the listing and push routes, access scopes and the ``/_sandbox`` knobs."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import math
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response

from sandbox.admin import RequestStats, add_admin_routes, hold_back_answers
from sandbox.common import maybe_truncated
from sandbox.faults import Faults, ServedPages
from sandbox.shopify.listing import add_listing_routes
from sandbox.shopify.pushes import add_push_routes
from sandbox.shopify.render import ShopifyRenderer
from sandbox.shopify.webhooks import ShopifyWebhooks
from sandbox.shopify.wire import (
    _QUARTERLY_VERSION,
    _VERSIONED_PATH,
    API_PREFIX,
    API_VERSION,
    DEFAULT_SHOP_TIMEZONE,
    GRAPHQL_BUCKET_POINTS,
    GRAPHQL_RESTORE_PER_SECOND,
    MUTATION_COST,
    NOT_FOUND_BODY,
    THROTTLED_BODY,
    UNAUTHORIZED_BODY,
    VERSIONS,
    ShopAccess,
    _json_response,
)
from sandbox.webhooks import install_webhooks
from sandbox.world import (
    World,
)

# --------------------------------------------------------------------------------------------------
# Faults and rate limits
# --------------------------------------------------------------------------------------------------


class LeakyBucket:
    """Shopify's REST limiter: each request adds 1, the bucket leaks ``leak_per_second``; full -> 429."""

    def __init__(
        self, size: int = 40, leak_per_second: float = 2.0, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        if size < 1 or leak_per_second <= 0:
            raise ValueError("bucket size must be >= 1 and leak rate > 0")
        self.size = size
        self.leak_per_second = leak_per_second
        self._monotonic = monotonic
        self._levels: dict[str, tuple[float, float]] = {}  # key -> (level, at)
        self._lock = threading.Lock()

    def _level(self, key: str, now: float) -> float:
        level, at = self._levels.get(key, (0.0, now))
        return max(0.0, level - (now - at) * self.leak_per_second)

    def acquire(self, key: str) -> tuple[bool, int]:
        """Take one slot. Returns (allowed, used slots to report in the call-limit header)."""
        with self._lock:
            now = self._monotonic()
            level = self._level(key, now)
            if level + 1 > self.size:
                self._levels[key] = (level, now)
                return False, self.size
            level += 1
            self._levels[key] = (level, now)
            return True, min(self.size, math.ceil(level))

    def used(self, key: str) -> int:
        with self._lock:
            return min(self.size, math.ceil(self._level(key, self._monotonic())))


class CostBucket:
    """Shopify's GraphQL limiter: a bucket of points per token, restored continuously; a call whose requested
    cost is more than what is left is throttled (nothing taken)."""

    def __init__(
        self,
        points: float = GRAPHQL_BUCKET_POINTS,
        restore_per_second: float = GRAPHQL_RESTORE_PER_SECOND,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.points = points
        self.restore_per_second = restore_per_second
        self._monotonic = monotonic
        self._levels: dict[str, tuple[float, float]] = {}  # key -> (available, at)
        self._lock = threading.Lock()

    def take(self, key: str, cost: float) -> tuple[bool, float]:
        """(allowed, points available after the call)."""
        with self._lock:
            now = self._monotonic()
            available, at = self._levels.get(key, (self.points, now))
            available = min(self.points, available + (now - at) * self.restore_per_second)
            allowed = available >= cost
            if allowed:
                available -= cost
            self._levels[key] = (available, now)
            return allowed, available

    def cost_extension(self, available: float, actual: int | None) -> dict[str, Any]:
        return {
            "requestedQueryCost": MUTATION_COST,
            "actualQueryCost": actual,
            "throttleStatus": {
                "maximumAvailable": self.points,
                "currentlyAvailable": round(available, 1),
                "restoreRate": self.restore_per_second,
            },
        }


def create_app(
    world: World,
    *,
    access_token: str,
    faults: Faults,
    bucket_size: int = 40,
    leak_per_second: float = 2.0,
    shop_timezone: str = DEFAULT_SHOP_TIMEZONE,
) -> FastAPI:
    """The Shopify simulator as an ASGI app over ``world`` (see the package docstring)."""
    if not access_token:
        raise ValueError("access_token must not be empty")
    renderer = ShopifyRenderer(world, shop_timezone=shop_timezone)
    bucket = LeakyBucket(bucket_size, leak_per_second)
    stats = RequestStats("api_requests", "throttled", "unauthorized", "injected_errors")
    count = stats.count
    access = ShopAccess()
    costs = CostBucket()

    app = FastAPI(title="ChannelHub Shopify sandbox", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.world = world
    app.state.faults = faults
    app.state.bucket = bucket
    app.state.costs = costs
    app.state.access = access
    app.state.renderer = renderer
    world.follow_skew(lambda: faults.clock_skew_seconds)
    served = ServedPages(faults)

    def served_version(requested: str) -> str | None:
        """The version that answers a request for ``requested``: itself, or the oldest served one for a
        quarterly version past support (Shopify falls forward); None: no such version (404)."""
        if requested in VERSIONS:
            return requested
        if _QUARTERLY_VERSION.match(requested) and requested < VERSIONS[0]:
            return VERSIONS[0]
        return None

    def throttled_answer(available: float, headers: dict[str, str]) -> Response:
        count("throttled")
        body = {
            "errors": [
                {
                    "message": "Throttled",
                    "extensions": {
                        "code": "THROTTLED",
                        "documentation": "https://shopify.dev/api/usage/rate-limits",
                    },
                }
            ],
            "extensions": {"cost": costs.cost_extension(available, None)},
        }
        return _json_response(body, 200, headers)

    @app.middleware("http")
    async def shopify_gateway(request: Request, call_next: Callable[[Request], Any]) -> Response:
        request_id = str(uuid.uuid4())
        if not request.url.path.startswith("/admin/"):
            response = await call_next(request)
            response.headers["X-Request-Id"] = request_id
            return response
        count("api_requests")
        token = request.headers.get("X-Shopify-Access-Token", "")
        if faults.credentials_revoked or not hmac.compare_digest(token.encode(), access_token.encode()):
            count("unauthorized")  # a wrong token, or the right one revoked (the app uninstalled)
            return _json_response(UNAUTHORIZED_BODY, 401, {"X-Request-Id": request_id})
        headers = {"X-Request-Id": request_id}
        versioned = _VERSIONED_PATH.match(request.url.path)
        if versioned:
            version = served_version(versioned.group(1))
            if version is None:
                return _json_response(NOT_FOUND_BODY, 404, headers)
            headers["X-Shopify-API-Version"] = version
            # Routes live under API_PREFIX; the version the client asked for stays in its Link headers.
            request.scope["shopify_api_prefix"] = f"/admin/api/{versioned.group(1)}"
            request.scope["path"] = API_PREFIX + (versioned.group(2) or "")
        bucket_key = hashlib.sha256(token.encode()).hexdigest()  # never keep the token itself around
        graphql = bool(versioned) and versioned.group(2) == "/graphql.json"  # the cost bucket, not REST's
        if not graphql:
            allowed, used = bucket.acquire(bucket_key)
            headers["X-Shopify-Shop-Api-Call-Limit"] = f"{used}/{bucket.size}"
        if faults.latency_seconds > 0:
            await asyncio.sleep(faults.latency_seconds)
        if graphql:
            if faults.roll(faults.rate_limit_storm) or access.forced_throttle():
                return throttled_answer(0.0, headers)  # a storm says the bucket is empty, whatever it holds
            allowed, available = costs.take(bucket_key, MUTATION_COST)
            if not allowed:
                return throttled_answer(available, headers)
            request.scope["shopify_points_left"] = available
        elif not allowed or faults.roll(faults.rate_limit_storm):
            count("throttled")
            return _json_response(THROTTLED_BODY, 429, {**headers, "Retry-After": "2.0"})
        if faults.roll(faults.server_error_rate):
            count("injected_errors")
            status = faults.choose((500, 502, 503))
            if status == 500:
                return _json_response({"errors": "Internal Server Error"}, 500, headers)
            page = (
                f"<html><body><h1>{status} {'Bad Gateway' if status == 502 else 'Service Unavailable'}</h1>"
            )
            return Response(page + "</body></html>", status, headers=headers, media_type="text/html")
        response = await call_next(request)
        for name, value in headers.items():
            response.headers[name] = value
        return await maybe_truncated(response, faults)

    hold_back_answers(app, faults, ("/admin/",))
    add_listing_routes(app, world, faults, renderer, access, served)

    add_push_routes(app, world, renderer, count)

    @app.get("/admin/oauth/access_scopes.json")
    def list_access_scopes() -> Response:
        return _json_response({"access_scopes": [{"handle": handle} for handle in access.scopes]})

    @app.get("/_sandbox/access_scopes")
    def get_access_scopes() -> Response:
        return _json_response({"access_scopes": list(access.scopes)})

    @app.post("/_sandbox/access_scopes")
    async def set_access_scopes(request: Request) -> Response:
        """Body: {"access_scopes": ["read_orders", ...]}: what the app's token is granted from now on."""
        try:
            body = await request.json()
            scopes = body.get("access_scopes") if isinstance(body, dict) else None
            if not isinstance(scopes, list) or not all(isinstance(x, str) and x for x in scopes):
                raise ValueError('send {"access_scopes": ["read_orders", ...]}')
        except ValueError as error:
            return _json_response({"errors": str(error)}, 400)
        access.scopes = tuple(scopes)
        return _json_response({"access_scopes": list(access.scopes)})

    @app.post("/_sandbox/graphql_throttle")
    async def throttle_graphql(request: Request) -> Response:
        """Body: {"next": n}: the next n GraphQL calls are answered THROTTLED, whatever the bucket holds."""
        try:
            body = await request.json()
            wanted = body.get("next") if isinstance(body, dict) else None
            if isinstance(wanted, bool) or not isinstance(wanted, int) or wanted < 0:
                raise ValueError('send {"next": n} with n >= 0')
        except ValueError as error:
            return _json_response({"errors": str(error)}, 400)
        access.throttle_next = wanted
        return _json_response({"next": access.throttle_next})

    install_webhooks(app, ShopifyWebhooks(world, faults, renderer, access_token))

    @app.api_route("/admin/{rest:path}", methods=["GET", "POST", "PUT", "DELETE"])
    def unknown_admin_route(rest: str) -> Response:
        return _json_response(NOT_FOUND_BODY, 404)

    add_admin_routes(
        app,
        platform="shopify",
        world=world,
        faults=faults,
        stats=stats,
        state_extra=lambda: {
            "api_version": API_VERSION,
            "api_versions": list(VERSIONS),
            "access_scopes": list(access.scopes),
            "graphql_throttle_next": access.throttle_next,
            "shop_domain": renderer.shop_domain,
            "shop_timezone": shop_timezone,
            "rate_limit": {"bucket_size": bucket.size, "leak_per_second": bucket.leak_per_second},
        },
    )

    return app
