"""What several platform sandboxes do exactly the same way (each platform's own quirks stay in its package).

Only code that was the same, byte for byte in what it answers, in more than one simulator lives here: the
truncated-body fault every gateway injects, money as two decimals, and the unpadded base64url of the signed
paging cursors (Shopify's ``page_info``, WeChat's ``next_key``).
"""

from __future__ import annotations

import base64
import inspect
import json
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

from fastapi import FastAPI, Request
from starlette.responses import Response

from sandbox.admin import RequestStats, json_response
from sandbox.faults import Faults
from sandbox.world import OrderLine, OrderState


async def maybe_truncated(response: Response, faults: Faults) -> Response:
    """A 200 answer cut to half its body (and without its Content-Length) when the fault profile rolls
    ``truncated_body_rate``, as a connection dropped mid-body would leave it; any other answer as it is."""
    if response.status_code == 200 and faults.roll(faults.truncated_body_rate):
        body = b"".join([chunk async for chunk in response.body_iterator])  # type: ignore[attr-defined]
        kept = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
        return Response(body[: max(1, len(body) // 2)], 200, headers=kept)
    return response


def two_decimals(value: Decimal) -> str:
    """A money amount as the platforms write it in JSON strings: "12.30"."""
    return f"{value:.2f}"


def b64url_encode(raw: bytes) -> str:
    """base64url without the "=" padding (cursors travel in query strings and JSON)."""
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def b64url_decode(text: str) -> bytes:
    """``b64url_encode``'s inverse; raises ``binascii.Error`` (a ``ValueError``) on text not base64."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class QpsLimiter:
    """At most ``limit`` calls per key in any one-second window (Youzan per capability pack, Pinduoduo and
    Douyin per token, Taobao per app, JD per API); ``limit`` may change at runtime (tests, humans), None or 0
    is no limit."""

    def __init__(self, limit: float | None = None) -> None:
        self.limit = limit
        self._calls: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def allow(self, key: str) -> bool:
        return self.allow_at(key, self.limit)

    def allow_at(self, key: str, limit: float | None) -> bool:
        """``allow`` under a limit the app keeps elsewhere (an ``app.state`` knob read at call time)."""
        if not limit:
            return True
        now = time.monotonic()
        with self._lock:
            recent = [t for t in self._calls.get(key, []) if now - t < 1.0]
            allowed = len(recent) < limit
            if allowed:
                recent.append(now)
            self._calls[key] = recent
            return allowed


class FailNext:
    """The ``fail_next`` knob: the next ``count`` calls of an API answer a gateway error, before the
    platform acts or after (``after_commit``: it acted and the answer was lost on the way back).

    ``pending`` (API -> (calls left, after acting)) is the dict apps publish as ``app.state.fail_next``."""

    def __init__(self) -> None:
        self.pending: dict[str, tuple[int, bool]] = {}
        self._lock = threading.Lock()

    def take(self, api: str) -> bool | None:
        """None: answer normally; False: fail before acting; True: fail after acting."""
        with self._lock:
            left, after_commit = self.pending.get(api, (0, False))
            if left <= 0:
                return None
            self.pending[api] = (left - 1, after_commit)
            return after_commit

    async def guard(
        self,
        api: str | None,
        stats: RequestStats,
        page: Callable[[int], Response],
        act: Callable[[], Response | Awaitable[Response]],
    ) -> Response:
        """``act``'s answer, or the gateway's ``page(502)`` instead of acting or in place of the answer once
        it acted, as the knob holds for ``api`` (None or "": no knob applies)."""
        failure = self.take(api) if api else None
        if failure is False:
            stats.count("injected_errors")
            return page(502)
        response = act()
        if inspect.isawaitable(response):
            response = await response
        if failure is True:  # the platform acted; the answer was lost on the way back
            stats.count("injected_errors")
            return page(502)
        return response

    def add_route(self, app: FastAPI, platform: str, key: str = "method") -> None:
        """``POST /_sandbox/<platform>/fail_next {<key>, "count", "after_commit"}``; ``key`` is what the
        platform calls an API (Pinduoduo: ``type``)."""

        @app.post(f"/_sandbox/{platform}/fail_next")
        async def set_fail_next(request: Request) -> Response:
            try:
                body = json.loads(await request.body() or b"{}")
            except ValueError:
                body = None
            if not isinstance(body, dict):
                body = {}
            api, count = body.get(key), body.get("count", 1)
            if not isinstance(api, str) or not isinstance(count, int) or count < 0:
                return json_response(
                    {"error": f"expected {{{key}: str, count: int >= 0, after_commit: bool}}"}, 400
                )
            with self._lock:
                self.pending[api] = (count, bool(body.get("after_commit", False)))
            return json_response({key: api, "count": count})


def injected_server_error(
    faults: Faults,
    stats: RequestStats,
    page: Callable[[int], Response],
    json_500: Callable[[], Response] | None = None,
) -> Response | None:
    """A 500, 502 or 503 when the profile rolls ``server_error_rate`` (None otherwise): the gateway's HTML
    ``page``, or for a 500 the platform's own JSON ``json_500`` where its backend answers one."""
    if not faults.roll(faults.server_error_rate):
        return None
    stats.count("injected_errors")
    status = faults.choose((500, 502, 503))
    if status == 500 and json_500 is not None:
        return json_500()
    return page(status)


def truncated_json(answer: Response, faults: Faults) -> Response:
    """``maybe_truncated`` for an answer built whole in the route (not streamed through a middleware): a 200
    cut to half its body when the profile rolls ``truncated_body_rate``."""
    if answer.status_code == 200 and faults.roll(faults.truncated_body_rate):
        return Response(answer.body[: max(1, len(answer.body) // 2)], 200, media_type="application/json")
    return answer


def paid_ts(state: OrderState) -> int | None:
    """When the platform took the money (Youzan, Taobao, JD, Douyin alike): at checkout for an order paid or
    authorized there (Alipay/WeChat Pay capture at once), else when a pending payment arrived, or None."""
    if state.order.initial_financial_status in ("paid", "authorized"):
        return state.order.created_ts
    return state.paid_ts


def line_payment(line: OrderLine) -> Decimal:
    """What the buyer paid for a line: its total less its own discount."""
    return line.line_total - line.discount


def months_later(moment: datetime, months: int) -> datetime:
    """The same day ``months`` calendar months on, or the month's last day where it is shorter (the
    marketplaces' "at most N months" listing windows)."""
    month = moment.month - 1 + months
    year, month = moment.year + month // 12, month % 12 + 1
    for day in (moment.day, 30, 29, 28):
        try:
            return moment.replace(year=year, month=month, day=day)
        except ValueError:
            continue
    raise AssertionError("unreachable")


def whole_number(value: Any) -> int | None:
    """A JSON integer, or digits in a string, as an int; None for anything else (a bool is no number)."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


class TokenBook:
    """The access tokens a gateway issued (token -> expiry, real epoch seconds) and those that came with a
    call already: an injected expiry (``token_expiry_rate``) spares a token's first call, as a real token
    does not lapse the moment it is issued. ``lock`` guards both; apps hold it while they issue."""

    def __init__(self) -> None:
        self.tokens: dict[str, float] = {}
        self.presented: set[str] = set()
        self.lock = threading.Lock()

    def expire(self) -> int:
        """Every live token reaches its expiry now; how many there were."""
        with self.lock:
            now = time.time()
            live = [token for token, expiry in self.tokens.items() if expiry > now]
            for token in live:
                self.tokens[token] = now
        return len(live)

    def presented_before(self, token: str) -> bool:
        """Whether ``token`` came with an earlier call (and it has now)."""
        with self.lock:
            seen = token in self.presented
            self.presented.add(token)
        return seen

    def expiry(self, token: str) -> float | None:
        with self.lock:
            return self.tokens.get(token)

    def live(self) -> int:
        return sum(1 for expiry in list(self.tokens.values()) if expiry > time.time())

    def add_expire_route(self, app: FastAPI, platform: str) -> None:
        """``POST /_sandbox/<platform>/expire_tokens``: every issued token expires now (``expire``)."""

        @app.post(f"/_sandbox/{platform}/expire_tokens")
        def expire_tokens_route() -> Response:
            return json_response({"expired": self.expire()})


def gateway_stats(*, issues_tokens: bool) -> RequestStats:
    """The counters of a marketplace gateway that ships, re-labels and sets stock (``/_sandbox/state``
    lists them in this order); ``token_requests`` and ``tokens_issued`` where it hands out tokens itself."""
    token_counters = ("token_requests", "tokens_issued") if issues_tokens else ()
    return RequestStats(
        "api_requests",
        *token_counters,
        "throttled",
        "unauthorized",
        "injected_errors",
        "shipments",
        "tracking_updates",
        "stock_sets",
    )
