"""Shopify's webhooks, the wire format only (``sandbox.webhooks`` delivers them).

- Topics ``orders/create``, ``orders/updated``, ``orders/cancelled`` (after ``orders/updated``, as Shopify
  sends both), ``refunds/create`` (``{"id", "order_id", "created_at"}``) and ``app/uninstalled`` (when
  ``credentials_revoked`` is switched on). An ``orders/*`` body is exactly what ``orders/{id}.json`` serves
  under ``order``, rendered when the event happened (a retry repeats it: shopify.dev changelog, "Updates to
  webhook retry mechanism", 2024-09-10).
- Headers ``X-Shopify-Topic``, ``X-Shopify-Hmac-Sha256`` (base64 HMAC-SHA256 of the raw body, keyed by the
  app's client secret, ``client_secret``), ``X-Shopify-Shop-Domain``, ``X-Shopify-API-Version``,
  ``X-Shopify-Webhook-Id`` (the same on a retry or duplicate), ``X-Shopify-Event-Id``,
  ``X-Shopify-Triggered-At``.
- Retries: 8 over 4 hours with exponential backoff (the changelog above; the exact delays are not published,
  so they double from ~56 s to sum to 4 h). A 2xx is the acknowledgement.
- Registration: GraphQL ``webhookSubscriptionCreate`` / ``webhookSubscriptions`` /
  ``webhookSubscriptionDelete`` on the sandbox's GraphQL route, and REST ``webhooks.json``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from datetime import UTC, datetime
from typing import Any

import requests
from fastapi import FastAPI, Request, Response

from sandbox.faults import Faults
from sandbox.shopify.render import ShopifyRenderer, render_order
from sandbox.shopify.wire import API_PREFIX, API_VERSION, REFUND_ID_BASE, _json_response
from sandbox.webhooks import (
    Change,
    Delivery,
    Message,
    Outgoing,
    Subscription,
    WebhookDispatcher,
    console_subscription,
)
from sandbox.world import World

TOPICS = ("orders/create", "orders/updated", "orders/cancelled", "refunds/create", "app/uninstalled")
RETRY_DELAYS = tuple(4 * 3600 * 2**k / (2**8 - 1) for k in range(8))  # doubling, summing to 4 hours
_GID = "gid://shopify/WebhookSubscription/"


def client_secret(access_token: str) -> str:
    """The sandbox app's client secret (what signs its webhooks), derived from its one secret."""
    return "shpss_" + hashlib.sha256(access_token.encode()).hexdigest()[:32]


def webhook_extra(secret: str) -> dict[str, str]:
    """What the hub's connection needs to verify this sandbox's deliveries."""
    return {"webhook_secret": client_secret(secret)}


def enum_of(topic: str) -> str:
    return topic.upper().replace("/", "_")


class ShopifyWebhooks:
    retry_delays = RETRY_DELAYS
    max_failures = None
    batches = False

    def __init__(self, world: World, faults: Faults, renderer: ShopifyRenderer, access_token: str) -> None:
        self.world, self.faults, self.renderer = world, faults, renderer
        self.secret = client_secret(access_token)
        self._revoked = faults.credentials_revoked

    def _time(self, ts: int) -> str:
        return str(json.loads(self.renderer._time(ts)))

    def messages(self, change: Change) -> list[Message]:
        state = change.state
        order_id = str(self.renderer.order_id(state.index))
        now = self.world.now_ts()
        body = render_order(self.faults, self.renderer, state, None)
        topics = ["orders/create"] if change.created else ["orders/updated"] if change.kinds else []
        if "cancelled" in change.kinds:
            topics.append("orders/cancelled")
        found = [Message(topic, order_id, now, body.encode()) for topic in topics]
        for refund in state.refunds:
            if refund.at > change.since:
                payload = {
                    "id": REFUND_ID_BASE + state.index * 8 + refund.seq,
                    "order_id": int(order_id),
                    "created_at": self._time(refund.at),
                }
                found.append(Message("refunds/create", order_id, refund.at, _dumps(payload)))
        return found

    def poll(self) -> list[Message]:
        revoked = self.faults.credentials_revoked
        turned_on, self._revoked = revoked and not self._revoked, revoked
        if not turned_on:
            return []
        shop = {
            "id": self.renderer.shop_id,
            "name": self.renderer.shop_name,
            "domain": self.renderer.shop_domain,
            "myshopify_domain": self.renderer.shop_domain,
        }
        return [Message("app/uninstalled", None, self.world.now_ts(), _dumps(shop))]

    def request(self, delivery: Delivery, *, forged: bool) -> Outgoing:
        message = delivery.messages[0]
        body: bytes = message.payload
        key = ("forged-" if forged else "") + self.secret
        signature = base64.b64encode(hmac.new(key.encode(), body, hashlib.sha256).digest()).decode()
        triggered = datetime.fromtimestamp(message.occurred_ts, UTC).isoformat().replace("+00:00", "Z")
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "Shopify-Captain-Hook",
            "X-Shopify-Topic": message.topic,
            "X-Shopify-Hmac-Sha256": signature,
            "X-Shopify-Shop-Domain": self.renderer.shop_domain,
            "X-Shopify-API-Version": API_VERSION,
            "X-Shopify-Webhook-Id": delivery.id,
            "X-Shopify-Event-Id": message.event_id,
            "X-Shopify-Triggered-At": triggered,
        }
        return Outgoing(body, headers)

    def acknowledged(self, response: requests.Response) -> bool:
        return 200 <= response.status_code < 300

    def subscription(self, dispatcher: WebhookDispatcher, body: dict[str, Any]) -> Subscription:
        if body.get("topic") is not None and body["topic"] not in TOPICS:
            raise ValueError(f"topic must be one of {', '.join(TOPICS)}")
        subscription = console_subscription(dispatcher, body, self.secret)
        subscription.id = _GID + subscription.id
        return subscription

    # -- registration -------------------------------------------------------------------------------------

    def create(self, dispatcher: WebhookDispatcher, topic: str, address: str) -> Subscription:
        number = dispatcher.next_id()
        created = Subscription(_GID + str(number), topic, address, self.secret, fields={"number": number})
        return dispatcher.add(created)

    def graphql(self, dispatcher: WebhookDispatcher, query: str, variables: dict[str, Any]) -> Any:
        """The answer to a webhook subscription operation, or None when ``query`` is not one."""
        if "webhookSubscriptionCreate" in query:
            topic_name = _variable(query, "topic", variables)
            sub = _variable(query, "webhookSubscription", variables)
            topics = {enum_of(t): t for t in TOPICS}
            if topic_name not in topics:
                message = "Variable $topic of type WebhookSubscriptionTopic! was provided invalid value"
                return {"errors": [{"message": message, "extensions": {"value": topic_name}}]}
            uri = sub.get("uri") or sub.get("callbackUrl") if isinstance(sub, dict) else None
            if not isinstance(uri, str) or not uri.startswith(("http://", "https://")):
                errors = [{"field": ["webhookSubscription", "callbackUrl"], "message": "Address is invalid"}]
                return {
                    "data": {"webhookSubscriptionCreate": {"webhookSubscription": None, "userErrors": errors}}
                }
            created = self.create(dispatcher, topics[topic_name], uri)
            node = _node(created)
            return {"data": {"webhookSubscriptionCreate": {"webhookSubscription": node, "userErrors": []}}}
        if "webhookSubscriptionDelete" in query:
            gid = _variable(query, "id", variables)
            removed = dispatcher.remove(gid) if isinstance(gid, str) else None
            errors = [] if removed else [{"field": ["id"], "message": "Webhook subscription does not exist"}]
            answer = {"deletedWebhookSubscriptionId": gid if removed else None, "userErrors": errors}
            return {"data": {"webhookSubscriptionDelete": answer}}
        if re.search(r"\bwebhookSubscriptions\b", query):
            nodes = [_node(s) for s in dispatcher.subscriptions()]
            return {"data": {"webhookSubscriptions": {"nodes": nodes}}}
        return None

    def add_routes(self, app: FastAPI, dispatcher: WebhookDispatcher) -> None:
        app.state.graphql_webhooks = lambda query, variables: self.graphql(dispatcher, query, variables)

        def rest(subscription: Subscription) -> dict[str, Any]:
            return {
                "id": subscription.fields.get("number"),
                "address": subscription.address,
                "topic": subscription.topic,
                "format": "json",
                "api_version": API_VERSION,
                "fields": [],
                "metafield_namespaces": [],
            }

        @app.post(API_PREFIX + "/webhooks.json")
        async def create_webhook(request: Request) -> Response:
            try:
                given = (await request.json()).get("webhook") or {}
            except (ValueError, AttributeError):
                given = {}
            topic, address = given.get("topic"), given.get("address")
            errors: dict[str, list[str]] = {}
            if topic not in TOPICS:
                errors["topic"] = ["Invalid topic specified."]
            if not isinstance(address, str) or not address.startswith(("http://", "https://")):
                errors["address"] = ["can't be blank"]
            if errors:
                return _json_response({"errors": errors}, 422)
            return _json_response({"webhook": rest(self.create(dispatcher, topic, address))}, 201)

        @app.get(API_PREFIX + "/webhooks.json")
        def list_webhooks() -> Response:
            return _json_response({"webhooks": [rest(s) for s in dispatcher.subscriptions()]})

        @app.delete(API_PREFIX + "/webhooks/{number}.json")
        def delete_webhook(number: str) -> Response:
            if dispatcher.remove(_GID + number) is None:
                return _json_response({"errors": "Not Found"}, 404)
            return _json_response({})


def _variable(query: str, argument: str, variables: dict[str, Any]) -> Any:
    found = re.search(rf"\b{argument}\s*:\s*\$(\w+)", query)
    return variables.get(found.group(1)) if found else None


def _node(subscription: Subscription) -> dict[str, Any]:
    return {"id": subscription.id, "topic": enum_of(subscription.topic or ""), "uri": subscription.address}


def _dumps(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()
