"""Typed connector errors, and the one place that keeps secrets out of their text.

Hierarchy (callers catch the narrowest class they can act on):

    ConnectorError             anything a connector raises
    ├── TransientError         worth retrying later (5xx, timeouts, connection resets)
    │   ├── RateLimited        the platform said "slow down" (HTTP 429, or a body code such as errcode 45011)
    │   └── MalformedResponse  a body that is not the JSON it should be (truncated, HTML error page, ...)
    └── ApiError               the platform rejected the request (4xx, body error codes); retrying won't help
        ├── AuthError          bad, revoked or expired credentials (401/403, errcode 40001/42001, 4201)
        │   └── InsecureTransport  refused before sending: the credential would cross the network in clear
        ├── QuotaExhausted     a quota that does not refill soon (WeChat errcode 45009, daily quota)
        └── PageCapExceeded    more records than the API lets us page through (the window gets narrowed)

The client raises a TransientError only after its retry budget is spent, so a caller that sees one knows the
platform stayed unhealthy for the whole budget.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

REDACTED = "***"

# Names whose value is a credential on some platform, wherever they stand in a text: query and form parameters
# (WeChat/Youzan access_token, Taobao session + sign, WooCommerce consumer_secret and OAuth 1.0a
# oauth_signature, webhook signature / hmac / msg_signature), JSON and Python-repr keys ('access_token': ...)
# and HTTP headers (Authorization: Bearer ..., X-Shopify-Access-Token: ...). Their values are masked.
SENSITIVE_PARAM_NAMES: frozenset[str] = frozenset(
    {
        "access_token",
        "token",
        "secret",
        "client_secret",
        "appsecret",
        "app_secret",
        "consumer_key",
        "consumer_secret",
        "session",
        "sign",
        "signature",
        "msg_signature",
        "oauth_signature",
        "hmac",
        "refresh_token",
        "password",
        "authorization",
        "x-shopify-access-token",
        "x-shopify-hmac-sha256",
        "x-wc-webhook-signature",
    }
)
_NAMES = "|".join(sorted((re.escape(name) for name in SENSITIVE_PARAM_NAMES), key=len, reverse=True))
_PARAM_PATTERN = re.compile(
    r"(?<![A-Za-z0-9_-])(?P<key>(?:" + _NAMES + r"))"
    # name=value, url-encoded, "name": "value" (JSON), 'name': 'value' (a Python repr), Name: value (a header,
    # with its scheme kept)
    r"(?P<sep>=|%3D|\"\s*:\s*\"|'\s*:\s*'|\s*:\s*(?:(?:Bearer|Basic|Token|OAuth)\s+)?)"
    r"(?P<value>[^&\s\"',;}]+)",
    re.IGNORECASE,
)
# Values this process knows to be secret wherever they appear (a webhook URL's path holds its token): a tuple,
# replaced whole on registration, so a redaction in another thread never sees it change under it.
_registered: tuple[str, ...] = ()


def register_secret(value: str) -> None:
    """Mask ``value`` in every text this process redacts from now on (connector errors, urllib3's logs)."""
    global _registered
    if value and len(value) >= 4 and value not in _registered:
        _registered = (*_registered, value)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Mask every known secret value and every sensitive ``name=value`` pair in ``text``."""
    for secret in (*secrets, *_registered):
        if secret and len(secret) >= 4:  # a 1-3 character "secret" would mask random text, and is no secret
            text = text.replace(secret, REDACTED)
    return _PARAM_PATTERN.sub(lambda m: f"{m.group('key')}{m.group('sep')}{REDACTED}", text)


class ConnectorError(Exception):
    """Base class. Carries what ops need to act (platform, HTTP status, platform code, request id), never a
    credential: the client redacts ``message``/``body`` before constructing the error."""

    def __init__(
        self,
        message: str,
        *,
        platform: str = "",
        status: int | None = None,
        code: str | None = None,
        body: str = "",
        request_id: str | None = None,
        url: str = "",
    ) -> None:
        self.message = message
        self.platform = platform
        self.status = status
        self.code = code
        self.body = body
        self.request_id = request_id
        self.url = url
        super().__init__(self.__str__())

    def __str__(self) -> str:
        parts = [f"{self.platform}: {self.message}" if self.platform else self.message]
        if self.status is not None:
            parts.append(f"status={self.status}")
        if self.code is not None:
            parts.append(f"code={self.code}")
        if self.request_id:
            parts.append(f"request_id={self.request_id}")
        if self.url:
            parts.append(f"url={self.url}")
        if self.body:
            parts.append(f"body={self.body[:500]}")
        return " | ".join(parts)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.__str__()!r})"

    def __reduce__(self):  # keep the keyword fields when pickled (Airflow ships exceptions between processes)
        return (_rebuild, (type(self), self.message, self.__dict__.copy()))


def _rebuild(cls: type[ConnectorError], message: str, state: dict) -> ConnectorError:
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.__dict__.update(state)
    return error


class TransientError(ConnectorError):
    """Retryable: the platform or the network failed, not the request."""


class RateLimited(TransientError):
    """The platform throttled us. ``retry_after`` is its hint in seconds (None when it gave none)."""

    def __init__(self, message: str, *, retry_after: float | None = None, **fields) -> None:
        self.retry_after = retry_after
        super().__init__(message, **fields)


class MalformedResponse(TransientError):
    """The body was not what the API promises (not JSON, truncated, wrong shape)."""


class ApiError(ConnectorError):
    """The platform rejected the request itself; retrying the same request will fail the same way."""


class AuthError(ApiError):
    """The credentials were refused (after one refresh, where the platform's tokens can be refreshed)."""


class InsecureTransport(AuthError):
    """Refused by the connector before any request: the configured credential would travel in clear text
    (HTTP Basic or query-string keys over plain ``http://`` to a host that is not this machine)."""


class QuotaExhausted(ApiError):
    """A quota that does not refill within a retry budget (e.g. WeChat errcode 45009, the daily quota)."""


class PageCapExceeded(ApiError):
    """The window holds more records than the API lets us page through; the caller narrows the window."""
