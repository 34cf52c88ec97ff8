"""Shopify's webhook contract as the receiver tests need it, until ``platforms/shopify/webhooks.py`` (branch
b-plat) is on main: the same wire (``X-Shopify-Hmac-Sha256`` over the raw body keyed by the connection's
extra ``webhook_secret``, ``X-Shopify-Webhook-Id`` the event id, order topics carry the order,
``refunds/create`` its ``order_id``). ``install()`` does nothing once the platform declares its own."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Literal

from channelhub.platforms import get_platform
from connectors.webhooks import (
    Verified,
    WebhookEvent,
    WebhookKeys,
    WebhookRefused,
    WebhookRequest,
    hmac_sha256_base64,
    require_signature,
)


class ShopifyStandIn:
    platform = "shopify"
    topics = ("orders/create", "orders/updated", "orders/cancelled", "refunds/create", "app/uninstalled")
    replay_window: timedelta | None = None
    registration: Literal["api", "console"] = "api"

    def verify(self, request: WebhookRequest, keys: WebhookKeys) -> Verified:
        expected = hmac_sha256_base64(keys.extra_secret("webhook_secret"), request.body)
        require_signature(request.headers.get("x-shopify-hmac-sha256"), expected)
        topic, event_id = request.headers.get("x-shopify-topic"), request.headers.get("x-shopify-webhook-id")
        try:
            body = json.loads(request.body)
        except ValueError:
            raise WebhookRefused("malformed", "not JSON") from None
        if not topic or not event_id or not isinstance(body, dict):
            raise WebhookRefused("malformed", "no topic or webhook id")
        if topic.startswith("orders/"):
            return Verified((WebhookEvent(event_id, topic, str(body["id"]), body),))
        if topic == "refunds/create":
            return Verified((WebhookEvent(event_id, topic, str(body["order_id"])),))
        return Verified((WebhookEvent(event_id, topic, None),))

    def console_steps(self, url: str) -> str:
        return f"subscribe {url}"


def install() -> None:
    platform = get_platform("shopify")
    if platform.webhook_contract is None:
        platform.__dict__["webhook_contract"] = ShopifyStandIn()  # the cached_property's slot
