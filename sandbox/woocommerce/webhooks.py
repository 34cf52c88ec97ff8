"""WooCommerce's webhooks, the wire format only (``sandbox.webhooks`` delivers them); core
``includes/class-wc-webhook.php`` is the source for each point.

- ``POST /wp-json/wc/v3/webhooks`` ``{"name", "topic", "delivery_url", "secret", "status"}`` (the REST auth of
  every other route), ``GET`` the list, ``DELETE .../webhooks/{id}?force=true`` (without ``force``: 501
  ``woocommerce_rest_trash_not_supported``). Creating an active webhook sends core's ping (``deliver_ping``):
  a POST of ``webhook_id=<id>`` with only the ``Hookshot`` user agent, no signature headers.
- Topics ``order.created`` / ``order.updated`` (a cancellation is an update) / ``order.deleted`` /
  ``order.restored`` (the world deletes nothing, so those two never fire). Body = the REST v3 order as
  ``wp_json_encode`` writes it (slashes escaped, non-ASCII as ``\\u`` escapes); headers ``X-WC-Webhook-*``,
  the signature base64 HMAC-SHA256 of the body keyed by the webhook's secret (``generate_signature``).
- No retry. A success is a 2xx, 301 or 302 (``log_delivery``); a failure when the webhook's failure count is
  already past 5 disables it, else counts one (``failed_delivery``): the 7th consecutive failure disables.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any

import requests
from fastapi import FastAPI, Request, Response

from sandbox.admin import json_response
from sandbox.faults import Faults
from sandbox.webhooks import (
    Change,
    Delivery,
    Message,
    Outgoing,
    Subscription,
    WebhookDispatcher,
    console_subscription,
)
from sandbox.woocommerce.render import WooRenderer, render_order
from sandbox.woocommerce.store import WooStore
from sandbox.woocommerce.wire import API_PREFIX, WC_VERSION
from sandbox.world import World

TOPICS = ("order.created", "order.updated", "order.deleted", "order.restored")
MAX_FAILURES = 5  # woocommerce_max_webhook_delivery_failures' default
USER_AGENT = f"WooCommerce/{WC_VERSION} Hookshot (WordPress/6.7.1)"


def webhook_extra(secret: str) -> dict[str, str]:
    """The secret the hub registers its webhooks with (WooCommerce signs each webhook with the secret it was
    created with; the merchant's side chooses it): derived from the sandbox's own secret for the demo."""
    return {"webhook_secret": "wcwh_" + hashlib.sha256(f"woo-webhook:{secret}".encode()).hexdigest()[:32]}


def wp_json_encode(payload: Any) -> bytes:
    """PHP's ``json_encode`` default flags: ASCII only, ``/`` escaped."""
    return json.dumps(payload, separators=(",", ":")).replace("/", "\\/").encode()


class WooWebhooks:
    retry_delays: tuple[float, ...] = ()
    max_failures = MAX_FAILURES
    batches = False

    def __init__(self, world: World, faults: Faults, renderer: WooRenderer, store: WooStore) -> None:
        self.world, self.faults, self.renderer, self.store = world, faults, renderer, store

    def messages(self, change: Change) -> list[Message]:
        if not change.created and not change.kinds:
            return []
        state = change.state
        order_id = str(self.renderer.order_id(state.index))
        body = wp_json_encode(render_order(self.faults, self.renderer, state, self.store))
        topic = "order.created" if change.created else "order.updated"
        return [Message(topic, order_id, self.world.now_ts(), body)]

    def poll(self) -> list[Message]:
        return []

    def request(self, delivery: Delivery, *, forged: bool) -> Outgoing:
        message, subscription = delivery.messages[0], delivery.subscription
        key = ("forged-" if forged else "") + subscription.secret
        signature = base64.b64encode(hmac.new(key.encode(), message.payload, hashlib.sha256).digest())
        resource, event = message.topic.split(".", 1)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-WC-Webhook-Source": self.renderer.base_url.rstrip("/") + "/",
            "X-WC-Webhook-Topic": message.topic,
            "X-WC-Webhook-Resource": resource,
            "X-WC-Webhook-Event": event,
            "X-WC-Webhook-Signature": signature.decode(),
            "X-WC-Webhook-ID": subscription.id,
            "X-WC-Webhook-Delivery-ID": delivery.id.replace("-", ""),
        }
        return Outgoing(message.payload, headers)

    def acknowledged(self, response: requests.Response) -> bool:
        return 200 <= response.status_code < 303

    def subscription(self, dispatcher: WebhookDispatcher, body: dict[str, Any]) -> Subscription:
        if body.get("topic") is not None and body["topic"] not in TOPICS:
            raise ValueError(f"topic must be one of {', '.join(TOPICS)}")
        return console_subscription(dispatcher, body, str(body.get("secret") or ""))

    def view(self, subscription: Subscription) -> dict[str, Any]:
        resource, event = (subscription.topic or "order.updated").split(".", 1)
        created = subscription.fields.get("date_created_gmt", "")
        return {
            "id": int(subscription.id),
            "name": subscription.fields.get("name", ""),
            "status": subscription.status,
            "topic": subscription.topic,
            "resource": resource,
            "event": event,
            "hooks": [f"woocommerce_{'new' if event == 'created' else event}_order"],
            "delivery_url": subscription.address,
            "date_created": created,
            "date_created_gmt": created,
            "date_modified": created,
            "date_modified_gmt": created,
            "_links": {
                "self": [{"href": f"{self.renderer.base_url}{API_PREFIX}/webhooks/{subscription.id}"}],
                "collection": [{"href": f"{self.renderer.base_url}{API_PREFIX}/webhooks"}],
            },
        }

    def add_routes(self, app: FastAPI, dispatcher: WebhookDispatcher) -> None:
        @app.post(API_PREFIX + "/webhooks")
        async def create_webhook(request: Request) -> Response:
            try:
                body = await request.json()
            except ValueError:
                body = None
            if not isinstance(body, dict):
                body = {}
            missing = [name for name in ("topic", "delivery_url") if not body.get(name)]
            if missing:
                message = f"Missing parameter(s): {', '.join(missing)}"
                params = {name: f"{name} is a required property" for name in missing}
                error = {"code": "rest_missing_callback_param", "message": message}
                return json_response({**error, "data": {"status": 400, "params": missing, **params}}, 400)
            if body["topic"] not in TOPICS:
                message = "Webhook topic is required and must be valid."
                error = {"code": "woocommerce_rest_webhook_invalid_topic", "message": message}
                return json_response({**error, "data": {"status": 400}}, 400)
            status = str(body.get("status") or "active")
            secret = str(body.get("secret") or "")
            created_gmt = datetime.fromtimestamp(self.world.now_ts(), UTC).strftime("%Y-%m-%dT%H:%M:%S")
            subscription = Subscription(
                str(dispatcher.next_id()),
                str(body["topic"]),
                str(body["delivery_url"]),
                secret,
                status=status,
                fields={"name": str(body.get("name") or ""), "date_created_gmt": created_gmt},
            )
            dispatcher.add(subscription)
            if status == "active":  # core pings a webhook when it is first saved active
                ping = Outgoing(
                    f"webhook_id={subscription.id}".encode(),
                    {"User-Agent": USER_AGENT, "Content-Type": "application/x-www-form-urlencoded"},
                )
                await asyncio.to_thread(dispatcher.send_now, subscription.address, ping)
            return json_response(self.view(subscription), 201)

        @app.get(API_PREFIX + "/webhooks")
        def list_webhooks() -> Response:
            return json_response([self.view(s) for s in dispatcher.subscriptions()])

        @app.delete(API_PREFIX + "/webhooks/{webhook_id}")
        def delete_webhook(webhook_id: str, force: str = "") -> Response:
            if force not in ("true", "1"):
                message = "Webhooks do not support trashing."
                error = {"code": "woocommerce_rest_trash_not_supported", "message": message}
                return json_response({**error, "data": {"status": 501}}, 501)
            found = dispatcher.get(webhook_id)
            if found is None:
                error = {"code": "woocommerce_rest_webhook_invalid_id", "message": "Invalid ID."}
                return json_response({**error, "data": {"status": 404}}, 404)
            view = self.view(found)
            dispatcher.remove(webhook_id)
            return json_response(view)
