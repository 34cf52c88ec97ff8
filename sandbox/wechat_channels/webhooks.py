"""WeChat Channels shop message push, the wire format only (``sandbox.webhooks`` delivers it); safe mode and
JSON only, as the shop supports (docs/platform-contracts 3.A.6: the doc "消息推送", WxJava, SKIT samples).

- Configured in the shop backend: ``POST /_sandbox/webhooks {"address", "token", "encoding_aes_key"}`` (43
  characters). The console first GETs the URL with ``signature`` (sha1 of the sorted token, timestamp and
  nonce, joined), ``timestamp``, ``nonce`` and ``echostr``, and refuses the configuration unless the answer
  body is ``echostr``.
- A message: POST ``?msg_signature=&timestamp=&nonce=&encrypt_type=aes`` with
  ``{"ToUserName": "gh_...", "Encrypt": "<base64>"}``; ``msg_signature`` = sha1 of the sorted token,
  timestamp, nonce and Encrypt, joined; Encrypt = AES-256-CBC (key = base64 of the AES key + "=", IV its
  first 16 bytes, PKCS#7 to 32-byte blocks as WeChat's sample code pads) of 16 random bytes, the message's
  4-byte big-endian length, the event JSON and the appid. Each retry is encrypted and signed afresh.
- Events ``channels_ec_order_new``, ``_pay`` (``pay_time``), ``_deliver`` (``finish_delivery``), ``_cancel``
  (``cancel_type`` [U: values]), ``_confirm``; ``order_info.order_id`` a string.
- The answer ``success`` (or an empty body: "直接回复空串 ... 不会发起重试") acknowledges. Otherwise WeChat
  retries three times ("微信服务器在五秒内收不到响应会断掉连接，并且重新发起请求，总共重试三次", the
  official account message doc, quoted on developers.weixin.qq.com); the gap between tries is not published
  [U], so they follow at once.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import struct
from typing import Any

import requests
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from fastapi import FastAPI

from sandbox.webhooks import (
    Change,
    Delivery,
    Message,
    Outgoing,
    Subscription,
    WebhookDispatcher,
    console_subscription,
)
from sandbox.wechat_channels.render import WeChatChannelsRenderer
from sandbox.world import World

RETRY_DELAYS = (0.0, 0.0, 0.0)
BLOCK = 32


def webhook_extra(secret: str) -> dict[str, str]:
    """The token and EncodingAESKey the demo configures (derived from the sandbox's secret)."""
    token = "tk" + hashlib.sha256(f"wechat-token:{secret}".encode()).hexdigest()[:30]
    aes_key = base64.b64encode(hashlib.sha256(f"wechat-aes:{secret}".encode()).digest()).decode()
    return {"webhook_token": token, "webhook_aes_key": aes_key.rstrip("=")}


def sha1_signature(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def aes_key_bytes(encoding_aes_key: str) -> bytes:
    if len(encoding_aes_key) != 43:
        raise ValueError("encoding_aes_key must be 43 characters")
    try:
        key = base64.b64decode(encoding_aes_key + "=", validate=True)
    except ValueError:
        raise ValueError("encoding_aes_key must be base64 (43 characters)") from None
    if len(key) != 32:
        raise ValueError("encoding_aes_key must decode to 32 bytes")
    return key


def encrypt(key: bytes, message: bytes, appid: str) -> str:
    plain = os.urandom(16) + struct.pack(">I", len(message)) + message + appid.encode()
    pad = BLOCK - len(plain) % BLOCK
    plain += bytes([pad]) * pad
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(encryptor.update(plain) + encryptor.finalize()).decode()


class WeChatWebhooks:
    retry_delays = RETRY_DELAYS
    max_failures = None
    batches = False

    def __init__(self, world: World, renderer: WeChatChannelsRenderer, appid: str) -> None:
        self.world, self.renderer, self.appid = world, renderer, appid
        self.username = "gh_" + hashlib.sha256(appid.encode()).hexdigest()[:12]

    def messages(self, change: Change) -> list[Message]:
        state, kinds = change.state, change.kinds
        order_id = self.renderer.order_id(state.index)
        events: list[tuple[str, dict[str, Any]]] = []
        if change.created:
            events.append(("channels_ec_order_new", {}))
        paid = self.renderer.paid_ts(state)
        if paid is not None and ("paid" in kinds or (change.created and paid > change.since)):
            events.append(("channels_ec_order_pay", {"pay_time": str(paid)}))
        if "fulfilled" in kinds:
            done = int(state.fulfillment_status == "fulfilled")
            events.append(("channels_ec_order_deliver", {"finish_delivery": done}))
        if "cancelled" in kinds:
            cancel_type = 1 if state.cancel_reason == "customer" else 2
            events.append(("channels_ec_order_cancel", {"cancel_type": cancel_type}))
        elif "closed" in kinds:
            events.append(("channels_ec_order_confirm", {}))
        customer = state.order.customer
        found = []
        now = int(self.world.now_ts())
        for name, fields in events:
            event = {
                "ToUserName": self.username,
                "FromUserName": self.renderer.openid(state.index, customer),
                "CreateTime": now,
                "MsgType": "event",
                "Event": name,
                "order_info": {"order_id": order_id, **fields},
            }
            body = json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()
            found.append(Message(name, order_id, now, body))
        return found

    def poll(self) -> list[Message]:
        return []

    def request(self, delivery: Delivery, *, forged: bool) -> Outgoing:
        subscription = delivery.subscription
        token = ("forged-" if forged else "") + subscription.keys["token"]
        encrypted = encrypt(
            aes_key_bytes(subscription.keys["encoding_aes_key"]), delivery.messages[0].payload, self.appid
        )
        timestamp, nonce = str(int(self.world.now_ts())), str(secrets.randbelow(10**10))
        params = {
            "msg_signature": sha1_signature(token, timestamp, nonce, encrypted),
            "timestamp": timestamp,
            "nonce": nonce,
            "encrypt_type": "aes",
        }
        body = json.dumps({"ToUserName": self.username, "Encrypt": encrypted}, separators=(",", ":"))
        return Outgoing(body.encode(), {"Content-Type": "application/json"}, params)

    def acknowledged(self, response: requests.Response) -> bool:
        return response.status_code == 200 and response.text.strip() in ("success", "")

    def subscription(self, dispatcher: WebhookDispatcher, body: dict[str, Any]) -> Subscription:
        token, aes_key = body.get("token"), body.get("encoding_aes_key")
        if not isinstance(token, str) or not token or not isinstance(aes_key, str):
            raise ValueError('send {"address", "token", "encoding_aes_key"}')
        aes_key_bytes(aes_key)
        timestamp, nonce = str(int(self.world.now_ts())), str(secrets.randbelow(10**10))
        echostr = str(secrets.randbelow(10**19))
        check = {"signature": sha1_signature(token, timestamp, nonce), "timestamp": timestamp}
        check |= {"nonce": nonce, "echostr": echostr}
        try:
            answer = requests.get(body["address"], params=check, timeout=5)
        except requests.RequestException as error:
            raise ValueError(f"the URL did not answer the check: {error}") from None
        if answer.text != echostr:
            raise ValueError("the URL's answer to the check is not echostr (token verification failed)")
        keys = {"token": token, "encoding_aes_key": aes_key}
        return console_subscription(dispatcher, body, "", keys)

    def add_routes(self, app: FastAPI, dispatcher: WebhookDispatcher) -> None:
        return None
