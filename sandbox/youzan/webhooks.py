"""Youzan (有赞云) push messages, the wire format only (``sandbox.webhooks`` delivers them); configured in the
developer console (``POST /_sandbox/webhooks {"address"}``). docs/platform-contracts 4.6 has the sources;
most of this is [S] (public receivers) or [U].

- POST JSON ``{"client_id", "id": tid, "kdt_id", "kdt_name", "mode": 1, "msg": <URL-encoded JSON of
  {"tid", "update_time", "status"}>, "sendCount", "sign", "status", "test": false, "type", "version"}`` with
  ``sign`` = md5 hex of client_id + msg + client_secret, also in the ``Event-Sign`` header (with
  ``Event-Type`` = type and ``Client-Id``); ``sendCount`` counts the attempts (1 first) and ``version`` is the
  event's epoch milliseconds.
- Types ``trade_TradeCreate``, ``trade_TradeBuyerPay``, ``trade_TradeSellerShip`` (every line shipped),
  ``trade_TradeSuccess``, ``trade_TradeClose``.
- The answer ``{"code": 0, "msg": "success"}`` acknowledges. Youzan's retry schedule is not published where
  we could read it [U]: 1 min, 5 min, 15 min, 1 h, 2 h here.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any
from urllib.parse import quote

import requests
from fastapi import FastAPI

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
from sandbox.youzan.render import YouzanRenderer

RETRY_DELAYS = (60.0, 300.0, 900.0, 3600.0, 7200.0)  # [U]
KDT_NAME = "ChannelHub 有赞沙箱店"


def md5_hex(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


class YouzanWebhooks:
    retry_delays = RETRY_DELAYS
    max_failures = None
    batches = False

    def __init__(
        self, world: World, renderer: YouzanRenderer, client_id: str, secret: str, kdt_id: int
    ) -> None:
        self.world, self.renderer = world, renderer
        self.client_id, self.secret, self.kdt_id = client_id, secret, kdt_id

    def messages(self, change: Change) -> list[Message]:
        state, kinds = change.state, change.kinds
        info = self.renderer.render(state)["full_order_info"]["order_info"]
        types = []
        if change.created:
            types.append("trade_TradeCreate")
        if "paid" in kinds or (change.created and info["status"] != "WAIT_BUYER_PAY"):
            types.append("trade_TradeBuyerPay")
        if "fulfilled" in kinds and state.fulfillment_status == "fulfilled":
            types.append("trade_TradeSellerShip")
        if info["status"] == "TRADE_CLOSED" and ("cancelled" in kinds or "refunded" in kinds):
            types.append("trade_TradeClose")
        elif "closed" in kinds and info["status"] == "TRADE_SUCCESS":
            types.append("trade_TradeSuccess")
        tid = info["tid"]
        msg = {"tid": tid, "update_time": info["update_time"], "status": info["status"]}
        now = self.world.now_ts()
        return [Message(kind, tid, now, msg) for kind in types]

    def poll(self) -> list[Message]:
        return []

    def request(self, delivery: Delivery, *, forged: bool) -> Outgoing:
        message = delivery.messages[0]
        msg = quote(json.dumps(message.payload, separators=(",", ":"), ensure_ascii=False), safe="")
        secret = ("forged-" if forged else "") + self.secret
        sign = md5_hex(self.client_id + msg + secret)
        body = {
            "client_id": self.client_id,
            "id": message.order_id,
            "kdt_id": self.kdt_id,
            "kdt_name": KDT_NAME,
            "mode": 1,
            "msg": msg,
            "sendCount": max(delivery.attempt, 1),
            "sign": sign,
            "status": message.payload["status"],
            "test": False,
            "type": message.topic,
            "version": int(message.occurred_ts * 1000),
        }
        headers = {
            "Content-Type": "application/json",
            "Event-Sign": sign,
            "Event-Type": message.topic,
            "Client-Id": self.client_id,
        }
        return Outgoing(json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode(), headers)

    def acknowledged(self, response: requests.Response) -> bool:
        return answered_code_zero(response)

    def subscription(self, dispatcher: WebhookDispatcher, body: dict[str, Any]) -> Subscription:
        return console_subscription(dispatcher, body, self.secret)

    def add_routes(self, app: FastAPI, dispatcher: WebhookDispatcher) -> None:
        return None
