"""A faithful Shopify Admin API simulator (REST orders and fulfillments, GraphQL stock) over the sandbox
world, for the versions 2026-04 to 2026-10 (docs/platform-notes.md, Shopify, records the sources).

What it reproduces, quirks included:
- Versions: ``/admin/api/{version}/...`` for each version in ``VERSIONS``; a dated quarterly version older
  than those is answered as the oldest of them, as Shopify "falls forward" from a version past support
  (``X-Shopify-API-Version`` names the version that answered); any other version is a 404.
- ``GET /admin/api/{v}/orders.json`` with ``status`` (default ``open``), ``created_at_*``, ``updated_at_*``,
  ``processed_at_*`` (ISO-8601 with an offset; anything else is a 400), ``since_id``, ``ids``,
  ``financial_status``, ``fulfillment_status``, ``limit`` (default 50, max 250) and ``fields``;
  ``orders/{id}.json``; ``orders/count.json``. Orders created more than 60 days ago (by the platform's
  clock) are left out of all three, silently, unless the token has ``read_all_orders``; the token's scopes
  are served at ``GET /admin/oauth/access_scopes.json`` (``DEFAULT_ACCESS_SCOPES`` unless set through
  ``POST /_sandbox/access_scopes``).
- Cursor pagination: a ``Link`` header with ``rel="previous"``/``rel="next"`` URLs carrying an opaque
  ``page_info`` (base64 JSON of the first request's filters, last id and direction, plus a signature).
  With ``page_info`` only ``limit`` and ``fields`` may be sent; anything else is Shopify's 400
  ``"... cannot be passed when page_info is present"``. No ``Link`` header on the last page.
  Orders are sorted by id ascending (ids grow with creation).
- Payloads shaped like the docs' example order 450789469: times in the shop's UTC offset (DST-aware),
  money as 2-decimal strings with ``*_set`` shop/presentment money, ``sku`` sometimes ``""``, refund line
  ``subtotal``/``total_tax`` as JSON numbers (a real quirk), no ``customer`` key on guest orders.
- ``X-Shopify-Access-Token`` auth (401 body); REST: a leaky bucket per token
  (``X-Shopify-Shop-Api-Call-Limit: n/40``, 429 with ``Retry-After: 2.0``); GraphQL: a cost bucket per
  token (2000 points, 100 restored a second: the Standard plan), a throttled call answered HTTP 200 with
  ``errors[{"message": "Throttled", "extensions": {"code": "THROTTLED"}}]`` and ``extensions.cost``;
  ``X-Request-Id`` on every response, and injectable faults (``Faults``), Shopify's way: a rate-limit
  storm is a 429 on REST and THROTTLED on GraphQL (``POST /_sandbox/graphql_throttle {"next": n}``
  throttles exactly the next n GraphQL calls), a duplicated page is the previous ``page_info``'s answer
  again (its ``Link`` pointing at the cursor just asked for), a shuffled page keeps the cursors of the
  sorted one, ``credentials_revoked`` is the 401 (an uninstalled app), ``token_expiry_rate`` does nothing
  (an admin token does not expire); hangs, clock steps and skew as in every simulator.
- What the hub pushes: ``orders/{id}/fulfillment_orders.json`` (one fulfillment order per order at the
  shop's one location: ``open``, ``in_progress`` once partly shipped, ``closed`` when nothing is left or the
  order was cancelled); ``POST fulfillments.json`` (201; recorded in the world's overlay, so the order's
  ``updated_at`` moves and every renderer shows it) refusing with Shopify's 422 words: over quantity ->
  "Invalid fulfillment order line item quantity requested.", closed -> "Fulfillment order N has an
  unfulfillable status= closed."; ``fulfillments/{id}/update_tracking.json`` (replaces the tracking, kept
  by the renderer and listed in ``app.state.tracking_updates``; it does not move the order's
  ``updated_at``); ``locations.json``, ``variants/{id}.json``, ``inventory_levels.json`` and
  ``inventory_levels/set.json`` over the overlay's stock levels; and a ``graphql.json`` that implements
  only ``inventorySetQuantities`` as 2026-04 defines it: ``changeFromQuantity`` required on every quantity
  (``null`` skips the check; a mismatch is ``CHANGE_FROM_QUANTITY_STALE``), ``compareQuantity`` and
  ``ignoreCompareQuantity`` refused like any field the schema does not define, the ``@idempotent(key:)``
  directive required, and the key honoured (the same key and variables: the first answer again, applied
  once; other variables: ``IDEMPOTENCY_KEY_PARAMETER_MISMATCH``).
  Unknown tracking companies are stored as given with no tracking URL (Shopify has no such refusal).
- ``/_sandbox/*``: faults, clock and state for the demo and for humans (no auth).

The package: ``wire`` (versions, ids, the shop's clock and JSON fragments every part shares), ``render``
(an order state -> order JSON), ``listing`` (filters, windows, cursor pages), ``pushes`` (fulfillments and
tracking) with ``stock`` (locations, inventory levels, GraphQL stock), ``app`` (``create_app``: the
gateway, rate limits, faults, the ``/_sandbox`` knobs). This module re-exports what other code imports.
"""

from __future__ import annotations

from sandbox.shopify.app import create_app
from sandbox.shopify.pushes import INVALID_QUANTITY
from sandbox.shopify.render import ShopifyRenderer
from sandbox.shopify.webhooks import webhook_extra
from sandbox.shopify.wire import (
    API_PREFIX,
    DEFAULT_ACCESS_TOKEN,
    DEFAULT_SHOP_TIMEZONE,
    SHOP_LOCATION_ID,
    Tracking,
)

__all__ = [
    "API_PREFIX",
    "DEFAULT_ACCESS_TOKEN",
    "DEFAULT_SHOP_TIMEZONE",
    "INVALID_QUANTITY",
    "SHOP_LOCATION_ID",
    "ShopifyRenderer",
    "Tracking",
    "create_app",
    "webhook_extra",
]
