"""Shopify's webhooks: what a delivery looks like and how the hub trusts it (``CONTRACT``); subscribing is the
connector's (``create_webhook``/``list_webhooks``/``delete_webhook``, GraphQL).

Wire [C: shopify.dev "Verify webhooks", the ruby API library's ``Webhooks::Request``; docs/platform-notes.md]:
- ``X-Shopify-Hmac-Sha256`` = base64(HMAC-SHA256(key = the app's client secret, the raw body)); the key is
  the connection's extra ``webhook_secret`` (the app's client secret is no access token, so it is kept apart).
  After a secret rotation Shopify may sign with the old secret for up to an hour: rotate the extra after that.
- ``X-Shopify-Webhook-Id``: the same on every retry of one delivery, so it is the event id (dedupe key).
- ``X-Shopify-Topic``, ``X-Shopify-Triggered-At``, ``X-Shopify-Shop-Domain``, ``X-Shopify-API-Version``.
- No time is signed (the HMAC covers the body alone), so there is no replay window: a replayed delivery has
  the webhook id already in the inbox and is answered 200 without effect; dedupe is the protection.
- Order topics carry the REST order as the body (for the subscription's API version); ``refunds/create``
  carries the refund, whose ``order_id`` the receiver fetches; ``app/uninstalled`` concerns no order.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from connectors.webhooks import (
    DeclaredContract,
    Verified,
    WebhookEvent,
    WebhookKeys,
    WebhookRequest,
    hmac_header_rule,
    json_body,
)

ORDER_TOPICS = ("orders/create", "orders/updated", "orders/cancelled")
REFUND_TOPIC = "refunds/create"
UNINSTALLED_TOPIC = "app/uninstalled"
TOPICS = (*ORDER_TOPICS, REFUND_TOPIC, UNINSTALLED_TOPIC)


def graphql_topic(topic: str) -> str:
    """``orders/create`` -> ``ORDERS_CREATE`` (GraphQL's ``WebhookSubscriptionTopic``)."""
    return topic.replace("/", "_").upper()


def rest_topic(enum: str) -> str:
    """``ORDERS_CREATE`` -> ``orders/create``; the hub names topics as deliveries do (``X-Shopify-Topic``).
    The first underscore separates resource and event (``APP_UNINSTALLED`` -> ``app/uninstalled``); the
    topics whose resource holds an underscore are named here."""
    lowered = enum.lower()
    for resource in ("fulfillment_orders", "inventory_levels", "inventory_items", "order_transactions"):
        if lowered.startswith(resource + "_"):
            return f"{resource}/{lowered[len(resource) + 1 :]}"
    resource, _, event = lowered.partition("_")
    return f"{resource}/{event}"


def _triggered_at(request: WebhookRequest) -> datetime | None:
    raw = request.headers.get("x-shopify-triggered-at")
    if not raw:
        return None
    try:
        return datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:  # informative only (not signed): a bad value does not refuse the delivery
        return None


def _read(request: WebhookRequest, keys: WebhookKeys) -> Verified:
    topic = request.headers.get("x-shopify-topic") or ""
    webhook_id = request.headers.get("x-shopify-webhook-id") or ""
    if not topic or not webhook_id:
        raise ValueError("delivery without X-Shopify-Topic or X-Shopify-Webhook-Id")
    body: Any = json_body(request)
    if not isinstance(body, dict):
        raise TypeError("body is not a JSON object")
    occurred = _triggered_at(request)
    order_id: str | None = None
    payload: dict[str, Any] | None = None
    if topic in ORDER_TOPICS:
        order_id, payload = str(int(body["id"])), body
    elif topic == REFUND_TOPIC:
        order_id = str(int(body["order_id"]))
    # Any other topic (app/uninstalled, or one subscribed by hand) is an event about no order: stored, not
    # refused, so Shopify does not retry it and remove the subscription after repeated failures.
    return Verified((WebhookEvent(webhook_id, topic, order_id, payload, occurred),))


CONTRACT = DeclaredContract(
    platform="shopify",
    topics=TOPICS,
    registration="api",
    signature=hmac_header_rule("x-shopify-hmac-sha256"),
    read=_read,
    replay_window=None,
)
