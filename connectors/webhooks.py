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
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from connectors.auth import Secret

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
