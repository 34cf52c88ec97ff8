"""Shopify's pushes on the shared template (``connectors.shipping``): the shipment through the order's
fulfillment orders, the carrier companies (entries of ``connectors.carriers``' one table) and the stock set
through GraphQL ``inventorySetQuantities``. Wire facts and sources: connector.py's docstring and
docs/platform-notes.md (Shopify).

Shipment idempotency comes from reading the order first (Shopify keeps no caller key on a fulfillment):
- a successful fulfillment with this tracking number that covers every pushed line -> ``already_done``
  (so a retry after a lost answer records nothing twice);
- a correction (``push.previous_tracking_number``) whose previous number is on a fulfillment -> that
  fulfillment's tracking changes (``update_tracking.json``); a previous number Shopify never got is pushed
  as a new shipment;
- the pushed lines no longer fit in what is left to ship and an earlier fulfillment holds exactly these
  lines under another number -> the tracking number changed: ``update_tracking.json``;
- otherwise a new fulfillment. Quantities beyond what is left, or a closed fulfillment order (a cancelled
  or fully shipped order), are sent anyway so Shopify refuses them in its own words.

Refusals: every ``ApiError`` but credentials (a 4xx, a GraphQL error code the client let through) is
Shopify refusing the request as written: ``rejected`` with its words, ``extra`` its status and code.
Carriers: a company Shopify knows gets a tracking link; any other name is sent as given (Shopify keeps an
unknown company, "Other", without a link: it does not reject it).
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from typing import TYPE_CHECKING, Any

from connectors.errors import ApiError, MalformedResponse, TransientError
from connectors.http import dig
from connectors.pushes import PushResult, ShipmentPush, StockPush
from connectors.shipping import (
    ShipmentRefused,
    ShipmentRules,
    ShipmentState,
    ShipmentSteps,
    push_shipment,
    refusal_words,
)

if TYPE_CHECKING:
    from platforms.shopify.connector import ShopifyConnector

# Carrier key (connectors.carriers) -> the company name Shopify knows (and builds tracking links for).
CARRIER_CODES: dict[str, str] = {
    "UPS": "UPS",
    "USPS": "USPS",
    "FEDEX": "FedEx",
    "DHL": "DHL Express",
    "SF": "SF Express",
    "YTO": "YTO Express",
    "ZTO": "ZTO Express",
    "CHINA_POST": "China Post",
}

SET_QUANTITIES_MUTATION = """
mutation SetAvailable($input: InventorySetQuantitiesInput!, $idempotencyKey: String!) {
  inventorySetQuantities(input: $input) @idempotent(key: $idempotencyKey) {
    inventoryAdjustmentGroup { createdAt reason changes { name delta quantityAfterChange } }
    userErrors { code field message }
  }
}
""".strip()
# Idempotency keys are UUIDs (Shopify's advice) named in this namespace from what the set is.
_KEY_NAMESPACE = uuid.UUID("6f1d2c1e-3b0a-5c4e-9a57-0c6b1f2d7e11")


STALE_RETRIES = 3  # compare-and-set attempts while sales keep changing the level
STALE = "CHANGE_FROM_QUANTITY_STALE"
KEY_FAILED_BEFORE = "IDEMPOTENCY_PREVIOUS_ATTEMPT_FAILED"  # Shopify: retry with a new key
KEY_IN_FLIGHT = "IDEMPOTENCY_CONCURRENT_REQUEST"  # Shopify: the first request is still being processed


def platform_words(error: ApiError) -> str:
    """Shopify's own error text from an ``{"errors": ...}`` body ("..." / ["..."] / {field: [...]} /
    GraphQL's [{"message": ...}])."""
    try:
        errors = json.loads(error.body).get("errors")
    except (ValueError, AttributeError):
        errors = None
    if isinstance(errors, str):
        return errors
    if isinstance(errors, list) and errors:
        return "; ".join(
            str(item.get("message")) if isinstance(item, dict) and "message" in item else str(item)
            for item in errors
        )
    if isinstance(errors, dict) and errors:
        parts = []
        for field_name, messages in errors.items():
            texts = messages if isinstance(messages, list) else [messages]
            parts.append(f"{field_name}: {', '.join(str(text) for text in texts)}")
        return "; ".join(parts)
    return error.message


def _refusal_extra(error: ApiError) -> dict[str, str]:
    return {"status": str(error.status)} | ({"code": error.code} if error.code else {})


RULES = ShipmentRules(
    platform="Shopify",
    carrier_codes=CARRIER_CODES,
    # Open-ended: any 4xx, and a GraphQL error code the client let through (HTTP 200); credentials, quota
    # and paging raise before this (connectors.shipping), throttles and 5xx are not ApiErrors.
    refuses=lambda error: True,
    words=platform_words,
    refusal_extra=_refusal_extra,
    unknown_carrier=None,  # sent as given
)


def call(connector: ShopifyConnector, name: str, **options: Any) -> Any:
    """``get`` where a refusal by Shopify (a 4xx, not auth or throttling) becomes ``ShipmentRefused``."""
    try:
        return connector.get(name, **options)
    except ApiError as error:
        words = refusal_words(RULES, error)
        if words is None:
            raise
        raise ShipmentRefused(words, _refusal_extra(error)) from None


_ORDER_FIELDS = "id,name,cancelled_at,line_items,fulfillments"


def _tracking_numbers(fulfillment: dict[str, Any]) -> set[str]:
    numbers = {str(n) for n in fulfillment.get("tracking_numbers") or [] if n}
    if fulfillment.get("tracking_number"):
        numbers.add(str(fulfillment["tracking_number"]))
    return numbers


def _fulfilled_lines(fulfillment: dict[str, Any]) -> Counter[str]:
    return Counter(
        {str(item["id"]): int(item.get("quantity") or 0) for item in fulfillment.get("line_items") or []}
    )


def _fulfillment_extra(fulfillment: dict[str, Any]) -> dict[str, str]:
    return {
        "name": str(fulfillment.get("name") or ""),
        "tracking_company": str(fulfillment.get("tracking_company") or ""),
        "tracking_url": str(fulfillment.get("tracking_url") or ""),
    }


def _allocate(
    order_id: str, fulfillment_orders: list[dict[str, Any]], wanted: Counter[str]
) -> list[dict[str, Any]]:
    """``line_items_by_fulfillment_order`` for the wanted {line item id: quantity}: open fulfillment order
    lines first, up to what each can still ship. What does not fit goes to the first candidate anyway, so
    Shopify answers with its own refusal (over quantity, closed fulfillment order)."""
    placed: dict[int, Counter[int]] = {}
    for line_id, quantity in wanted.items():
        candidates = [
            (fo, item)
            for fo in fulfillment_orders
            for item in fo.get("line_items") or []
            if str(item.get("line_item_id")) == line_id
        ]
        if not candidates:
            raise ShipmentRefused(f"line item {line_id} is not on Shopify order {order_id}")
        open_ones = [(fo, item) for fo, item in candidates if fo.get("status") in ("open", "in_progress")]
        left = quantity
        for fo, item in open_ones:
            take = min(left, int(item.get("fulfillable_quantity") or 0))
            if take > 0:
                placed.setdefault(int(fo["id"]), Counter())[int(item["id"])] += take
                left -= take
        if left > 0:
            fo, item = (open_ones or candidates)[0]
            placed.setdefault(int(fo["id"]), Counter())[int(item["id"])] += left
    return [
        {
            "fulfillment_order_id": fo_id,
            "fulfillment_order_line_items": [
                {"id": item_id, "quantity": qty} for item_id, qty in items.items()
            ],
        }
        for fo_id, items in placed.items()
    ]


def _graphql_payload(answer: Any, field_name: str, platform: str) -> dict[str, Any]:
    """The mutation's payload. Top-level errors the client let through (no code, or one that is neither a
    throttle nor transient: an invalid variable, a missing argument or directive) are Shopify refusing the
    request as written."""
    errors = answer.get("errors") if isinstance(answer, dict) else None
    if errors:
        codes = {
            str((error.get("extensions") or {}).get("code"))
            for error in errors
            if isinstance(error, dict) and (error.get("extensions") or {}).get("code")
        }
        words = "; ".join(str(error.get("message")) for error in errors if isinstance(error, dict))
        raise ShipmentRefused(words or "GraphQL error", {"code": ",".join(sorted(codes))})
    payload = dig(answer, f"data.{field_name}")
    if not isinstance(payload, dict):
        raise MalformedResponse(f"GraphQL answer has no data.{field_name}", platform=platform)
    return payload


class ShopifyShipment(ShipmentSteps):
    def __init__(self, connector: ShopifyConnector) -> None:
        self.connector = connector

    def read_shipment(self, push: ShipmentPush, carrier: str) -> ShipmentState:
        order_id = push.external_order_id
        if not order_id.isdigit():
            raise ShipmentRefused(f"Shopify order ids are numeric, got {order_id!r}")
        number = push.tracking_number.strip()
        if not number:
            raise ShipmentRefused("a shipment push needs a tracking number")
        wanted: Counter[str] = Counter()
        for line in push.lines:
            if line.quantity <= 0 or not line.external_line_id.isdigit():
                raise ShipmentRefused(f"bad shipment line {line.external_line_id!r} x {line.quantity}")
            wanted[line.external_line_id] += line.quantity

        order = call(
            self.connector, "order", path_params={"order_id": order_id}, params={"fields": _ORDER_FIELDS}
        )
        fulfillments = [f for f in order.get("fulfillments") or [] if f.get("status") == "success"]
        same_number = [f for f in fulfillments if number in _tracking_numbers(f)]
        covered = sum((_fulfilled_lines(f) for f in same_number), Counter())
        done = bool(same_number) and all(covered[line_id] >= qty for line_id, qty in wanted.items())
        # The lines no longer fit in what is left to ship and an earlier fulfillment holds exactly these
        # lines: the tracking number changed without the push naming the old one.
        left = {str(item["id"]): int(item.get("fulfillable_quantity") or 0) for item in order["line_items"]}
        earlier = None
        if any(qty > left.get(line_id, 0) for line_id, qty in wanted.items()):
            exact = [f for f in fulfillments if _fulfilled_lines(f) == wanted]
            earlier = exact[-1] if exact else None
        return ShipmentState(
            shipped_with=frozenset({push.tracking_number, number} if done else ()),
            on_platform=frozenset(n for f in fulfillments for n in _tracking_numbers(f)),
            replaces=str(earlier.get("tracking_number") or "") if earlier is not None else None,
            platform_ref=str(same_number[-1]["id"]) if done else None,
            detail=(
                f"Shopify already has fulfillment {', '.join(str(f['id']) for f in same_number)} with "
                f"tracking number {number}"
            ),
            extra={"name": str(same_number[-1].get("name") or "")} if done else {},
            order=(order_id, fulfillments, wanted, earlier),
        )

    def send_shipment(self, push: ShipmentPush, carrier: str, state: ShipmentState) -> PushResult:
        order_id, _, wanted, _ = state.order
        number = push.tracking_number.strip()
        fulfillment_orders = call(self.connector, "fulfillment_orders", path_params={"order_id": order_id})
        groups = _allocate(order_id, fulfillment_orders, wanted)
        created = call(
            self.connector,
            "create_fulfillment",
            body={
                "fulfillment": {
                    "notify_customer": self.connector.notify_customer,
                    "tracking_info": {"number": number, "company": carrier},
                    "line_items_by_fulfillment_order": groups,
                }
            },
        )
        return PushResult(
            "pushed",
            detail=f"fulfillment {created.get('name')} created with tracking number {number}",
            platform_ref=str(created["id"]),
            extra=_fulfillment_extra(created),
        )

    def update_tracking(
        self, push: ShipmentPush, carrier: str, state: ShipmentState, replacing: str
    ) -> PushResult:
        _, fulfillments, _, earlier = state.order
        named = [f for f in fulfillments if replacing and replacing in _tracking_numbers(f)]
        if replacing == push.previous_tracking_number and named:
            fulfillment, previous = named[-1], replacing
        else:  # the earlier fulfillment of exactly these lines
            fulfillment, previous = earlier, str(earlier.get("tracking_number") or "")
        number = push.tracking_number.strip()
        updated = call(
            self.connector,
            "update_tracking",
            path_params={"fulfillment_id": fulfillment["id"]},
            body={
                "fulfillment": {
                    "notify_customer": self.connector.notify_customer,
                    "tracking_info": {"number": number, "company": carrier},
                }
            },
        )
        return PushResult(
            "pushed",
            detail=f"fulfillment {updated.get('name')}: tracking number {previous or '(none)'} -> {number}",
            platform_ref=str(updated["id"]),
            extra={
                **_fulfillment_extra(updated),
                "action": "update_tracking",
                "previous_tracking_number": previous,
            },
        )


def push_shopify_shipment(connector: ShopifyConnector, push: ShipmentPush) -> PushResult:
    """Ship ``push.lines`` with their tracking, through the order's fulfillment orders (module docstring)."""
    return push_shipment(ShopifyShipment(connector), RULES, push)


def set_stock(connector: ShopifyConnector, push: StockPush) -> PushResult:
    """Set the available quantity of the variant's inventory item at one location: GraphQL
    ``inventorySetQuantities`` with ``changeFromQuantity`` (Shopify's compare-and-set) under an
    ``@idempotent`` key.

    ``expected_current`` None (the hub): compare against the level read just before (``null`` where the
    item has no level at the location yet, which 2026-10 sets like any other); a sale landing in
    between makes the set stale (``CHANGE_FROM_QUANTITY_STALE``): the level is read again and the set
    retried, a bounded number of times. ``expected_current`` given: compare against exactly that; stale
    is ``rejected``. Either way a stale set whose level already is the wanted one is ``already_done``.

    The key is a UUID named from a nonce drawn for each set and what the set is (item, location, quantity,
    changeFromQuantity): the client's replay of the same request (a 5xx, a timeout) carries the same key
    and is applied once; a retry after a stale read, or a later push, is a new operation with a new key
    (a key reused with other variables is ``IDEMPOTENCY_KEY_PARAMETER_MISMATCH``, and one reused for a
    later identical set would be answered from the first without being applied).
    The inventory item comes from ``GET variants/{channel_variant_id}.json`` (cached per connector); the
    location is ``location_ref`` or, when the shop has exactly one active location, that one.
    """
    try:
        return _set_stock(connector, push)
    except ShipmentRefused as refused:
        return refused.result


def _set_stock(connector: ShopifyConnector, push: StockPush) -> PushResult:
    item_id = connector.inventory_item_id(push)
    location_id = connector.location_id(push)
    extra = {"inventory_item_id": str(item_id), "location_id": str(location_id)}
    if push.expected_current is not None:
        outcome = _set_quantity(connector, push, item_id, location_id, push.expected_current)
        if not isinstance(outcome, str):
            return outcome
        current = connector.available(item_id, location_id)
        if current == push.quantity:  # a replay of a set that landed
            return _already(push, item_id, extra)
        raise ShipmentRefused(
            f"{outcome} (expected {push.expected_current}, Shopify has {current})",
            {**extra, "code": STALE, "current": str(current)},
        )
    current = connector.available(item_id, location_id)
    for _ in range(STALE_RETRIES):
        outcome = _set_quantity(connector, push, item_id, location_id, current)
        if not isinstance(outcome, str):
            return outcome
        current = connector.available(item_id, location_id)  # a sale landed between the read and the set
        if current == push.quantity:
            return _already(push, item_id, extra)
    raise ShipmentRefused(
        f"available kept changing during {STALE_RETRIES} compare-and-set attempts",
        {**extra, "code": STALE, "current": str(current)},
    )


def _already(push: StockPush, item_id: int, extra: dict[str, str]) -> PushResult:
    detail = f"available is already {push.quantity}"
    return PushResult("already_done", detail=detail, platform_ref=str(item_id), extra=extra)


def _set_quantity(
    connector: ShopifyConnector, push: StockPush, item_id: int, location_id: int, change_from: int | None
) -> PushResult | str:
    """One set: the result, or Shopify's words when ``change_from`` was stale. Its key is drawn here, so
    only the client's replays of this very request share it."""
    extra = {"inventory_item_id": str(item_id), "location_id": str(location_id)}
    for _ in range(STALE_RETRIES):
        nonce = uuid.uuid4()
        key = uuid.uuid5(
            _KEY_NAMESPACE, f"{nonce}|{item_id}|{location_id}|available|{push.quantity}|{change_from}"
        )
        answer = call(
            connector,
            "graphql_set_quantities",
            body={
                "query": SET_QUANTITIES_MUTATION,
                "variables": {
                    "idempotencyKey": str(key),
                    "input": {
                        "name": "available",
                        "reason": "correction",
                        "quantities": [
                            {
                                "inventoryItemId": f"gid://shopify/InventoryItem/{item_id}",
                                "locationId": f"gid://shopify/Location/{location_id}",
                                "quantity": push.quantity,
                                # Sent even when None: 2026-04 refuses a quantity without it; null
                                # means no level to compare with yet.
                                "changeFromQuantity": change_from,
                            }
                        ],
                    },
                },
            },
        )
        payload = _graphql_payload(answer, "inventorySetQuantities", connector.platform)
        errors = payload.get("userErrors") or []
        if not errors:
            was = "no level" if change_from is None else change_from
            return PushResult(
                "pushed",
                detail=f"available set to {push.quantity} (was {was})",
                platform_ref=str(item_id),
                extra={**extra, "available": str(push.quantity), "idempotency_key": str(key)},
            )
        words = "; ".join(str(error.get("message")) for error in errors)
        codes = ",".join(str(error.get("code")) for error in errors)
        if STALE in codes:
            return words
        if KEY_IN_FLIGHT in codes:  # our own replay overtook the first attempt: later, same key
            raise TransientError(f"GraphQL: {words}", platform=connector.platform, code=KEY_IN_FLIGHT)
        if KEY_FAILED_BEFORE in codes:  # Shopify wants a new key for another try
            continue
        raise ShipmentRefused(words, {**extra, "code": codes})
    raise ShipmentRefused(f"{KEY_FAILED_BEFORE} {STALE_RETRIES} times", {**extra, "code": KEY_FAILED_BEFORE})
