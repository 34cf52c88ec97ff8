"""WooCommerce's webhooks: what a delivery looks like and how the hub trusts it (``CONTRACT``); subscribing is
the connector's (``create_webhook``/``list_webhooks``/``delete_webhook``, REST ``/wc/v3/webhooks``).

Wire [C: WooCommerce core ``includes/class-wc-webhook.php`` (``deliver``, ``get_new_delivery_headers``,
``generate_signature``, ``deliver_ping``) and the REST docs' ``_webhooks.md``; docs/platform-notes.md]:
- ``X-WC-Webhook-Signature`` = base64(HMAC-SHA256(key = the webhook's secret, the body as sent)); the
  secret is the one the hub gave when it created the webhook: the connection extra ``webhook_secret``.
- ``X-WC-Webhook-ID`` (the subscription) and ``X-WC-Webhook-Delivery-ID`` (this delivery): the event id is
  both, since delivery ids are per webhook. ``X-WC-Webhook-Topic`` (``order.updated``), ``-Resource``,
  ``-Event``, ``-Source`` (the site's URL).
- The body is the REST v3 order, the same JSON ``GET /orders/{id}`` answers: the order payload itself.
- On creation WooCommerce POSTs a ping, form-encoded ``webhook_id=<n>``, with only its user agent: no
  signature and no webhook headers (``deliver_ping``), and it marks the webhook failed unless answered 200.
  It is answered 200 with no events: nothing is stored from it, so an unsigned ping can forge nothing.
- No time is signed: no replay window; a replay repeats a delivery id already in the inbox (dedupe).
"""

from __future__ import annotations

import re
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

TOPICS = ("order.created", "order.updated", "order.deleted", "order.restored")
_PING = re.compile(rb"webhook_id=\d{1,20}")


def _ping(request: WebhookRequest) -> Verified | None:
    """The creation ping: exactly ``webhook_id=<n>`` and no WooCommerce delivery headers."""
    if request.headers.get("x-wc-webhook-signature") or request.headers.get("x-wc-webhook-topic"):
        return None
    return Verified(()) if _PING.fullmatch(request.body.strip()) else None


def _read(request: WebhookRequest, keys: WebhookKeys) -> Verified:
    topic = request.headers.get("x-wc-webhook-topic") or ""
    webhook_id = request.headers.get("x-wc-webhook-id") or ""
    delivery_id = request.headers.get("x-wc-webhook-delivery-id") or ""
    if not topic or not webhook_id or not delivery_id:
        raise ValueError("delivery without its topic, webhook id or delivery id header")
    body: Any = json_body(request)
    if not isinstance(body, dict):
        raise TypeError("body is not a JSON object")
    event_id = f"{webhook_id}:{delivery_id}"
    if not topic.startswith("order."):  # a topic subscribed by hand: stored as no order, not retried
        return Verified((WebhookEvent(event_id, topic, None),))
    # order.deleted carries only {"id": n} (the order is in the trash or gone): the receiver fetches it.
    payload = body if topic != "order.deleted" else None
    return Verified((WebhookEvent(event_id, topic, str(int(body["id"])), payload),))


CONTRACT = DeclaredContract(
    platform="woocommerce",
    topics=TOPICS,
    registration="api",
    signature=hmac_header_rule("x-wc-webhook-signature"),
    read=_read,
    replay_window=None,
    unsigned_ack=_ping,
)
