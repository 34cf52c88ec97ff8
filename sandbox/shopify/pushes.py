"""What the hub pushes to Shopify: fulfillment orders, fulfillments with tracking and their tracking
updates (docs/platform-notes.md, Shopify); the stock routes come from ``stock.py``."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response

from sandbox.shopify.render import ShopifyRenderer
from sandbox.shopify.stock import add_stock_routes
from sandbox.shopify.wire import (
    API_PREFIX,
    JSON_MEDIA_TYPE,
    NOT_FOUND_BODY,
    SHOP_LOCATION,
    SHOP_LOCATION_ID,
    Tracking,
    Unprocessable,
    _int_field,
    _json_response,
    _missing,
    detect_carrier,
    json_body,
    refusal,
    tracking_url_for,
)
from sandbox.world import (
    OrderState,
    World,
)

INVALID_QUANTITY = "Invalid fulfillment order line item quantity requested."


def fulfillment_orders(renderer: ShopifyRenderer, state: OrderState) -> list[dict[str, Any]]:
    """``GET orders/{id}/fulfillment_orders.json``: the order's one fulfillment order at the shop's
    location. Partly shipped -> ``in_progress``; nothing left, or the order cancelled -> ``closed``
    (Shopify closes, rather than cancels, the fulfillment orders of a cancelled order; their lines keep
    ``quantity == fulfillable_quantity`` as the community reports)."""
    order = state.order
    index = order.index
    fo_id = renderer.fulfillment_order_id(index)
    lines = []
    for line in order.lines:
        assigned = line.quantity - state.removed[line.index]
        remaining = state.fulfillable(line.index)
        if state.cancelled:
            remaining = assigned = max(0, assigned - state.shipped[line.index])
        listing = line.variant.listing("shopify")
        lines.append(
            {
                "id": renderer.fulfillment_order_line_id(index, line.index),
                "shop_id": renderer.shop_id,
                "fulfillment_order_id": fo_id,
                "quantity": assigned,
                "line_item_id": renderer.line_item_id(index, line.index),
                "inventory_item_id": listing.inventory_item_id,
                "fulfillable_quantity": remaining,
                "variant_id": listing.variant_id,
            }
        )
    left = sum(state.fulfillable(i) for i in range(len(order.lines)))
    if state.cancelled or left == 0:
        status = "closed"
    elif any(state.shipped):
        status = "in_progress"
    else:
        status = "open"
    updated = max([order.created_ts, *(f.at for f in state.fulfillments), state.cancelled_ts or 0])
    address = order.shipping_address
    return [
        {
            "id": fo_id,
            "created_at": renderer.time.format(order.created_ts),
            "updated_at": renderer.time.format(updated),
            "shop_id": renderer.shop_id,
            "order_id": renderer.order_id(index),
            "assigned_location_id": SHOP_LOCATION_ID,
            "request_status": "unsubmitted",
            "status": status,
            "fulfill_at": None,
            "fulfill_by": None,
            "supported_actions": ["create_fulfillment", "move"] if status != "closed" else [],
            "destination": {
                "id": fo_id + 1,
                "address1": address.address1,
                "address2": address.address2,
                "city": address.city,
                "company": address.company,
                "country": address.country,
                "email": order.email,
                "first_name": address.first_name,
                "last_name": address.last_name,
                "phone": address.phone,
                "province": address.province,
                "zip": address.zip,
            },
            "line_items": lines,
            "international_duties": None,
            "fulfillment_holds": [],
            "delivery_method": {
                "id": fo_id + 2,
                "method_type": "shipping",
                "min_delivery_date_time": None,
                "max_delivery_date_time": None,
            },
            "assigned_location": {
                "address1": SHOP_LOCATION["address1"],
                "address2": None,
                "city": SHOP_LOCATION["city"],
                "country_code": SHOP_LOCATION["country_code"],
                "location_id": SHOP_LOCATION_ID,
                "name": SHOP_LOCATION["name"],
                "phone": SHOP_LOCATION["phone"],
                "province": SHOP_LOCATION["province"],
                "zip": SHOP_LOCATION["zip"],
            },
            "merchant_requests": [],
        }
    ]


def add_push_routes(
    app: FastAPI, world: World, renderer: ShopifyRenderer, count: Callable[[str], None]
) -> None:
    """Fulfillment orders, fulfillments (create, update tracking), then the stock routes (``stock.py``).
    ``count`` notes what was served (``/_sandbox/state``'s ``requests``)."""
    push_lock = threading.Lock()  # validate-then-record must not interleave between two pushes
    tracking_updates: list[dict[str, Any]] = []  # every update_tracking.json applied, in order
    app.state.tracking_updates = tracking_updates

    def current_state(index: int) -> OrderState | None:
        return world.state(index, world.now_ts())

    @app.get(API_PREFIX + "/orders/{order_ref}/fulfillment_orders.json")
    def list_fulfillment_orders(order_ref: str) -> Response:
        index = renderer.index_of(int(order_ref)) if order_ref.isdigit() else None
        state = current_state(index) if index is not None else None
        if state is None:
            return _json_response(NOT_FOUND_BODY, 404)
        return _json_response({"fulfillment_orders": fulfillment_orders(renderer, state)})

    def tracking_from(info: Any, previous: Tracking | None, at: int) -> Tracking:
        if info is None:
            info = {}
        if not isinstance(info, dict):
            raise _missing("tracking_info")
        number = info.get("number")
        if number is None and isinstance(info.get("numbers"), list) and info["numbers"]:
            number = info["numbers"][0]
        number = "" if number is None else str(number).strip()
        company = str(info.get("company") or "").strip() or detect_carrier(number)
        if not company and previous is not None and not number:
            company = previous.company
        url = info.get("url")
        if url is None and isinstance(info.get("urls"), list) and info["urls"]:
            url = info["urls"][0]
        url = str(url).strip() if url else tracking_url_for(company, number)
        return Tracking(company, number, url, at)

    def requested_lines(fulfillment: dict[str, Any]) -> tuple[int, dict[int, int] | None]:
        """(world index, {line index: quantity}) of a create request; None quantities: everything left."""
        groups = fulfillment.get("line_items_by_fulfillment_order")
        if not isinstance(groups, list) or not groups:
            raise _missing("line_items_by_fulfillment_order")
        index: int | None = None
        wanted: dict[int, int] | None = {}
        for group in groups:
            if not isinstance(group, dict):
                raise _missing("line_items_by_fulfillment_order")
            fo_id = _int_field(group, "fulfillment_order_id")
            assert fo_id is not None
            fo_index = renderer.index_of_fulfillment_order(fo_id)
            if fo_index is None or current_state(fo_index) is None:
                raise Unprocessable(NOT_FOUND_BODY["errors"], 404)
            if index is not None and fo_index != index:
                raise Unprocessable(["All fulfillment orders must belong to the same order."])
            index = fo_index
            items = group.get("fulfillment_order_line_items")
            if items is None:
                wanted = None  # the whole fulfillment order
                continue
            if not isinstance(items, list):
                raise _missing("fulfillment_order_line_items")
            for item in items:
                if not isinstance(item, dict):
                    raise _missing("fulfillment_order_line_items")
                line_id, quantity = _int_field(item, "id"), _int_field(item, "quantity")
                assert line_id is not None and quantity is not None
                line_index = line_id - renderer.fulfillment_order_line_id(fo_index, 0)
                if not 0 <= line_index < len(world.get(fo_index).lines) or quantity <= 0:
                    raise Unprocessable([INVALID_QUANTITY])
                if wanted is not None:
                    wanted[line_index] = wanted.get(line_index, 0) + quantity
        assert index is not None
        return index, wanted

    @app.post(API_PREFIX + "/fulfillments.json")
    async def create_fulfillment(request: Request) -> Response:
        try:
            body = await json_body(request)
            fulfillment = body.get("fulfillment")
            if not isinstance(fulfillment, dict):
                raise _missing("fulfillment")
            with push_lock:
                index, wanted = requested_lines(fulfillment)
                now = int(world.now_ts())
                state = current_state(index)
                assert state is not None
                fo = fulfillment_orders(renderer, state)[0]
                if fo["status"] == "closed":
                    raise Unprocessable(
                        [f"Fulfillment order {fo['id']} has an unfulfillable status= closed."]
                    )
                remaining = {i: state.fulfillable(i) for i in range(len(state.order.lines))}
                if wanted is None:
                    wanted = {i: q for i, q in remaining.items() if q > 0}
                if any(quantity > remaining[i] for i, quantity in wanted.items()):
                    raise Unprocessable([INVALID_QUANTITY])
                tracking = tracking_from(fulfillment.get("tracking_info"), None, now)
                lines = tuple(sorted(wanted.items()))
                world.overlay.record_fulfillment(
                    index, now, lines, tracking.company, tracking.number, tracking.url
                )
                after = current_state(index)
                assert after is not None
                made = [
                    f
                    for f in after.fulfillments
                    if f.pushed and f.at == now and f.lines == lines and f.tracking_number == tracking.number
                ][-1]
        except Unprocessable as error:
            return refusal(error)
        body_text = '{"fulfillment":' + renderer.fulfillment_json(after, made) + "}"
        return Response(body_text.encode(), 201, media_type=JSON_MEDIA_TYPE)

    @app.post(API_PREFIX + "/fulfillments/{fulfillment_ref}/update_tracking.json")
    async def update_tracking(request: Request, fulfillment_ref: str) -> Response:
        ref = renderer.fulfillment_ref(int(fulfillment_ref)) if fulfillment_ref.isdigit() else None
        state = current_state(ref[0]) if ref is not None else None
        found = [f for f in state.fulfillments if ref and f.seq == ref[1]] if state is not None else []
        if ref is None or state is None or not found:
            return _json_response(NOT_FOUND_BODY, 404)
        try:
            body = await json_body(request)
            fulfillment = body.get("fulfillment")
            if not isinstance(fulfillment, dict) or not isinstance(fulfillment.get("tracking_info"), dict):
                raise _missing("tracking_info")
            with push_lock:
                previous = renderer.tracking_of(ref[0], found[0])
                tracking = tracking_from(fulfillment["tracking_info"], previous, int(world.now_ts()))
                renderer.set_tracking(ref[0], ref[1], tracking)
                tracking_updates.append(
                    {
                        "fulfillment_id": int(fulfillment_ref),
                        "previous_number": previous.number,
                        "number": tracking.number,
                        "company": tracking.company,
                        "at": tracking.at,
                    }
                )
                count("tracking_updates")
        except Unprocessable as error:
            return refusal(error)
        return Response(
            ('{"fulfillment":' + renderer.fulfillment_json(state, found[0]) + "}").encode(),
            200,
            media_type=JSON_MEDIA_TYPE,
        )

    add_stock_routes(app, world, renderer, count)
