"""`channelhub map --platform shopify FILE` prints canonical JSON; unmappable payloads exit non-zero."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from jsonschema import Draft202012Validator

from canonical.order import canonical_order_schema

SHOPIFY = Path(__file__).parent / "fixtures" / "shopify"
CANONICAL = Draft202012Validator(canonical_order_schema())


def run_map(platform: str, file: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "channelhub.cli", "map", "--platform", platform, str(file)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_single_order_prints_one_canonical_object():
    done = run_map("shopify", SHOPIFY / "order_450789469_docs_example.json")
    assert done.returncode == 0, done.stderr
    order = json.loads(done.stdout)
    assert order["platform"] == "shopify" and order["external_id"] == "450789469"
    assert order["number"] == "#1001" and order["created_at"].endswith("Z")
    CANONICAL.validate(order)


def test_orders_envelope_prints_a_list():
    done = run_map("shopify", SHOPIFY / "orders_page_status_any.json")
    assert done.returncode == 0, done.stderr
    orders = json.loads(done.stdout)
    assert isinstance(orders, list) and len(orders) == len(
        json.loads((SHOPIFY / "orders_page_status_any.json").read_text())["orders"]
    )
    for order in orders:
        CANONICAL.validate(order)


def test_order_envelope_is_unwrapped():
    done = run_map("shopify", SHOPIFY / "order_1009_refunded_legacy_restock_envelope.json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["payment_status"] == "refunded"


def test_unmappable_payload_exits_nonzero_with_reason(tmp_path):
    payload = json.loads((SHOPIFY / "order_450789469_docs_example.json").read_text())
    payload["updated_at"] = "yesterday-ish"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(payload))
    done = run_map("shopify", bad)
    assert done.returncode != 0
    assert "order 450789469" in done.stderr and (
        "schema_invalid" in done.stderr or "mapping_failed" in done.stderr
    )


def test_a_bad_order_in_a_list_does_not_hide_the_good_ones(tmp_path):
    document = json.loads((SHOPIFY / "orders_page_status_any.json").read_text())
    document["orders"][0]["financial_status"] = "teleported"
    mixed = tmp_path / "mixed.json"
    mixed.write_text(json.dumps(document))
    done = run_map("shopify", mixed)
    assert done.returncode == 1
    assert "mapping_failed" in done.stderr and "teleported" in done.stderr
    assert len(json.loads(done.stdout)) == len(document["orders"]) - 1


def test_not_json_and_unknown_platform_are_clear_errors(tmp_path):
    junk = tmp_path / "junk.json"
    junk.write_text("{not json")
    done = run_map("shopify", junk)
    assert done.returncode == 2 and "cannot read JSON" in done.stderr
    done = run_map("myspace", SHOPIFY / "order_450789469_docs_example.json")
    assert done.returncode == 2 and "unknown platform 'myspace'" in done.stderr
