"""The platform registry's shared check-and-map step."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from channelhub.platforms import PLATFORMS, get_platform, inline_local_refs
from warehouse.ingest import Landed, Rejected

SHOPIFY_FIXTURES = sorted((Path(__file__).parent / "fixtures" / "shopify").glob("order_*.json"))


def shopify_payloads() -> list[dict]:
    payloads = []
    for file in SHOPIFY_FIXTURES:
        payloads += get_platform("shopify").unwrap(json.loads(file.read_text()))
    return payloads


def broken_variants(payload: dict) -> list[dict]:
    variants = []
    for mutate in (
        lambda p: p.pop("id"),
        lambda p: p.update(currency="dollars"),
        lambda p: p["line_items"][0].update(quantity="2 pcs"),
        lambda p: p["line_items"][0].update(price=12.5),
        lambda p: p.update(customer={"id": "not-a-number"}),
        lambda p: p.update(updated_at=None),
    ):
        variant = copy.deepcopy(payload)
        mutate(variant)
        variants.append(variant)
    return variants


@pytest.mark.parametrize("name", sorted(PLATFORMS))
def test_inlined_schema_gives_the_same_verdicts(name):
    platform = get_platform(name)
    schema_file = Path(platform.payload_schema)
    if not schema_file.exists():
        pytest.fail(f"{schema_file} is missing")
    schema = json.loads(schema_file.read_text())
    original = Draft202012Validator(schema)
    inlined = Draft202012Validator(inline_local_refs(schema))
    assert "$ref" not in json.dumps(inline_local_refs(schema))
    if name == "shopify":
        for payload in shopify_payloads():
            for candidate in [payload, *broken_variants(payload)]:
                assert original.is_valid(candidate) == inlined.is_valid(candidate)
                assert sorted(e.message for e in original.iter_errors(candidate)) == sorted(
                    e.message for e in inlined.iter_errors(candidate)
                )


def test_recursive_definitions_are_refused():
    schema = {
        "$defs": {"node": {"type": "object", "properties": {"child": {"$ref": "#/$defs/node"}}}},
        "$ref": "#/$defs/node",
    }
    with pytest.raises(ValueError, match="recursive"):
        inline_local_refs(schema)


def test_prepare_turns_every_failure_into_a_typed_reject():
    platform = get_platform("shopify")
    good, *_ = shopify_payloads()
    assert isinstance(platform.prepare(good), Landed)
    schema_broken = dict(good, currency="dollars")
    rejected = platform.prepare(schema_broken)
    assert isinstance(rejected, Rejected) and rejected.reason == "schema_invalid"
    assert rejected.external_id == str(good["id"]) and rejected.raw == platform.for_storage(schema_broken)
    mapping_broken = dict(good, financial_status="teleported")
    rejected = platform.prepare(mapping_broken)
    assert isinstance(rejected, Rejected) and rejected.reason == "mapping_failed"
    assert "teleported" in rejected.detail
    assert isinstance(platform.prepare("not an order"), Rejected)


@pytest.mark.parametrize("platform", sorted(PLATFORMS))
def test_no_connector_sends_a_credential_in_clear_text_over_the_network(platform):
    """Over plain http to another host, only a scheme that signs without sending its secret is allowed
    (WooCommerce's OAuth 1.0a, what it picks for an http shop); any other credential is refused before a
    request is made. A sandbox on this machine is still reachable over http."""
    from hub_configs import hub_config

    from channelhub.credentials import ChannelCredentials
    from channelhub.platforms import channel_connector
    from connectors.auth import Secret
    from connectors.errors import InsecureTransport
    from sandbox.server import sandbox_connection

    channel = hub_config("clear", platform).channel("clear")

    def credentials(url: str, **extra: str) -> ChannelCredentials:
        conn = sandbox_connection(platform, url, "a-secret-value-1234")
        return ChannelCredentials(
            "clear", url, conn.get("login"), Secret(conn["password"]), {**conn.get("extra", {}), **extra}
        )

    remote = "http://shop.example.com"
    if platform == "woocommerce":
        assert channel_connector(channel, credentials(remote)) is not None  # OAuth 1.0a over http
        remote_credentials = credentials(remote, auth="basic")
    else:
        remote_credentials = credentials(remote)
    with pytest.raises(InsecureTransport) as refused:
        channel_connector(channel, remote_credentials)
    assert "clear text over plain http to shop.example.com" in str(refused.value)
    assert "a-secret-value-1234" not in str(refused.value)
    assert channel_connector(channel, credentials("http://127.0.0.1:9")) is not None
