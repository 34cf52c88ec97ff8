"""The Douyin shop open-platform gateway over the shared world (sources: platforms/douyin/NOTES.md).

Every call is ``POST /<method, "." as "/">?app_key=&method=&access_token=&timestamp=&v=2&sign_method=&sign=``
with ``param_json`` (the business parameters as one JSON object text) in the query, or else as the body.
Checks, in the gateway's order, each answered HTTP 200 in the envelope ``{"code", "msg", "sub_code",
"sub_msg", "log_id", "data"}`` (code 10000 = success; the table of codes: NOTES.md):
- a path or ``method`` it does not serve: 70000 ``isp.api-service-off``;
- ``app_key`` missing 40001 ``isv.app-id-missing``, unknown 40003 ``isv.app-id-invalid``; ``v`` not 2 40004;
- ``timestamp``: epoch seconds (what the SDK sends) or ``yyyy-MM-dd HH:mm:ss`` Beijing time (older docs);
  unreadable 40003 ``isv.timestamp-format-error``, more than ``TIMESTAMP_TOLERANCE`` off the real clock 40003
  ``isv.timestamp-invalid`` (tolerance [U]);
- ``sign`` missing 40001 ``isv.signature-missing``, wrong 40003 ``isv.signature-invalid``: lower-hex
  HMAC-SHA256(secret, secret + "app_key<k>method<m>param_json<p>timestamp<t>v2" + secret), or with
  ``sign_method=md5`` MD5 of the same text; ``param_json`` not a JSON object 40003
  ``isv.parameter-format-invalid``;
- ``token.create`` needs no token (``{code: "", grant_type: "authorization_self", shop_id}``: the live token
  while it is valid, else a new one, 7 days; another shop 50001
  ``dop.token-generate-failed:no-authorization``);
  every other call: no token 40001 ``isv.access-token-missing``, one never issued 40003
  ``isv.access-token-no-existed``, an expired one 40003 ``isv.access-token-expired``; a withdrawn grant
  (``credentials_revoked``) 30001 ``dop.authorization-no-existed``;
- throttling (``app.state.qps_limit`` per token, or ``rate_limit_storm``): 60000 "触发限流，请稍后重试".
Faults as the other sandboxes: latency, 5xx (502/503 an HTML page), truncated bodies, held-back answers,
``fail_next`` per method, expired tokens, pages served again or shuffled, clock steps and skew, malformed
orders. ``POST /_sandbox/douyin/expire_tokens`` expires every issued token.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
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
    truncated_json,
)
from sandbox.douyin import listing, pushes
from sandbox.douyin.render import BusinessError, DouyinRenderer, digest
from sandbox.douyin.webhooks import DouyinWebhooks
from sandbox.faults import Faults, ServedPages
from sandbox.gateway import china_seconds
from sandbox.webhooks import install_webhooks
from sandbox.world import World

SANDBOX_LOGIN = "7123456789012345678"  # the app_key (public, 19 digits); the app_secret is the checked token
SANDBOX_SHOP_ID = 4_463_798
SANDBOX_EXTRA = {"shop_id": str(SANDBOX_SHOP_ID)}
TOKEN_LIFETIME = 7 * 86400
TIMESTAMP_TOLERANCE = 600  # [U] seconds
CODE_TEXT = {
    10000: "success",
    20000: "服务不可用",
    30001: "操作权限不足",
    40001: "缺少必选参数",
    40003: "非法的参数",
    40004: "非法的参数",
    50001: "平台处理失败",
    50002: "业务处理失败",
    60000: "触发限流，请稍后重试",
    70000: "接口服务已下线",
}
PREFIXES = ("/order/", "/sku/", "/token/")
SIGNED = ("app_key", "method", "param_json", "timestamp", "v")


def _envelope(data: Any, code: int = 10000, sub_code: str = "", sub_msg: str = "") -> dict[str, Any]:
    log_id = time.strftime("%Y%m%d%H%M%S") + secrets.token_hex(8).upper()
    return {
        "code": code,
        "msg": CODE_TEXT.get(code, "error"),
        "sub_code": sub_code,
        "sub_msg": sub_msg,
        "log_id": log_id,
        "data": data,
    }


def _refusal(error: BusinessError) -> Response:
    return json_response(_envelope(None, error.code, error.sub_code, error.sub_msg))


def _gateway_page(status: int) -> Response:
    title = "502 Bad Gateway" if status == 502 else "503 Service Temporarily Unavailable"
    return Response(
        f"<html><head><title>{title}</title></head><body><h1>{title}</h1></body></html>",
        status,
        media_type="text/html",
    )


def expected_sign(secret: str, values: dict[str, str], method: str) -> str:
    text = secret + "".join(f"{key}{values.get(key, '')}" for key in SIGNED) + secret
    if method == "md5":
        return hashlib.md5(text.encode()).hexdigest()
    return hmac.new(secret.encode(), text.encode(), hashlib.sha256).hexdigest()


def _timestamp(value: str) -> float:
    if value.isdigit():
        return float(value)
    try:
        return china_seconds(value)
    except ValueError:
        raise BusinessError(40003, "isv.timestamp-format-error", "时间戳格式错误") from None


def create_app(
    world: World,
    *,
    access_token: str,
    faults: Faults,
    shop_id: int = SANDBOX_SHOP_ID,
    app_key: str = SANDBOX_LOGIN,
    qps_limit: float | None = None,
) -> FastAPI:
    """The Douyin simulator over ``world``; ``access_token`` is the app secret it checks signatures with."""
    if not access_token:
        raise ValueError("access_token (the app secret) must not be empty")
    renderer = DouyinRenderer(world, shop_id)
    book = TokenBook()
    tokens, lock = book.tokens, book.lock
    limiter = QpsLimiter()  # under ``app.state.qps_limit``, per token
    stats = gateway_stats(issues_tokens=True)
    fail_next = FailNext()
    packed: dict[str, int] = {}  # logisticsAddSinglePack request_id -> order index: a replay ships nothing
    app = FastAPI(title="ChannelHub Douyin sandbox", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.world, app.state.faults, app.state.renderer = world, faults, renderer
    app.state.tokens, app.state.fail_next, app.state.qps_limit = tokens, fail_next.pending, qps_limit
    app.state.token_lifetime = TOKEN_LIFETIME
    world.follow_skew(lambda: faults.clock_skew_seconds)
    served = ServedPages(faults)

    expire_tokens = book.expire
    app.state.expire_tokens = expire_tokens

    def issue(params: dict[str, Any]) -> dict[str, Any]:
        stats.count("token_requests")
        if params.get("grant_type") != "authorization_self":  # a tool app's code grant is not simulated
            raise BusinessError(
                50001, "dop.token-generate-failed:grant-type-invalid", "grant_type参数取值不正确"
            )
        if faults.credentials_revoked or str(params.get("shop_id", "")) != str(shop_id):
            stats.count("unauthorized")
            raise BusinessError(50001, "dop.token-generate-failed:no-authorization", "店铺授权已失效")
        with lock:
            now = time.time()
            live = [t for t, expiry in tokens.items() if expiry > now]
            if live:
                token = live[0]
            else:
                token = secrets.token_hex(16)
                tokens[token] = now + app.state.token_lifetime
                stats.count("tokens_issued")
            expires_in = int(tokens[token] - now)
        return {
            "access_token": token,
            "expires_in": expires_in,
            "scope": "SCOPE",
            "shop_id": str(shop_id),
            "shop_name": "ChannelHub 抖店沙箱",
            "refresh_token": digest(token, "refresh", length=32),
            "authority_id": str(shop_id),
            "auth_subject_type": "MiniShop",
        }

    def check_token(token: str) -> None:
        if not token:
            raise BusinessError(40001, "isv.access-token-missing", "认证失败，access_token不能为空")
        if faults.credentials_revoked:
            stats.count("unauthorized")
            raise BusinessError(30001, "dop.authorization-no-existed", "店铺授权已失效，请重新授权")
        if book.presented_before(token) and faults.roll(faults.token_expiry_rate):
            expire_tokens()
        expiry = book.expiry(token)
        if expiry is None:
            stats.count("unauthorized")
            raise BusinessError(
                40003, "isv.access-token-no-existed", "access_token不存在，请使用最新的access_token访问"
            )
        if time.time() >= expiry:
            stats.count("unauthorized")
            raise BusinessError(40003, "isv.access-token-expired", "access_token已过期")

    def throttled(token: str) -> bool:
        if faults.roll(faults.rate_limit_storm):
            return True
        return not limiter.allow_at(token, app.state.qps_limit)

    def count(name: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
        def counted(result: dict[str, Any]) -> dict[str, Any]:
            stats.count(name)
            return result

        return counted

    handlers: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
        "order.searchList": lambda p: listing.search_list(world, renderer, faults, served, p),
        "order.orderDetail": lambda p: pushes.order_detail(world, renderer, p, faults.order_is_malformed),
        "order.logisticsAdd": lambda p: count("shipments")(pushes.logistics_add(world, renderer, p)),
        "order.logisticsAddSinglePack": lambda p: count("shipments")(
            pushes.logistics_add_single_pack(world, renderer, p, packed)
        ),
        "order.logisticsEdit": lambda p: count("tracking_updates")(pushes.logistics_edit(world, renderer, p)),
        "order.logisticsEditByPack": lambda p: count("tracking_updates")(
            pushes.logistics_edit_by_pack(world, renderer, p)
        ),
        "sku.syncStock": lambda p: count("stock_sets")(pushes.sync_stock(world, p)),
        "sku.detail": lambda p: pushes.sku_detail(world, p),
        "token.create": issue,
    }
    app.state.calls = {name: 0 for name in handlers}

    def gateway(query: dict[str, str], body: bytes, path: str) -> tuple[str, dict[str, Any]]:
        """The API's name and business parameters of a call the gateway accepts; raises its refusal."""
        method = query.get("method", "")
        if method not in handlers or path != "/" + method.replace(".", "/"):
            raise BusinessError(70000, "isp.api-service-off", "API不存在或API已下线")
        if not query.get("app_key"):
            raise BusinessError(40001, "isv.app-id-missing", "认证失败，app_key不存在")
        if query["app_key"] != app_key:
            stats.count("unauthorized")
            raise BusinessError(40003, "isv.app-id-invalid", "认证失败，app_key不正确")
        if query.get("v") != "2":
            raise BusinessError(40004, "isv.parameter-invalid", "v参数只能为2")  # [U]
        moment = _timestamp(query.get("timestamp", ""))
        if abs(moment - time.time()) > TIMESTAMP_TOLERANCE:
            raise BusinessError(40003, "isv.timestamp-invalid", "时间戳不合法")
        values = dict(query)
        if "param_json" not in values:
            values["param_json"] = body.decode("utf-8", "replace") if body else "{}"
        if not query.get("sign"):
            raise BusinessError(40001, "isv.signature-missing", "获取签名失败，请根据文档确保参数拼装正确")
        wanted = expected_sign(access_token, values, query.get("sign_method", "md5"))
        if not hmac.compare_digest(wanted, query["sign"]):
            stats.count("unauthorized")
            raise BusinessError(40003, "isv.signature-invalid", "签名校验失败")
        try:
            params = json.loads(values["param_json"])
        except ValueError:
            params = None
        if not isinstance(params, dict):
            raise BusinessError(40003, "isv.parameter-format-invalid", "业务参数json解析失败")
        if method != "token.create":
            check_token(query.get("access_token", ""))
        return method, params

    book.add_expire_route(app, "douyin")

    fail_next.add_route(app, "douyin")

    install_webhooks(app, DouyinWebhooks(world, renderer, app_key, access_token, shop_id))

    add_admin_routes(
        app,
        platform="douyin",
        world=world,
        faults=faults,
        stats=stats,
        state_extra=lambda: {
            "shop_id": shop_id,
            "app_key": app_key,
            "qps_limit": app.state.qps_limit,
            "tokens_live": book.live(),
        },
    )

    @app.api_route("/{path:path}", methods=["GET", "POST"])
    async def call(path: str, request: Request) -> Response:
        stats.count("api_requests")
        if faults.latency_seconds > 0:
            await asyncio.sleep(faults.latency_seconds)
        try:
            method, params = gateway(dict(request.query_params), await request.body(), "/" + path)
            if method != "token.create" and throttled(request.query_params.get("access_token", "")):
                stats.count("throttled")
                raise BusinessError(60000, "", "触发限流，请稍后重试")  # [U] sub code
        except BusinessError as error:
            return _refusal(error)
        failed = injected_server_error(
            faults,
            stats,
            _gateway_page,
            lambda: json_response(_envelope(None, 20000, "dop.service-error", "内部错误"), 500),
        )
        if failed is not None:
            return failed

        def act() -> Response:
            app.state.calls[method] += 1
            try:
                return json_response(_envelope(handlers[method](params)))
            except BusinessError as error:
                return _refusal(error)

        return truncated_json(await fail_next.guard(method, stats, _gateway_page, act), faults)

    hold_back_answers(app, faults, PREFIXES)
    return app
