"""The one HTTP client every connector runs on: requests + tenacity + a client-side rate limiter.

What a platform *declares* (``ErrorPolicy``, ``RateLimitSignal``, a ``Throttle``, an auth kind) this module
*executes*, the same way for every platform:

- retries 5xx, connection errors, timeouts and malformed bodies with exponential backoff + jitter, each
  kind with its own bounded budget (``RetryPolicy``); a request that is not idempotent (a shipment push) is
  replayed only when the platform provably did not act on it (throttled, or the connection never opened);
- honours rate-limit signals: HTTP 429 + ``Retry-After`` (float seconds or an HTTP date), or an error code
  in an HTTP-200 body (WeChat errcode 45011, Taobao code 7), sleeping for the hint and trying again;
- keeps under the platform's budget before it is hit (``LeakyBucketThrottle`` reads Shopify's
  ``X-Shopify-Shop-Api-Call-Limit: used/size``; ``RequestRateThrottle`` spaces calls where no header says);
- refreshes an expired short-lived token once and replays the request (WeChat 40001/42001, Youzan
  4201/4202/4203);
- turns everything else into typed errors (``connectors.errors``) carrying status, the platform's error text
  and the request id, with every credential masked: not in messages, reprs, URLs or log records.
"""

from __future__ import annotations

import copy
import email.utils
import json
import logging
import random
import threading
import time
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests
import tenacity

from connectors.auth import Authenticator, NoAuth, is_loopback
from connectors.errors import (
    ApiError,
    AuthError,
    ConnectorError,
    InsecureTransport,
    MalformedResponse,
    QuotaExhausted,
    RateLimited,
    TransientError,
    redact,
)
from connectors.json_body import decode_json

log = logging.getLogger(__name__)

_IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


BodyPath = str | tuple[str, ...]  # a dotted path, or alternatives tried in order (the first present wins)
_ABSENT = object()


def dig(data: Any, path: BodyPath | None, default: Any = None) -> Any:
    """Value at a dotted path (``"data.full_order_info_list"``) in nested dicts; a numeric part indexes a
    list (``"errors.0.extensions.code"``, GraphQL's error list); None path: the whole. A tuple of paths
    names alternatives where one platform answers in more than one shape (Youzan's 4.x ``data.*`` and 3.0.0
    ``response.*``): the first one present is taken."""
    if path is None:
        return data
    if isinstance(path, tuple):
        for alternative in path:
            found = dig(data, alternative, _ABSENT)
            if found is not _ABSENT:
                return found
        return default
    current = data
    for key in path.split("."):
        if isinstance(current, Mapping):
            if key not in current:
                return default
            current = current[key]
        elif isinstance(current, list) and key.isdigit() and int(key) < len(current):
            current = current[int(key)]
        else:
            return default
    return current


# --- requests and responses ------------------------------------------------------------------------------


@dataclass
class Request:
    """One logical call. ``url`` is a path relative to the platform's base path, a site-rooted path (with
    ``rooted``: under the host URL's own path, outside the base path), or an absolute URL on the same origin
    (a ``Link`` next URL, used exactly as given)."""

    method: str
    url: str
    params: dict[str, Any] = field(default_factory=dict)
    json: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    idempotent: bool | None = None
    rooted: bool = False

    def copy(self) -> Request:
        return copy.deepcopy(self)

    def with_value(self, name: str, value: Any, location: str = "query") -> Request:
        """A copy with ``name=value`` in the query string or in the JSON body."""
        clone = self.copy()
        if location == "body":
            clone.json = {**(clone.json or {}), name: value}
        else:
            clone.params[name] = value
        return clone

    @property
    def replay_safe(self) -> bool:
        return self.idempotent if self.idempotent is not None else self.method.upper() in _IDEMPOTENT_METHODS


@dataclass(frozen=True)
class ApiResponse:
    status: int
    headers: Mapping[str, str]
    body: Any
    url: str  # redacted
    request_id: str | None
    links: Mapping[str, Mapping[str, str]]  # parsed Link header: {"next": {"url": ..., "rel": "next"}}


# --- declarations the client executes ---------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """Attempt budgets (first try included) and backoff. Tests shrink the waits; production keeps defaults."""

    max_attempts: int = 5  # 5xx, timeouts, connection errors
    malformed_attempts: int = 3  # non-JSON / truncated bodies
    rate_limit_attempts: int = 10  # 429s or throttle codes in a row
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    backoff_jitter: float = 0.5
    retry_after_default: float = 2.0  # a 429 without Retry-After
    retry_after_max: float = 120.0  # cap on a platform's hint

    def backoff(self, failures: int) -> float:
        return min(self.backoff_max, self.backoff_initial * 2 ** max(failures - 1, 0)) + random.uniform(
            0, self.backoff_jitter
        )


@dataclass(frozen=True)
class RateLimitSignal:
    """How a platform says "too fast": HTTP statuses with a wait-time header, or error codes in a 200 body."""

    statuses: frozenset[int] = frozenset({429})
    retry_after_header: str | None = "Retry-After"
    body_codes: frozenset[str] = frozenset()  # wait and retry: WeChat 45011, Taobao 7
    quota_codes: frozenset[str] = (
        frozenset()
    )  # give up now, waiting will not help: WeChat 45009 (daily quota)
    # How long a body-code throttle says to wait, from the answer (GraphQL's cost and restore rate) or the
    # clock (a per-minute budget refills at the next minute); None: the retry policy's default.
    retry_after_from_body: Callable[[Any], float | None] | None = None


@dataclass(frozen=True)
class ErrorShape:
    """Where one form of a platform's error body keeps its code and message (dotted paths).

    With ``code_path`` the shape also detects errors inside HTTP-200 bodies: a code present there and not
    in ``ok_codes`` is an error (WeChat ``errcode`` != 0, Youzan ``code`` != 200, Taobao
    ``error_response.code``).
    """

    code_path: str | None = None
    message_path: str | None = None
    ok_codes: frozenset[str] = frozenset({"0"})

    def extract(self, body: Any) -> tuple[str | None, str | None]:
        code = dig(body, self.code_path) if self.code_path else None
        message = dig(body, self.message_path) if self.message_path else None
        code_text = None if code is None or isinstance(code, Mapping | list) else str(code)
        message_text = None if message is None else message if isinstance(message, str) else _compact(message)
        return code_text, message_text


def _compact(value: Any) -> str:

    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


@dataclass(frozen=True)
class ErrorPolicy:
    """How to read a platform's answers: error body shapes, rate-limit signal, auth and retryable codes."""

    shapes: tuple[ErrorShape, ...] = (ErrorShape(message_path="errors"),)
    rate_limit: RateLimitSignal = RateLimitSignal()
    auth_statuses: frozenset[int] = frozenset({401, 403})
    auth_codes: frozenset[str] = frozenset()  # credential refused, refreshing will not help (WeChat 40013)
    token_expired_codes: frozenset[str] = (
        frozenset()
    )  # refresh the token once and replay (WeChat 40001/42001)
    transient_codes: frozenset[str] = frozenset()  # "system busy, retry" in a 200 body (WeChat -1)
    request_id_header: str | None = "X-Request-Id"
    request_id_path: BodyPath | None = None  # in the body: Youzan trace_id, Taobao error_response.request_id

    def body_error(self, body: Any) -> tuple[str | None, str | None]:
        """The first (code, message) a shape finds; code None when no shape sees an error code."""
        first_message = None
        for shape in self.shapes:
            code, message = shape.extract(body)
            first_message = first_message or message
            if code is not None and code not in shape.ok_codes:
                return code, message
        return None, first_message


# --- client-side rate limiting ----------------------------------------------------------------------------


class Throttle(ABC):
    """Keeps a connection under a platform's budget. ``before_request`` returns how long to wait first."""

    @abstractmethod
    def before_request(self) -> float: ...

    def observe(self, headers: Mapping[str, str]) -> None:  # noqa: B027 - signal-less throttles ignore it
        """Read the platform's budget signal from a response."""

    def on_rate_limited(self) -> None:  # noqa: B027
        """The platform throttled us anyway: assume the budget is spent."""


class NoThrottle(Throttle):
    def before_request(self) -> float:
        return 0.0


class RequestRateThrottle(Throttle):
    """At most ``per_second`` calls per second, spaced evenly (platforms with a QPS limit and no header)."""

    def __init__(self, per_second: float, clock: Callable[[], float] = time.monotonic) -> None:
        if per_second <= 0:
            raise ValueError("per_second must be positive")
        self._interval = 1.0 / per_second
        self._clock = clock
        self._next_slot = 0.0
        self._lock = threading.Lock()

    def before_request(self) -> float:
        with self._lock:
            now = self._clock()
            slot = max(now, self._next_slot)
            self._next_slot = slot + self._interval
            return slot - now

    def on_rate_limited(self) -> None:
        with self._lock:
            self._next_slot = max(self._next_slot, self._clock() + self._interval)


class LeakyBucketThrottle(Throttle):
    """Mirrors a server-side leaky bucket announced in a ``used/size`` header (Shopify REST).

    After each response we know the bucket level; it drains at ``leak_per_second``. Before a call we estimate
    the level now and, when one more call would leave less than ``headroom`` free slots, wait until it would
    not. Every call reserves its slot at once, so threads sharing one client do not all rush the last slots.
    """

    def __init__(
        self,
        header: str,
        leak_per_second: float,
        *,
        headroom: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if leak_per_second <= 0:
            raise ValueError("leak_per_second must be positive")
        self.header = header
        self.leak_per_second = leak_per_second
        self._headroom = headroom
        self._clock = clock
        self._lock = threading.Lock()
        self._level = 0.0
        self._level_at = 0.0
        self.size: int | None = None
        self.peak_used = 0  # highest level the platform reported (observability and tests)

    def _free_slots_to_keep(self, size: int) -> int:
        if self._headroom is not None:
            return min(self._headroom, size - 1)
        return max(1, size // 10)

    def _level_now(self, now: float) -> float:
        return max(0.0, self._level - max(0.0, now - self._level_at) * self.leak_per_second)

    def before_request(self) -> float:
        with self._lock:
            if self.size is None:  # nothing observed yet: the first answer tells us the bucket
                return 0.0
            now = self._clock()
            level = self._level_now(now)
            ceiling = self.size - self._free_slots_to_keep(self.size)
            wait = max(0.0, (level + 1 - ceiling) / self.leak_per_second)
            self._level = level - wait * self.leak_per_second + 1
            self._level_at = now + wait
            return wait

    def observe(self, headers: Mapping[str, str]) -> None:
        value = headers.get(self.header)
        if not value:
            return
        try:
            used_text, size_text = value.split("/", 1)
            used, size = int(used_text.strip()), int(size_text.strip())
        except ValueError:
            log.warning("ignoring unreadable %s header %r", self.header, value)
            return
        with self._lock:
            self._level, self._level_at, self.size = float(used), self._clock(), size
            self.peak_used = max(self.peak_used, used)

    # on_rate_limited stays a no-op: a 429 carries the call-limit header too (observed above), and the
    # retry loop already waits for its Retry-After; assuming "full" on top would wait twice.


# --- the client -------------------------------------------------------------------------------------------


@dataclass
class ClientStats:
    """Counters of one client (logged per run, asserted by tests, read by benchmarks)."""

    requests: int = 0  # HTTP exchanges that got an answer or failed on the wire
    retries: int = 0
    rate_limited: int = 0  # 429s and throttle codes received
    server_errors: int = 0
    network_errors: int = 0
    malformed: int = 0
    token_refreshes: int = 0
    throttle_waits: int = 0
    throttle_wait_seconds: float = 0.0
    status_counts: Counter = field(default_factory=Counter)


class _TokenExpired(AuthError):
    """Internal: the platform says the short-lived token expired; the client refreshes once and replays."""


class _UrllibRedactingFilter(logging.Filter):
    """urllib3 logs request paths with their query string at DEBUG; mask credential parameters there."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is not ours to fix
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


_URLLIB_FILTER = _UrllibRedactingFilter()


def install_urllib_filter() -> None:
    """Mask credentials in urllib3's DEBUG lines (request paths with their query strings)."""
    urllib_log = logging.getLogger("urllib3.connectionpool")
    if _URLLIB_FILTER not in urllib_log.filters:
        urllib_log.addFilter(_URLLIB_FILTER)


class HttpClient:
    """Executes requests for one connection (one shop / app) of one platform. Thread-safe."""

    def __init__(
        self,
        base_url: str,
        *,
        platform: str = "",
        base_path: str = "",
        auth: Authenticator | None = None,
        errors: ErrorPolicy | None = None,
        throttle: Throttle | None = None,
        retry: RetryPolicy | None = None,
        timeout: tuple[float, float] = (5.0, 30.0),
        default_headers: Mapping[str, str] | None = None,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"base_url must be an http(s) URL, got {base_url!r}")
        self.origin = f"{parts.scheme}://{parts.netloc}"
        if (
            parts.scheme == "http"
            and auth is not None
            and not auth.safe_in_clear
            and not is_loopback(base_url)
        ):
            raise InsecureTransport(
                f"the credentials would cross the network in clear text over plain http to {parts.hostname}: "
                "use the platform's https URL (or a scheme that signs instead of sending its secret, such as "
                "WooCommerce's OAuth 1.0a)",
                platform=platform,
            )
        # A site may live under a path (WordPress in a subdirectory, one shop of many behind one host):
        # host-rooted endpoints (WooCommerce's other /wp-json namespaces, token endpoints) are under it too.
        self.site_path = parts.path.rstrip("/")
        self.base_path = (self.site_path + "/" + base_path.strip("/")).rstrip("/")
        self.platform = platform
        self.auth = auth or NoAuth().bind({})
        self.errors = errors or ErrorPolicy()
        self.throttle = throttle or NoThrottle()
        self.retry = retry or RetryPolicy()
        self.timeout = timeout
        self.session = session or requests.Session()
        self.session.headers.update({"User-Agent": "ChannelHub/0.1 (+connectors)"})
        self.default_headers = dict(default_headers or {"Accept": "application/json"})
        self.stats = ClientStats()
        self._sleep = sleep
        self._stats_lock = threading.Lock()
        install_urllib_filter()

    def __repr__(self) -> str:
        return f"HttpClient({self.platform!r}, {self.origin}{self.base_path}, auth={self.auth!r})"

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- public --

    def url_for(self, url: str, rooted: bool = False) -> str:
        if url.startswith(("http://", "https://")):
            parts = urlsplit(url)
            if f"{parts.scheme}://{parts.netloc}" != self.origin:
                # Never send credentials to a host the platform's answer named (a Link header, a redirect).
                raise ApiError(
                    f"refusing to follow a URL on another origin: {parts.scheme}://{parts.netloc}",
                    platform=self.platform,
                )
            return url
        prefix = self.site_path if rooted else self.base_path
        return f"{self.origin}{prefix}/{url.lstrip('/')}"

    def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
        authenticate: bool = True,
        rooted: bool = False,
    ) -> ApiResponse:
        return self.send(
            Request(method.upper(), url, dict(params or {}), json, dict(headers or {}), idempotent, rooted),
            authenticate=authenticate,
        )

    def send(self, request: Request, *, authenticate: bool = True) -> ApiResponse:
        """Send with retries, throttling and one token refresh; return the parsed answer or raise typed."""
        if authenticate:
            self.auth.prepare(self)
        refreshed = False
        while True:
            generation = self.auth.generation
            try:
                return self._send_with_retries(request, authenticate)
            except _TokenExpired as expired:
                if refreshed or not authenticate or not self.auth.invalidate(generation):
                    raise AuthError(
                        "access token refused after a refresh" if refreshed else expired.message,
                        platform=expired.platform,
                        status=expired.status,
                        code=expired.code,
                        body=expired.body,
                        request_id=expired.request_id,
                        url=expired.url,
                    ) from None
                refreshed = True
                self._count("token_refreshes")
                log.info("%s: access token expired (code %s); refreshing once", self.platform, expired.code)
                self.auth.prepare(self)

    def wait_before_retry(self, failures: int) -> None:
        """Sleep the retry policy's backoff for a retry decided above the client (a page served again)."""
        self._count("retries")
        self._sleep(self.retry.backoff(failures))

    # -- retry loop --

    def _send_with_retries(self, request: Request, authenticate: bool) -> ApiResponse:
        failures: Counter[str] = Counter()
        budgets = {
            "transient": self.retry.max_attempts,
            "malformed": self.retry.malformed_attempts,
            "rate_limited": self.retry.rate_limit_attempts,
        }

        def kind(error: BaseException | None) -> str:
            if isinstance(error, RateLimited):
                return "rate_limited"
            if isinstance(error, MalformedResponse):
                return "malformed"
            return "transient"

        def should_retry(error: BaseException) -> bool:
            if not isinstance(error, TransientError):
                return False
            # A push that may have been applied is not replayed: the caller reconciles instead.
            if not (
                request.replay_safe or isinstance(error, RateLimited) or getattr(error, "not_sent", False)
            ):
                return False
            failures[kind(error)] += 1
            return True

        def stop(state: tenacity.RetryCallState) -> bool:
            error = state.outcome.exception() if state.outcome else None
            kind_of_error = kind(error)
            return failures[kind_of_error] >= budgets[kind_of_error]

        def wait(state: tenacity.RetryCallState) -> float:
            error = state.outcome.exception() if state.outcome else None
            if isinstance(error, RateLimited):
                hint = error.retry_after if error.retry_after is not None else self.retry.retry_after_default
                return min(max(hint, 0.0), self.retry.retry_after_max)
            return self.retry.backoff(failures[kind(error)])

        def before_sleep(state: tenacity.RetryCallState) -> None:
            self._count("retries")
            error = state.outcome.exception() if state.outcome else None
            log.warning(
                "%s: %s, retrying in %.2fs (attempt %d): %s",
                self.platform,
                type(error).__name__,
                state.upcoming_sleep,
                state.attempt_number,
                error,
            )

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(should_retry),
            stop=stop,
            wait=wait,
            sleep=self._sleep,
            before_sleep=before_sleep,
            reraise=True,
        )
        return retrying(self._attempt, request, authenticate)

    # -- one exchange --

    def _attempt(self, request: Request, authenticate: bool) -> ApiResponse:
        waited = self.throttle.before_request()
        if waited > 0:
            with self._stats_lock:
                self.stats.throttle_waits += 1
                self.stats.throttle_wait_seconds += waited
            self._sleep(waited)

        outgoing = request.copy()
        outgoing.url = self.url_for(request.url, request.rooted)
        outgoing.headers = {**self.default_headers, **outgoing.headers}
        if outgoing.json is not None:
            outgoing.headers.setdefault("Content-Type", "application/json")
        if authenticate:
            self.auth.apply(outgoing)
        shown_url = self._redact(
            outgoing.url + ("?" + urlencode(outgoing.params, doseq=True) if outgoing.params else "")
        )
        started = time.monotonic()
        try:
            response = self.session.request(
                outgoing.method,
                outgoing.url,
                params=outgoing.params or None,
                json=outgoing.json,
                headers=outgoing.headers,
                timeout=self.timeout,
                allow_redirects=False,  # requests would resend custom auth headers to the new host
            )
        except requests.RequestException as exc:
            self._count("requests")
            raise self._wire_error(exc, shown_url) from None  # the cause's text may hold the URL's token
        self._count("requests")
        with self._stats_lock:
            self.stats.status_counts[response.status_code] += 1
        self.throttle.observe(response.headers)
        shown_url = self._redact(response.url or shown_url)
        log.debug(
            "%s %s %s -> %s in %.3fs",
            self.platform,
            outgoing.method,
            shown_url,
            response.status_code,
            time.monotonic() - started,
        )
        return self._interpret(response, shown_url)

    def _wire_error(self, exc: requests.RequestException, shown_url: str) -> ConnectorError:
        detail = self._redact(f"{type(exc).__name__}: {exc}")
        if isinstance(
            exc, requests.exceptions.ChunkedEncodingError | requests.exceptions.ContentDecodingError
        ):
            self._count("malformed")
            return MalformedResponse(
                f"truncated or undecodable body ({detail})", platform=self.platform, url=shown_url
            )
        if isinstance(exc, requests.ConnectTimeout):
            self._count("network_errors")
            error = TransientError(f"connect timeout ({detail})", platform=self.platform, url=shown_url)
            error.not_sent = True  # the request never reached the platform: safe to replay even a push
            return error
        if isinstance(exc, requests.Timeout):
            self._count("network_errors")
            return TransientError(f"read timeout ({detail})", platform=self.platform, url=shown_url)
        if isinstance(exc, requests.ConnectionError):
            self._count("network_errors")
            return TransientError(f"connection error ({detail})", platform=self.platform, url=shown_url)
        return ConnectorError(f"request failed ({detail})", platform=self.platform, url=shown_url)

    def _interpret(self, response: requests.Response, shown_url: str) -> ApiResponse:
        policy = self.errors
        status = response.status_code
        request_id = response.headers.get(policy.request_id_header) if policy.request_id_header else None

        def text() -> str:  # redacted only for an error: scanning every page took a fifth of a backfill
            return self._redact(response.text or "")

        fields = {"platform": self.platform, "status": status, "request_id": request_id, "url": shown_url}

        if status in policy.rate_limit.statuses:
            self._count("rate_limited")
            self.throttle.on_rate_limited()
            hint = _retry_after(response.headers.get(policy.rate_limit.retry_after_header or "", ""))
            raise RateLimited("rate limited", retry_after=hint, body=text(), **fields)
        if status >= 500:
            self._count("server_errors")
            raise TransientError("server error", body=text(), **fields)
        if 300 <= status < 400:
            location = self._redact(response.headers.get("Location", ""))
            raise ApiError(f"unexpected redirect to {location or '?'}", body=text(), **fields)

        body: Any = None
        if response.content:
            try:
                body = decode_json(response)
            except ValueError:
                if status < 400:
                    self._count("malformed")
                    raise MalformedResponse(
                        "response body is not valid JSON", body=text()[:200], **fields
                    ) from None
        if policy.request_id_path and request_id is None:
            found = dig(body, policy.request_id_path)
            fields["request_id"] = request_id = None if found is None else str(found)
        code, message = policy.body_error(body) if isinstance(body, Mapping) else (None, None)
        message = self._redact(message) if message else None
        fields["code"] = code

        if status >= 400:
            summary = message or (response.reason or "error")
            if code in policy.token_expired_codes:
                raise _TokenExpired(summary, body=text(), **fields)
            if status in policy.auth_statuses or code in policy.auth_codes:
                raise AuthError(f"credentials refused: {summary}", body=text(), **fields)
            raise ApiError(summary, body=text(), **fields)
        if code is not None:  # an error inside an HTTP 2xx body
            summary = message or "error"
            limit = policy.rate_limit
            if code in limit.body_codes:
                self._count("rate_limited")
                self.throttle.on_rate_limited()
                hint = limit.retry_after_from_body(body) if limit.retry_after_from_body else None
                raise RateLimited(f"rate limited: {summary}", retry_after=hint, body=text(), **fields)
            if code in limit.quota_codes:
                raise QuotaExhausted(f"quota exhausted: {summary}", body=text(), **fields)
            if code in policy.token_expired_codes:
                raise _TokenExpired(summary, body=text(), **fields)
            if code in policy.auth_codes:
                raise AuthError(f"credentials refused: {summary}", body=text(), **fields)
            if code in policy.transient_codes:
                self._count("server_errors")
                raise TransientError(f"platform busy: {summary}", body=text(), **fields)
            raise ApiError(summary, body=text(), **fields)
        return ApiResponse(status, response.headers, body, shown_url, request_id, response.links)

    # -- helpers --

    def _redact(self, text: str) -> str:
        return redact(text, self.auth.secret_values())

    def _count(self, name: str) -> None:
        with self._stats_lock:
            setattr(self.stats, name, getattr(self.stats, name) + 1)


def _retry_after(value: str) -> float | None:
    """Seconds from a Retry-After value: a (possibly fractional) number, or an HTTP date."""
    value = (value or "").strip()
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)
