"""WeChat Channels shop (微信小店) message push: what a delivery looks like and how the hub trusts it
(``CONTRACT``). There is no API to subscribe: a person sets the URL in the shop's backend (``console_steps``).

Wire [C: the shop's "消息推送" doc and its test vector; WxJava ``MessageEventConstants``; SKIT event samples;
the standard WeChat message-encryption scheme, see docs/platform-notes.md]:
- Channels shops push only in safe mode (encrypted) and only JSON.
- Verification, once, when the URL is saved: ``GET ?signature&timestamp&nonce&echostr`` with
  ``signature = sha1("".join(sorted([token, timestamp, nonce])))``; the answer is ``echostr`` as is.
- Events: ``POST ?msg_signature&timestamp&nonce&encrypt_type=aes`` with ``{"ToUserName", "Encrypt"}``,
  ``msg_signature = sha1("".join(sorted([token, timestamp, nonce, Encrypt])))``. ``Encrypt`` is
  base64(AES-256-CBC(key = b64decode(EncodingAESKey + "="), iv = key[:16])) of 16 random bytes, the
  message's length (4 bytes, big-endian), the message (JSON) and the shop's appid, padded PKCS#7 to a
  multiple of 32 bytes (WeChat's own block, so pad values run 1..32). The answer is ``success``.
- The appid at the end of the plaintext must be the channel's (the connection's login): a message
  encrypted for another shop (same key reused) is refused like a bad signature.
- ``timestamp`` is signed, so the replay window applies: 10 minutes. WeChat retries a message three times
  within about 15 seconds when the answer is late (5 s timeout), so a genuine delivery is never minutes old;
  10 minutes leaves room for clock drift between WeChat and the hub.
- The event carries the order id only (``order_info.order_id``, a number in some samples and a string in
  others): the receiver fetches the order with ``order/get``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from connectors.auth import Secret
from connectors.webhooks import (
    DeclaredContract,
    Verified,
    WebhookAnswer,
    WebhookEvent,
    WebhookKeys,
    WebhookRefused,
    WebhookRequest,
    json_envelope,
)

ORDER_EVENTS = (
    "channels_ec_order_new",
    "channels_ec_order_pay",
    "channels_ec_order_cancel",
    "channels_ec_order_wait_shipping",
    "channels_ec_order_deliver",
    "channels_ec_order_confirm",
    "channels_ec_order_settle",
    "channels_ec_order_ext_info_update",
    "channels_ec_aftersale_update",
)
REPLAY_WINDOW = timedelta(minutes=10)
WECHAT_BLOCK = 32  # WeChat pads to 32-byte blocks (its PKCS7Encoder), not AES's 16


def wechat_signature(*parts: str) -> str:
    """sha1 hex of the parts sorted and joined (the URL check signs token, timestamp, nonce; a message also
    its ``Encrypt``)."""
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def decrypt_message(encrypted: str, aes_key: Secret, appid: str) -> bytes:
    """The message inside ``Encrypt``. Not base64 or not whole blocks: ``ValueError`` (malformed). Padding,
    length or appid that do not hold: the key or the shop is not this channel's, ``bad_signature``."""
    try:
        key = base64.b64decode(aes_key.reveal() + "=", validate=True)
    except ValueError:
        key = b""
    if len(key) != 32:
        raise WebhookRefused("no_keys", "the channel's webhook_aes_key is not a 43-character EncodingAESKey")
    sealed = base64.b64decode(encrypted, validate=True)
    if not sealed or len(sealed) % 16:
        raise ValueError("Encrypt is not whole AES blocks")
    decryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
    plain = decryptor.update(sealed) + decryptor.finalize()
    pad = plain[-1]
    if not 1 <= pad <= WECHAT_BLOCK or plain[-pad:] != bytes([pad]) * pad:
        raise WebhookRefused("bad_signature", "the message does not decrypt with the channel's key")
    plain = plain[:-pad]
    if len(plain) < 20:
        raise WebhookRefused("bad_signature", "the message does not decrypt with the channel's key")
    (length,) = struct.unpack(">I", plain[16:20])
    message, sender = plain[20 : 20 + length], plain[20 + length :]
    if len(message) != length or sender.decode("utf-8", "replace") != appid:
        raise WebhookRefused("bad_signature", "the message was not encrypted for this channel's appid")
    return message


def _token(keys: WebhookKeys) -> str:
    return keys.extra_secret("webhook_token").reveal()


def _signature(request: WebhookRequest, keys: WebhookKeys) -> tuple[str | None, str]:
    query = request.query
    timestamp, nonce = query.get("timestamp", ""), query.get("nonce", "")
    if request.method == "GET":
        return query.get("signature"), wechat_signature(_token(keys), timestamp, nonce)
    envelope = json_envelope(request, "Encrypt")
    if envelope is None:  # nothing that was signed: the signature, if any, cannot match
        return query.get("msg_signature"), ""
    return query.get("msg_signature"), wechat_signature(_token(keys), timestamp, nonce, envelope["Encrypt"])


def _signed_at(request: WebhookRequest) -> datetime:
    return datetime.fromtimestamp(int(request.query["timestamp"]), UTC)


def _order_id(event: dict[str, Any]) -> str | None:
    for holder in ("order_info", "finder_shop_aftersale_status_update"):
        value = (event.get(holder) or {}).get("order_id") if isinstance(event.get(holder), dict) else None
        if isinstance(value, int | str) and not isinstance(value, bool) and str(value):
            return str(value)
    return None


def _read(request: WebhookRequest, keys: WebhookKeys) -> Verified:
    if request.method == "GET":  # the URL check: echo, no events
        return Verified((), WebhookAnswer(body=request.query["echostr"].encode()))
    envelope = json_envelope(request, "Encrypt")
    if envelope is None:
        raise ValueError("no Encrypt")
    if not keys.login:
        raise WebhookRefused("no_keys", "the channel's connection has no appid (login)")
    message = decrypt_message(envelope["Encrypt"], keys.extra_secret("webhook_aes_key"), keys.login)
    event = json.loads(message.decode("utf-8"))
    if not isinstance(event, dict) or not isinstance(event.get("Event"), str):
        raise TypeError("the message is not an event")
    name, created = event["Event"], int(event["CreateTime"])
    order_id = _order_id(event) if name in ORDER_EVENTS else None
    return Verified(
        (
            WebhookEvent(
                f"{name}:{order_id or ''}:{created}",
                name,
                order_id,
                None,
                datetime.fromtimestamp(created, UTC),
            ),
        ),
        WebhookAnswer(body=b"success"),
    )


CONTRACT = DeclaredContract(
    platform="wechat_channels",
    topics=ORDER_EVENTS,
    registration="console",
    signature=_signature,
    read=_read,
    replay_window=REPLAY_WINDOW,
    signed_at=_signed_at,
    steps=(
        "In the 微信小店 backend (store.weixin.qq.com): 服务市场 → 自研 → 消息推送. URL: {url}; Token: the "
        "channel connection's extra webhook_token; EncodingAESKey: its extra webhook_aes_key (43 "
        "characters); "
        "消息加密方式: 安全模式; 数据格式: JSON. Saving sends a signed GET the hub answers with its echostr."
    ),
)
