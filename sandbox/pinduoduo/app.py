"""The Pinduoduo gateway, ``/api/router``, over the sandbox world (facts: platforms/pinduoduo/NOTES.md).

Every call, in the order the sandbox checks it (all refusals HTTP 200 ``{"error_response": {"error_code",
"error_msg", "sub_code", "sub_msg", "request_id"}}``):
1. parameters from the query string, a form body or a JSON body (the SDKs send either body);
2. ``type`` known, else 10000; ``client_id`` the sandbox app's, else 10016 [U];
3. ``timestamp`` epoch seconds within 10 minutes of real time, else 10000 [U: code; the window is the
   gateways' rule]; ``sign`` = upper MD5(secret + sorted k v + secret), else 20004 "签名验证失败" [C];
4. ``pdd.pop.auth.token.refresh``: the shop's refresh token -> a new access token (the previous one is
   refused from then on, the stricter reading); anything else needs a live ``access_token``, else 10019
   "access_token已过期" [C] (expired, replaced, revoked or never issued alike [U]);
5. throttling: ``qps_limit`` per token (off by default) and ``Faults.rate_limit_storm`` answer 70031 [S];
6. ``server_error_rate`` 500/502/503 (HTML from the gateway), ``truncated_body_rate`` cut bodies,
   ``timeout_rate`` answers held back after acting, ``token_expiry_rate`` every issued token expired before
   answering (a token's first call is spared), ``credentials_revoked`` the shop's grant withdrawn (refresh
   and calls refused);
7. ``POST /_sandbox/pinduoduo/fail_next {"type", "count", "after_commit"}``: the next calls of an API
   answer a gateway 502, before acting or after.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request
from fastapi.responses import Response

from sandbox.admin import add_admin_routes, hold_back_answers, json_response
from sandbox.common import (
    FailNext,
    QpsLimiter,
    TokenBook,
    gateway_stats,
    injected_server_error,
    truncated_json,
)
from sandbox.faults import Faults
from sandbox.gateway import stamp_too_far
from sandbox.gateway import top_sign as sign
from sandbox.pinduoduo.listing import INVALID_PARAMETER, PddError, listing_handlers
from sandbox.pinduoduo.pushes import push_handlers
from sandbox.pinduoduo.render import PinduoduoRenderer
from sandbox.world import World

SANDBOX_LOGIN = (
    "4ea8a4c3f1b64b8e8e1b1c0d2a6f7a31"  # client_id (public); the client secret is the checked token
)
SANDBOX_REFRESH_TOKEN = "pdd-sandbox-refresh-7c1f3a9e2b"  # the shop's grant, held in the connection's extra
SANDBOX_EXTRA = {"refresh_token": SANDBOX_REFRESH_TOKEN}
TOKEN_LIFETIME_SECONDS = 86_400.0  # [U] access_token expires_in
REFRESH = "pdd.pop.auth.token.refresh"
TOKEN_EXPIRED = (10019, "access_token已过期")  # [C: SDK error.json]
SIGNATURE_REFUSED = (20004, "签名验证失败")  # [C: SDK error.json]
UNKNOWN_CLIENT = (10016, "client_id不存在")  # [U]
THROTTLED = (70031, "调用过于频繁，请调整调用频率")  # [S]


def _error(code: int, message: str, sub_code: str | None = None) -> dict[str, Any]:
    return {
        "error_response": {
            "error_code": code,
            "error_msg": message,
            "sub_code": sub_code,
            "sub_msg": message if sub_code else "",
            "request_id": f"{int(time.time() * 1000)}{secrets.randbelow(10**6):06d}",
        }
    }


def _gateway_page(status: int) -> Response:
    title = {500: "500 Internal Server Error", 502: "502 Bad Gateway"}.get(
        status, f"{status} Service Unavailable"
    )
    return Response(f"<html><head><title>{title}</title></head><body><h1>{title}</h1></body></html>", status,
                    media_type="text/html")  # fmt: skip


async def _params(request: Request) -> dict[str, str]:
    params = dict(request.query_params)
    body = await request.body()
    content_type = request.headers.get("content-type", "").split(";")[0].strip()
    if body and content_type == "application/json":
        try:
            decoded = json.loads(body)
        except ValueError:
            decoded = None
        if isinstance(decoded, dict):
            params.update({k: v if isinstance(v, str) else json.dumps(v) for k, v in decoded.items()})
    elif body:
        params.update(dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)))
    return params


def create_app(world: World, *, access_token: str, faults: Faults, qps_limit: float | None = None) -> FastAPI:
    """The Pinduoduo gateway over ``world``; ``access_token`` is the client secret it checks."""
    if not access_token:
        raise ValueError("access_token (the client secret) must not be empty")
    renderer = PinduoduoRenderer(world)
    limiter = QpsLimiter(qps_limit)
    stats = gateway_stats(issues_tokens=True)
    book = TokenBook()
    tokens, lock = book.tokens, book.lock
    fail_next = FailNext()
    calls: dict[str, int] = {}
    handlers: dict[str, Callable[[Mapping[str, Any]], dict[str, Any]]] = {
        **listing_handlers(world, faults, renderer),
        **push_handlers(world, renderer, stats),
    }

    app = FastAPI(title="ChannelHub Pinduoduo sandbox", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.world, app.state.faults, app.state.renderer = world, faults, renderer
    app.state.tokens, app.state.limiter, app.state.calls = tokens, limiter, calls
    app.state.token_lifetime = TOKEN_LIFETIME_SECONDS
    world.follow_skew(lambda: faults.clock_skew_seconds)

    expire_tokens = book.expire
    app.state.expire_tokens = expire_tokens

    def issue_token() -> dict[str, Any]:
        with lock:
            tokens.clear()  # the previous token is refused from now on
            token = secrets.token_hex(16)
            lifetime = app.state.token_lifetime
            tokens[token] = time.time() + lifetime
        stats.count("tokens_issued")
        return {
            "pop_auth_token_refresh_response": {
                "access_token": token,
                "expires_in": int(lifetime),
                "expires_at": int(time.time() + lifetime),
                "refresh_token": SANDBOX_REFRESH_TOKEN,
                "refresh_token_expires_in": 30 * 86400,
                "owner_id": "91234567",
                "owner_name": "sandbox-shop",
                "scope": ["pdd.order.number.list.increment.get", "pdd.logistics.online.send"],
            }
        }

    def token_live(token: str) -> bool:
        expiry = book.expiry(token)
        return expiry is not None and time.time() < expiry

    def answer(body: dict[str, Any]) -> Response:
        return truncated_json(json_response(body), faults)

    @app.api_route("/api/router", methods=["GET", "POST"])
    async def router(request: Request) -> Response:
        stats.count("api_requests")
        if faults.latency_seconds > 0:
            await asyncio.sleep(faults.latency_seconds)
        params = await _params(request)
        api = params.get("type", "")
        if api != REFRESH and api not in handlers:
            return json_response(
                _error(INVALID_PARAMETER, f"参数错误:type {api}不存在", "isv.invalid-parameter:type")
            )
        if params.get("client_id") != SANDBOX_LOGIN:
            stats.count("unauthorized")
            return json_response(_error(*UNKNOWN_CLIENT))
        stamp = params.get("timestamp", "")
        if not stamp.isdigit() or stamp_too_far(int(stamp)):
            return json_response(
                _error(INVALID_PARAMETER, "参数错误:timestamp已过期", "isv.invalid-parameter:timestamp")
            )
        if not hmac.compare_digest(params.get("sign", ""), sign(params, access_token)):
            stats.count("unauthorized")
            return json_response(_error(*SIGNATURE_REFUSED))
        if api == REFRESH:
            stats.count("token_requests")
            if faults.credentials_revoked or params.get("refresh_token") != SANDBOX_REFRESH_TOKEN:
                stats.count("unauthorized")
                return json_response(_error(TOKEN_EXPIRED[0], "refresh_token已过期或无效"))  # [U] wording
            return answer(issue_token())
        token = params.get("access_token", "")
        seen = book.presented_before(token)
        if not faults.credentials_revoked and seen and faults.roll(faults.token_expiry_rate):
            expire_tokens()
        if faults.credentials_revoked or not token_live(token):
            stats.count("unauthorized")
            return json_response(_error(*TOKEN_EXPIRED))
        if faults.roll(faults.rate_limit_storm) or not limiter.allow(token):
            stats.count("throttled")
            return json_response(_error(*THROTTLED))
        if (failed := injected_server_error(faults, stats, _gateway_page)) is not None:
            return failed
        failure = fail_next.take(api)
        if failure is False:
            stats.count("injected_errors")
            return _gateway_page(502)
        calls[api] = calls.get(api, 0) + 1
        try:
            body = handlers[api](params)
        except PddError as error:
            return json_response(_error(error.code, error.message, error.sub_code))
        if failure is True:  # acted, and the answer was lost on the way back
            stats.count("injected_errors")
            return _gateway_page(502)
        return answer(body)

    hold_back_answers(app, faults, ("/api/",))

    book.add_expire_route(app, "pinduoduo")

    fail_next.add_route(app, "pinduoduo", key="type")

    add_admin_routes(
        app,
        platform="pinduoduo",
        world=world,
        faults=faults,
        stats=stats,
        state_extra=lambda: {
            "client_id": SANDBOX_LOGIN,
            "qps_limit": limiter.limit,
            "tokens_live": book.live(),
        },
    )
    return app
