"""The JD JOS router simulator: ``GET|POST /routerjson`` (facts and sources: platforms/jd/NOTES.md).

The gateway, in the order it checks (every refusal HTTP 200 ``{"error_response": {"code", "zh_desc",
"en_desc"}}``): ``method`` known (15 "Invalid Method"), ``app_key`` (21 "Invalid app_key"),
``access_token`` (19 "Invalid access_token": none, not the shop's, or its grant withdrawn), ``v`` 2.0
[U: code 13], ``timestamp`` Beijing time within 10 minutes of real time plus ``clock_skew_seconds``
[U: code 22], ``sign`` = upper MD5 of ``secret + k1v1... + secret`` over every parameter but ``sign``
[U: code 18 "Invalid Signature"], ``360buy_param_json`` a JSON object [U: code 12]; then throttling
(``throttle_code``, 67 by default [U]).
Parameters are read from the query string and from a form body alike (JD takes either).

A method answers ``{"jingdong_<method with _>_responce": {"code": "0", <result>}}`` (JD's spelling); a
business refusal sits inside the result (``apiResult`` / ``success`` false with ``code``, ``chineseErr``).

Throttling: more calls of one method per second than ``app.state.calls_per_second`` (off by default), and
``Faults.rate_limit_storm``, answer the throttle code. Other faults (``sandbox.faults``):
``server_error_rate`` 500/502/503 (HTML from the gateway); ``truncated_body_rate``; ``malformed_order_rate``
an ``itemTotal`` of "2件"; ``duplicate_page_rate`` / ``shuffle_page_rate`` / ``clock_step_seconds`` in the
listing; ``timeout_rate`` answers held back after acting; ``clock_skew_seconds`` moves the platform's clock
(the timestamp check uses it); ``credentials_revoked`` answers 19 to every call; ``token_expiry_rate`` has no
effect (a JD access_token is long-lived). ``POST /_sandbox/jd/fail_next {"method", "count", "after_commit"}``
makes the next calls of a method answer a gateway 502, before or after acting.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request
from fastapi.responses import Response

from sandbox.admin import RequestStats, add_admin_routes, hold_back_answers, json_response
from sandbox.common import FailNext, QpsLimiter, injected_server_error, maybe_truncated
from sandbox.faults import Faults
from sandbox.gateway import china_seconds, stamp_too_far, top_sign
from sandbox.jd.listing import BusinessError, Listing
from sandbox.jd.pushes import Pushes
from sandbox.jd.render import JdRenderer
from sandbox.world import World

SANDBOX_LOGIN = "jd_sandbox_app_key_0001"  # the app_key (public); the app secret is the checked secret
SANDBOX_ACCESS_TOKEN = "jd-sandbox-shop-token-7c1e0b4a"  # the shop's token the sandbox app was granted
SANDBOX_EXTRA = {"access_token": SANDBOX_ACCESS_TOKEN}
DEFAULT_THROTTLE_CODE = "67"  # [U]
NO_METHOD = ("15", "不存在的方法名", "Invalid Method")
BAD_APP_KEY = ("21", "app_key无效", "Invalid app_key")
BAD_TOKEN = ("19", "token已过期或者不存在，请重新授权访问", "Invalid access_token")
BAD_VERSION = ("13", "版本号错误", "Invalid version")
BAD_TIMESTAMP = ("22", "时间戳错误，与服务器时间相差超过10分钟", "Invalid timestamp")
BAD_SIGN = ("18", "签名无效", "Invalid Signature")
BAD_JSON = ("12", "360buy_param_json格式错误", "Invalid 360buy_param_json")


def _error(code: str, zh: str, en: str) -> Response:
    return json_response({"error_response": {"code": code, "zh_desc": zh, "en_desc": en}})


def _gateway_page(status: int) -> Response:
    title = {500: "500 Internal Server Error", 502: "502 Bad Gateway"}.get(status, "503 Service Unavailable")
    page = f"<html><head><title>{title}</title></head><body><center><h1>{title}</h1></center></body></html>"
    return Response(page, status, media_type="text/html")


def create_app(
    world: World,
    *,
    access_token: str,
    faults: Faults,
    app_key: str = SANDBOX_LOGIN,
    shop_token: str = SANDBOX_ACCESS_TOKEN,
    throttle_code: str = DEFAULT_THROTTLE_CODE,
    calls_per_second: float | None = None,
) -> FastAPI:
    """The JD simulator over ``world``; ``access_token`` is the app secret it checks signatures with."""
    if not access_token:
        raise ValueError("access_token (the app secret) must not be empty")
    renderer = JdRenderer(world)
    stats = RequestStats(
        "api_requests",
        "throttled",
        "unauthorized",
        "bad_signature",
        "injected_errors",
        "shipments",
        "stock_sets",
    )
    listing = Listing(world, renderer, faults)
    pushes = Pushes(world, renderer, stats)
    calls: dict[str, int] = {}
    fail_next = FailNext()
    # method -> (its handler, where its answer sits in the envelope, whether refusals go in ``apiResult``)
    methods: dict[str, tuple[Callable[[dict[str, Any]], dict[str, Any]], str | None, bool]] = {
        "jingdong.pop.order.search": (listing.search, "searchorderinfo_result", True),
        "jingdong.pop.order.get": (listing.get, "orderDetailInfo", True),
        "jingdong.pop.order.shipment": (pushes.shipment, "sopjosshipment_result", False),
        "jingdong.stock.write.updateSkuStock": (pushes.set_stock, None, False),
        "jingdong.sku.read.findSkuById": (pushes.find_sku, None, False),
    }

    app = FastAPI(title="ChannelHub JD sandbox", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.world = world
    app.state.faults = faults
    app.state.renderer = renderer
    app.state.lists_order = renderer.visible  # whether the search shows an order at all (JD: once paid)
    app.state.calls = calls
    app.state.throttle_code = throttle_code
    # JOS limits calls per app and API [U: no public numbers]; off unless set (tests, humans, at runtime).
    app.state.calls_per_second = calls_per_second
    limiter = QpsLimiter()  # per method, under ``app.state.calls_per_second``
    app.state.fail_next = fail_next.pending
    world.follow_skew(lambda: faults.clock_skew_seconds)

    def over_limit(method: str) -> bool:
        """More calls of ``method`` in the last second than ``app.state.calls_per_second`` allows."""
        return not limiter.allow_at(method, app.state.calls_per_second)

    def refusal(params: dict[str, str]) -> tuple[str, str, str] | None:
        """Why the gateway refuses the call, in the order it checks."""
        if params.get("method") not in methods:
            return NO_METHOD
        if params.get("app_key") != app_key:
            return BAD_APP_KEY
        token = params.get("access_token", "")
        if faults.credentials_revoked or not hmac.compare_digest(token.encode(), shop_token.encode()):
            return BAD_TOKEN
        if params.get("v") != "2.0":
            return BAD_VERSION
        try:
            sent = china_seconds(params.get("timestamp", ""))
        except ValueError:
            return BAD_TIMESTAMP
        if stamp_too_far(sent, faults.clock_skew_seconds):
            return BAD_TIMESTAMP
        if not hmac.compare_digest(params.get("sign", ""), top_sign(params, access_token)):
            stats.count("bad_signature")
            return BAD_SIGN
        return None

    @app.middleware("http")
    async def jd_gateway(request: Request, call_next: Callable[[Request], Any]) -> Response:
        if request.url.path != "/routerjson":
            return await call_next(request)
        stats.count("api_requests")
        if faults.latency_seconds > 0:
            await asyncio.sleep(faults.latency_seconds)
        params = dict(request.query_params)
        if request.method == "POST":
            params.update(parse_qsl((await request.body()).decode("utf-8", "replace")))
        if (refused := refusal(params)) is not None:
            if refused in (BAD_TOKEN, BAD_APP_KEY):
                stats.count("unauthorized")
            return _error(*refused)
        if faults.roll(faults.rate_limit_storm) or over_limit(params["method"]):
            stats.count("throttled")
            return _error(app.state.throttle_code, "调用频率超限", "Call limit exceeded")
        if (failed := injected_server_error(faults, stats, _gateway_page)) is not None:
            return failed
        request.state.params = params
        response = await fail_next.guard(params["method"], stats, _gateway_page, lambda: call_next(request))
        return await maybe_truncated(response, faults)

    hold_back_answers(app, faults, ("/routerjson",))

    @app.api_route("/routerjson", methods=["GET", "POST"])
    async def router(request: Request) -> Response:
        params: dict[str, str] = request.state.params
        method = params["method"]
        try:
            business = json.loads(params.get("360buy_param_json") or "{}")
        except ValueError:
            business = None
        if not isinstance(business, dict):
            return _error(*BAD_JSON)
        calls[method] = calls.get(method, 0) + 1
        handler, result_key, api_result = methods[method]
        envelope = f"{method.replace('.', '_')}_responce"
        try:
            data = handler(business)
        except BusinessError as error:
            failed = {"success": False, "code": error.code, "chineseErr": error.message, "englishErr": ""}
            if result_key is None:
                return json_response({envelope: {"code": error.code, "zh_desc": error.message}})
            return json_response(
                {envelope: {"code": "0", result_key: {"apiResult": failed} if api_result else failed}}
            )
        if api_result:
            data = {"apiResult": {"success": True, "code": "0", "chineseErr": "", "englishErr": ""}, **data}
        return json_response({envelope: {"code": "0", **({result_key: data} if result_key else data)}})

    fail_next.add_route(app, "jd")

    add_admin_routes(
        app,
        platform="jd",
        world=world,
        faults=faults,
        stats=stats,
        state_extra=lambda: {
            "app_key": app_key,
            "throttle_code": app.state.throttle_code,
            "calls": dict(calls),
        },
    )
    return app
