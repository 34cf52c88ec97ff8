"""Youzan (有赞云) push messages: what a delivery looks like and how the hub trusts it (``CONTRACT``). The
push URL is set in the app's console (``console_steps``); there is no subscription API.

Wire [S: public receivers of 有赞云 pushes (PHP controller, Java client) in the code index; U for the
headers; see docs/platform-notes.md and the team's platform contracts 4.6]:
- ``POST`` JSON ``{"client_id", "id" (the tid for trade messages), "kdt_id", "kdt_name", "mode", "msg"
  (URL-encoded JSON), "sendCount", "sign", "status", "test", "type" (``trade_TradeBuyerPay``, ...),
  "version" (epoch ms)}``.
- ``sign = md5(client_id + msg + client_secret)`` (lower-case hex) over ``msg`` exactly as it stands in the
  body (still URL-encoded): the signature covers the message, not the envelope. Newer pushes also carry
  it in the ``Event-Sign`` header (with ``Event-Type`` and ``Client-Id``): either place is accepted.
- ``client_id`` must be the channel's (the connection's login): a push for another app is refused.
- No replay window: the signed ``msg`` holds the order's ``update_time``, but Youzan re-sends a message
  unchanged on every retry (``sendCount`` grows, up to hours later), so an old time is no sign of a
  replay. The event id (``type:id:version``) is the same on every retry, and dedupe by it is the guard.
- The message says which order changed, not all of it: the receiver fetches it (``youzan.trade.get``).
- The answer is ``{"code":0,"msg":"success"}``; anything else is retried.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from urllib.parse import unquote

from connectors.webhooks import (
    DeclaredContract,
    Verified,
    WebhookAnswer,
    WebhookEvent,
    WebhookKeys,
    WebhookRefused,
    WebhookRequest,
    json_envelope,
    md5_hex_wrapped,
)

TOPICS = (
    "trade_TradeCreate",
    "trade_TradeBuyerPay",
    "trade_TradeSellerShip",
    "trade_TradeSuccess",
    "trade_TradeClose",
    "trade_TradeMemoModified",
)
ANSWER = WebhookAnswer(body=b'{"code":0,"msg":"success"}', media_type="application/json")


def _signature(request: WebhookRequest, keys: WebhookKeys) -> tuple[str | None, str]:
    envelope = json_envelope(request, "msg")
    given = None
    if envelope is not None and isinstance(envelope.get("sign"), str) and envelope["sign"]:
        given = envelope["sign"]
    given = (given or request.headers.get("event-sign") or "").lower() or None
    if envelope is None or not keys.login:  # nothing signed to check against
        return given, ""
    return given, md5_hex_wrapped(keys.login, envelope["msg"].encode("utf-8"), keys.secret)


def _read(request: WebhookRequest, keys: WebhookKeys) -> Verified:
    envelope = json_envelope(request, "msg")
    if envelope is None:
        raise ValueError("no msg")
    if str(envelope.get("client_id")) != keys.login:
        raise WebhookRefused("bad_signature", "the push is for another client_id")
    message = json.loads(unquote(envelope["msg"], errors="strict"))
    if not isinstance(message, dict):
        raise TypeError("msg is not a JSON object")
    kind, tid, version = str(envelope["type"]), str(envelope["id"]), int(envelope["version"])
    if envelope.get("test") is True:  # the console's "test push": about no real order
        return Verified((), ANSWER)
    order_id = tid if kind.startswith("trade_") and tid else None
    occurred = datetime.fromtimestamp(version / 1000, UTC)
    return Verified((WebhookEvent(f"{kind}:{tid}:{version}", kind, order_id, None, occurred),), ANSWER)


CONTRACT = DeclaredContract(
    platform="youzan",
    topics=TOPICS,
    registration="console",
    signature=_signature,
    read=_read,
    replay_window=None,
    steps=(
        "In the 有赞云 developer console (console.youzanyun.com): the app → 配置管理 → 消息推送配置. "
        "推送网址: {url}; subscribe the 交易 messages (trade_TradeCreate, trade_TradeBuyerPay, "
        "trade_TradeSellerShip, trade_TradeSuccess, trade_TradeClose); enable and save. The signature uses "
        "the app's client_id and client_secret (the channel connection's login and password)."
    ),
)
