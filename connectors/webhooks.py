"""What a platform's push events look like to the hub, declared once: every platform that can push (its
package's ``webhooks.py``, named by its declaration's ``webhooks``) gives a ``WebhookContract`` that
verifies a delivery on its raw bytes and says which orders it concerns; the receiver
(``channelhub.webhooks``) does the rest the same way for all of them (inbox, dedupe, fetch, map, ingest).

Order of work for a delivery, and why:
1. size cap, then the signature over the *raw* body (a parsed-and-reserialised body no longer matches),
   compared in constant time; a missing or bad signature, or a signed timestamp outside the replay window,
   is ``WebhookRefused`` (401) and nothing is stored;
2. only then is the body parsed into ``WebhookEvent``s (one delivery may carry several: Douyin batches);
3. the receiver stores each event in the inbox under ``(channel, event_id)`` before answering, so a
   duplicate delivery answers 200 and does nothing.

Pure functions over bytes and keys: no I/O here (registration, which is I/O, lives with the platform's
connector and is called by the CLI).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from connectors.auth import Secret
from connectors.errors import ApiError

# A Shopify order with 250 lines is ~400 kB; anything past 2 MiB is not one order.
MAX_BODY_BYTES = 2 * 1024 * 1024

RefusalReason = Literal["missing_signature", "bad_signature", "stale", "too_large", "malformed", "no_keys"]


class WebhookRefused(Exception):
    """A delivery the hub will not store. ``status`` is what the sender gets: 401 for anything about the
    signature or its time (a sender must not learn which), 413 too large, 400 malformed after a good
    signature."""

    def __init__(self, reason: RefusalReason, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.status = status or {"too_large": 413, "malformed": 400}.get(reason, 401)


@dataclass(frozen=True, slots=True)
class WebhookRequest:
    """One delivery as received: header names lower-cased, the query string decoded, the body untouched."""

    method: str
    headers: Mapping[str, str]
    query: Mapping[str, str]
    body: bytes
    received_at: datetime  # the hub's clock, aware UTC


@dataclass(frozen=True, slots=True)
class WebhookKeys:
    """The channel's keys for verifying deliveries, from its Airflow connection (login, password, extra):
    which field holds what is the platform contract's business (``WebhookContract.keys_needed``)."""

    login: str | None
    secret: Secret
    extra: Mapping[str, Any] = field(default_factory=dict)

    def extra_secret(self, name: str) -> Secret:
        value = self.extra.get(name)
        if not isinstance(value, str) or not value:
            raise WebhookRefused("no_keys", f"the channel's connection has no {name!r} in its extra")
        return Secret(value)


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    """One verified event. ``order_payload`` is the order exactly as the platform's order API renders it
    when the body carries it whole (Shopify, WooCommerce); otherwise None and the receiver fetches
    ``order_id`` with the connector's ``get_order``."""

    event_id: str  # the platform's id for this event (dedupe key, unique per channel)
    topic: str  # the platform's own name (``orders/create``, ``order.updated``, ``channels_ec_order_pay``)
    order_id: str | None  # the platform's order id; None: not about an order (``app/uninstalled``, a ping)
    order_payload: dict[str, Any] | None = None
    occurred_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class WebhookAnswer:
    """What the receiver answers once the events are stored (the platform's own acknowledgement)."""

    status: int = 200
    body: bytes = b""
    media_type: str = "text/plain"


@dataclass(frozen=True, slots=True)
class Verified:
    events: tuple[WebhookEvent, ...]
    answer: WebhookAnswer = WebhookAnswer()


@dataclass(frozen=True, slots=True)
class Subscription:
    """One registered webhook subscription on the platform."""

    id: str
    topic: str
    address: str


class WebhookContract(Protocol):
    """A platform's push events. ``verify`` raises ``WebhookRefused``; it never does I/O."""

    platform: str
    topics: tuple[str, ...]  # what ``register`` subscribes to by default
    replay_window: timedelta | None  # signed timestamps older than this are refused; None: none is signed
    # "api": the connector creates subscriptions (``register``); "console": the platform has no API for it,
    # a person sets the URL in the platform's console (``console_steps`` says where).
    registration: Literal["api", "console"]

    def verify(self, request: WebhookRequest, keys: WebhookKeys) -> Verified: ...

    def console_steps(self, url: str) -> str: ...


class RegistersWebhooks(Protocol):
    """What a connector of an ``api`` registration platform offers."""

    def create_webhook(self, topic: str, address: str) -> Subscription: ...

    def list_webhooks(self) -> list[Subscription]: ...

    def delete_webhook(self, subscription_id: str) -> None: ...


# -- what several platforms' signatures share ----------------------------------------------------------------


def hmac_sha256_base64(key: Secret | str, body: bytes) -> str:
    raw = key.reveal() if isinstance(key, Secret) else key
    return base64.b64encode(hmac.new(raw.encode(), body, hashlib.sha256).digest()).decode()


def require_signature(given: str | None, expected: str) -> None:
    """Constant-time comparison; missing and wrong are told apart only in the hub's own records."""
    if not given:
        raise WebhookRefused("missing_signature", "the delivery carries no signature")
    if not hmac.compare_digest(given.strip().encode(), expected.encode()):
        raise WebhookRefused("bad_signature", "the delivery's signature does not match")


def require_fresh(signed_at: datetime, request: WebhookRequest, window: timedelta) -> None:
    """A signed timestamp more than ``window`` away from the hub's clock is a replay (or a clock to fix)."""
    if abs(request.received_at - signed_at) > window:
        raise WebhookRefused(
            "stale", f"signed at {signed_at.isoformat()}, outside the {window} replay window"
        )


def require_size(request: WebhookRequest, limit: int = MAX_BODY_BYTES) -> None:
    if len(request.body) > limit:
        raise WebhookRefused("too_large", f"body of {len(request.body)} bytes is over {limit}")


def md5_hex_wrapped(prefix: Secret | str, message: bytes, suffix: Secret | str) -> str:
    """Lower-case hex md5 of ``prefix + message + suffix``: the Chinese platforms' push signature, with the
    app's id or key before the signed bytes and its secret after them (Youzan: client_id + msg +
    client_secret; Douyin: app_key + body + app_secret)."""
    before = prefix.reveal() if isinstance(prefix, Secret) else prefix
    after = suffix.reveal() if isinstance(suffix, Secret) else suffix
    return hashlib.md5(before.encode() + message + after.encode()).hexdigest()


def json_body(request: WebhookRequest) -> Any:
    """The body as JSON; anything else raises ``ValueError`` (``malformed`` once the signature held)."""
    return json.loads(request.body.decode("utf-8"))


def json_envelope(request: WebhookRequest, signed_field: str) -> dict[str, Any] | None:
    """The body as a JSON object holding the string ``signed_field`` (what the platform signs: WeChat's
    ``Encrypt``, Youzan's ``msg``); None for anything else, which then has no signature to check."""
    try:
        body = json_body(request)
    except ValueError:
        return None
    return body if isinstance(body, dict) and isinstance(body.get(signed_field), str) else None


# (given, expected): the signature the delivery carries (None: none) and the one the keys make of it.
SignatureRule = Callable[[WebhookRequest, WebhookKeys], tuple[str | None, str]]
# What a verified delivery says: its events and the platform's acknowledgement.
EventReader = Callable[[WebhookRequest, WebhookKeys], Verified]


def hmac_header_rule(header: str) -> SignatureRule:
    """Shopify's and WooCommerce's scheme: ``header`` carries base64(HMAC-SHA256(the raw body)), keyed by the
    secret the connection keeps in its extra as ``webhook_secret``."""

    def rule(request: WebhookRequest, keys: WebhookKeys) -> tuple[str | None, str]:
        expected = hmac_sha256_base64(keys.extra_secret("webhook_secret"), request.body)
        return request.headers.get(header), expected

    return rule


@dataclass(frozen=True, slots=True)
class DeclaredContract:
    """A ``WebhookContract`` as data: most platforms differ only in where the signature is, how it is made,
    whether a time is signed and how events read. ``verify`` runs the one order of work for all of them
    (size, signature, replay window, parse); a reader's ``ValueError``/``KeyError``/``TypeError`` after a
    good signature is ``malformed`` (400): the platform signed it, so it is theirs to fix, not a forgery."""

    platform: str
    topics: tuple[str, ...]
    registration: Literal["api", "console"]
    signature: SignatureRule
    read: EventReader
    replay_window: timedelta | None = None
    signed_at: Callable[[WebhookRequest], datetime] | None = None  # the signed time (with replay_window)
    # A delivery answered without a signature and without events (WooCommerce's unsigned creation ping):
    # nothing is stored from it, so nothing can be forged through it.
    unsigned_ack: Callable[[WebhookRequest], Verified | None] | None = None
    steps: str = ""  # console_steps' text; ``{url}`` is the receiver's address

    def verify(self, request: WebhookRequest, keys: WebhookKeys) -> Verified:
        require_size(request)
        if self.unsigned_ack is not None and (ack := self.unsigned_ack(request)) is not None:
            return ack
        given, expected = self.signature(request, keys)
        require_signature(given, expected)
        if self.replay_window is not None and self.signed_at is not None:
            try:
                signed_at = self.signed_at(request)
            except (ValueError, KeyError, TypeError, OverflowError):
                raise WebhookRefused("stale", "the signed timestamp is not a time") from None
            require_fresh(signed_at, request, self.replay_window)
        try:
            return self.read(request, keys)
        except (ValueError, KeyError, TypeError, AttributeError, IndexError) as error:
            # The error's type only: its text may quote the body (personal data).
            raise WebhookRefused("malformed", f"signed body unreadable ({type(error).__name__})") from None

    def console_steps(self, url: str) -> str:
        if self.steps:
            return self.steps.format(url=url)
        return f"run `channelhub webhooks register` for this channel: it subscribes {url} through the API"


class SubscriptionRefused(ApiError):
    """The platform refused to create or delete a webhook subscription (Shopify's ``userErrors``, a
    WooCommerce 4xx): the request as written will not pass, retrying will not help."""
