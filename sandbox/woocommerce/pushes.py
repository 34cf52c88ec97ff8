"""What the hub writes to WooCommerce orders: status (``PUT orders/{id}``), order notes and the Shipment
Tracking extension's routes; the stock routes come from ``stock.py``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response

from sandbox.admin import json_response
from sandbox.woocommerce.listing import _boolean
from sandbox.woocommerce.render import WooRenderer, render_order, wc_status
from sandbox.woocommerce.stock import CatalogRenderer, add_stock_routes
from sandbox.woocommerce.store import (
    CLOSED_STATUSES,
    INVALID_JSON,
    ORDER_INVALID_ID,
    SANDBOX_UNSUPPORTED_STATUS_CHANGE,
    SHIPMENT_TRACKING_PROVIDERS,
    TRACKING_EXISTS,
    TRACKING_INVALID_ID,
    TRACKING_PREFIX,
    OrderNote,
    TrackingItem,
    WooStore,
)
from sandbox.woocommerce.wire import (
    API_PREFIX,
    INVALID_ID,
    NO_ROUTE,
    STATUSES,
    BadRequest,
    _error,
    _json_body,
)
from sandbox.world import OrderState, World


def _missing(*names: str) -> dict[str, Any]:
    return _error(
        "rest_missing_callback_param", f"Missing parameter(s): {', '.join(names)}", 400, params=list(names)
    )


def parse_flag(name: str, raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    return _boolean(name, str(raw))


def add_write_routes(
    app: FastAPI, world: World, renderer: WooRenderer, store: WooStore, products: CatalogRenderer
) -> None:
    """Order status, order notes, the Shipment Tracking extension's routes and product stock."""
    time = renderer.time

    def order_state(order_ref: str) -> OrderState | None:
        index = renderer.index_of(int(order_ref)) if order_ref.isdigit() else None
        return world.state(index, world.now_ts()) if index is not None else None

    # ------------------------------------------------------------ PUT /orders/{id} (status only)
    @app.put(API_PREFIX + "/orders/{order_ref}")
    async def update_order(order_ref: str, request: Request) -> Response:
        state = order_state(order_ref)
        if state is None:
            return json_response(INVALID_ID, 404)
        body = await _json_body(request)
        if body is None:
            return json_response(INVALID_JSON, 400)
        wanted = body.get("status")
        if wanted is None:
            return json_response(render_order(app.state.faults, renderer, state, store))
        if wanted not in STATUSES:
            allowed = ", ".join(STATUSES[:-1])
            return json_response(
                BadRequest({"status": f"status is not one of {allowed} and {STATUSES[-1]}."}).body(), 400
            )
        current = wc_status(state)
        if wanted == current:  # WooCommerce saves nothing and adds no note when the status is unchanged
            return json_response(render_order(app.state.faults, renderer, state, store))
        if wanted != "completed" or current in CLOSED_STATUSES:
            return json_response(
                _error(
                    SANDBOX_UNSUPPORTED_STATUS_CHANGE,
                    f"The sandbox models only completing an open order (not {current} -> {wanted}).",
                    400,
                ),
                400,
            )
        # Completing ships every unit still open (core has no partial shipment); the latest tracking item,
        # if any, is the shipment's tracking in the world.
        now_ts = int(world.now_ts())
        lines = tuple(
            (line.index, state.fulfillable(line.index))
            for line in state.order.lines
            if state.fulfillable(line.index) > 0
        )
        items = store.tracking_items(state.index)
        company = number = url = ""
        if items:
            company, url = items[-1].formatted(state.order.shipping_address.zip)
            number = items[-1].tracking_number
        world.overlay.record_fulfillment(state.index, now_ts, lines, company, number, url)
        store.add_note(
            state.index,
            f"Order status changed from {current.title()} to Completed.",
            customer_note=False,
            at=now_ts,
        )
        updated = world.state(state.index, world.now_ts())
        assert updated is not None
        return json_response(render_order(app.state.faults, renderer, updated, store))

    # ------------------------------------------------------------ order notes
    def render_note(order_id: int, note: OrderNote) -> dict[str, Any]:
        base = f"{renderer.base_url}{API_PREFIX}/orders/{order_id}/notes"
        return {
            "id": note.id,
            "author": note.author,
            "date_created": time.local(note.at),
            "date_created_gmt": time.gmt(note.at),
            "note": note.note,
            "customer_note": note.customer_note,
            "added_by_user": note.added_by_user,
            "_links": {
                "self": [{"href": f"{base}/{note.id}"}],
                "collection": [{"href": base}],
                "up": [{"href": f"{renderer.base_url}{API_PREFIX}/orders/{order_id}"}],
            },
        }

    @app.get(API_PREFIX + "/orders/{order_ref}/notes")
    def list_notes(order_ref: str, request: Request) -> Response:
        state = order_state(order_ref)
        if state is None:
            return json_response(ORDER_INVALID_ID, 404)
        kind = request.query_params.get("type", "any")
        if kind not in ("any", "customer", "internal"):
            return json_response(
                BadRequest({"type": "type is not one of any, customer and internal."}).body(), 400
            )
        notes = [
            note
            for note in store.order_notes(state.index)
            if kind == "any" or note.customer_note == (kind == "customer")
        ]
        return json_response([render_note(int(order_ref), note) for note in notes])

    @app.post(API_PREFIX + "/orders/{order_ref}/notes")
    async def add_note(order_ref: str, request: Request) -> Response:
        state = order_state(order_ref)
        if state is None:
            return json_response(ORDER_INVALID_ID, 404)
        body = await _json_body(request)
        if body is None:
            return json_response(INVALID_JSON, 400)
        if "note" not in body:
            return json_response(_missing("note"), 400)
        text = str(body["note"] or "").strip()
        if not text:
            return json_response(
                _error(
                    "woocommerce_rest_invalid_order_note", "Cannot create order note, please try again.", 500
                ),
                500,
            )
        try:
            customer = bool(parse_flag("customer_note", body.get("customer_note", False)))
            by_user = bool(parse_flag("added_by_user", body.get("added_by_user", False)))
        except BadRequest as error:
            return json_response(error.body(), 400)
        note = store.add_note(
            state.index, text, customer_note=customer, at=int(world.now_ts()), added_by_user=by_user
        )
        return json_response(render_note(int(order_ref), note), 201)

    # ------------------------------------------------------------ Shipment Tracking extension
    trackings_path = TRACKING_PREFIX + "/orders/{order_ref}/shipment-trackings"

    def render_tracking(order_id: int, state: OrderState, item: TrackingItem) -> dict[str, Any]:
        provider, link = item.formatted(state.order.shipping_address.zip)
        base = f"{renderer.base_url}{trackings_path.format(order_ref=order_id)}"
        return {
            "tracking_id": item.tracking_id,
            "tracking_provider": provider,
            "tracking_link": link,
            "tracking_number": item.tracking_number,
            "date_shipped": datetime.fromtimestamp(item.date_shipped, UTC).strftime("%Y-%m-%d"),
            "_links": {
                "self": [{"href": f"{base}/{item.tracking_id}"}],
                "collection": [{"href": base}],
                "up": [{"href": f"{renderer.base_url}{TRACKING_PREFIX}/orders/{order_id}"}],
            },
        }

    def providers_response() -> Response:
        if not store.shipment_tracking:
            return json_response(NO_ROUTE, 404)
        return json_response(SHIPMENT_TRACKING_PROVIDERS)

    @app.get(TRACKING_PREFIX + "/shipment-trackings/providers")
    def providers() -> Response:
        return providers_response()

    @app.get(trackings_path + "/providers")
    def order_providers(order_ref: str) -> Response:
        return providers_response()

    @app.get(trackings_path)
    def list_trackings(order_ref: str) -> Response:
        if not store.shipment_tracking:
            return json_response(NO_ROUTE, 404)
        state = order_state(order_ref)
        if state is None:
            return json_response(ORDER_INVALID_ID, 404)
        items = store.tracking_items(state.index)
        return json_response([render_tracking(int(order_ref), state, item) for item in items])

    @app.post(trackings_path)
    async def add_tracking(order_ref: str, request: Request) -> Response:
        if not store.shipment_tracking:
            return json_response(NO_ROUTE, 404)
        body = await _json_body(request)
        if body is None:
            return json_response(INVALID_JSON, 400)
        if "tracking_number" not in body:  # the route's one required argument, checked before the handler
            return json_response(_missing("tracking_number"), 400)
        if body.get("tracking_id"):
            return json_response(TRACKING_EXISTS, 400)
        state = order_state(order_ref)
        if state is None:
            return json_response(ORDER_INVALID_ID, 404)
        # Like the extension: no check of the provider (an unknown one is stored with an empty name and
        # link), of the order's status, or of a number already on the order.
        item = store.add_tracking(state.index, body, int(world.now_ts()))
        rendered = render_tracking(int(order_ref), state, item)
        return json_response(rendered, 201, {"Location": rendered["_links"]["self"][0]["href"]})

    @app.get(trackings_path + "/{tracking_id}")
    def get_tracking(order_ref: str, tracking_id: str) -> Response:
        if not store.shipment_tracking:
            return json_response(NO_ROUTE, 404)
        state = order_state(order_ref)
        if state is None:
            return json_response(ORDER_INVALID_ID, 404)
        for item in store.tracking_items(state.index):
            if item.tracking_id == tracking_id:
                return json_response(render_tracking(int(order_ref), state, item))
        return json_response(TRACKING_INVALID_ID, 404)

    @app.delete(trackings_path + "/{tracking_id}")
    def delete_tracking(order_ref: str, tracking_id: str) -> Response:
        if not store.shipment_tracking:
            return json_response(NO_ROUTE, 404)
        state = order_state(order_ref)
        if state is None:
            return json_response(ORDER_INVALID_ID, 404)
        removed = store.delete_tracking(state.index, tracking_id)
        if removed is None:
            return json_response(TRACKING_INVALID_ID, 404)
        return json_response(render_tracking(int(order_ref), state, removed))

    add_stock_routes(app, world, store, products)
