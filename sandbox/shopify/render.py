"""Shopify REST order JSON from a world order state (written as text from pre-encoded fragments) and
``render_order`` (the order broken the way the fault profile says)."""

from __future__ import annotations

import hashlib
import json
import json.encoder
import threading
import zlib
from decimal import Decimal
from typing import Any

from sandbox.common import two_decimals
from sandbox.faults import Faults
from sandbox.shopify.wire import (
    _EMPTY_LIST,
    _NULL,
    ADJUSTMENT_ID_BASE,
    CUSTOMER_ID_BASE,
    DEFAULT_SHOP_TIMEZONE,
    FULFILLMENT_ID_BASE,
    FULFILLMENT_ORDER_ID_BASE,
    FULFILLMENT_ORDER_LINE_ID_BASE,
    FULFILLMENTS_PER_ORDER,
    LINE_ITEM_ID_BASE,
    ORDER_ID_BASE,
    ORDER_ID_STRIDE,
    REFUND_ID_BASE,
    REFUND_LINE_ID_BASE,
    SHIPPING_LINE_ID_BASE,
    SHOP_LOCATION_ID,
    SHOP_OWNER_USER_ID,
    TRANSACTION_ID_BASE,
    ShopTime,
    Tracking,
    _b,
    _n,
    _obj,
    _s,
)
from sandbox.world import (
    ZERO,
    Address,
    Customer,
    Fulfillment,
    OrderLine,
    OrderState,
    Refund,
    ShippingMethod,
    World,
)
from sandbox.world import money as round_money


class ShopifyRenderer:
    """World states -> Shopify REST order JSON; world indices <-> Shopify ids."""

    def __init__(
        self, world: World, *, shop_timezone: str = DEFAULT_SHOP_TIMEZONE, shop_name: str = ""
    ) -> None:
        self.world = world
        self.time = ShopTime(shop_timezone)
        self.shop_name = shop_name or f"channelhub-sandbox-{world.seed}"
        self.shop_domain = f"{self.shop_name}.myshopify.com"
        self.shop_id = 54_838_000 + world.seed % 1000
        self.currency = world.currency
        self._currency_json = _s(world.currency)
        self._money_cache: dict[str, tuple[str, str]] = {}
        self._variant_cache: dict[tuple[int, Decimal], tuple[str, str]] = {}
        self._customer_cache: dict[int, tuple[str, str]] = {}  # customer index -> (customer, address)
        self._tax_tails: dict[tuple[Decimal, str], str] = {}
        self._shipping_tails: dict[tuple[str, str, str], str] = {}
        # order_status_url up to the token (encoded once: the shop name is the caller's)
        self._status_url_head = _s(f"https://{self.shop_domain}/{self.shop_id}/orders/")[:-1]
        self._tracking_overrides: dict[tuple[int, int], Tracking] = {}
        self._tracking_lock = threading.Lock()

    # ---------------------------------------------------------------- ids
    def order_id(self, index: int) -> int:
        gap = zlib.crc32(f"{self.world.seed}:{index}".encode()) % ORDER_ID_STRIDE
        return ORDER_ID_BASE + index * ORDER_ID_STRIDE + gap

    def index_of(self, order_id: int) -> int | None:
        """The world index of a Shopify order id, or None when no order has that id."""
        if order_id < ORDER_ID_BASE:
            return None
        index = (order_id - ORDER_ID_BASE) // ORDER_ID_STRIDE
        return index if self.order_id(index) == order_id else None

    def first_index_after_id(self, order_id: int) -> int:
        """The first world index whose order id is > ``order_id`` (for ``since_id`` and cursors)."""
        if order_id < ORDER_ID_BASE:
            return 0
        index = (order_id - ORDER_ID_BASE) // ORDER_ID_STRIDE
        return index if self.order_id(index) > order_id else index + 1

    def line_item_id(self, index: int, line_index: int) -> int:
        return LINE_ITEM_ID_BASE + index * 8 + line_index

    def customer_id(self, customer: Customer) -> int:
        return CUSTOMER_ID_BASE + customer.index * 1_009 + self.world.seed % 1_000

    def _token(self, index: int) -> str:
        return hashlib.md5(
            f"{self.world.seed}:order-token:{index}".encode(), usedforsecurity=False
        ).hexdigest()

    def _time(self, ts: int | None) -> str:
        return self.time.json(ts)

    # ---------------------------------------------------------------- pieces
    def _money(self, value: Decimal) -> tuple[str, str]:
        """``value`` as a JSON amount (``"12.50"``) and its ``*_set`` object. Cached by the Decimal's text
        (amounts repeat: prices, shipping, subtotals; formatting a Decimal, or hashing a new one, is slow)."""
        key = str(value)
        cached = self._money_cache.get(key)
        if cached is None:
            text = two_decimals(value)
            money_json = f'{{"amount":"{text}","currency_code":{self._currency_json}}}'
            cached = (f'"{text}"', f'{{"shop_money":{money_json},"presentment_money":{money_json}}}')
            if len(self._money_cache) > 20_000:
                self._money_cache.clear()
            self._money_cache[key] = cached
        return cached

    def _money_set(self, value: Decimal) -> str:
        return self._money(value)[1]

    @staticmethod
    def _address_fields(address: Address) -> str:
        """An address's JSON members (without braces), in Shopify's key order."""
        return (
            f'"first_name":{_s(address.first_name)},"address1":{_s(address.address1)},'
            f'"phone":{_s(address.phone)},"city":{_s(address.city)},"zip":{_s(address.zip)},'
            f'"province":{_s(address.province)},"country":{_s(address.country)},'
            f'"last_name":{_s(address.last_name)},"address2":{_s(address.address2)},'
            f'"company":{_s(address.company)},"latitude":{_n(address.latitude)},'
            f'"longitude":{_n(address.longitude)},"name":{_s(address.name)},'
            f'"country_code":{_s(address.country_code)},"province_code":{_s(address.province_code)}'
        )

    def _address(self, address: Address, customer: Customer | None) -> str:
        """An order's address; most are the customer's default one, rendered once per customer."""
        if customer is not None and address is customer.default_address:
            return self._customer_entry(customer)[1]
        return f"{{{self._address_fields(address)}}}"

    def _customer(self, customer: Customer) -> str:
        return self._customer_entry(customer)[0]

    def _customer_entry(self, customer: Customer) -> tuple[str, str]:
        """A customer's JSON and their default address's JSON as an order address. Customers come from a
        bounded pool and never change, so both are cached."""
        cached = self._customer_cache.get(customer.index)
        if cached is None:
            address = f"{{{self._address_fields(customer.default_address)}}}"
            cached = self._customer_cache[customer.index] = (self._render_customer(customer), address)
        return cached

    def _render_customer(self, customer: Customer) -> str:
        customer_id = self.customer_id(customer)
        created = self._time(customer.created_ts)
        address = (
            f'{{"id":{customer_id + 3},"customer_id":{customer_id},'
            f"{self._address_fields(customer.default_address)},"
            f'"country_name":{_s(customer.default_address.country)},"default":true}}'
        )
        if customer.accepts_marketing:
            email_consent = (
                f'{{"state":"subscribed","opt_in_level":"single_opt_in","consent_updated_at":{created}}}'
            )
        else:
            email_consent = '{"state":"not_subscribed","opt_in_level":null,"consent_updated_at":null}'
        sms_consent = (
            _NULL
            if customer.phone is None
            else '{"state":"not_subscribed","opt_in_level":"single_opt_in","consent_updated_at":null,'
            '"consent_collected_from":"OTHER"}'
        )
        state = '"enabled"' if customer.index % 3 else '"disabled"'
        return (
            f'{{"id":{customer_id},"email":{_s(customer.email)},"created_at":{created},'
            f'"updated_at":{created},"first_name":{_s(customer.first_name)},'
            f'"last_name":{_s(customer.last_name)},"state":{state},"note":null,'
            f'"verified_email":true,"multipass_identifier":null,"tax_exempt":false,'
            f'"phone":{_s(customer.phone)},"email_marketing_consent":{email_consent},'
            f'"sms_marketing_consent":{sms_consent},"tags":"","currency":{self._currency_json},'
            f'"tax_exemptions":[],"admin_graphql_api_id":"gid://shopify/Customer/{customer_id}",'
            f'"default_address":{address}}}'
        )

    def _tax_lines(self, amount: Decimal, state: OrderState) -> str:
        order = state.order
        if order.tax_rate == 0:
            return _EMPTY_LIST
        key = (order.tax_rate, order.tax_title)
        tail = self._tax_tails.get(key)
        if tail is None:  # a handful of places: their rate and title, once
            tail = self._tax_tails[key] = (
                f'"rate":{_n(float(order.tax_rate))},"title":{_s(order.tax_title)}}}]'
            )
        price, price_set = self._money(amount)
        return f'[{{"channel_liable":null,"price":{price},"price_set":{price_set},{tail}'

    def _line_item_parts(self, state: OrderState, line: OrderLine) -> tuple[str, str]:
        """A line item's JSON split around its ``quantity`` value: fulfillments repeat the line with their
        own quantity, refunds and ``line_items`` with the ordered one."""
        line_id = LINE_ITEM_ID_BASE + state.order.index * 8 + line.index  # line_item_id(), inlined
        if line.discount == 0:
            discount_allocations = _EMPTY_LIST
        else:
            amount, amount_set = self._money(line.discount)
            discount_allocations = (
                f'[{{"amount":{amount},"amount_set":{amount_set},"discount_application_index":0}}]'
            )
        before_quantity, after_quantity = self._variant_fragments(line)
        head = (
            f'{{"id":{line_id},"admin_graphql_api_id":"gid://shopify/LineItem/{line_id}",'
            f'"attributed_staffs":[],"current_quantity":{line.quantity - state.refunded[line.index]},'
            f'"fulfillable_quantity":{state.fulfillable(line.index)},"fulfillment_service":"manual",'
            f'"fulfillment_status":{_s(state.line_fulfillment_status(line.index))},"gift_card":false,'
            f'{before_quantity},"quantity":'
        )
        tail = (
            f',{after_quantity},"tax_lines":{self._tax_lines(line.tax, state)},"duties":[],'
            f'"discount_allocations":{discount_allocations}}}'
        )
        return head, tail

    def _variant_fragments(self, line: OrderLine) -> tuple[str, str]:
        """The parts of a line item that only depend on its variant and price (cached: a catalog is small)."""
        key = (line.variant.index, line.unit_price)
        cached = self._variant_cache.get(key)
        if cached is None:
            variant = line.variant
            listing = variant.listing("shopify")
            before = _obj(
                [
                    ("grams", _n(variant.grams)),
                    ("name", _s(variant.title)),
                    ("price", _s(two_decimals(line.unit_price))),
                    ("price_set", self._money_set(line.unit_price)),
                    ("product_exists", "true"),
                    ("product_id", _n(listing.product_id)),
                    ("properties", _EMPTY_LIST),
                ]
            )
            after = _obj(
                [
                    ("requires_shipping", "true"),
                    ("sku", _s(listing.sku)),
                    ("taxable", "true"),
                    ("title", _s(variant.product_title)),
                    ("total_discount", '"0.00"'),
                    ("total_discount_set", self._money_set(ZERO)),
                    ("variant_id", _n(listing.variant_id)),
                    ("variant_inventory_management", '"shopify"'),
                    ("variant_title", _s(variant.variant_title)),
                    ("vendor", _s(variant.vendor)),
                ]
            )
            cached = (before[1:-1], after[1:-1])
            self._variant_cache[key] = cached
        return cached

    def fulfillment_id(self, index: int, seq: int) -> int:
        return FULFILLMENT_ID_BASE + index * FULFILLMENTS_PER_ORDER + seq

    def fulfillment_ref(self, fulfillment_id: int) -> tuple[int, int] | None:
        """(world index, seq) of a fulfillment id, or None when the id cannot be one of ours."""
        if fulfillment_id < FULFILLMENT_ID_BASE:
            return None
        index, seq = divmod(fulfillment_id - FULFILLMENT_ID_BASE, FULFILLMENTS_PER_ORDER)
        return (index, seq) if seq >= 1 else None

    def fulfillment_order_id(self, index: int) -> int:
        """One fulfillment order per order: every order ships from the shop's one location."""
        return FULFILLMENT_ORDER_ID_BASE + index * 4

    def index_of_fulfillment_order(self, fulfillment_order_id: int) -> int | None:
        offset = fulfillment_order_id - FULFILLMENT_ORDER_ID_BASE
        return offset // 4 if offset >= 0 and offset % 4 == 0 else None

    def fulfillment_order_line_id(self, index: int, line_index: int) -> int:
        return FULFILLMENT_ORDER_LINE_ID_BASE + index * 8 + line_index

    def set_tracking(self, index: int, seq: int, tracking: Tracking) -> None:
        """``update_tracking.json``: the fulfillment keeps its lines, its tracking is replaced."""
        with self._tracking_lock:
            self._tracking_overrides[(index, seq)] = tracking

    def tracking_of(self, index: int, fulfillment: Fulfillment) -> Tracking:
        override = (
            self._tracking_overrides.get((index, fulfillment.seq)) if self._tracking_overrides else None
        )
        if override is not None:
            return override
        return Tracking(
            fulfillment.tracking_company,
            fulfillment.tracking_number,
            fulfillment.tracking_url,
            fulfillment.at,
        )

    def fulfillment_json(self, state: OrderState, fulfillment: Fulfillment) -> str:
        """One fulfillment as ``POST fulfillments.json`` and ``update_tracking.json`` answer it."""
        parts = [self._line_item_parts(state, line) for line in state.order.lines]
        return self._fulfillment(state, fulfillment, f"#{1000 + state.order.number}", parts)

    def _fulfillment(
        self, state: OrderState, fulfillment: Fulfillment, name: str, line_parts: list[tuple[str, str]]
    ) -> str:
        index = state.order.index
        fulfillment_id = self.fulfillment_id(index, fulfillment.seq)
        tracking = self.tracking_of(index, fulfillment)
        # Shopify keeps null (not "") where no company or URL is known, and empty lists beside them.
        number = _s(tracking.number) if tracking.number else _NULL
        url = _s(tracking.url) if tracking.url else _NULL
        line_items = ",".join([f"{line_parts[i][0]}{q}{line_parts[i][1]}" for i, q in fulfillment.lines])
        return (
            f'{{"id":{fulfillment_id},"admin_graphql_api_id":"gid://shopify/Fulfillment/{fulfillment_id}",'
            f'"created_at":{self._time(fulfillment.at)},"location_id":{SHOP_LOCATION_ID},'
            f'"name":"{name}.{fulfillment.seq}","order_id":{self.order_id(index)},"origin_address":{{}},'
            f'"receipt":{{}},"service":"manual","shipment_status":null,"status":"success",'
            f'"tracking_company":{_s(tracking.company or None)},"tracking_number":{number},'
            f'"tracking_numbers":{f"[{number}]" if tracking.number else _EMPTY_LIST},"tracking_url":{url},'
            f'"tracking_urls":{f"[{url}]" if tracking.url else _EMPTY_LIST},'
            f'"updated_at":{self._time(tracking.at)},"line_items":[{line_items}]}}'
        )

    def _refund(self, state: OrderState, refund: Refund, name: str, line_parts: list[tuple[str, str]]) -> str:
        order = state.order
        index = order.index
        order_id = self.order_id(index)
        refund_id = REFUND_ID_BASE + index * 8 + refund.seq
        at = self._time(refund.at)
        zero_set = self._money_set(ZERO)
        transactions = ""
        if refund.amount > 0:
            transaction_id = TRANSACTION_ID_BASE + index * 16 + refund.seq
            transactions = (
                f'{{"id":{transaction_id},'
                f'"admin_graphql_api_id":"gid://shopify/OrderTransaction/{transaction_id}",'
                f'"amount":{self._money(refund.amount)[0]},"authorization":null,"created_at":{at},'
                f'"currency":{self._currency_json},"device_id":null,"error_code":null,'
                f'"gateway":{_s(order.gateway)},"kind":"refund","location_id":null,"message":"Refunded",'
                f'"order_id":{order_id},"parent_id":{TRANSACTION_ID_BASE + index * 16},'
                f'"payment_id":"{name}.{refund.seq + 1}","processed_at":{at},"receipt":{{}},'
                f'"source_name":"web","status":"success","test":false,"user_id":null}}'
            )
        adjustments = ""
        if refund.shipping > 0:
            amount, amount_set = self._money(-refund.shipping)
            adjustments = (
                f'{{"id":{ADJUSTMENT_ID_BASE + index * 8 + refund.seq},"amount":{amount},'
                f'"amount_set":{amount_set},"kind":"shipping_refund","order_id":{order_id},'
                f'"reason":"Shipping refund","refund_id":{refund_id},"tax_amount":"0.00",'
                f'"tax_amount_set":{zero_set}}}'
            )
        refund_lines = []
        for position, refund_line in enumerate(refund.lines):
            line = order.lines[refund_line.line_index]
            location = SHOP_LOCATION_ID if refund_line.restock_type != "no_restock" else _NULL
            head, tail = line_parts[line.index]
            # Shopify sends subtotal and total_tax as JSON numbers, unlike every other amount.
            refund_lines.append(
                f'{{"id":{REFUND_LINE_ID_BASE + index * 32 + refund.seq * 8 + position},'
                f'"line_item_id":{self.line_item_id(index, line.index)},"location_id":{location},'
                f'"quantity":{refund_line.quantity},"restock_type":{_s(refund_line.restock_type)},'
                f'"subtotal":{_n(float(refund_line.subtotal))},'
                f'"subtotal_set":{self._money_set(refund_line.subtotal)},'
                f'"total_tax":{_n(float(refund_line.tax))},"total_tax_set":{self._money_set(refund_line.tax)},'
                f'"line_item":{head}{line.quantity}{tail}}}'
            )
        return (
            f'{{"id":{refund_id},"admin_graphql_api_id":"gid://shopify/Refund/{refund_id}",'
            f'"created_at":{at},"note":{_s(refund.note)},"order_id":{order_id},"processed_at":{at},'
            f'"restock":{_b(refund.restock)},"total_additional_fees_set":{zero_set},'
            f'"total_duties_set":{zero_set},"user_id":{SHOP_OWNER_USER_ID},'
            f'"order_adjustments":[{adjustments}],"transactions":[{transactions}],'
            f'"refund_line_items":[{",".join(refund_lines)}],"duties":[],"additional_fees":[]}}'
        )

    def _shipping_line(self, index: int, shipping: ShippingMethod) -> str:
        key = (shipping.code, shipping.title, str(shipping.price))
        tail = self._shipping_tails.get(key)
        if tail is None:  # a handful of methods: everything but the id, once
            price, price_set = self._money(shipping.price)
            tail = self._shipping_tails[key] = (
                f'"carrier_identifier":null,"code":{_s(shipping.code)},"discounted_price":{price},'
                f'"discounted_price_set":{price_set},"is_removed":false,"phone":null,"price":{price},'
                f'"price_set":{price_set},"requested_fulfillment_service_id":null,"source":"shopify",'
                f'"title":{_s(shipping.title)},"tax_lines":[],"discount_allocations":[]}}'
            )
        return f'{{"id":{SHIPPING_LINE_ID_BASE + index},{tail}'

    # ---------------------------------------------------------------- the order
    def render(self, state: OrderState, wanted: frozenset[str] | None = None) -> dict[str, Any]:
        """The order as a dict (parsed from ``render_json``, so both views always agree)."""
        return json.loads(self.render_json(state, wanted))

    def render_json(self, state: OrderState, wanted: frozenset[str] | None = None) -> str:
        """The order as Shopify's JSON text; ``wanted`` keeps only those top-level fields (``fields=``).

        Written as JSON text members (``"key":value``) in Shopify's key order: f-strings over pre-encoded
        values cost a fraction of building (key, value) pairs and joining them, and the sandbox renders a
        million orders per benchmark. The nested parts are built only when wanted (``fields=id,updated_at``
        does not pay for them)."""
        order = state.order
        index = order.index
        order_id = self.order_id(index)
        number = order.number
        name = f"#{1000 + number}"
        created = self._time(order.created_ts)
        token = self._token(index)
        customer = order.customer
        discount = order.discount
        money = self._money

        refunded_subtotal = refunded_tax = refunded_discount = refunded_shipping = ZERO
        for refund in state.refunds:
            refunded_shipping += refund.shipping
            for refund_line in refund.lines:
                line = order.lines[refund_line.line_index]
                refunded_subtotal += refund_line.subtotal
                refunded_tax += refund_line.tax
                refunded_discount += round_money(line.discount * refund_line.quantity / line.quantity)
        current_subtotal_value = order.subtotal - refunded_subtotal
        current_tax_value = order.total_tax - refunded_tax
        current_total_value = (
            current_subtotal_value + current_tax_value + order.shipping.price - refunded_shipping
        )
        current_subtotal, current_subtotal_set = money(current_subtotal_value)
        current_tax, current_tax_set = money(current_tax_value)
        current_discounts, current_discounts_set = money(order.total_discount - refunded_discount)
        current_total, current_total_set = money(current_total_value)
        outstanding = money(order.total if state.financial_status in ("pending", "authorized") else ZERO)[0]
        subtotal, subtotal_set = money(order.subtotal)
        total_discounts, total_discounts_set = money(order.total_discount)
        total_line_items, total_line_items_set = money(order.total_line_items)
        total, total_set = money(order.total)
        total_tax, total_tax_set = money(order.total_tax)
        browser_ip = f'"203.0.113.{index % 250 + 1}"'
        discount_codes = (
            _EMPTY_LIST
            if discount is None
            else f'[{{"code":{_s(discount.code)},"amount":{money(discount.amount)[0]},'
            f'"type":{_s(discount.kind)}}}]'
        )
        members = [
            f'"id":{order_id}',
            f'"admin_graphql_api_id":"gid://shopify/Order/{order_id}"',
            '"app_id":580111',
            f'"browser_ip":{browser_ip}',
            f'"buyer_accepts_marketing":{_b(bool(customer and customer.accepts_marketing))}',
            f'"cancel_reason":{_s(state.cancel_reason)}',
            f'"cancelled_at":{self._time(state.cancelled_ts)}',
            f'"cart_token":"{token[::-1]}"',
            f'"checkout_id":{30_100_000_000_000 + index * 4}',
            f'"checkout_token":"{token[16:]}{token[:16]}"',
            f'"client_details":{{"accept_language":"en-US","browser_height":null,"browser_ip":{browser_ip},'
            '"browser_width":null,"session_hash":null,"user_agent":"Mozilla/5.0"}',
            f'"closed_at":{self._time(state.closed_ts)}',
            f'"confirmation_number":"{token[:9].upper()}"',
            '"confirmed":true',
            f'"contact_email":{_s(order.email)}',
            f'"created_at":{created}',
            f'"currency":{self._currency_json}',
            f'"current_subtotal_price":{current_subtotal}',
            f'"current_subtotal_price_set":{current_subtotal_set}',
            '"current_total_additional_fees_set":null',
            f'"current_total_discounts":{current_discounts}',
            f'"current_total_discounts_set":{current_discounts_set}',
            '"current_total_duties_set":null',
            f'"current_total_price":{current_total}',
            f'"current_total_price_set":{current_total_set}',
            f'"current_total_tax":{current_tax}',
            f'"current_total_tax_set":{current_tax_set}',
            '"customer_locale":"en"',
            '"device_id":null',
            f'"discount_codes":{discount_codes}',
            f'"email":{_s(order.email or "")}',
            '"estimated_taxes":false',
            f'"financial_status":{_s(state.financial_status)}',
            f'"fulfillment_status":{_s(state.fulfillment_status)}',
            '"landing_site":"/"',
            '"landing_site_ref":null',
            f'"location_id":{SHOP_LOCATION_ID if order.source_name == "pos" else _NULL}',
            '"merchant_of_record_app_id":null',
            f'"name":"{name}"',
            f'"note":{_s(order.note)}',
            '"note_attributes":[]',
            f'"number":{number}',
            f'"order_number":{1000 + number}',
            f'"order_status_url":{self._status_url_head}{token}/authenticate?key={token[8:24]}"',
            '"original_total_additional_fees_set":null',
            '"original_total_duties_set":null',
            f'"payment_gateway_names":[{_s(order.gateway)}]',
            f'"phone":{_s(order.phone)}',
            '"po_number":null',
            f'"presentment_currency":{self._currency_json}',
            f'"processed_at":{created}',
            '"reference":null',
            '"referring_site":null',
            '"source_identifier":null',
            f'"source_name":{_s(order.source_name)}',
            '"source_url":null',
            f'"subtotal_price":{subtotal}',
            f'"subtotal_price_set":{subtotal_set}',
            f'"tags":{_s(order.tags)}',
            '"tax_exempt":false',
            f'"tax_lines":{self._tax_lines(order.total_tax, state)}',
            '"taxes_included":false',
            '"test":false',
            f'"token":"{token}"',
            f'"total_discounts":{total_discounts}',
            f'"total_discounts_set":{total_discounts_set}',
            f'"total_line_items_price":{total_line_items}',
            f'"total_line_items_price_set":{total_line_items_set}',
            f'"total_outstanding":{outstanding}',
            f'"total_price":{total}',
            f'"total_price_set":{total_set}',
            f'"total_shipping_price_set":{money(order.shipping.price)[1]}',
            f'"total_tax":{total_tax}',
            f'"total_tax_set":{total_tax_set}',
            '"total_tip_received":"0.00"',
            f'"total_weight":{order.total_grams}',
            f'"updated_at":{self._time(state.updated_ts)}',
            '"user_id":null',
        ]
        if wanted is None or "billing_address" in wanted:
            members.append(f'"billing_address":{self._address(order.billing_address, customer)}')
        if customer is not None and (wanted is None or "customer" in wanted):
            members.append(f'"customer":{self._customer(customer)}')  # guest orders have no customer key
        members.append(
            '"discount_applications":[]'
            if discount is None
            else '"discount_applications":[{"target_type":"line_item","type":"discount_code",'
            f'"value":{_s(str(discount.value))},"value_type":{_s(discount.kind)},'
            f'"allocation_method":"across","target_selection":"all","code":{_s(discount.code)}}}]'
        )
        want_lines = wanted is None or not wanted.isdisjoint(("fulfillments", "line_items", "refunds"))
        parts = [self._line_item_parts(state, line) for line in order.lines] if want_lines else []
        if wanted is None or "fulfillments" in wanted:
            fulfillments = [self._fulfillment(state, f, name, parts) for f in state.fulfillments]
            members.append(f'"fulfillments":[{",".join(fulfillments)}]')
        if wanted is None or "line_items" in wanted:
            lines = [
                f"{head}{line.quantity}{tail}" for line, (head, tail) in zip(order.lines, parts, strict=True)
            ]
            members.append(f'"line_items":[{",".join(lines)}]')
        members.append('"payment_terms":null')
        if wanted is None or "refunds" in wanted:
            refunds = [self._refund(state, r, name, parts) for r in state.refunds]
            members.append(f'"refunds":[{",".join(refunds)}]')
        if wanted is None or "shipping_address" in wanted:
            members.append(f'"shipping_address":{self._address(order.shipping_address, customer)}')
        if wanted is None or "shipping_lines" in wanted:
            members.append(f'"shipping_lines":[{self._shipping_line(index, order.shipping)}]')
        if wanted is not None:  # members start with '"key":' and keys hold no quote
            members = [member for member in members if member[1 : member.index('"', 1)] in wanted]
        return f"{{{','.join(members)}}}"


UNREADABLE_NESTING = 2000  # past msgspec's 999 levels and json's recursion limit


def render_order(
    faults: Faults, renderer: ShopifyRenderer, state: OrderState, wanted: frozenset[str] | None
) -> str:
    """The order's JSON, broken the way the fault profile says (decoded only when it must be)."""
    text = renderer.render_json(state, wanted)
    if faults.order_is_unreadable(state.order.index):
        # Written as text: no encoder would write a lone surrogate escape or 1e400 from a Python value, and
        # no decoder follows 2,000 levels of nesting.
        order = json.loads(text)
        for key in ("note", "total_weight", "note_attributes"):
            order.pop(key, None)
        body = json.dumps(order)[1:-1]
        nest = "[" * UNREADABLE_NESTING + "]" * UNREADABLE_NESTING
        text = (
            '{"note":"half an emoji \\ud83d","total_weight":1e400,'
            f'"note_attributes":[{{"name":"gift wrap","value":{nest}}}],{body}}}'
        )
    if not faults.order_is_malformed(state.order.index):
        return text
    order = json.loads(text)
    for line in order.get("line_items", [])[:1]:
        line["quantity"] = f"{line['quantity']} pcs"
    return json.dumps(order)
