"""A WooCommerce REST API v3 simulator (``/wp-json/wc/v3``) over the sandbox world (docs/platform-notes.md,
WooCommerce, has the sources).

What it reproduces, quirks included:
- Auth exactly as ``WC_REST_Authentication`` (``WooAuthentication``). Over TLS (``run_sandbox(..., tls=True)``
  or ``python -m sandbox woocommerce --tls``; told by the transport, ``scope["scheme"]``, as ``is_ssl()``)
  HTTP Basic with the consumer key as user name and the consumer secret as password, or
  ``?consumer_key=..&consumer_secret=..``: an unknown key there is no error (nothing authenticated), a wrong
  secret 401 "Consumer secret is invalid.". Then, and over plain HTTP only this, OAuth 1.0a one-legged from
  the query string or an ``Authorization: OAuth`` header, checked in WooCommerce's order with its words:
  some but not all of the five ``oauth_*`` parameters are 401
  ``woocommerce_rest_authentication_missing_parameter`` "Missing OAuth parameter(s) ..."; the rest are 401
  ``woocommerce_rest_authentication_error``: "Consumer key is invalid.", "Invalid signature - signature
  method is invalid." (not HMAC-SHA1/HMAC-SHA256), "Invalid signature - provided signature does not
  match." (the base string built by WooCommerce's own steps, ``wc_signature``, over the site's home URL,
  here the host the request named, plus the raw path), "Invalid timestamp." (more than 15 minutes off the
  host's clock), "Invalid nonce - nonce has already been used." (within 15 minutes; one nonce kept per
  timestamp, as WooCommerce keys them). A caller that authenticated as nobody (Basic over HTTP included: it
  is not even read) gets the route's own 401: "Sorry, you cannot list resources."
  (``woocommerce_rest_cannot_view``), "... view this resource.", ``woocommerce_rest_cannot_create``,
  ``..._edit``, ``..._delete``; an unknown route stays WordPress's 404 ``rest_no_route``.
- ``GET /wp-json/wc/v3/orders`` with ``page`` (default 1), ``per_page`` (default 10, 1..100: anything else is
  WP core's 400 ``rest_invalid_param``), ``offset``, ``after``/``before`` (created) and
  ``modified_after``/``modified_before`` (ISO-8601; both bounds *exclusive*, as ``WP_Date_Query`` with
  ``inclusive`` false), ``dates_are_gmt`` (without it, offset-less times are read as the *site's local time*),
  ``order`` (asc|desc, default desc), ``orderby`` (date|id|include|title|slug, default date), ``status``
  (any or a list; default any, which like WordPress's ``any`` leaves ``trash`` out), ``include``/``exclude``.
  Sorting is by (creation date, id), so the order of a listing never changes while an order is modified.
- ``X-WP-Total`` and ``X-WP-TotalPages`` on every listing, and a ``Link`` header with ``first``/``prev``/
  ``next``/``last`` URLs carrying the request's own query (credentials left out; WordPress itself echoes
  every query parameter, and its CRUD controller adds only ``prev``/``next`` [not modelled]). A page past
  the end is ``[]``.
- ``GET /wp-json/wc/v3/orders/{id}`` (404 ``woocommerce_rest_shop_order_invalid_id`` "Invalid ID.");
  unknown routes are WordPress's 404 ``rest_no_route``.
- ``status=any`` also lists abandoned block-checkout drafts (``checkout-draft``): one order slot in
  ``DRAFT_SHARE`` has one, created ``DRAFT_LEAD_SECONDS`` before the slot's order, never modified, its id the
  order's id + 3, its item ids its own; ``status=checkout-draft`` lists only them, ``GET /orders/{id}``
  serves them (``POST /_sandbox/woocommerce {"checkout_drafts": false}`` hides them).
- ``GET /orders/{id}/refunds`` (and ``/refunds/{refund_id}``): the refund objects of the docs' refund 724,
  newest first, paged like any listing: ``amount`` positive, line items with negative quantities and
  amounts whose ``_refunded_item_id`` meta names the order line, the shipping refunded as a shipping line.
  The order's ``refunds[]`` summary lists the same refunds. A cancel of an unpaid order moves no money and
  makes no refund; a unit dropped before the payment was captured is a 0.00 refund naming its line. Order
  line items carry ``_reduced_stock`` once the order took stock (on-hold, processing, completed, refunded)
  and ``_restock_refunded_items``, the units refunds put back: returns and a paid order's cancellation are
  restocked, an out-of-stock unit is not.
- Order JSON shaped like the docs' example orders 727/723: ``date_created``/``date_modified``/``date_paid``/
  ``date_completed`` as naive *site-local* times next to their ``_gmt`` (UTC) twins; totals as 2-decimal
  strings; ``line_items[].price`` as a JSON *number* (the line's discounted total / quantity, integral values
  without a fraction as in the docs); ``sku`` "" where the merchant left it blank; ``variation_id`` 0 for
  simple products; ``refunds[] {id, reason, total}`` with a *negative* total; ``customer_id`` 0 for guests.
- Status from the world's state: pending (awaiting payment), on-hold (payment authorized, not captured),
  processing (paid, not shipped in full: core WooCommerce has no partial shipment), completed (everything
  shipped), refunded (the whole amount refunded: WooCommerce moves a fully refunded order there), cancelled,
  failed (an unpaid order whose payment was declined). ``trash`` never shows in ``status=any``.
- Money: the world's amounts in its currency (USD by default). Line ids, refund ids and order ids are
  WordPress-style small integers.
- No rate limiting in WooCommerce core: ``Faults.rate_limit_storm`` injects a *host-level* 429 (an HTML page
  from the web server or WAF, with ``Retry-After``); ``server_error_rate`` a WordPress critical-error 500
  or an nginx 502/503 page; plus latency, hangs, truncated bodies and malformed orders (a line quantity as
  text). ``duplicate_page_rate`` is a page cache in front of WordPress answering ``page=n`` with the page it
  served last (its body and headers; credentials and ``oauth_*`` are no part of its key, nor of the
  ``Link`` URLs); ``credentials_revoked`` a deleted key (OAuth: 401 "Consumer key is
  invalid."; Basic: an anonymous caller); ``token_expiry_rate`` does nothing (consumer keys do not expire).
- Writes (what the hub pushes), with what WooCommerce itself checks and nothing more:
  - the Shipment Tracking extension under ``/wp-json/wc-shipment-tracking/v3``: ``GET|POST
    orders/{id}/shipment-trackings`` (201 ``{tracking_id, tracking_provider, tracking_link, tracking_number,
    date_shipped}``), ``GET|DELETE .../{tracking_id}``, ``GET orders/{id}/shipment-trackings/providers`` (and
    ``shipment-trackings/providers``). It checks only that ``tracking_number`` is present and the order
    exists (404 ``woocommerce_rest_order_invalid_id`` "Invalid order ID."); an unknown provider is stored
    with an empty name and link; status and duplicates are not checked. Items show in the order's
    ``meta_data`` as ``_wc_shipment_tracking_items``; adding one does not change ``date_modified`` [U].
    Without the extension (``POST /_sandbox/woocommerce {"shipment_tracking": false}``) these routes are
    ``404 rest_no_route``.
  - ``GET|POST /orders/{id}/notes`` (``customer_note``; newest first; ``type`` any|customer|internal).
  - ``PUT /orders/{id} {"status": "completed"}`` ships every open unit in the world's overlay (core has no
    partial shipment; the latest tracking item is the shipment's tracking), adds WooCommerce's "Order status
    changed from Processing to Completed." note and bumps ``date_modified``. Other transitions, and
    completing a cancelled/refunded/failed order (which real WooCommerce would do), are a labelled
    sandbox-only 400 ``sandbox_unsupported_status_change``: the world cannot ship a cancelled order.
  - ``GET|PUT /products/{id}`` and ``/products/{pid}/variations/{vid}`` (``manage_stock``,
    ``stock_quantity``, ``stock_status`` recomputed); ``GET /products?sku=``. Stock sets go to the world's
    overlay (location 0); reads fall back to the catalog's opening stock. Unknown ids are 404
    ``woocommerce_rest_product_invalid_id`` / ``woocommerce_rest_product_variation_invalid_id``.
  - ``POST /_sandbox/woocommerce {"fail_writes": n, "fail_writes_after_apply": bool}``: the next n writes
    get a gateway 502, before WordPress saw them or after it applied them (the ambiguous case).
- ``/_sandbox/*``: faults, clock, state and catalog (sandbox.admin).

The package: ``wire`` (ids, statuses, WordPress's errors), ``store`` (the shop-side state the hub
writes), ``render`` (an order state -> order JSON), ``listing`` (parameters, windows, pages), ``pushes``
(status, notes, Shipment Tracking) with ``stock`` (products, variations), ``app`` (``create_app``:
authentication, the host's faults, the ``/_sandbox/woocommerce`` knobs).
This module re-exports what other code imports.
"""

from __future__ import annotations

from sandbox.woocommerce.app import create_app, wc_signature
from sandbox.woocommerce.render import WooRenderer, wc_status
from sandbox.woocommerce.webhooks import webhook_extra
from sandbox.woocommerce.wire import DEFAULT_CONSUMER_SECRET, SANDBOX_LOGIN

__all__ = [
    "DEFAULT_CONSUMER_SECRET",
    "SANDBOX_LOGIN",
    "WooRenderer",
    "create_app",
    "wc_signature",
    "wc_status",
    "webhook_extra",
]
