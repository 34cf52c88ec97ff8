"""Douyin shop (抖店) message push: what a delivery looks like and how the hub trusts it (``CONTRACT``). The
push URL and the subscribed messages are set in the app's console (``console_steps``).

Wire [S: the ``doudian`` Python SDK's ``callback`` (minibear2021/doudian ``core.py``), the SKIT
``TikTokShop`` event models (op.jinritemai.com message docs 30/109 TradeCreate, 30/123 TradeCanceled);
platforms/douyin/NOTES.md]:
- ``POST`` with headers ``app-id`` (the app key) and ``event-sign`` = md5 hex(app_key + raw body +
  app_secret); the body is a JSON *array* of messages ``{"tag", "msg_id", "data"}``, several per delivery,
  ``data`` a JSON string. Keys: the connection's login (app key) and password (app secret), as for the API.
  A ``sign-method: hmac-sha256`` variant is not in any source we found: not supported (refused as a bad
  signature rather than trusted).
- ``app-id`` must be the channel's app key: a push for another app is refused.
- ``msg_id`` is the message's id (the same on a retry): the event id. Order messages carry the shop order
  id as ``p_id`` in ``data`` (``s_ids`` the sub-orders, ``order_status``, ``create_time`` / ``update_time``);
  refund messages carry ``p_id`` too: every message with a ``p_id`` is about that order, and the receiver
  fetches it (``order.orderDetail``). Tag ``0`` is the console's check of the URL [U]: answered, no events.
- No time is signed outside ``data`` and retries repeat old messages, so no replay window; dedupe by
  ``msg_id``. The answer is ``{"code":0,"msg":"success"}``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from connectors.webhooks import (
    DeclaredContract,
    Verified,
    WebhookAnswer,
    WebhookEvent,
    WebhookKeys,
    WebhookRefused,
    WebhookRequest,
    json_body,
    md5_hex_wrapped,
)

# The trade messages the console offers [S: SKIT event models; the tag numbers as the sandbox and the
# receiver agree on them, U against op.jinritemai.com, whose pages the index did not hold].
TAGS = {
    "100": "doudian_trade_TradeCreate",
    "101": "doudian_trade_TradePaid",
    "102": "doudian_trade_TradeSellerShip",
    "103": "doudian_trade_TradeSuccess",
    "104": "doudian_trade_TradeLogisticsChanged",
    "105": "doudian_trade_TradeAddressChanged",
    "106": "doudian_trade_TradeCanceled",
    "108": "doudian_trade_TradeAmountChanged",
    "110": "doudian_trade_TradePending",
}
VERIFY_TAG = "0"
ANSWER = WebhookAnswer(body=b'{"code":0,"msg":"success"}', media_type="application/json")


def _signature(request: WebhookRequest, keys: WebhookKeys) -> tuple[str | None, str]:
    given = (request.headers.get("event-sign") or "").lower() or None
    if not keys.login:
        raise WebhookRefused("no_keys", "the channel's connection has no app key (login)")
    if (request.headers.get("sign-method") or "md5").lower() != "md5":
        return given, ""  # an undocumented method: nothing to compare with
    return given, md5_hex_wrapped(keys.login, request.body, keys.secret)


def _event(message: Any) -> WebhookEvent | None:
    if not isinstance(message, dict):
        raise TypeError("a message is not a JSON object")
    tag, msg_id = str(message["tag"]), str(message["msg_id"])
    if tag == VERIFY_TAG:
        return None
    data = json.loads(message["data"]) if isinstance(message.get("data"), str) else message.get("data")
    if not isinstance(data, dict):
        raise TypeError("a message's data is not a JSON object")
    p_id = data.get("p_id")
    order_id = str(p_id) if isinstance(p_id, int | str) and not isinstance(p_id, bool) and p_id else None
    stamp = data.get("update_time") or data.get("create_time")
    occurred = datetime.fromtimestamp(int(stamp), UTC) if isinstance(stamp, int) else None
    return WebhookEvent(msg_id, TAGS.get(tag, tag), order_id, None, occurred)


def _read(request: WebhookRequest, keys: WebhookKeys) -> Verified:
    if request.headers.get("app-id") != keys.login:
        raise WebhookRefused("bad_signature", "the push is for another app")
    messages = json_body(request)
    if not isinstance(messages, list):
        raise TypeError("the body is not a JSON array")
    events = tuple(event for event in map(_event, messages) if event is not None)
    return Verified(events, ANSWER)


CONTRACT = DeclaredContract(
    platform="douyin",
    topics=tuple(TAGS.values()),
    registration="console",
    signature=_signature,
    read=_read,
    replay_window=None,
    steps=(
        "In the 抖店开放平台 console (op.jinritemai.com): the app → 消息推送 (消息服务). 推送地址: {url}; "
        "subscribe the 订单 messages (doudian_trade_*: created, paid, shipped, completed, cancelled, ...); "
        "save (the console checks the URL). The signature uses the app key and app secret (the channel "
        "connection's login and password)."
    ),
)
