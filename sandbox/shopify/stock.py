"""Shopify's stock endpoints over the world's overlay: locations, variants, inventory levels (REST) and
GraphQL ``inventorySetQuantities`` with ``changeFromQuantity`` and ``@idempotent``."""

from __future__ import annotations

import json
import json.encoder
import re
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import FastAPI, Request
from fastapi.responses import Response

from sandbox.common import two_decimals
from sandbox.shopify.render import ShopifyRenderer
from sandbox.shopify.wire import (
    API_PREFIX,
    MAX_INVENTORY_QUANTITY,
    MUTATION_COST,
    NOT_FOUND_BODY,
    SHOP_LOCATION,
    SHOP_LOCATION_ID,
    Unprocessable,
    _gid_tail,
    _int_field,
    _json_response,
    _missing,
    json_body,
    refusal,
)
from sandbox.world import (
    World,
)

INVENTORY_REASONS = frozenset(
    {
        "correction",
        "cycle_count_available",
        "damaged",
        "movement_created",
        "movement_updated",
        "movement_received",
        "movement_canceled",
        "other",
        "promotion",
        "quality_control",
        "received",
        "reservation_created",
        "reservation_deleted",
        "reservation_updated",
        "restock",
        "safety_stock",
        "shrinkage",
    }
)


class ShopStock:
    """The shop's stock: one location; levels live in the world's overlay (the catalog's opening stock until
    the hub sets one). Reads and compare-and-set run under one lock, so a CAS is atomic."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.lock = threading.Lock()
        self.by_item = {v.listing("shopify").inventory_item_id: v for v in world.catalog.variants}
        self.by_variant_id = {v.listing("shopify").variant_id: v for v in world.catalog.variants}
        self._set_at: dict[tuple[int, int], int] = {}

    def available(self, variant_index: int, location_id: int) -> int:
        level = self.world.overlay.stock_levels.get(("shopify", variant_index, location_id))
        if level is not None:
            return level
        return (
            self.world.catalog.variants[variant_index].opening_stock if location_id == SHOP_LOCATION_ID else 0
        )

    def set(self, variant_index: int, location_id: int, available: int, at: int) -> None:
        self.world.overlay.record_stock_set("shopify", variant_index, location_id, available, at)
        self._set_at[(variant_index, location_id)] = at

    def updated_ts(self, variant_index: int, location_id: int) -> int:
        return self._set_at.get((variant_index, location_id), int(self.world.start_ts))


def add_stock_routes(
    app: FastAPI, world: World, renderer: ShopifyRenderer, count: Callable[[str], None]
) -> None:
    """Locations, variants, inventory levels and the GraphQL ``inventorySetQuantities`` mutation (the one
    place Shopify offers compare-and-set)."""
    stock = ShopStock(world)
    app.state.stock = stock
    answers_by_key: dict[str, tuple[str, dict[str, Any]]] = {}  # @idempotent key -> (variables, payload)

    def location_json() -> dict[str, Any]:
        created = renderer.time.format(int(world.start_ts))
        return {
            "id": SHOP_LOCATION_ID,
            "name": SHOP_LOCATION["name"],
            "address1": SHOP_LOCATION["address1"],
            "address2": None,
            "city": SHOP_LOCATION["city"],
            "zip": SHOP_LOCATION["zip"],
            "province": SHOP_LOCATION["province"],
            "country": SHOP_LOCATION["country"],
            "phone": SHOP_LOCATION["phone"],
            "created_at": created,
            "updated_at": created,
            "country_code": SHOP_LOCATION["country_code"],
            "country_name": SHOP_LOCATION["country_name"],
            "province_code": SHOP_LOCATION["province_code"],
            "legacy": False,
            "active": True,
            "admin_graphql_api_id": f"gid://shopify/Location/{SHOP_LOCATION_ID}",
            "localized_country_name": SHOP_LOCATION["country_name"],
            "localized_province_name": SHOP_LOCATION["province"],
        }

    def level_json(variant_index: int, location_id: int) -> dict[str, Any]:
        item_id = world.catalog.variants[variant_index].listing("shopify").inventory_item_id
        return {
            "inventory_item_id": item_id,
            "location_id": location_id,
            "available": stock.available(variant_index, location_id),
            "updated_at": renderer.time.format(stock.updated_ts(variant_index, location_id)),
            "admin_graphql_api_id": f"gid://shopify/InventoryLevel/{location_id}?inventory_item_id={item_id}",
        }

    @app.get(API_PREFIX + "/locations.json")
    def list_locations() -> Response:
        return _json_response({"locations": [location_json()]})

    @app.get(API_PREFIX + "/variants/{variant_ref}.json")
    def get_variant(variant_ref: str) -> Response:
        variant = stock.by_variant_id.get(int(variant_ref)) if variant_ref.isdigit() else None
        if variant is None:
            return _json_response(NOT_FOUND_BODY, 404)
        listing = variant.listing("shopify")
        created = renderer.time.format(int(world.start_ts))
        options = (variant.variant_title or "Default Title").split(" / ")
        quantity = stock.available(variant.index, SHOP_LOCATION_ID)
        return _json_response(
            {
                "variant": {
                    "id": listing.variant_id,
                    "product_id": listing.product_id,
                    "title": variant.variant_title or "Default Title",
                    "price": two_decimals(variant.price),
                    "sku": listing.sku,
                    "position": 1,
                    "inventory_policy": "deny",
                    "compare_at_price": None,
                    "fulfillment_service": "manual",
                    "inventory_management": "shopify",
                    "option1": options[0],
                    "option2": options[1] if len(options) > 1 else None,
                    "option3": None,
                    "created_at": created,
                    "updated_at": created,
                    "taxable": True,
                    "barcode": None,
                    "grams": variant.grams,
                    "weight": variant.grams / 1000,
                    "weight_unit": "kg",
                    "inventory_item_id": listing.inventory_item_id,
                    "inventory_quantity": quantity,
                    "old_inventory_quantity": quantity,
                    "requires_shipping": True,
                    "admin_graphql_api_id": f"gid://shopify/ProductVariant/{listing.variant_id}",
                    "image_id": None,
                }
            }
        )

    def id_list(raw: str | None, name: str) -> list[int] | None:
        if raw is None:
            return None
        parts = [part.strip() for part in raw.split(",") if part.strip()]
        if not parts or not all(re.fullmatch(r"\d{1,19}", part) for part in parts) or len(parts) > 50:
            raise _missing(name)
        return [int(part) for part in parts]

    @app.get(API_PREFIX + "/inventory_levels.json")
    def list_inventory_levels(request: Request) -> Response:
        params = dict(request.query_params)
        try:
            items = id_list(params.get("inventory_item_ids"), "inventory_item_ids")
            locations = id_list(params.get("location_ids"), "location_ids")
            if items is None and locations is None:
                raise Unprocessable(["inventory_item_ids, location_ids, or both are required"])  # [U] wording
        except Unprocessable as error:
            return refusal(error)
        variants = [stock.by_item[i] for i in items if i in stock.by_item] if items is not None else None
        if variants is None:
            variants = list(world.catalog.variants)
        wanted_locations = (
            [SHOP_LOCATION_ID] if locations is None else [x for x in locations if x == SHOP_LOCATION_ID]
        )
        with stock.lock:
            levels = [level_json(v.index, loc) for v in variants for loc in wanted_locations]
        return _json_response({"inventory_levels": levels})

    @app.post(API_PREFIX + "/inventory_levels/set.json")
    async def set_inventory_level(request: Request) -> Response:
        try:
            body = await json_body(request)
            location_id = _int_field(body, "location_id")
            item_id = _int_field(body, "inventory_item_id")
            available = _int_field(body, "available")
            assert location_id is not None and item_id is not None and available is not None
            variant = stock.by_item.get(item_id)
            if variant is None or location_id != SHOP_LOCATION_ID:
                raise Unprocessable(NOT_FOUND_BODY["errors"], 404)
            if abs(available) > MAX_INVENTORY_QUANTITY:
                raise Unprocessable(
                    {"available": [f"must be less than or equal to {MAX_INVENTORY_QUANTITY}"]}
                )
            with stock.lock:
                stock.set(variant.index, location_id, available, int(world.now_ts()))
                level = level_json(variant.index, location_id)
        except Unprocessable as error:
            return refusal(error)
        return _json_response({"inventory_level": level})

    @app.post(API_PREFIX + "/graphql.json")
    async def graphql(request: Request) -> Response:
        """Only ``inventorySetQuantities`` with its input in a variable (anything else: a GraphQL error), as
        2026-04 defines it (the package docstring); HTTP 200 whatever GraphQL says, like Shopify."""
        try:
            body = await json_body(request)
        except Unprocessable as error:
            return refusal(error)
        query = body.get("query")
        variables = body.get("variables") if isinstance(body.get("variables"), dict) else {}
        if not isinstance(query, str) or not query.strip():
            return _json_response({"errors": [{"message": "No query string was present"}]}, 400)
        webhooks = getattr(app.state, "graphql_webhooks", None)  # sandbox.shopify.webhooks
        if webhooks is not None and (answer := webhooks(query, variables)) is not None:
            return _json_response(answer)
        mutation = _SET_QUANTITIES_CALL.search(query)
        if not re.search(r"\bmutation\b", query) or mutation is None:
            return graphql_error(
                "The sandbox's GraphQL endpoint implements only the inventorySetQuantities mutation, with "
                "its input in a variable",
                "NOT_IMPLEMENTED",
            )
        input_variable = mutation.group("input")
        given = variables.get(input_variable)
        if problems := input_problems(given):
            return variable_error(query, input_variable, "InventorySetQuantitiesInput!", given, problems)
        directive = _IDEMPOTENT_DIRECTIVE.match(query, mutation.end())
        if directive is None:
            return graphql_error(
                "The @idempotent directive is required for this mutation but was not provided.", "BAD_REQUEST"
            )
        key = directive.group("literal")
        if directive.group("variable"):
            key = variables.get(directive.group("variable"))
            if not isinstance(key, str) or not key:
                return variable_error(
                    query,
                    directive.group("variable"),
                    "String!",
                    key,
                    [{"path": [], "explanation": "Expected value to not be null"}],
                )
        if any("changeFromQuantity" not in quantity for quantity in given["quantities"]):
            return graphql_error(
                "InventorySetQuantityInput must include the following argument: changeFromQuantity.",
                "INVALID_FIELD_ARGUMENTS",
            )
        payload = set_quantities(str(key), given)
        points = request.scope.get("shopify_points_left", app.state.costs.points)
        cost = app.state.costs.cost_extension(points, MUTATION_COST)
        return _json_response({"data": {"inventorySetQuantities": payload}, "extensions": {"cost": cost}})

    def graphql_error(message: str, code: str) -> Response:
        return _json_response({"errors": [{"message": message, "extensions": {"code": code}}]})

    def variable_error(
        query: str, name: str, type_name: str, value: Any, problems: list[dict[str, Any]]
    ) -> Response:
        """graphql-ruby's answer to a variable the schema refuses (an unknown field, a wrong type, a null)."""
        message = f"Variable ${name} of type {type_name} was provided invalid value"
        where = [
            f"{'.'.join(str(part) for part in problem['path'])} ({problem['explanation']})"
            for problem in problems
            if problem["path"]
        ]
        if where:
            message += " for " + ", ".join(where)
        at = query.find(f"${name}")  # the variable's definition comes first
        line = query.count("\n", 0, at) + 1
        column = at - query.rfind("\n", 0, at)
        error = {
            "message": message,
            "locations": [{"line": line, "column": column}],
            "extensions": {"value": value, "problems": problems},
        }
        return _json_response({"errors": [error]})

    def input_problems(given: Any) -> list[dict[str, Any]]:
        """What GraphQL refuses in an ``InventorySetQuantitiesInput`` before the mutation runs: fields the
        schema does not define (2026-04 removed ``ignoreCompareQuantity`` and ``compareQuantity``), nulls
        in non-null fields, values that are not Ints."""
        if not isinstance(given, dict):
            return [{"path": [], "explanation": "Expected value to not be null"}]
        problems: list[dict[str, Any]] = [
            {"path": [name], "explanation": "Field is not defined on InventorySetQuantitiesInput"}
            for name in given
            if name not in _SET_QUANTITIES_INPUT_FIELDS
        ]
        problems += [
            {"path": [name], "explanation": "Expected value to not be null"}
            for name in ("name", "reason", "quantities")
            if given.get(name) is None
        ]
        quantities = given.get("quantities")
        if quantities is not None and not isinstance(quantities, list):
            problems.append({"path": ["quantities"], "explanation": "Expected a list"})
        for position, quantity in enumerate(quantities if isinstance(quantities, list) else []):
            if not isinstance(quantity, dict):
                problems.append(
                    {
                        "path": ["quantities", position],
                        "explanation": "Expected value to be a key-value object",
                    }
                )
                continue
            for name in quantity:
                if name not in _SET_QUANTITY_FIELDS:
                    problems.append(
                        {
                            "path": ["quantities", position, name],
                            "explanation": "Field is not defined on InventorySetQuantityInput",
                        }
                    )
            for name in ("inventoryItemId", "locationId", "quantity"):
                if quantity.get(name) is None:
                    problems.append(
                        {
                            "path": ["quantities", position, name],
                            "explanation": "Expected value to not be null",
                        }
                    )
            for name in ("quantity", "changeFromQuantity"):
                value = quantity.get(name)
                if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                    problems.append(
                        {
                            "path": ["quantities", position, name],
                            "explanation": f"Could not coerce value {json.dumps(value)} to Int",
                        }
                    )
        return problems

    def set_quantities(key: str, given: dict[str, Any]) -> dict[str, Any]:
        """The mutation under its idempotency key: the first request with a key decides; the same key with
        the same input gets that answer again (applied once), with another input a mismatch."""
        variables = json.dumps(given, sort_keys=True)
        with stock.lock:
            known = answers_by_key.get(key)
            if known is not None:
                first_variables, first_payload = known
                if first_variables != variables:
                    return _user_error(
                        "IDEMPOTENCY_KEY_PARAMETER_MISMATCH",
                        None,
                        "The same idempotency key cannot be used with different operation parameters.",
                    )
                if first_payload["userErrors"]:  # [U] a refused first attempt: Shopify asks for a new key
                    return _user_error(
                        "IDEMPOTENCY_PREVIOUS_ATTEMPT_FAILED",
                        None,
                        "A previous request with this idempotency key failed. "
                        "Retry with a new idempotency key.",
                    )
                count("idempotent_replays")
                return first_payload
            payload = apply_quantities(given)
            answers_by_key[key] = (variables, payload)
            codes = {error["code"] for error in payload["userErrors"]}
            count("stale_sets" if "CHANGE_FROM_QUANTITY_STALE" in codes else "inventory_sets")
            return payload

    def apply_quantities(given: dict[str, Any]) -> dict[str, Any]:
        """Validate every quantity, then set them all (all or nothing). Called under ``stock.lock``."""
        if not given["quantities"]:
            return _user_error(
                "INVALID_INVENTORY_ITEM",
                ["input", "quantities"],
                "The specified inventory item could not be found.",
            )
        if given["name"] not in ("available", "on_hand"):
            return _user_error(
                "INVALID_NAME",
                ["input", "name"],
                "The quantity name must be either 'available' or 'on_hand'.",
            )
        if given["reason"] not in INVENTORY_REASONS:
            return _user_error("INVALID_REASON", ["input", "reason"], "The specified reason is invalid.")
        planned = []
        for position, quantity in enumerate(given["quantities"]):
            path = ["input", "quantities", str(position)]
            item_id = _gid_tail(quantity["inventoryItemId"], "InventoryItem")
            location_id = _gid_tail(quantity["locationId"], "Location")
            variant = stock.by_item.get(item_id) if item_id is not None else None
            if variant is None:
                return _user_error(
                    "INVALID_INVENTORY_ITEM",
                    [*path, "inventoryItemId"],
                    "The specified inventory item could not be found.",
                )
            if location_id != SHOP_LOCATION_ID:
                return _user_error(
                    "INVALID_LOCATION", [*path, "locationId"], "The specified location could not be found."
                )
            new = quantity["quantity"]
            if new < 0:
                return _user_error(
                    "INVALID_QUANTITY_NEGATIVE", [*path, "quantity"], "The quantity can't be negative."
                )
            if new > MAX_INVENTORY_QUANTITY:
                return _user_error(
                    "INVALID_QUANTITY_TOO_HIGH",
                    [*path, "quantity"],
                    "The total quantity can't be higher than 1,000,000,000.",
                )
            current = stock.available(variant.index, location_id)
            change_from = quantity["changeFromQuantity"]  # null: the caller opted out of the check
            if change_from is not None and change_from != current:
                return _user_error(
                    "CHANGE_FROM_QUANTITY_STALE",
                    [*path, "changeFromQuantity"],
                    "The changeFromQuantity value does not match persisted value.",
                )
            planned.append((variant, location_id, new, current))
        now = int(world.now_ts())
        for variant, location_id, new, _ in planned:  # all or nothing: applied only once all passed
            stock.set(variant.index, location_id, new, now)
        return {
            "inventoryAdjustmentGroup": {
                "createdAt": datetime.fromtimestamp(now, ZoneInfo("UTC")).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "reason": given["reason"],
                "referenceDocumentUri": given.get("referenceDocumentUri"),
                "changes": [
                    {
                        "name": given["name"],
                        "delta": new - current,
                        "quantityAfterChange": new,
                        "item": {
                            "id": f"gid://shopify/InventoryItem/{v.listing('shopify').inventory_item_id}"
                        },
                        "location": {"id": f"gid://shopify/Location/{loc}"},
                    }
                    for v, loc, new, current in planned
                ],
            },
            "userErrors": [],
        }


_SET_QUANTITIES_CALL = re.compile(r"inventorySetQuantities\s*\(\s*input\s*:\s*\$(?P<input>\w+)\s*\)")
_IDEMPOTENT_DIRECTIVE = re.compile(
    r'\s*@idempotent\s*\(\s*key\s*:\s*(?:\$(?P<variable>\w+)|"(?P<literal>[^"]*)")\s*\)'
)
_SET_QUANTITIES_INPUT_FIELDS = frozenset({"name", "reason", "referenceDocumentUri", "quantities"})
_SET_QUANTITY_FIELDS = frozenset({"inventoryItemId", "locationId", "quantity", "changeFromQuantity"})


def _user_error(code: str, field_path: list[str] | None, message: str) -> dict[str, Any]:
    return {
        "inventoryAdjustmentGroup": None,
        "userErrors": [{"code": code, "field": field_path, "message": message}],
    }
