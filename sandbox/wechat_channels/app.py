"""The WeChat Channels sandbox's app: access tokens (``cgi-bin/token``, ``cgi-bin/stable_token``) and the
daily quota, the gateway (tokens per app, throttling, faults), the route groups and the ``/_sandbox/wechat``
knobs."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response

from sandbox.admin import RequestStats, add_admin_routes, hold_back_answers, json_response
from sandbox.common import maybe_truncated
from sandbox.faults import Faults, ServedPages
from sandbox.webhooks import install_webhooks
from sandbox.wechat_channels.listing import add_listing_routes
from sandbox.wechat_channels.mini_program import ShippingRecord, add_mini_program_routes
from sandbox.wechat_channels.pushes import add_push_routes
from sandbox.wechat_channels.render import WeChatChannelsRenderer
from sandbox.wechat_channels.webhooks import WeChatWebhooks
from sandbox.wechat_channels.wire import (
    ERR_API_UNAUTHORIZED,
    FORCE_REFRESH_INTERVAL_SECONDS,
    FORCE_REFRESHES_PER_DAY,
    OLD_TOKEN_GRACE_SECONDS,
    SANDBOX_LOGIN,
    SANDBOX_MINI_PROGRAM_APPID,
    STABLE_RENEW_BEFORE_SECONDS,
    TOKEN_LIFETIME_SECONDS,
    WeChatError,
    _rid,
    json_body,
)
from sandbox.world import World

# --------------------------------------------------------------------------------------------------
# Tokens and quota
# --------------------------------------------------------------------------------------------------


def mini_program_secret(app_secret: str) -> str:
    """The sandbox mini program's app secret, derived from the shop's (one secret configures a sandbox)."""
    return "mp-" + hashlib.sha256(f"mini-program:{app_secret}".encode()).hexdigest()[:32]


@dataclass(slots=True)
class _Issued:
    appid: str
    stable: bool  # from cgi-bin/stable_token (isolated from cgi-bin/token's)
    expiry: float  # world epoch seconds
    distrusted: bool = False  # refused on calls (40001) while stable_token's normal mode still hands it out


class TokenStore:
    """Issued access tokens per appid and their expiry on the *world clock* (thread-safe).

    ``cgi-bin/token``: every fetch issues a new token and leaves the appid's earlier ones 5 minutes at most.
    ``cgi-bin/stable_token`` (isolated from the former): normal mode hands out the appid's token in force
    with its remaining ``expires_in`` (a new one only in its last 5 minutes, the old one keeping its expiry);
    ``force_refresh`` revokes it at once and issues a new one, at most 20 times a day and not within 30 s of
    the last (then the token in force comes back unchanged)."""

    def __init__(self, world: World, lifetime_seconds: int = TOKEN_LIFETIME_SECONDS) -> None:
        self.world = world
        self.lifetime_seconds = lifetime_seconds
        self._tokens: dict[str, _Issued] = {}
        self._stable: dict[str, str] = {}  # appid -> its stable token in force
        self._forced: dict[str, list[float]] = {}  # appid -> world times of its force refreshes
        self._counter = itertools.count(1)
        self._lock = threading.Lock()
        self._presented: set[str] = set()
        self.issued = 0
        self.stable_issued = 0
        self.force_refreshes = 0

    def _new(self, appid: str, *, stable: bool, now: float) -> str:
        serial = next(self._counter)
        digest = hashlib.sha256(f"{self.world.seed}:wechat-token:{serial}".encode()).hexdigest()
        token = f"{80 + serial % 10}_{base64.urlsafe_b64encode(bytes.fromhex(digest)).decode().rstrip('=')}"
        self._tokens[token] = _Issued(appid, stable, now + self.lifetime_seconds)
        self.issued += 1
        if stable:
            self._stable[appid] = token
            self.stable_issued += 1
        return token

    def issue(self, appid: str) -> tuple[str, int]:
        """``cgi-bin/token``: a new token; the appid's earlier ones (not stable tokens) die in 5 minutes."""
        with self._lock:
            now = self.world.now_ts()
            for issued in self._tokens.values():
                if issued.appid == appid and not issued.stable:
                    issued.expiry = min(issued.expiry, now + OLD_TOKEN_GRACE_SECONDS)
            return self._new(appid, stable=False, now=now), self.lifetime_seconds

    def stable(self, appid: str, *, force: bool) -> tuple[str, int]:
        """``cgi-bin/stable_token``: (token, expires_in)."""
        with self._lock:
            now = self.world.now_ts()
            current = self._stable.get(appid)
            issued = self._tokens.get(current) if current else None
            live = issued is not None and now < issued.expiry
            if force:
                forced = self._forced.setdefault(appid, [])
                if live and forced and now - forced[-1] < FORCE_REFRESH_INTERVAL_SECONDS:
                    assert current is not None and issued is not None
                    return current, int(issued.expiry - now)  # too soon: not refreshed (doc)
                if (
                    sum(1 for at in forced if int(at // 86400) == int(now // 86400))
                    >= FORCE_REFRESHES_PER_DAY
                ):
                    raise WeChatError(45009, "reach max api daily quota limit")  # [U] the code of this limit
                if current is not None:
                    self._tokens.pop(current, None)  # the previous token is invalid at once (doc)
                forced.append(now)
                self.force_refreshes += 1
                return self._new(appid, stable=True, now=now), self.lifetime_seconds
            if live and issued.expiry - now > STABLE_RENEW_BEFORE_SECONDS:
                assert current is not None
                return current, int(issued.expiry - now)
            return self._new(appid, stable=True, now=now), self.lifetime_seconds

    def check(self, token: str, appid: str) -> None:
        """A call of ``appid``'s API with ``token``: the platform's refusal, if any."""
        if not token:
            raise WeChatError(41001, "access_token missing")
        with self._lock:
            issued = self._tokens.get(token)
            if issued is None or issued.distrusted:
                raise WeChatError(
                    40001,
                    "invalid credential, access_token is invalid or not latest, could get access_token by "
                    "getStableAccessToken, more details at https://mmbizurl.cn/s/JtxxFh33r",
                )
            if self.world.now_ts() >= issued.expiry:
                raise WeChatError(42001, "access_token expired")
            if issued.appid != appid:
                raise WeChatError(ERR_API_UNAUTHORIZED, "api unauthorized")  # [U] another app's token

    def expire_all(self) -> None:
        with self._lock:
            now = self.world.now_ts()
            for issued in self._tokens.values():
                issued.expiry = min(issued.expiry, now)

    def distrust_all(self) -> None:
        """Calls refuse every live token (40001) while stable_token's normal mode still hands them out: the
        case ``force_refresh`` exists for (the docs: a leaked token). [U] whether WeChat ever does this."""
        with self._lock:
            for issued in self._tokens.values():
                issued.distrusted = True

    def presented_before(self, token: str) -> bool:
        """Whether ``token`` came with an earlier call (and note that it came now). A token expires with age:
        ``Faults.token_expiry_rate`` spares a token's first call, or a refresh could never succeed."""
        with self._lock:
            seen = token in self._presented
            self._presented.add(token)
        return seen

    def revoke_all(self) -> None:
        """Forget every issued token (an app secret reset, or tokens replaced): calls then get 40001."""
        with self._lock:
            self._tokens.clear()
            self._stable.clear()


class DailyQuota:
    """Calls per UTC day of the world clock; None means unlimited."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.limit: int | None = None
        self._used: dict[int, int] = {}
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            day = int(self.world.now_ts() // 86400)
            used = self._used.get(day, 0)
            if self.limit is not None and used >= self.limit:
                return False
            self._used[day] = used + 1
            return True

    def reset(self) -> None:
        with self._lock:
            self._used.clear()


# --------------------------------------------------------------------------------------------------
# The app
# --------------------------------------------------------------------------------------------------


def create_app(
    world: World,
    *,
    access_token: str,
    faults: Faults,
    appid: str = SANDBOX_LOGIN,
    token_lifetime_seconds: int = TOKEN_LIFETIME_SECONDS,
    mini_program_appid: str = SANDBOX_MINI_PROGRAM_APPID,
) -> FastAPI:
    """The Channels shop simulator over ``world``; ``access_token`` is the shop's app secret the token
    endpoints check (the mini program's is ``mini_program_secret(access_token)``)."""
    if not access_token:
        raise ValueError("the app secret must not be empty")
    secrets = {appid: access_token, mini_program_appid: mini_program_secret(access_token)}
    renderer = WeChatChannelsRenderer(world)
    tokens = TokenStore(world, token_lifetime_seconds)
    quota = DailyQuota(world)
    stats = RequestStats(
        "api_requests",
        "token_requests",
        "stable_token_requests",
        "throttled",
        "quota_refused",
        "auth_refused",
        "deliveries",
        "delivery_updates",
        "stock_updates",
        "shipping_uploads",
    )
    count = stats.count
    serials = itertools.count(1)

    app = FastAPI(
        title="ChannelHub WeChat Channels shop sandbox", docs_url=None, redoc_url=None, openapi_url=None
    )
    app.state.world = world
    app.state.faults = faults
    app.state.renderer = renderer
    app.state.tokens = tokens
    app.state.quota = quota
    shipping: dict[int, ShippingRecord] = {}  # world index -> upload_shipping_info's record
    completed_payments: set[str] = set()  # transaction ids a test declared 交易完成 (not shippable)
    foreign_payments: set[str] = set()  # paid outside the mini program: its service does not know them
    app.state.shipping = shipping
    app.state.mini_program = (mini_program_appid, secrets[mini_program_appid])
    delivery_updates: list[dict[str, Any]] = []  # every accepted deliveryinfo/update (tests read it)
    app.state.delivery_updates = delivery_updates
    world.follow_skew(lambda: faults.clock_skew_seconds)
    served = ServedPages(faults)

    def error(err: WeChatError) -> Response:
        return json_response(
            {
                "errcode": err.errcode,
                "errmsg": f"{err.errmsg} rid: {_rid(world.seed, next(serials), world.now_ts())}",
            }
        )

    @app.middleware("http")
    async def wechat_gateway(request: Request, call_next: Callable[[Request], Any]) -> Response:
        if not request.url.path.startswith(("/channels/", "/wxa/")):
            return await call_next(request)
        count("api_requests")
        token = request.query_params.get("access_token", "")
        if faults.credentials_revoked:
            tokens.revoke_all()  # the app secret was reset: no token it issued is valid any more
        elif tokens.presented_before(token) and faults.roll(faults.token_expiry_rate):
            # Tokens expire (42001), or were replaced by a token fetched elsewhere (40001 "not latest").
            if faults.choose(("expired", "replaced")) == "expired":
                tokens.expire_all()
            else:
                tokens.revoke_all()
        try:  # channels/* is the shop's API, wxa/* the mini program's: each takes its own app's token
            tokens.check(token, mini_program_appid if request.url.path.startswith("/wxa/") else appid)
        except WeChatError as err:
            count("auth_refused")
            return error(err)
        if faults.latency_seconds > 0:
            await asyncio.sleep(faults.latency_seconds)
        if not quota.take():
            count("quota_refused")
            return error(WeChatError(45009, "reach max api daily quota limit"))
        if faults.roll(faults.rate_limit_storm):
            count("throttled")
            return error(WeChatError(45011, "api minute-quota reach limit  mustslower  retry next minute"))
        if faults.roll(faults.server_error_rate):
            status = faults.choose((200, 200, 502, 503))
            if status == 200:
                return error(WeChatError(-1, "system error"))
            page = f"<html><head><title>{status}</title></head><body><center><h1>{status}</h1></center>"
            page += "</body></html>"
            return Response(page, status, media_type="text/html")
        response = await call_next(request)
        return await maybe_truncated(response, faults)

    hold_back_answers(app, faults, ("/channels/", "/wxa/", "/cgi-bin/"))

    def app_of(grant_type: Any, app_id: Any, secret: Any) -> str:
        """The appid whose credentials these are, or the token endpoints' refusal."""
        if grant_type != "client_credential":
            raise WeChatError(40002, "invalid grant_type")
        if not isinstance(app_id, str) or app_id not in secrets:
            raise WeChatError(40013, "invalid appid")
        given = secret.encode() if isinstance(secret, str) else b""
        if faults.credentials_revoked or not hmac.compare_digest(given, secrets[app_id].encode()):
            raise WeChatError(40125, "invalid appsecret")
        return app_id

    @app.get("/cgi-bin/token")
    def get_token(request: Request) -> Response:
        """The old token endpoint: every call replaces the appid's token (the previous one lives 5 min)."""
        count("token_requests")
        params = request.query_params
        try:
            app_id = app_of(params.get("grant_type"), params.get("appid"), params.get("secret"))
        except WeChatError as err:
            return error(err)
        token, expires_in = tokens.issue(app_id)
        return json_response({"access_token": token, "expires_in": expires_in})

    @app.post("/cgi-bin/stable_token")
    async def get_stable_token(request: Request) -> Response:
        """POST JSON only: {grant_type, appid, secret, force_refresh (default false)}."""
        count("token_requests")
        count("stable_token_requests")
        try:
            body = await json_body(request)
            app_id = app_of(body.get("grant_type"), body.get("appid"), body.get("secret"))
            force = body.get("force_refresh", False)
            if not isinstance(force, bool):
                raise WeChatError(47001, "data format error: force_refresh must be a boolean")
            token, expires_in = tokens.stable(app_id, force=force)
        except WeChatError as err:
            return error(err)
        return json_response({"access_token": token, "expires_in": expires_in})

    add_listing_routes(app, world, faults, renderer, served, error)
    push_lock = threading.Lock()  # a check and the record it allows happen as one step
    add_push_routes(app, world, renderer, count, error, delivery_updates, push_lock)
    add_mini_program_routes(
        app, world, renderer, count, error, shipping, completed_payments, foreign_payments, push_lock
    )

    @app.get("/_sandbox/wechat")
    def get_wechat_settings() -> Response:
        return json_response(wechat_settings())

    @app.post("/_sandbox/wechat")
    async def set_wechat_settings(request: Request) -> Response:
        """Body: any of {"token_lifetime_seconds": n, "daily_quota": n | null, "expire_tokens": true,
        "distrust_tokens": true, "reset_quota": true, "complete_payments": [transaction_id, ...]}.
        ``distrust_tokens``: calls refuse every live token (40001) while stable_token's normal mode still
        hands them out, so only a force_refresh helps. ``complete_payments`` marks payment orders 交易完成,
        which the shipping-info service refuses with 10060004; ``foreign_payments`` are Channels payments
        not made in the mini program (its service answers 10060001 for them)."""
        try:
            changes = await request.json()
            allowed = {
                "token_lifetime_seconds",
                "daily_quota",
                "expire_tokens",
                "distrust_tokens",
                "reset_quota",
                "complete_payments",
                "foreign_payments",
            }
            if not isinstance(changes, dict) or set(changes) - allowed:
                raise ValueError(f"send a JSON object with any of {sorted(allowed)}")
            if "token_lifetime_seconds" in changes:
                lifetime = int(changes["token_lifetime_seconds"])
                if lifetime < 1:
                    raise ValueError("token_lifetime_seconds must be >= 1")
                tokens.lifetime_seconds = lifetime
            if "daily_quota" in changes:
                limit = changes["daily_quota"]
                quota.limit = None if limit is None else int(limit)
            if changes.get("expire_tokens"):
                tokens.expire_all()
            if changes.get("distrust_tokens"):
                tokens.distrust_all()
            if changes.get("reset_quota"):
                quota.reset()
            for name, payments in (
                ("complete_payments", completed_payments),
                ("foreign_payments", foreign_payments),
            ):
                ids = changes.get(name, [])
                if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
                    raise ValueError(f"{name} must be a list of transaction ids")
                payments.update(ids)
        except (TypeError, ValueError) as err:
            return json_response({"errors": str(err)}, 400)
        return json_response(wechat_settings())

    def wechat_settings() -> dict[str, Any]:
        return {
            "appid": appid,
            "token_lifetime_seconds": tokens.lifetime_seconds,
            "tokens_issued": tokens.issued,
            "stable_tokens_issued": tokens.stable_issued,
            "force_refreshes": tokens.force_refreshes,
            "mini_program_appid": mini_program_appid,
            "daily_quota": quota.limit,
        }

    install_webhooks(app, WeChatWebhooks(world, renderer, appid))

    add_admin_routes(
        app,
        platform="wechat_channels",
        world=world,
        faults=faults,
        stats=stats,
        state_extra=lambda: {"wechat": wechat_settings(), "currency": "CNY"},
    )
    return app
