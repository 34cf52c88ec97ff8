"""Douyin shop (抖店) message push, the wire format only (``sandbox.webhooks`` delivers it); configured in
the open platform's console (``POST /_sandbox/webhooks {"address"}``).

- POST a JSON array ``[{"tag", "msg_id", "data": <JSON string>}]``: one delivery carries every message of a
  tick. Headers ``app-id`` (the app key), ``event-sign`` = md5 hex of app_key + raw body + app_secret,
  ``sign-method: md5``.
- Tags (抖店 message docs, ``doudian_trade_*``; the numbers [U], from memory of the console's list, not
  re-read): 100 TradeCreate (``create_time``), 101 TradePaid (``pay_time``), 102 TradeSellerShip
  (``update_time``), 103 TradeSuccess (``complete_time``), 106 TradeCanceled (``cancel_time``,
  ``cancel_reason``). ``data`` holds ``p_id``, ``s_ids``, ``shop_id``, ``order_status``, ``order_type``,
  ``biz`` (field names as SKIT's ``TradeCreateEvent`` model, which cites
  op.jinritemai.com/docs/message-docs/30/109).
- The answer ``{"code": 0, "msg": "success"}`` acknowledges. The retry schedule is not published where we
  could read it [U]: 30 s, 2 min, 10 min, 1 h here.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import requests
from fastapi import FastAPI

from sandbox.douyin.render import DouyinRenderer
from sandbox.webhooks import (
    Change,
    Delivery,
    Message,
    Outgoing,
    Subscription,
    WebhookDispatcher,
    answered_code_zero,
    console_subscription,
)
from sandbox.world import World

RETRY_DELAYS = (30.0, 120.0, 600.0, 3600.0)  # [U]


class DouyinWebhooks:
    retry_delays = RETRY_DELAYS
    max_failures = None
    batches = True

    def __init__(
        self, world: World, renderer: DouyinRenderer, app_key: str, secret: str, shop_id: int
    ) -> None:
        self.world, self.renderer = world, renderer
        self.app_key, self.secret, self.shop_id = app_key, secret, shop_id

    def messages(self, change: Change) -> list[Message]:
        state, kinds = change.state, change.kinds
        order = self.renderer.render(state)
        base = {
            "p_id": int(order["order_id"]),
            "s_ids": [int(line["order_id"]) for line in order["sku_order_list"]],
            "shop_id": self.shop_id,
            "order_status": order["order_status"],
            "order_type": 0,
            "biz": 2,
        }
        found: list[tuple[int, dict[str, Any]]] = []
        if change.created:
            found.append((100, {"create_time": order["create_time"]}))
        if order["pay_time"] and ("paid" in kinds or (change.created and order["pay_time"] > change.since)):
            found.append((101, {"pay_time": order["pay_time"], "pay_amount": order["pay_amount"]}))
        if "fulfilled" in kinds:
            found.append((102, {"update_time": order["update_time"]}))
        if "cancelled" in kinds:
            found.append(
                (106, {"cancel_time": order["update_time"], "cancel_reason": order["cancel_reason"]})
            )
        elif "closed" in kinds and order["order_status"] == 5:
            found.append((103, {"complete_time": order["finish_time"] or order["update_time"]}))
        now = self.world.now_ts()
        return [Message(str(tag), order["order_id"], now, {**base, **extra}) for tag, extra in found]

    def poll(self) -> list[Message]:
        return []

    def request(self, delivery: Delivery, *, forged: bool) -> Outgoing:
        items = [
            {
                "tag": m.topic,
                "msg_id": m.event_id,
                "data": json.dumps(m.payload, separators=(",", ":"), ensure_ascii=False),
            }
            for m in delivery.messages
        ]
        body = json.dumps(items, separators=(",", ":"), ensure_ascii=False).encode()
        secret = ("forged-" if forged else "") + self.secret
        sign = hashlib.md5(self.app_key.encode() + body + secret.encode()).hexdigest()
        headers = {"Content-Type": "application/json", "app-id": self.app_key, "event-sign": sign}
        return Outgoing(body, headers | {"sign-method": "md5"})

    def acknowledged(self, response: requests.Response) -> bool:
        return answered_code_zero(response)

    def subscription(self, dispatcher: WebhookDispatcher, body: dict[str, Any]) -> Subscription:
        return console_subscription(dispatcher, body, self.secret)

    def add_routes(self, app: FastAPI, dispatcher: WebhookDispatcher) -> None:
        return None
