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


def test_stale_signed_time_is_401(platform: tuple[WebhookContract, Signer]) -> None:
    contract, signer = platform
    if contract.replay_window is None:
        assert signer.stale is None, "the signer signs a time the contract does not check"
        pytest.skip("this platform signs no time: dedupe by event id is the replay protection")
    assert signer.stale is not None
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
