"""WooCommerce's products and variations as the hub reads and sets their stock (``CatalogRenderer``,
``PUT products/{id}``, ``PUT products/{id}/variations/{id}``)."""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response

from sandbox.admin import json_response
from sandbox.woocommerce.store import (
    INVALID_JSON,
    PRODUCT_INVALID_ID,
    VARIATION_INVALID_ID,
    WooStore,
    sanitize_title,
)
from sandbox.woocommerce.wire import API_PREFIX, PLATFORM, BadRequest, _json_body
from sandbox.world import Variant, World


def _stock_status(quantity: int | None, managed: bool) -> str:
    if not managed or quantity is None:
        return "instock"
    return "instock" if quantity > 0 else "outofstock"


class CatalogRenderer:
    """Catalog variants -> WooCommerce product and variation JSON (the stock-relevant subset)."""

    def __init__(self, store: WooStore, base_url: str) -> None:
        self.store = store
        self.base = base_url.rstrip("/")

    def _slug(self, text: str) -> str:
        return sanitize_title(text)

    def simple(self, product_id: int, variant: Variant) -> dict[str, Any]:
        managed = self.store.manage_stock.get(variant.index, True)
        quantity = self.store.stock_of(variant)
        price = f"{variant.price:.2f}"
        slug = self._slug(variant.product_title)
        return {
            "id": product_id,
            "name": variant.product_title,
            "slug": slug,
            "permalink": f"{self.base}/product/{slug}/",
            "type": "simple",
            "status": "publish",
            "sku": variant.listing(PLATFORM).sku,
            "price": price,
            "regular_price": price,
            "sale_price": "",
            "manage_stock": managed,
            "stock_quantity": quantity,
            "stock_status": _stock_status(quantity, managed),
            "backorders": "no",
            "weight": f"{variant.grams / 1000:g}",
            "variations": [],
            "_links": {
                "self": [{"href": f"{self.base}{API_PREFIX}/products/{product_id}"}],
                "collection": [{"href": f"{self.base}{API_PREFIX}/products"}],
            },
        }

    def variable(self, product_id: int, variants: list[Variant]) -> dict[str, Any]:
        first = variants[0]
        managed = self.store.parent_manage_stock.get(product_id, False)
        quantity = self.store.parent_stock.get(product_id) if managed else None
        child_in_stock = any((self.store.stock_of(v) or 0) > 0 for v in variants)
        slug = self._slug(first.product_title)
        return {
            "id": product_id,
            "name": first.product_title,
            "slug": slug,
            "permalink": f"{self.base}/product/{slug}/",
            "type": "variable",
            "status": "publish",
            "sku": first.product_key,
            "price": f"{min(v.price for v in variants):.2f}",
            "regular_price": "",
            "sale_price": "",
            "manage_stock": managed,
            "stock_quantity": quantity,
            "stock_status": _stock_status(quantity, True)
            if managed
            else ("instock" if child_in_stock else "outofstock"),
            "backorders": "no",
            "variations": [v.listing(PLATFORM).variant_id for v in variants],
            "_links": {
                "self": [{"href": f"{self.base}{API_PREFIX}/products/{product_id}"}],
                "collection": [{"href": f"{self.base}{API_PREFIX}/products"}],
            },
        }

    def variation(self, product_id: int, variant: Variant) -> dict[str, Any]:
        ids = variant.listing(PLATFORM)
        managed = self.store.manage_stock.get(variant.index, True)
        quantity = self.store.stock_of(variant)
        price = f"{variant.price:.2f}"
        return {
            "id": ids.variant_id,
            "permalink": f"{self.base}/product/{self._slug(variant.product_title)}/"
            f"?variation={ids.variant_id}",
            "sku": ids.sku,
            "price": price,
            "regular_price": price,
            "sale_price": "",
            "status": "publish",
            "manage_stock": managed,
            "stock_quantity": quantity,
            "stock_status": _stock_status(quantity, managed),
            "backorders": "no",
            "weight": f"{variant.grams / 1000:g}",
            "attributes": [{"id": 0, "name": "Option", "option": variant.variant_title}],
            "_links": {
                "self": [
                    {"href": f"{self.base}{API_PREFIX}/products/{product_id}/variations/{ids.variant_id}"}
                ],
                "collection": [{"href": f"{self.base}{API_PREFIX}/products/{product_id}/variations"}],
                "up": [{"href": f"{self.base}{API_PREFIX}/products/{product_id}"}],
            },
        }


def parse_stock_update(body: dict[str, Any]) -> tuple[bool | None, int | None]:
    """(manage_stock, stock_quantity) from a product/variation update, validated the way WordPress's
    schema validation does it (a numeric string passes as an integer; anything else is rest_invalid_param)."""
    manage: bool | None = None
    if "manage_stock" in body:
        raw = body["manage_stock"]
        if isinstance(raw, bool):
            manage = raw
        elif isinstance(raw, str) and raw.strip().lower() in ("1", "0", "true", "false"):
            manage = raw.strip().lower() in ("1", "true")
        else:
            raise BadRequest({"manage_stock": "manage_stock is not of type boolean."})
    quantity: int | None = None
    if "stock_quantity" in body and body["stock_quantity"] is not None:
        raw = body["stock_quantity"]
        if isinstance(raw, bool) or not (
            isinstance(raw, int) or (isinstance(raw, str) and re.fullmatch(r"-?\d{1,9}", raw.strip()))
        ):
            raise BadRequest({"stock_quantity": "stock_quantity is not of type integer."})
        quantity = int(raw)
    return manage, quantity


def add_stock_routes(app: FastAPI, world: World, store: WooStore, products: CatalogRenderer) -> None:
    """Products (the ``sku`` lookup), variations and their stock."""

    # ------------------------------------------------------------ products and variations (stock)
    def numeric(ref: str) -> int | None:
        return int(ref) if ref.isdigit() else None

    @app.get(API_PREFIX + "/products")
    def list_products(request: Request) -> Response:
        """Only the ``sku`` lookup (simple and variable parents; variations are not products here)."""
        sku = request.query_params.get("sku")
        found: list[dict[str, Any]] = []
        for product_id, variant in sorted(store.simple_products.items()):
            if sku is None or variant.listing(PLATFORM).sku == sku:
                found.append(products.simple(product_id, variant))
        for product_id, variants in sorted(store.variable_products.items()):
            if sku is None or variants[0].product_key == sku:
                found.append(products.variable(product_id, variants))
        headers = {"X-WP-Total": str(len(found)), "X-WP-TotalPages": "1"}
        return json_response(found, 200, headers)

    def product_answer(product_id: int) -> Response:
        if product_id in store.simple_products:
            return json_response(products.simple(product_id, store.simple_products[product_id]))
        return json_response(products.variable(product_id, store.variable_products[product_id]))

    @app.get(API_PREFIX + "/products/{product_ref}")
    def get_product(product_ref: str) -> Response:
        product_id = numeric(product_ref)
        if product_id not in store.simple_products and product_id not in store.variable_products:
            return json_response(PRODUCT_INVALID_ID, 404)
        assert product_id is not None
        return product_answer(product_id)

    @app.put(API_PREFIX + "/products/{product_ref}")
    async def update_product(product_ref: str, request: Request) -> Response:
        product_id = numeric(product_ref)
        if product_id not in store.simple_products and product_id not in store.variable_products:
            return json_response(PRODUCT_INVALID_ID, 404)
        assert product_id is not None
        update = await read_stock_update(request)
        if isinstance(update, Response):
            return update
        manage, quantity = update
        if product_id in store.simple_products:
            apply_stock(store.simple_products[product_id], manage, quantity)
        else:  # parent-level stock of a variable product: the shop's, not any one variant's
            managed = store.parent_manage_stock.get(product_id, False) if manage is None else manage
            store.parent_manage_stock[product_id] = managed
            if managed and quantity is not None:
                store.parent_stock[product_id] = quantity
        return product_answer(product_id)

    async def read_stock_update(request: Request) -> tuple[bool | None, int | None] | Response:
        """The (manage_stock, stock_quantity) a PUT asks for, or the 400 WooCommerce answers instead."""
        body = await _json_body(request)
        if body is None:
            return json_response(INVALID_JSON, 400)
        try:
            return parse_stock_update(body)
        except BadRequest as error:
            return json_response(error.body(), 400)

    def apply_stock(variant: Variant, manage: bool | None, quantity: int | None) -> None:
        """WooCommerce keeps ``stock_quantity`` only while it manages the stock (manage_stock true)."""
        if manage is not None:
            store.manage_stock[variant.index] = manage
        if store.manage_stock.get(variant.index, True) and quantity is not None:
            world.overlay.record_stock_set(PLATFORM, variant.index, 0, quantity, int(world.now_ts()))

    def variation_of(product_ref: str, variation_ref: str) -> tuple[int, Variant] | Response:
        product_id = numeric(product_ref)
        if product_id not in store.simple_products and product_id not in store.variable_products:
            return json_response(PRODUCT_INVALID_ID, 404)
        variant = store.variations.get(numeric(variation_ref) or -1)
        if variant is None or variant.listing(PLATFORM).product_id != product_id:
            return json_response(VARIATION_INVALID_ID, 404)
        assert product_id is not None
        return product_id, variant

    @app.get(API_PREFIX + "/products/{product_ref}/variations/{variation_ref}")
    def get_variation(product_ref: str, variation_ref: str) -> Response:
        found = variation_of(product_ref, variation_ref)
        if isinstance(found, Response):
            return found
        return json_response(products.variation(*found))

    @app.put(API_PREFIX + "/products/{product_ref}/variations/{variation_ref}")
    async def update_variation(product_ref: str, variation_ref: str, request: Request) -> Response:
        found = variation_of(product_ref, variation_ref)
        if isinstance(found, Response):
            return found
        update = await read_stock_update(request)
        if isinstance(update, Response):
            return update
        apply_stock(found[1], *update)
        return json_response(products.variation(*found))
