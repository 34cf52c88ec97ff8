"""The Youzan sandbox's app: the gateway (address, content type, token, QPS, injected faults), /auth/token,
``/api/{method}/{version}`` dispatch and the ``/_sandbox/youzan`` knobs."""

from __future__ import annotations

import asyncio
import hmac
import secrets
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response

from sandbox.admin import add_admin_routes, hold_back_answers, json_response
from sandbox.common import (
    FailNext,
    QpsLimiter,
    TokenBook,
    gateway_stats,
    injected_server_error,
    maybe_truncated,
)
from sandbox.faults import Faults, ServedPages
from sandbox.gateway import tengine_page
from sandbox.webhooks import install_webhooks
from sandbox.world import World
from sandbox.youzan.listing import (
    DEFAULT_PAGE_SIZE,
    LIST_SHAPES,
    SOLD_GET_VERSIONS,
    TRADE_GET_VERSIONS,
    BusinessError,
    YouzanListing,
)
from sandbox.youzan.pushes import (
    CONFIRM_VERSIONS,
    EXPRESS_GET_VERSIONS,
    ITEM_GET_VERSIONS,
    QUANTITY_UPDATE_VERSIONS,
    UPDATE_VERSIONS,
    YouzanPushes,
)
from sandbox.youzan.render import YouzanRenderer, _hash
from sandbox.youzan.webhooks import YouzanWebhooks

SANDBOX_LOGIN = "yz_sandbox_client_0001"  # the client_id (public); the client secret is the checked token
SANDBOX_KDT_ID = 91_234_567  # the shop (kdt_id) the sandbox app is authorised for
SANDBOX_EXTRA = {"kdt_id": str(SANDBOX_KDT_ID)}  # what the channel's Airflow connection extra must hold
TOKEN_LIFETIME = timedelta(days=7)
DEFAULT_THROTTLE_CODE = 4101  # "请求太频繁", Youzan's gateway code table [S]; callers may pick another

# The gateway's refusals, ``{"gw_err_resp": {"trace_id", "err_msg", "err_code"}}`` with HTTP 200: the
# messages of 4001, 4005, 4007, 4201 and 4203 as a public probe of open.youzanyun.com saw them [C: probe];
# 4101, 4202 from Youzan's gateway code table [S].
BAD_ADDRESS = (4001, "非法请求地址")
NO_SUCH_API = (4005, "非法的API")
BAD_CONTENT_TYPE = 4007  # "非法的请求姿势，httpMethod:POST, contentType:<type>"
ILLEGAL_CREDENTIAL = (4201, "非法的请求凭证")  # no token in the query; or the shop withdrew the grant [S]
TOKEN_EXPIRED = (4202, "请求凭证过期")
TOKEN_UNKNOWN = (4203, "Token 不存在")  # never issued, or replaced by a newer one [U: which code that gets]


def _trace_id() -> str:
    return f"yz7-0a{uuid.uuid4().hex[:10]}-{int(time.time() * 1000)}"


def _gateway_error(code: int, message: str) -> Response:
    return json_response({"gw_err_resp": {"trace_id": _trace_id(), "err_msg": message, "err_code": code}})


def _token_refusal(code: int, message: str) -> Response:
    """/auth/token's refusal, ``{"success": false, "code", "data": null, "message"}``, HTTP 200 [C: probe]."""
    return json_response({"success": False, "code": code, "data": None, "message": message})


def _envelope(data: Any) -> dict[str, Any]:
    return {
        "success": True,
        "code": 200,
        "message": "successful",
        "data": data,
        "trace_id": _trace_id(),
    }


def _failure(code: int, message: str, data: Any = None) -> dict[str, Any]:
    return {
        "success": False,
        "code": code,
        "message": message,
        "data": data,
        "trace_id": _trace_id(),
    }


def create_app(
    world: World,
    *,
    access_token: str,
    faults: Faults,
    throttle_code: int = DEFAULT_THROTTLE_CODE,
    qps_limit: float | None = None,
    kdt_id: int = SANDBOX_KDT_ID,
    client_id: str = SANDBOX_LOGIN,
    list_shape: str = "total_results",
    legacy_envelope: bool = False,
) -> FastAPI:
    """The Youzan simulator over ``world``; ``access_token`` is the client secret it checks.

    ``list_shape`` (``LIST_SHAPES``) and ``legacy_envelope`` choose how sold.get states its paging and how
    the 3.0.0 methods wrap their answers; both can be changed at runtime on ``app.state``."""
    if not access_token:
        raise ValueError("access_token (the client secret) must not be empty")
    if list_shape not in LIST_SHAPES:
        raise ValueError(f"list_shape must be one of {LIST_SHAPES}, got {list_shape!r}")
    renderer = YouzanRenderer(world)
    limiter = QpsLimiter(qps_limit)
    # Issued tokens -> expiry (real epoch seconds). An expired one stays (it answers 4202); a replaced or
    # revoked one is forgotten (4203, as a token never issued). ``current`` is the shop's one live token.
    book = TokenBook()
    tokens, tokens_lock = book.tokens, book.lock
    current: dict[str, str] = {}  # "token" -> the token /auth/token hands back while it is valid
    stats = gateway_stats(issues_tokens=True)
    fail_next = FailNext()
    calls: dict[str, int] = {}  # method -> calls that reached the method (tests count pushes)
    tracking_updates: list[dict[str, Any]] = []  # every package re-labelled by online.update, in order

    app = FastAPI(title="ChannelHub Youzan sandbox", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.world = world
    app.state.faults = faults
    app.state.renderer = renderer
    app.state.tokens = tokens
    app.state.limiter = limiter  # tests and humans may change ``limit`` at runtime
    app.state.throttle_code = throttle_code
    app.state.token_lifetime = TOKEN_LIFETIME.total_seconds()  # of tokens issued from now on
    app.state.list_shape = list_shape
    app.state.legacy_envelope = legacy_envelope
    app.state.fail_next = fail_next.pending
    app.state.calls = calls
    app.state.tracking_updates = tracking_updates
    world.follow_skew(lambda: faults.clock_skew_seconds)
    served = ServedPages(faults)
    listing = YouzanListing(app, world, faults, renderer, served)
    pushes = YouzanPushes(world, renderer, listing, stats, tracking_updates)

    def revoke_tokens() -> int:
        """Forget every issued token (calls with one answer 4203), as a reset secret would."""
        with tokens_lock:
            count = len(tokens)
            tokens.clear()
            current.clear()
        return count

    expire_tokens = book.expire  # calls with an expired token answer 4202
    app.state.revoke_tokens = revoke_tokens
    app.state.expire_tokens = expire_tokens

    def issue_or_reuse(refresh: bool) -> tuple[str, float]:
        """What /auth/token answers a self-use app [S: doc]: the live token while it is valid, unless
        ``refresh`` asks for a new one; a new token replaces the old at once (Youzan's pages say at once
        or an hour later: the sandbox takes the stricter)."""
        with tokens_lock:
            now = time.time()
            live = current.get("token")
            if live is not None and tokens.get(live, 0.0) > now and not refresh:
                return live, tokens[live]
            if live is not None and tokens.get(live, 0.0) > now:
                del tokens[live]  # replaced: refused from now on
            token = secrets.token_hex(16)
            tokens[token] = now + app.state.token_lifetime
            current["token"] = token
        stats.count("tokens_issued")
        return token, tokens[token]

    def token_refusal(token: str) -> tuple[int, str] | None:
        """Why the gateway refuses ``token`` (code, message), or None."""
        if not token:
            return ILLEGAL_CREDENTIAL
        expiry = book.expiry(token)
        if expiry is None:
            return TOKEN_UNKNOWN
        return TOKEN_EXPIRED if time.time() >= expiry else None

    @app.middleware("http")
    async def youzan_gateway(request: Request, call_next: Callable[[Request], Any]) -> Response:
        if not request.url.path.startswith(("/api/", "/auth/")):
            return await call_next(request)
        stats.count("api_requests")
        if faults.latency_seconds > 0:
            await asyncio.sleep(faults.latency_seconds)
        if request.url.path.startswith("/api/"):
            # Address, API and content type are checked before the token [C: probe].
            parts = request.url.path.split("/")
            if len(parts) != 4 or not parts[2] or not parts[3]:
                return _gateway_error(*BAD_ADDRESS)
            known = methods.get(parts[2])
            if known is None or parts[3] not in known[0]:
                return _gateway_error(*NO_SUCH_API)
            content_type = request.headers.get("content-type", "application/json").split(";")[0].strip()
            if content_type not in (
                "application/json",
                "application/x-www-form-urlencoded",
                "multipart/form-data",
            ):
                return _gateway_error(
                    BAD_CONTENT_TYPE,
                    f"非法的请求姿势，httpMethod:{request.method}, contentType:{content_type}",
                )
            token = request.query_params.get("access_token", "")
            if (
                not faults.credentials_revoked
                and book.presented_before(token)
                and faults.roll(faults.token_expiry_rate)
            ):
                expire_tokens()
            # A withdrawn grant refuses every call as an illegal credential [S: gateway code table].
            refusal = ILLEGAL_CREDENTIAL if faults.credentials_revoked else token_refusal(token)
            if refusal is not None:
                stats.count("unauthorized")
                return _gateway_error(*refusal)
            if faults.roll(faults.rate_limit_storm) or not limiter.allow(_hash(token)):
                stats.count("throttled")
                return _gateway_error(app.state.throttle_code, "请求太频繁")
        failed = injected_server_error(
            faults, stats, tengine_page, lambda: json_response(_failure(500, "系统错误"), 500)
        )
        if failed is not None:
            return failed
        method = request.url.path.split("/")[2] if request.url.path.startswith("/api/") else ""
        response = await fail_next.guard(method, stats, tengine_page, lambda: call_next(request))
        return await maybe_truncated(response, faults)

    hold_back_answers(app, faults, ("/api/", "/auth/"))

    async def json_body(request: Request) -> dict[str, Any] | None:
        try:
            body = await request.json()
        except ValueError:
            return None
        return body if isinstance(body, dict) else None

    @app.post("/auth/token")
    async def issue_token(request: Request) -> Response:
        stats.count("token_requests")
        content_type = request.headers.get("content-type", "").split(";")[0].strip()
        if content_type != "application/json":  # [C: probe, once]: the token endpoint takes JSON only
            return _token_refusal(
                1000,
                f"Content type '{content_type};charset=UTF-8' not supported,"
                "Please use 'application/json;charset=UTF-8'",
            )
        body = await json_body(request)
        if body is None:
            return _token_refusal(1000, "请求参数格式错误")  # [U] message
        # Codes and messages [S: doc's token error table], 1103 "Client 不存在" [C: probe].
        if body.get("client_id") != client_id:
            stats.count("unauthorized")
            return _token_refusal(1103, "Client 不存在")
        if body.get("authorize_type") != "silent":
            # Tool apps use authorization_code / refresh_token; this sandbox is a self-use (自用型) app.
            return _token_refusal(1105, "不支持的应用类型")
        secret = str(body.get("client_secret", ""))
        if not hmac.compare_digest(secret.encode(), access_token.encode()):
            stats.count("unauthorized")
            return _token_refusal(1000, "应用信息错误")
        if faults.credentials_revoked or str(body.get("grant_id", "")) != str(kdt_id):
            stats.count("unauthorized")
            return _token_refusal(1103, "授权关系不存在")  # the shop never granted, or withdrew the grant
        token, expires = issue_or_reuse(body.get("refresh") is True)
        data = {
            "access_token": token,
            "expires": int(expires * 1000),
            "scope": "trade item logistics",
            "authority_id": str(kdt_id),
        }
        return json_response({"success": True, "code": 200, "data": data, "message": None})

    methods: dict[str, tuple[frozenset[str], Callable[[dict[str, Any]], dict[str, Any]]]] = {
        "youzan.trades.sold.get": (SOLD_GET_VERSIONS, listing.sold_get),
        "youzan.trade.get": (TRADE_GET_VERSIONS, listing.trade_get),
        "youzan.logistics.express.get": (EXPRESS_GET_VERSIONS, pushes.express_get),
        "youzan.logistics.online.confirm": (CONFIRM_VERSIONS, pushes.logistics_confirm),
        "youzan.logistics.online.update": (UPDATE_VERSIONS, pushes.logistics_update),
        "youzan.item.quantity.update": (QUANTITY_UPDATE_VERSIONS, pushes.quantity_update),
        "youzan.item.get": (ITEM_GET_VERSIONS, pushes.item_get),
    }

    @app.post("/api/{method}/{version}")
    async def call_api(method: str, version: str, request: Request) -> Response:
        handler = methods[method][1]  # the gateway refused unknown methods and versions already
        body = await json_body(request)
        if body is None:
            body = {}
        if "access_token" in body:
            body = {k: v for k, v in body.items() if k != "access_token"}
        calls[method] = calls.get(method, 0) + 1
        # The 3.x envelope, {"response": ...} / {"error_response": {code, msg}}, for the 3.0.0 methods when
        # the knob asks: Youzan's docs show both envelopes on 3.0.0 routes [U: which each answers today].
        legacy = app.state.legacy_envelope and version.startswith("3.")
        try:
            data = handler(body)
        except BusinessError as error:
            if legacy:
                return json_response({"error_response": {"code": error.code, "msg": error.message}})
            empty = listing.list_answer([], 0, 1, DEFAULT_PAGE_SIZE) if method.endswith("sold.get") else None
            return json_response(_failure(error.code, error.message, empty))
        return json_response({"response": data} if legacy else _envelope(data))

    book.add_expire_route(app, "youzan")

    @app.post("/_sandbox/youzan/revoke_tokens")
    def revoke_tokens_route() -> Response:
        return json_response({"revoked": revoke_tokens()})

    fail_next.add_route(app, "youzan")

    install_webhooks(app, YouzanWebhooks(world, renderer, client_id, access_token, kdt_id))

    add_admin_routes(
        app,
        platform="youzan",
        world=world,
        faults=faults,
        stats=stats,
        state_extra=lambda: {
            "kdt_id": kdt_id,
            "client_id": client_id,
            "throttle_code": app.state.throttle_code,
            "qps_limit": limiter.limit,
            "tokens_live": book.live(),
        },
    )
    return app
