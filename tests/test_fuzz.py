"""Property-based fuzzing (hypothesis) of everything that reads outside input: each platform's schema check
and mapping, the channel config parser and the CSV import parser. Thousands of generated inputs (about 3,400
per run); none may crash a parser, every rejection is typed and says why, and whatever maps is a valid
canonical order."""

from __future__ import annotations

import copy
import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from canonical.order import MappingError, canonical_order_schema
from canonical.store_files import KINDS, OPTIONAL, REQUIRED, BadRow, ImportFileError, parse_csv
from channelhub.config import ConfigError, parse_config
from channelhub.platforms import PLATFORMS, Skipped, get_platform
from warehouse.exceptions import canonical_json
from warehouse.ingest import Landed, Rejected

FIXTURES = Path(__file__).parent / "fixtures"
REJECT_REASONS = {"schema_invalid", "mapping_failed"}
CANONICAL = Draft202012Validator(canonical_order_schema())
FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=24)
    | st.sampled_from(["", "0", "-1", "1e400", "2026-11-24T00:00:00Z", "NaN", "１２", "9" * 30, "null"])
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=10,
)


def samples(platform: str) -> list[Any]:
    """Every order payload of the platform's fixture files, as the platform sends it."""
    found = []
    for path in sorted((FIXTURES / platform).glob("*.json")):
        try:
            found += get_platform(platform).unwrap(json.loads(path.read_text()))
        except MappingError:  # a fixture that is not an order document (e.g. a list of ids)
            continue
    return found


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    found = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*prefix, index))
    return found


@st.composite
def mutated(draw, originals: list[Any]) -> Any:
    """A real payload with one to four parts dropped or replaced by arbitrary JSON."""
    payload = copy.deepcopy(draw(st.sampled_from(originals)))
    for _ in range(draw(st.integers(1, 4))):
        paths = [p for p in _paths(payload) if p]
        if not paths:
            break
        *parent_path, last = draw(st.sampled_from(paths))
        parent = payload
        for step in parent_path:
            parent = parent[step]
        if draw(st.booleans()):
            parent[last] = draw(json_values)
        elif isinstance(parent, dict):
            del parent[last]
        else:
            parent.pop(last)
    return payload


def assert_typed(platform: str, payload: Any) -> None:
    assert_checks_agree(platform, payload)
    checked = get_platform(platform)
    before = canonical_json(payload)
    result = checked.prepare(payload)
    assert canonical_json(payload) == before, "masking must leave the payload as received untouched"
    if isinstance(result, Rejected):
        assert result.reason in REJECT_REASONS, result.reason
        assert isinstance(result.detail, str) and result.detail.strip()
        # Kept as received, personal data masked (compared as JSON text: a NaN payload never equals itself).
        assert canonical_json(result.raw) == canonical_json(checked.for_storage(payload))
    elif isinstance(result, Skipped):  # no order (a WooCommerce checkout draft): says why
        assert isinstance(result.detail, str) and result.detail.strip()
    else:
        assert isinstance(result, Landed)
        errors = [e.message for e in CANONICAL.iter_errors(result.canonical.to_json())]
        assert not errors, errors
        assert_stored_copy_maps_alike(checked, result)


def assert_stored_copy_maps_alike(checked: Any, landed: Landed) -> None:
    """What is stored (personal data masked) is masked for good (masking it again changes nothing, so its
    digest dedupes it) and, re-run through schema and mapping (an exception retry), gives the same order
    but for the buyer's details, or a typed reject: a masked buyer name can uncover a broken fallback the
    mapping never read (a nickname that is no text). tests/test_personal_data.py holds real payloads to
    landing alike."""
    assert checked.for_storage(landed.raw) == landed.raw
    again = checked.prepare(landed.raw)
    if isinstance(again, Rejected):
        assert again.reason in REJECT_REASONS and again.detail.strip()
        return
    assert isinstance(again, Landed), again
    original = landed.canonical.to_json()
    assert {**again.canonical.to_json(), "customer": None} == {**original, "customer": None}


def assert_checks_agree(platform: str, payload: Any) -> None:
    """The fast check (jsonschema-rs) accepts nothing jsonschema refuses: it may only ever short-cut."""
    checked = get_platform(platform)
    if checked.fast_check(payload):
        assert checked.validator.is_valid(payload), payload


@pytest.mark.parametrize("platform", sorted(PLATFORMS))
def test_the_fast_check_accepts_every_real_payload_jsonschema_accepts(platform):
    """On what platforms really send, the fast path is the path: jsonschema only words rejections."""
    checked = get_platform(platform)
    valid = [payload for payload in samples(platform) if checked.validator.is_valid(payload)]
    assert valid, f"no valid fixture payloads for {platform}"
    assert [payload for payload in valid if not checked.fast_check(payload)] == []


@pytest.mark.parametrize("platform", sorted(PLATFORMS))
def test_mutated_real_payloads_map_or_are_rejected_with_a_reason(platform):
    originals = samples(platform)
    assert originals, f"no fixture payloads for {platform}"

    @FUZZ
    @given(mutated(originals))
    def check(payload):
        assert_typed(platform, payload)

    check()


@pytest.mark.parametrize("platform", sorted(PLATFORMS))
def test_arbitrary_json_is_rejected_with_a_reason(platform):
    @settings(max_examples=250, deadline=None)
    @given(json_values)
    def check(payload):
        assert_typed(platform, payload)

    check()


VALID_CONFIG = {
    "locations": [{"code": "WH-1", "name": "Main"}],
    "channels": [
        {
            "code": "shop_one",
            "platform": "shopify",
            "conn_id": "shop_one",
            "fulfilment_location": "WH-1",
            "schedule_minutes": 15,
            "stock_policy": {"locations": ["WH-1"], "safety_stock": 2},
        }
    ],
}


@FUZZ
@given(mutated([VALID_CONFIG]) | json_values)
def test_config_documents_parse_or_fail_with_a_path_and_reason(document):
    try:
        parse_config(document, "fuzz.yaml")
    except ConfigError as err:
        assert err.problems and all(isinstance(p, str) and ": " in p for p in err.problems)


def _csv_text(kind: str, rows: list[dict[str, str]], header: list[str]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=header, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


cell = st.text(max_size=16) | st.sampled_from(["", "3", "-2", "0", "1e3", "2026-11-24T10:00:00Z", "x" * 300])


@st.composite
def csv_files(draw) -> tuple[str, str]:
    kind = draw(st.sampled_from(KINDS))
    columns = list(REQUIRED[kind]) + list(OPTIONAL.get(kind, ()))
    header = (
        draw(st.lists(st.sampled_from(columns), min_size=1, unique=True)) if draw(st.booleans()) else columns
    )
    rows = draw(st.lists(st.fixed_dictionaries({c: cell for c in header}), max_size=6))
    text = _csv_text(kind, rows, header)
    if draw(st.booleans()):  # damage the text itself: quotes, separators, stray bytes
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.sampled_from(['"', ",", "\n", "\r", "\x00", ";", '""'])) + text[at:]
    return kind, text


@FUZZ
@given(csv_files() | st.tuples(st.sampled_from(KINDS), st.text(max_size=200)))
def test_csv_files_parse_row_by_row_or_fail_as_a_whole_with_a_reason(kind_and_text):
    kind, text = kind_and_text
    try:
        parsed = parse_csv(kind, text)
    except ImportFileError as err:
        assert str(err).strip()
        return
    for bad in parsed.bad:
        assert isinstance(bad, BadRow) and bad.reason.strip() and bad.line >= 1
    assert parsed.rows_read == len(parsed.rows) + len(parsed.bad)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_canonical_json_is_the_sorted_compact_json_of_the_payload(value):
    """Raw payloads are deduplicated by the digest of this text: it must be the payload, keys sorted,
    whatever encoder writes it (only floats may be spelled differently from ``json.dumps``). NaN and
    infinities are not JSON: the connectors refuse a body holding them."""
    try:
        spelled_by_json = json.dumps(
            value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
    except ValueError:
        assume(False)
    written = canonical_json(value)
    assert json.loads(written) == value
    if "." not in spelled_by_json and "e" not in spelled_by_json.lower():  # no floats: the same text
        assert written == spelled_by_json


_HOSTILE_TEXT = st.sampled_from(
    ['"\\ud83d"', '"ok \\ude00 half"', "1e400", "-1e999", "9" * 5000, '"fine"', "12.5", "[]", "{}"]
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=st.lists(_HOSTILE_TEXT, min_size=1, max_size=6), depth=st.sampled_from([1, 3, 5000]))
def test_a_page_decodes_to_something_storable_with_the_hostile_record_marked(values, depth):
    """Lone surrogates, numbers past any float or 4,300 digits, nesting past any decoder: a page decodes to
    values the warehouse can digest and store, unreadable ones (a subtree past ``MAX_DEPTH`` included) kept as
    their JSON text and the objects holding them marked, while the page's other record is untouched."""
    import requests

    from connectors.json_body import MAX_DEPTH, UNREADABLE_KEY, Unreadable, decode_json
    from warehouse.exceptions import canonical_json, digest_of

    record = "{" + ",".join(f'"k{n}":{value}' for n, value in enumerate(values)) + "}"
    nested = "[" * (depth - 1) + record + "]" * (depth - 1)
    page = '{"orders":[' + nested + ',{"id":1}]}'
    response = requests.Response()
    response._content = page.encode()
    response.encoding = "utf-8"
    body = decode_json(response)
    digest_of(canonical_json(body))  # storable: no UnicodeEncodeError, no infinity
    hostile = any(v in ('"\\ud83d"', '"ok \\ude00 half"', "1e400", "-1e999", "9" * 5000) for v in values)
    too_deep = depth > 1000  # past what msgspec and json follow
    assert (UNREADABLE_KEY in body) == (hostile or too_deep)
    if too_deep:  # the part past MAX_DEPTH is kept as its text, whole
        cut = body["orders"][0]
        while isinstance(cut, list):
            cut = cut[0]
        assert isinstance(cut, Unreadable) and cut.endswith(record + "]" * (depth + 1 - MAX_DEPTH))
    assert body["orders"][-1] == {"id": 1}  # the page's other record is untouched
