"""The TOP gateway: ``GET|POST /router/rest`` (query string and/or form body), checked as TOP checks it.

In order (codes of TOP's platform error table, platforms/taobao/NOTES.md): ``method`` missing 21 / unknown 22,
``app_key`` missing 28 / unknown 29, ``timestamp`` missing 30 / more than 10 minutes off the gateway's clock
31, ``v`` not 2.0 33, ``sign_method`` not md5/hmac/hmac-sha256 or no ``sign`` 24/25, a signature that does not
match 25, ``session`` missing 26 / not the seller's 27 (``invalid-sessionkey``), then flow control: code 7
"App Call Limited" with sub code ``accesscontrol.limited-by-app-access-count`` and "This ban will last for N
more seconds". Every error is HTTP 200 ``{"error_response": {code, msg, sub_code?, sub_msg?, request_id}}``;
a success is ``{"<method without 'taobao.', dots as _>_response": {..., "request_id"}}``.

Faults (``sandbox.faults``): ``rate_limit_storm`` code 7, ``server_error_rate`` 500 (TOP's JSON code 10
``isp.top-remote-service-unavailable``) or 502/503 HTML from the load balancer, ``truncated_body_rate``,
``timeout_rate`` (answers held back), ``latency_seconds``; ``credentials_revoked`` the seller withdrew the
session (27). The session is long-lived: ``token_expiry_rate`` has nothing to expire.
"""

from __future__ import annotations

import asyncio
import hmac
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request
from fastapi.responses import Response

from sandbox.admin import add_admin_routes, hold_back_answers, json_response
from sandbox.common import QpsLimiter, gateway_stats, injected_server_error, truncated_json
from sandbox.faults import Faults
from sandbox.gateway import china_seconds, stamp_too_far, tengine_page
from sandbox.gateway import top_sign as sign
from sandbox.taobao.listing import BusinessError, Listing
from sandbox.taobao.pushes import Pushes
from sandbox.taobao.render import TaobaoRenderer
from sandbox.world import World

SANDBOX_LOGIN = "23456789"  # the app_key (public); the app secret is the sandbox's checked secret
SANDBOX_SESSION = "6100a1b2c3d4e5f60718293a4b5c6d7e8f90123456789sandbox2206"  # the seller's session key
SANDBOX_EXTRA = {"session_token": SANDBOX_SESSION}
SIGN_METHODS = ("md5", "hmac", "hmac-sha256")


def _request_id() -> str:
    return uuid.uuid4().hex[:13]


def error(code: int, msg: str, sub_code: str | None = None, sub_msg: str | None = None) -> Response:
    body: dict[str, Any] = {"code": code, "msg": msg}
    if sub_code:
        body["sub_code"] = sub_code
    if sub_msg:
        body["sub_msg"] = sub_msg
    body["request_id"] = _request_id()
    return json_response({"error_response": body})


def create_app(world: World, *, access_token: str, faults: Faults, qps_limit: float | None = None) -> FastAPI:
    """The Taobao TOP simulator over ``world``; ``access_token`` is the app secret it signs with."""
    if not access_token:
        raise ValueError("access_token (the app secret) must not be empty")
    renderer = TaobaoRenderer(world)
    stats = gateway_stats(issues_tokens=False)
    listing = Listing(world, renderer, faults)
    pushes = Pushes(world, renderer, stats)
    limiter = QpsLimiter(qps_limit)
    calls: dict[str, int] = {}
    methods: dict[str, Callable[[dict[str, str]], dict[str, Any]]] = {
        "taobao.trades.sold.increment.get": listing.increment,
        "taobao.trade.fullinfo.get": listing.fullinfo,
        "taobao.logistics.offline.send": pushes.offline_send,
        "taobao.logistics.consign.resend": pushes.consign_resend,
        "taobao.item.quantity.update": pushes.quantity_update,
        "taobao.item.seller.get": pushes.item_seller_get,
    }
    app = FastAPI(title="ChannelHub Taobao sandbox", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.world = world
    app.state.faults = faults
    app.state.renderer = renderer
    app.state.limiter = limiter
    app.state.calls = calls
    app.state.tracking_updates = pushes.tracking_updates
    world.follow_skew(lambda: faults.clock_skew_seconds)

    def refusal(params: dict[str, str]) -> Response | None:
        """Why the gateway refuses the call before any API sees it (TOP's checking order), or None."""
        method = params.get("method")
        if not method:
            return error(21, "Missing Method")
        if method not in methods:
            return error(22, "Invalid Method")
        if not params.get("app_key"):
            return error(28, "Missing App Key")
        if params["app_key"] != SANDBOX_LOGIN:
            return error(29, "Invalid App Key")
        stamp = params.get("timestamp")
        if not stamp:
            return error(30, "Missing Timestamp")
        try:
            sent = china_seconds(stamp)
        except ValueError:
            return error(31, "Invalid Timestamp")
        if stamp_too_far(sent, faults.clock_skew_seconds):
            return error(31, "Invalid Timestamp", "isv.invalid-timestamp", "时间戳误差超过10分钟")
        if params.get("v") != "2.0":
            return error(33, "Invalid Version")
        sign_method = params.get("sign_method", "md5")
        if not params.get("sign"):
            return error(24, "Missing Signature")
        if sign_method not in SIGN_METHODS:
            return error(25, "Invalid Signature", "isv.invalid-sign-method", f"不支持的签名方法{sign_method}")
        if not hmac.compare_digest(params["sign"], sign(params, access_token, sign_method)):
            stats.count("unauthorized")
            return error(25, "Invalid Signature")
        if not params.get("session"):
            stats.count("unauthorized")
            return error(26, "Missing Session")
        if faults.credentials_revoked or not hmac.compare_digest(params["session"], SANDBOX_SESSION):
            stats.count("unauthorized")
            return error(27, "Invalid session", "invalid-sessionkey", "SessionKey非法")
        if faults.roll(faults.rate_limit_storm) or not limiter.allow(SANDBOX_LOGIN):
            stats.count("throttled")
            return error(
                7,
                "App Call Limited",
                "accesscontrol.limited-by-app-access-count",
                "This ban will last for 1 more seconds",
            )
        return None

    @app.api_route("/router/rest", methods=["GET", "POST"])
    async def gateway(request: Request) -> Response:
        stats.count("api_requests")
        if faults.latency_seconds > 0:
            await asyncio.sleep(faults.latency_seconds)
        params = dict(request.query_params)
        if request.method == "POST":
            body = (await request.body()).decode("utf-8", "replace")
            if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
                params.update(parse_qsl(body, keep_blank_values=True))
        if (refused := refusal(params)) is not None:
            return refused
        failed = injected_server_error(
            faults,
            stats,
            tengine_page,
            lambda: error(10, "Service Currently Unavailable", "isp.top-remote-service-unavailable"),
        )
        if failed is not None:
            return failed
        method = params["method"]
        calls[method] = calls.get(method, 0) + 1
        try:
            data = methods[method](params)
        except BusinessError as refused_call:
            return error(refused_call.code, refused_call.msg, refused_call.sub_code, refused_call.sub_msg)
        name = method.removeprefix("taobao.").replace(".", "_") + "_response"
        return truncated_json(json_response({name: {**data, "request_id": _request_id()}}), faults)

    hold_back_answers(app, faults, ("/router/",))
    add_admin_routes(
        app,
        platform="taobao",
        world=world,
        faults=faults,
        stats=stats,
        state_extra=lambda: {"app_key": SANDBOX_LOGIN, "qps_limit": limiter.limit, "calls": dict(calls)},
    )
    return app
