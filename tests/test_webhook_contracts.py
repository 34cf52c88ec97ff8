"""Every pushing platform's webhook contract (``platforms/<name>/webhooks.py``), over the registry: each
platform's signed delivery is made here by a signer written from the platform's documentation, apart from
the contract's own code, so a contract that signs the wrong bytes fails against it.

For every platform that declares ``webhooks``: a good delivery gives its events; a missing or a wrong
signature is 401 with its reason; a signed time outside the replay window (where one is signed) is 401; a
body over the cap is 413; a body that is no event after a good signature is 400.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from importlib import import_module
from typing import Any

import pytest

from connectors.auth import Secret
from connectors.webhooks import (
    MAX_BODY_BYTES,
    Verified,
    WebhookContract,
    WebhookKeys,
    WebhookRefused,
    WebhookRequest,
)
from platforms.registry import DECLARATIONS

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
PUSHING = sorted(name for name, declaration in DECLARATIONS.items() if declaration.webhooks is not None)


def contract_of(name: str) -> WebhookContract:
    module, _, attribute = (DECLARATIONS[name].webhooks or "").partition(":")
    return getattr(import_module(f"platforms.{name}.{module}"), attribute)


def _request(
    body: bytes,
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    method: str = "POST",
    at: datetime = NOW,
) -> WebhookRequest:
    return WebhookRequest(
        method, {k.lower(): v for k, v in (headers or {}).items()}, dict(query or {}), body, at
    )


@dataclass(frozen=True)
class Signer:
    """One platform's deliveries as the platform makes them. ``deliver(inner)`` signs ``inner`` (the bytes
    the platform puts its event in: the body, or the message inside an envelope); ``unsigned`` and ``forged``
    take a good delivery's signature away or spoil it; ``stale`` (where a time is signed) is a delivery
    signed ``replay_window`` + 1 minute ago; ``check`` asserts the events of ``good``."""

    keys: WebhookKeys
    good: bytes
    deliver: Callable[[bytes], WebhookRequest]
    unsigned: Callable[[WebhookRequest], WebhookRequest]
    forged: Callable[[WebhookRequest], WebhookRequest]
    check: Callable[[Verified], None]
    stale: Callable[[bytes, timedelta], WebhookRequest] | None = None


def _drop_header(name: str) -> Callable[[WebhookRequest], WebhookRequest]:
    return lambda r: replace(r, headers={k: v for k, v in r.headers.items() if k != name})


def _flip_header(name: str) -> Callable[[WebhookRequest], WebhookRequest]:
    def flip(r: WebhookRequest) -> WebhookRequest:
        value = r.headers[name]
        return replace(r, headers={**r.headers, name: ("A" if value[0] != "A" else "B") + value[1:]})

    return flip


# -- Shopify: base64(HMAC-SHA256(client secret, raw body)) in X-Shopify-Hmac-Sha256 --------------------------

SHOPIFY_SECRET = "shpss_test_client_secret"
SHOPIFY_ORDER = {"id": 820982911946154508, "name": "#9999", "email": "jon@example.com", "line_items": []}


def _shopify_delivery(body: bytes, topic: str = "orders/create") -> WebhookRequest:
    digest = hmac.new(SHOPIFY_SECRET.encode(), body, hashlib.sha256).digest()
    return _request(
        body,
        {
            "X-Shopify-Topic": topic,
            "X-Shopify-Hmac-Sha256": base64.b64encode(digest).decode(),
            "X-Shopify-Webhook-Id": "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
            "X-Shopify-Triggered-At": "2026-12-06T11:59:58.000Z",
            "X-Shopify-Shop-Domain": "example.myshopify.com",
            "X-Shopify-API-Version": "2026-10",
        },
    )


def _shopify_check(verified: Verified) -> None:
    [event] = verified.events
    assert event.event_id == "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043"
    assert (event.topic, event.order_id) == ("orders/create", "820982911946154508")
    assert event.order_payload == SHOPIFY_ORDER
    assert event.occurred_at == datetime(2026, 12, 6, 11, 59, 58, tzinfo=UTC)
    assert verified.answer.status == 200


# -- WooCommerce: base64(HMAC-SHA256(webhook secret, raw body)) in X-WC-Webhook-Signature -------------------

WOO_SECRET = "wc-webhook-secret-0123"
WOO_ORDER = {"id": 727, "status": "processing", "line_items": [], "date_modified_gmt": "2026-12-06T11:59:00"}


def _woo_delivery(body: bytes, topic: str = "order.updated") -> WebhookRequest:
    digest = hmac.new(WOO_SECRET.encode(), body, hashlib.sha256).digest()
    resource, _, event = topic.partition(".")
    return _request(
        body,
        {
            "X-WC-Webhook-Source": "https://shop.example/",
            "X-WC-Webhook-Topic": topic,
            "X-WC-Webhook-Resource": resource,
            "X-WC-Webhook-Event": event,
            "X-WC-Webhook-Signature": base64.b64encode(digest).decode(),
            "X-WC-Webhook-ID": "31",
            "X-WC-Webhook-Delivery-ID": "9f2c",
        },
    )


def _woo_check(verified: Verified) -> None:
    [event] = verified.events
    assert (event.event_id, event.topic, event.order_id) == ("31:9f2c", "order.updated", "727")
    assert event.order_payload == WOO_ORDER


# -- WeChat Channels: sha1 of the sorted token/timestamp/nonce/Encrypt, AES-256-CBC with WeChat's framing

WX_APPID = "wx1234567890abcdef"
WX_TOKEN = "wx-push-token"
WX_AES_KEY = base64.b64encode(bytes(range(32))).decode().rstrip("=")  # 43 characters, as the console shows
WX_EVENT = {
    "ToUserName": "gh_0123456789ab",
    "FromUserName": "OPENID",
    "CreateTime": int(NOW.timestamp()) - 5,
    "MsgType": "event",
    "Event": "channels_ec_order_pay",
    "order_info": {"order_id": 3705115058471208928, "pay_time": 1658509200},
}


def _wx_encrypt(message: bytes, appid: str = WX_APPID) -> str:
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    key = base64.b64decode(WX_AES_KEY + "=")
    plain = b"0123456789abcdef" + len(message).to_bytes(4, "big") + message + appid.encode()
    pad = 32 - len(plain) % 32
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(encryptor.update(plain + bytes([pad]) * pad) + encryptor.finalize()).decode()


def _wx_delivery(
    message: bytes, age: timedelta = timedelta(seconds=3), appid: str = WX_APPID
) -> WebhookRequest:
    encrypted = _wx_encrypt(message, appid)
    timestamp, nonce = str(int((NOW - age).timestamp())), "1320562132"
    signature = hashlib.sha1("".join(sorted([WX_TOKEN, timestamp, nonce, encrypted])).encode()).hexdigest()
    query = {"msg_signature": signature, "timestamp": timestamp, "nonce": nonce, "encrypt_type": "aes"}
    body = json.dumps({"ToUserName": "gh_0123456789ab", "Encrypt": encrypted}).encode()
    return _request(body, query=query)


def _wx_check(verified: Verified) -> None:
    [event] = verified.events
    created = WX_EVENT["CreateTime"]
    assert event.event_id == f"channels_ec_order_pay:3705115058471208928:{created}"
    assert (event.topic, event.order_id, event.order_payload) == (
        "channels_ec_order_pay",
        "3705115058471208928",
        None,
    )
    assert verified.answer.body == b"success"


def _drop_query(name: str) -> Callable[[WebhookRequest], WebhookRequest]:
    return lambda r: replace(r, query={k: v for k, v in r.query.items() if k != name})


def _flip_query(name: str) -> Callable[[WebhookRequest], WebhookRequest]:
    def flip(r: WebhookRequest) -> WebhookRequest:
        value = r.query[name]
        return replace(r, query={**r.query, name: ("a" if value[0] != "a" else "b") + value[1:]})

    return flip


# -- Youzan: md5(client_id + msg + client_secret) over the URL-encoded msg, in the body's sign --------------

YZ_CLIENT_ID, YZ_SECRET = "yz-client-id-0001", "yz-client-secret-0001"
YZ_MESSAGE = {
    "tid": "E20261206115900012345",
    "update_time": "2026-12-06 19:59:00",
    "status": "WAIT_SELLER_SEND_GOODS",
}


def _yz_delivery(message: bytes, *, in_header: bool = False) -> WebhookRequest:
    from urllib.parse import quote

    msg = quote(message)
    sign = hashlib.md5((YZ_CLIENT_ID + msg + YZ_SECRET).encode()).hexdigest()
    envelope = {
        "client_id": YZ_CLIENT_ID,
        "id": "E20261206115900012345",
        "kdt_id": 160001,
        "kdt_name": "demo",
        "mode": 1,
        "msg": msg,
        "sendCount": 0,
        "sign": "" if in_header else sign,
        "status": "WAIT_SELLER_SEND_GOODS",
        "test": False,
        "type": "trade_TradeBuyerPay",
        "version": 1796558340000,
    }
    headers = {"Event-Type": "trade_TradeBuyerPay", "Client-Id": YZ_CLIENT_ID}
    if in_header:
        headers["Event-Sign"] = sign
    return _request(json.dumps(envelope).encode(), headers)


def _yz_check(verified: Verified) -> None:
    [event] = verified.events
    assert event.event_id == "trade_TradeBuyerPay:E20261206115900012345:1796558340000"
    assert (event.topic, event.order_id, event.order_payload) == (
        "trade_TradeBuyerPay",
        "E20261206115900012345",
        None,
    )
    assert json.loads(verified.answer.body) == {"code": 0, "msg": "success"}


def _yz_body(change: Callable[[dict[str, Any]], None]) -> Callable[[WebhookRequest], WebhookRequest]:
    def edit(r: WebhookRequest) -> WebhookRequest:
        envelope = json.loads(r.body)
        change(envelope)
        return replace(r, body=json.dumps(envelope).encode())

    return edit


# -- Douyin: md5(app_key + raw body + app_secret) in event-sign ---------------------------------------------

DY_APP_KEY, DY_SECRET = "7012345678901234567", "dy-app-secret-0001"
DY_DATA = {"p_id": 6919453524432950312, "s_ids": [6919453524433015848], "shop_id": 4463798, "order_status": 2}


def _dy_delivery(body: bytes) -> WebhookRequest:
    sign = hashlib.md5(DY_APP_KEY.encode() + body + DY_SECRET.encode()).hexdigest()
    return _request(body, {"app-id": DY_APP_KEY, "event-sign": sign, "Content-Type": "application/json"})


def _dy_check(verified: Verified) -> None:
    assert [(e.event_id, e.order_id, e.order_payload) for e in verified.events] == [
        ("7096389270281619748", "6919453524432950312", None),
        ("7096389270281619749", "6919453524432950312", None),
    ]
    assert json.loads(verified.answer.body) == {"code": 0, "msg": "success"}


DY_MESSAGES = [
    {"tag": "100", "msg_id": "7096389270281619748", "data": json.dumps(DY_DATA)},
    {"tag": "101", "msg_id": "7096389270281619749", "data": json.dumps({**DY_DATA, "order_status": 2})},
]

SIGNERS: dict[str, Signer] = {
    "shopify": Signer(
        keys=WebhookKeys("", Secret("shpat_access_token"), {"webhook_secret": SHOPIFY_SECRET}),
        good=json.dumps(SHOPIFY_ORDER).encode(),
        deliver=_shopify_delivery,
        unsigned=_drop_header("x-shopify-hmac-sha256"),
        forged=_flip_header("x-shopify-hmac-sha256"),
        check=_shopify_check,
    ),
    "woocommerce": Signer(
        keys=WebhookKeys("ck_consumer_key", Secret("cs_consumer_secret"), {"webhook_secret": WOO_SECRET}),
        good=json.dumps(WOO_ORDER).encode(),
        deliver=_woo_delivery,
        unsigned=_drop_header("x-wc-webhook-signature"),
        forged=_flip_header("x-wc-webhook-signature"),
        check=_woo_check,
    ),
    "wechat_channels": Signer(
        keys=WebhookKeys(
            WX_APPID, Secret("wx-app-secret"), {"webhook_token": WX_TOKEN, "webhook_aes_key": WX_AES_KEY}
        ),
        good=json.dumps(WX_EVENT).encode(),
        deliver=_wx_delivery,
        unsigned=_drop_query("msg_signature"),
        forged=_flip_query("msg_signature"),
        check=_wx_check,
        stale=lambda message, age: _wx_delivery(message, age),
    ),
    "youzan": Signer(
        keys=WebhookKeys(YZ_CLIENT_ID, Secret(YZ_SECRET)),
        good=json.dumps(YZ_MESSAGE).encode(),
        deliver=_yz_delivery,
        unsigned=_yz_body(lambda envelope: envelope.update(sign="")),
        forged=_yz_body(lambda envelope: envelope.update(sign="0" * 32)),
        check=_yz_check,
    ),
    "douyin": Signer(
        keys=WebhookKeys(DY_APP_KEY, Secret(DY_SECRET)),
        good=json.dumps(DY_MESSAGES).encode(),
        deliver=_dy_delivery,
        unsigned=_drop_header("event-sign"),
        forged=_flip_header("event-sign"),
        check=_dy_check,
    ),
}


def test_every_pushing_platform_has_a_signer_here() -> None:
    assert PUSHING, "no platform declares webhooks"
    assert set(PUSHING) <= set(SIGNERS), f"write a signer for {sorted(set(PUSHING) - set(SIGNERS))}"


@pytest.fixture(params=PUSHING)
def platform(request: pytest.FixtureRequest) -> tuple[WebhookContract, Signer]:
    return contract_of(request.param), SIGNERS[request.param]


def test_contract_declares_itself(platform: tuple[WebhookContract, Signer]) -> None:
    contract, _ = platform
    assert contract.topics and contract.registration in ("api", "console")
    assert "https://hub.example/webhooks/x" in contract.console_steps("https://hub.example/webhooks/x")


def test_good_delivery_gives_its_events(platform: tuple[WebhookContract, Signer]) -> None:
    contract, signer = platform
    signer.check(contract.verify(signer.deliver(signer.good), signer.keys))


def _refused(contract: WebhookContract, request: WebhookRequest, keys: WebhookKeys) -> WebhookRefused:
    with pytest.raises(WebhookRefused) as caught:
        contract.verify(request, keys)
    return caught.value


def test_missing_signature_is_401(platform: tuple[WebhookContract, Signer]) -> None:
    contract, signer = platform
    refusal = _refused(contract, signer.unsigned(signer.deliver(signer.good)), signer.keys)
    assert (refusal.status, refusal.reason) == (401, "missing_signature")


def test_wrong_signature_is_401(platform: tuple[WebhookContract, Signer]) -> None:
    contract, signer = platform
    refusal = _refused(contract, signer.forged(signer.deliver(signer.good)), signer.keys)
    assert (refusal.status, refusal.reason) == (401, "bad_signature")


def test_another_key_is_401_and_the_key_is_never_told(platform: tuple[WebhookContract, Signer]) -> None:
    contract, signer = platform
    other = {
        k: (v + "x" if isinstance(v, str) and k.startswith("webhook_") else v)
        for k, v in signer.keys.extra.items()
    }
    keys = WebhookKeys(signer.keys.login, Secret(signer.keys.secret.reveal() + "x"), other)
    refusal = _refused(contract, signer.deliver(signer.good), keys)
    assert (refusal.status, refusal.reason) == (401, "bad_signature")
    for secret in (
        signer.keys.secret.reveal(),
        *(v for v in signer.keys.extra.values() if isinstance(v, str)),
    ):
        assert secret not in str(refusal)


def test_only_signed_times_have_a_replay_window(platform: tuple[WebhookContract, Signer]) -> None:
    """A window over a time the platform does not sign would protect nothing; where none is signed,
    dedupe by event id is the replay protection (tests/test_webhook_receiver.py)."""
    contract, signer = platform
    assert (contract.replay_window is None) == (signer.stale is None)


SIGNING_TIME = [name for name in PUSHING if contract_of(name).replay_window is not None]


@pytest.mark.parametrize("name", SIGNING_TIME)
def test_stale_signed_time_is_401(name: str) -> None:
    contract, signer = contract_of(name), SIGNERS[name]
    assert signer.stale is not None and contract.replay_window is not None
    fresh = signer.stale(signer.good, contract.replay_window - timedelta(minutes=1))
    signer.check(contract.verify(fresh, signer.keys))
    refusal = _refused(
        contract, signer.stale(signer.good, contract.replay_window + timedelta(minutes=1)), signer.keys
    )
    assert (refusal.status, refusal.reason) == (401, "stale")


def test_too_large_is_413_before_anything_else(platform: tuple[WebhookContract, Signer]) -> None:
    contract, signer = platform
    good = signer.deliver(signer.good)
    refusal = _refused(contract, replace(good, body=good.body + b" " * MAX_BODY_BYTES), signer.keys)
    assert (refusal.status, refusal.reason) == (413, "too_large")


@pytest.mark.parametrize("inner", [b"{not json", b"[1, 2", b"\xff\xfe"])
def test_malformed_after_a_good_signature_is_400(
    platform: tuple[WebhookContract, Signer], inner: bytes
) -> None:
    contract, signer = platform
    refusal = _refused(contract, signer.deliver(inner), signer.keys)
    assert (refusal.status, refusal.reason) == (400, "malformed")


# -- platform specifics ----------------------------------------------------------------------------------


def test_shopify_topics_and_refunds() -> None:
    contract = contract_of("shopify")
    keys = SIGNERS["shopify"].keys
    refund = contract.verify(
        _shopify_delivery(b'{"id": 5, "order_id": 820982911946154508}', "refunds/create"), keys
    )
    assert [(e.order_id, e.order_payload) for e in refund.events] == [("820982911946154508", None)]
    gone = contract.verify(_shopify_delivery(b'{"id": 1, "name": "shop"}', "app/uninstalled"), keys)
    assert [(e.topic, e.order_id) for e in gone.events] == [("app/uninstalled", None)]
    assert contract.replay_window is None and contract.registration == "api"


def test_shopify_without_webhook_secret_has_no_keys() -> None:
    contract = contract_of("shopify")
    refusal = _refused(contract, _shopify_delivery(SIGNERS["shopify"].good), WebhookKeys("", Secret("t"), {}))
    assert (refusal.status, refusal.reason) == (401, "no_keys")


def test_shopify_topic_names_both_ways() -> None:
    from platforms.shopify.webhooks import TOPICS, graphql_topic, rest_topic

    for topic in (*TOPICS, "fulfillment_orders/order_routing_complete", "inventory_levels/update"):
        assert rest_topic(graphql_topic(topic)) == topic
    assert graphql_topic("orders/create") == "ORDERS_CREATE"


def test_woocommerce_creation_ping_is_answered_without_events() -> None:
    contract = contract_of("woocommerce")
    keys = SIGNERS["woocommerce"].keys
    ping = _request(b"webhook_id=31", {"User-Agent": "WooCommerce/9.4 Hookshot (WordPress/6.7)"})
    assert contract.verify(ping, keys).events == ()
    assert contract.verify(ping, WebhookKeys(None, Secret("x"), {})).events == ()  # unsigned: no key needed
    # Anything else without a signature is refused, even one that looks like a ping plus headers.
    for forged in (
        _request(b"webhook_id=31&id=5"),
        _request(b"webhook_id=31", {"X-WC-Webhook-Topic": "order.updated"}),
        _request(json.dumps(WOO_ORDER).encode()),
    ):
        assert _refused(contract, forged, keys).reason == "missing_signature"


def test_woocommerce_deleted_order_carries_only_its_id() -> None:
    verified = contract_of("woocommerce").verify(
        _woo_delivery(b'{"id": 727}', "order.deleted"), SIGNERS["woocommerce"].keys
    )
    assert [(e.order_id, e.order_payload) for e in verified.events] == [("727", None)]


def test_wechat_doc_vector_url_check_echoes() -> None:
    """The 消息推送 doc's example: Token AAAAA, timestamp 1714036504, nonce 1514711492."""
    contract = contract_of("wechat_channels")
    keys = WebhookKeys(WX_APPID, Secret("s"), {"webhook_token": "AAAAA", "webhook_aes_key": WX_AES_KEY})
    query = {
        "signature": "f464b24fc39322e44b38aa78f5edd27bd1441696",
        "timestamp": "1714036504",
        "nonce": "1514711492",
        "echostr": "4375120948345356249",
    }
    at = datetime.fromtimestamp(1714036504, UTC) + timedelta(seconds=2)
    verified = contract.verify(_request(b"", query=query, method="GET", at=at), keys)
    assert (verified.events, verified.answer.body) == ((), b"4375120948345356249")
    bad = _request(b"", query={**query, "nonce": "1514711493"}, method="GET", at=at)
    assert _refused(contract, bad, keys).reason == "bad_signature"
    late = _request(b"", query=query, method="GET", at=at + timedelta(hours=1))
    assert _refused(contract, late, keys).reason == "stale"


def test_wechat_message_for_another_appid_is_refused() -> None:
    contract = contract_of("wechat_channels")
    delivery = _wx_delivery(json.dumps(WX_EVENT).encode(), appid="wx_other_shop_000")
    refusal = _refused(contract, delivery, SIGNERS["wechat_channels"].keys)
    assert (refusal.status, refusal.reason) == (401, "bad_signature")


def test_wechat_order_id_as_string_and_aftersale_and_other_events() -> None:
    contract, keys = contract_of("wechat_channels"), SIGNERS["wechat_channels"].keys
    as_string = {**WX_EVENT, "Event": "channels_ec_order_cancel", "order_info": {"order_id": "37051150584"}}
    [event] = contract.verify(_wx_delivery(json.dumps(as_string).encode()), keys).events
    assert event.order_id == "37051150584"
    aftersale = {
        **{k: v for k, v in WX_EVENT.items() if k != "order_info"},
        "Event": "channels_ec_aftersale_update",
        "finder_shop_aftersale_status_update": {"status": "MERCHANT_PROCESSING", "order_id": "37051150585"},
    }
    [event] = contract.verify(_wx_delivery(json.dumps(aftersale).encode()), keys).events
    assert event.order_id == "37051150585"
    stock = {**WX_EVENT, "Event": "channels_ec_stock_no_enough"}
    [event] = contract.verify(_wx_delivery(json.dumps(stock).encode()), keys).events
    assert event.order_id is None


def test_youzan_sign_in_the_header_and_another_client() -> None:
    contract, keys = contract_of("youzan"), SIGNERS["youzan"].keys
    _yz_check(contract.verify(_yz_delivery(json.dumps(YZ_MESSAGE).encode(), in_header=True), keys))
    # The envelope changed around a good msg signature still passes (only msg is signed) but another
    # client's push is refused.
    other = _yz_body(lambda envelope: envelope.update(client_id="someone-else"))
    refusal = _refused(contract, other(_yz_delivery(json.dumps(YZ_MESSAGE).encode())), keys)
    assert (refusal.status, refusal.reason) == (401, "bad_signature")
    test_push = _yz_body(lambda envelope: envelope.update(test=True))
    assert contract.verify(test_push(_yz_delivery(json.dumps(YZ_MESSAGE).encode())), keys).events == ()


def test_douyin_other_app_verification_tag_and_unknown_sign_method() -> None:
    contract, keys = contract_of("douyin"), SIGNERS["douyin"].keys
    check = _dy_delivery(json.dumps([{"tag": "0", "msg_id": "0", "data": "{}"}]).encode())
    assert contract.verify(check, keys).events == ()
    good = _dy_delivery(json.dumps(DY_MESSAGES).encode())
    other_app = replace(good, headers={**good.headers, "app-id": "7000000000000000000"})
    assert _refused(contract, other_app, keys).reason == "bad_signature"
    hmac_method = replace(good, headers={**good.headers, "sign-method": "hmac-sha256"})
    assert _refused(contract, hmac_method, keys).reason == "bad_signature"
