"""WeChat Channels shop (微信小店) ``channels/ec/*`` as a declaration, plus the one hook it needs.

Wire facts (docs/platform-contracts.md section 3.A):
- ``GET /cgi-bin/token?grant_type=client_credential&appid=&secret=`` gives ``access_token`` (7200 s), sent as
  ``?access_token=`` on every business call; each call is ``POST`` with a JSON body.
- Errors are HTTP 200 bodies ``{"errcode": n, "errmsg": "..."}``: 40001/40014/42001 (token invalid or
  expired) -> the client drops the token, fetches a new one and replays once; 45011 (too frequent) -> wait
  and retry; 45009 (daily quota) -> fail now, waiting minutes cannot help; -1 (system busy) -> retry with
  backoff like a 5xx. 40013/40125/40164/41001/48001 (appid, secret, IP whitelist, no token, no permission)
  are credential problems a refresh cannot fix.
- ``order/list/get`` takes ``update_time_range {start_time, end_time}`` in epoch seconds, at most 7 days
  apart (longer windows are split here), ``page_size <= 100`` and an opaque ``next_key`` + ``has_more``.
  It returns **ids only**; ``records_from_page`` fetches each with ``order/get`` and yields the order objects
  (records keyed by ``order_id``). Ids are 19-digit strings and stay strings: they are sent back exactly as
  listed, and the JSON parser keeps any numeric id an exact ``int``, never a float.

Window boundaries: both ends of ``update_time_range`` are taken as inclusive, so a window ``[start, end)`` is
sent as ``start`` floored and ``end`` ceiled to the second; an order updated exactly at ``end`` is read by
this window and the next (harmless: ingest is idempotent).

Pushes (``push_shipment``, ``set_stock``; types in ``connectors.pushes``):
- Carrier: ``order/deliverycompanylist/get`` gives the shop's ``delivery_id`` codes (read once per
  connection). The hub's carrier name is matched by alias ("SF Express", "顺丰" -> ``SF``), then as a
  code, then as a company name, and must be on that list; anything else is rejected here, before any
  push. ``OTHER`` is used only when the hub says "OTHER": a parcel under OTHER cannot be tracked.
- Shipment: ``order/delivery/send`` with one ``delivery_list`` entry (``deliver_type`` 1, self-posted
  express) whose ``product_infos`` are the pushed lines grouped by (product_id, sku_id). The push is not
  idempotent, so the HTTP client never replays it after an ambiguous failure; idempotency comes from
  reading the order first (``order/get``): a parcel with this waybill and carrier that holds the pushed
  units means ``already_done``. A WeChat parcel carries no reference of ours, so a retry of a partial
  shipment could not be told apart from the next parcel any other way (the platform would accept it).
- Changed tracking: when no parcel has this waybill but the order is fully shipped in exactly one parcel
  holding exactly the pushed units, ``order/deliveryinfo/update`` replaces its carrier and waybill (the
  platform allows this once, and not for split parcels; anything else goes to ``delivery/send`` and is
  refused there, "已经发货", which the exception queue shows).
- Platform refusals (an errcode other than token/quota/throttle/busy ones) are ``rejected`` results with
  the platform's errcode and errmsg; transient trouble raises. A token expired mid-push (40001/42001) is
  refreshed once and the push replayed: WeChat checks the token before it acts.
- Mini-program shipping info (§3.B, only when the connection's extra says ``"mini_program_shipping":
  true``): after ``delivery/send`` succeeded (or found the parcel already there), the order's payment
  (``order_detail.pay_info.transaction_id``, payer ``openid``) gets ``wxa/sec/order/upload_shipping_info``
  with ``order_number_type`` 2, ``logistics_type`` 1 and one ``shipping_list`` entry per parcel of the
  order: ``tracking_no`` = waybill, ``express_company`` = the same ``delivery_id``, ``item_desc`` from the
  product titles. UNIFIED (``delivery_mode`` 1) when this push completes the order in its only parcel, else
  SPLIT with ``is_all_delivered`` = ``completes_order`` and every parcel so far (an upload replaces the
  recorded list). ``upload_time`` is ``shipped_at`` in +08:00, moved past the last recorded upload when
  needed (updates must be later). Idempotent: ``wxa/sec/order/get_order`` first; a recorded tracking number
  means nothing is uploaded. A refusal there (e.g. 10060004, payment not shippable) makes the result
  ``rejected``, its detail saying the parcel itself was sent; the next retry finds the parcel
  (``already_done``) and tries the upload again.
- Stock: ``product/stock/update`` ``diff_type`` 3 (set) ``num``, or ``warehouse/stock/update`` with
  ``out_warehouse_id`` (the push's ``location_ref``) for regional stock. A set is replay-safe, so it is
  declared idempotent. WeChat has **no compare-and-set**: ``expected_current`` cannot be enforced, the set
  is unconditional and the result says so (``extra["compare_and_set"]``); a sale between the hub's
  computation and the set is overwritten. ``get_stock`` reads ``product/stock/get``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import requests

from connectors.auth import Cred, Secret, TokenEndpoint, TokenEndpointAuth, TokenStore
from connectors.errors import ApiError, AuthError, MalformedResponse, PageCapExceeded, QuotaExhausted
from connectors.framework import Connector, Endpoint, PlatformSpec
from connectors.http import ErrorPolicy, ErrorShape, RateLimitSignal, RetryPolicy
from connectors.paginators import CursorPaginator
from connectors.pushes import PushResult, ShipmentLine, ShipmentPush, StockPush
from connectors.windows import EPOCH_SECONDS, WindowSpec

if TYPE_CHECKING:
    from channelhub.config import ChannelConfig
    from channelhub.credentials import ChannelCredentials

DEFAULT_BASE_URL = "https://api.weixin.qq.com"
MAX_PAGE_SIZE = 100
MAX_WINDOW = timedelta(days=7)
TOKEN_LIFETIME_SECONDS = 7200.0

UPDATE_TIME_RANGE = WindowSpec(
    "start_time",
    "end_time",
    EPOCH_SECONDS,
    max_span=MAX_WINDOW,
    location="body",
    container="update_time_range",
)

WECHAT_CHANNELS = PlatformSpec(
    name="wechat_channels",
    auth=TokenEndpointAuth(
        TokenEndpoint(
            "/cgi-bin/token",
            params={"grant_type": "client_credential", "appid": Cred("appid"), "secret": Cred("secret")},
            default_lifetime_seconds=TOKEN_LIFETIME_SECONDS,
        )
    ),
    errors=ErrorPolicy(
        shapes=(ErrorShape(code_path="errcode", message_path="errmsg"),),
        rate_limit=RateLimitSignal(
            statuses=frozenset({429}),
            retry_after_header=None,
            body_codes=frozenset({"45011"}),
            quota_codes=frozenset({"45009"}),
        ),
        auth_codes=frozenset({"40002", "40013", "40125", "40164", "41001", "48001"}),
        token_expired_codes=frozenset({"40001", "40014", "42001"}),
        transient_codes=frozenset({"-1"}),
        request_id_header=None,  # WeChat's request id is the "rid: ..." at the end of errmsg
    ),
    endpoints={
        "orders": Endpoint(
            "/channels/ec/order/list/get",
            method="POST",
            json={},
            idempotent=True,  # a read, even though it is a POST
            records_path="order_id_list",
            missing_records_mean_empty=True,
            paginator=CursorPaginator(
                "next_key", "next_key", "has_more", "page_size", MAX_PAGE_SIZE, location="body"
            ),
            window=UPDATE_TIME_RANGE,
        ),
        "order": Endpoint(
            "/channels/ec/order/get", method="POST", json={}, idempotent=True, records_path="order"
        ),
        "delivery_companies": Endpoint(
            "/channels/ec/order/deliverycompanylist/get",
            method="POST",
            json={},
            idempotent=True,
            records_path="company_list",
        ),
        # Not replayed after an ambiguous failure: a second parcel would be recorded (see push_shipment).
        "send_delivery": Endpoint(
            "/channels/ec/order/delivery/send", method="POST", json={}, idempotent=False
        ),
        "update_delivery": Endpoint(
            "/channels/ec/order/deliveryinfo/update", method="POST", json={}, idempotent=False
        ),
        # diff_type 3 sets the level: replaying a set lands on the same level.
        "set_stock": Endpoint("/channels/ec/product/stock/update", method="POST", json={}, idempotent=True),
        "set_warehouse_stock": Endpoint(
            "/channels/ec/warehouse/stock/update", method="POST", json={}, idempotent=True
        ),
        "stock": Endpoint(
            "/channels/ec/product/stock/get", method="POST", json={}, idempotent=True, records_path="data"
        ),
        # The mini-program shipping-info service (§3.B). An upload counts against the one re-shipment a
        # payment allows, so it is never replayed blind; get_order tells whether it landed.
        "upload_shipping_info": Endpoint(
            "/wxa/sec/order/upload_shipping_info", method="POST", json={}, idempotent=False
        ),
        "payment_order": Endpoint(
            "/wxa/sec/order/get_order", method="POST", json={}, idempotent=True, records_path="order"
        ),
    },
)

DELIVER_TYPE_EXPRESS = 1  # 自寄快递: the merchant's own courier and waybill
ORDER_NUMBER_TRANSACTION_ID = 2
DELIVERY_MODE_UNIFIED, DELIVERY_MODE_SPLIT = 1, 2
LOGISTICS_EXPRESS = 1
MAX_SHIPPING_PARCELS = 15
MAX_ITEM_DESC = 120  # [U] as commonly quoted for item_desc
CHINA_TIME = timezone(timedelta(hours=8))
DIFF_TYPE_SET = 3
STATUS_SHIPPED = 30

# Hub carrier names -> WeChat delivery_id. Keys are normalised (casefolded, punctuation and spaces dropped).
_CARRIER_ALIASES: dict[str, tuple[str, ...]] = {
    "SF": ("sf", "sfexpress", "shunfeng", "shunfengexpress", "顺丰", "顺丰速运", "顺丰快递", "顺丰速递"),
    "YTO": ("yto", "ytoexpress", "yuantong", "yuantongexpress", "圆通", "圆通速递", "圆通快递"),
    "ZTO": ("zto", "ztoexpress", "zhongtong", "zhongtongexpress", "中通", "中通快递", "中通速递"),
    "STO": ("sto", "stoexpress", "shentong", "shentongexpress", "申通", "申通快递"),
    "YD": ("yd", "yunda", "yundaexpress", "韵达", "韵达快递", "韵达速递"),
    "JTSD": ("jtsd", "jt", "jtexpress", "jitu", "jituexpress", "极兔", "极兔速递", "极兔快递"),
    "EMS": ("ems", "chinaems", "emsexpress", "邮政ems", "中国邮政速递物流", "邮政速递"),
    "YZPY": ("yzpy", "chinapost", "邮政", "中国邮政", "邮政快递包裹", "邮政包裹"),
    "JD": ("jd", "jdl", "jdlogistics", "jdexpress", "京东", "京东物流", "京东快递"),
    "DBKD": ("dbkd", "deppon", "depponexpress", "德邦", "德邦快递", "德邦物流"),
    "HTKY": ("htky", "bestexpress", "百世", "百世快递", "百世汇通"),
    "ZJS": ("zjs", "zjsexpress", "宅急送"),
    "OTHER": ("other", "其他"),
}
_ALIAS_TO_ID = {alias: delivery_id for delivery_id, aliases in _CARRIER_ALIASES.items() for alias in aliases}
_NOT_WORD = re.compile(r"[\W_]+")


def _normalise_carrier(name: str) -> str:
    return _NOT_WORD.sub("", name).casefold()


def delivery_id_for(carrier: str, companies: Mapping[str, str]) -> str | None:
    """The WeChat ``delivery_id`` for the hub's carrier name, if the shop's company list has it.

    ``companies`` is ``delivery_id -> delivery_name`` from ``deliverycompanylist/get``."""
    key = _normalise_carrier(carrier)
    if not key:
        return None
    by_code = {_normalise_carrier(code): code for code in companies}
    by_name = {_normalise_carrier(name): code for code, name in companies.items()}
    candidate = _ALIAS_TO_ID.get(key) or by_code.get(key) or by_name.get(key)
    return candidate if candidate in companies else None


def _line_ids(line: ShipmentLine) -> tuple[str, str]:
    """(product_id, sku_id): the line's channel ids, else its ``"<product_id>:<sku_id>[#n]"`` line id."""
    if line.channel_product_id and line.channel_variant_id:
        return line.channel_product_id, line.channel_variant_id
    product_id, _, sku_id = line.external_line_id.partition("#")[0].partition(":")
    if not (product_id.isdigit() and sku_id.isdigit()):
        raise ValueError(f"line {line.external_line_id!r} names no WeChat product_id and sku_id")
    return product_id, sku_id


def _units(product_infos: Any) -> dict[tuple[str, str], int]:
    """{(product_id, sku_id): count} of a parcel's ``product_infos`` (ids as strings)."""
    units: dict[tuple[str, str], int] = {}
    for product in product_infos if isinstance(product_infos, list) else []:
        if not isinstance(product, dict):
            continue
        key = (str(product.get("product_id")), str(product.get("sku_id")))
        count = product.get("product_cnt")
        units[key] = units.get(key, 0) + (count if isinstance(count, int) else 0)
    return units


def _item_desc(product_infos: Any, titles: Mapping[tuple[str, str], str]) -> str:
    """ "title*count" per product of a parcel, like the doc's "微信气泡狗集线器*1", capped in length."""
    parts = [
        f"{titles.get(key) or f'{key[0]}:{key[1]}'}*{count}" for key, count in _units(product_infos).items()
    ]
    text = "; ".join(parts) or "商品"
    return text if len(text) <= MAX_ITEM_DESC else text[: MAX_ITEM_DESC - 1] + "…"


def _masked_phone(number: Any) -> str:
    """ "139****2901": the form the shipping-info service takes for a contact."""
    digits = str(number or "")
    return f"{digits[:3]}****{digits[-4:]}" if len(digits) >= 7 else ""


def _rejection(error: ApiError) -> PushResult:
    return PushResult("rejected", detail=f"errcode {error.code}: {error.message}".strip())


def _is_refusal(error: ApiError) -> bool:
    """A platform refusal of this request (not credentials, quota or paging, which the caller must see)."""
    return not isinstance(error, AuthError | QuotaExhausted | PageCapExceeded)


class WeChatChannelsConnector(Connector):
    spec = WECHAT_CHANNELS

    page_size: int = MAX_PAGE_SIZE
    mini_program_shipping: bool = False  # also upload to the mini-program shipping-info service (§3.B)

    @classmethod
    def from_connection(
        cls,
        base_url: str,
        appid: str,
        app_secret: str | Secret,
        *,
        page_size: int = MAX_PAGE_SIZE,
        retry: RetryPolicy | None = None,
        timeout: tuple[float, float] = (5.0, 30.0),
        session: requests.Session | None = None,
        sleep: Callable[[float], None] | None = None,
        mini_program_shipping: bool = False,
        token_store: TokenStore | None = None,
    ) -> WeChatChannelsConnector:
        """A connector for one shop: ``base_url`` is ``https://api.weixin.qq.com`` (or a sandbox's URL),
        ``appid``/``app_secret`` the shop's own (not a mini program's). ``mini_program_shipping``: each
        shipment push also uploads the payment's shipping info (``wxa/sec/order/upload_shipping_info``)."""
        if not appid:
            raise ValueError("the shop's appid is required (the connection's login)")
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be within 1..{MAX_PAGE_SIZE}, got {page_size}")
        connector = cls.connect(
            base_url,
            {"appid": appid, "secret": app_secret},
            retry=retry,
            timeout=timeout,
            session=session,
            sleep=sleep,
            token_store=token_store,
        )
        connector.page_size = page_size
        connector.mini_program_shipping = mini_program_shipping
        return connector

    def endpoint(self, name: str) -> Endpoint:
        """The declared endpoint; the listing pages with this connection's page size."""
        endpoint = super().endpoint(name)
        if name == "orders" and isinstance(endpoint.paginator, CursorPaginator):
            return replace(endpoint, paginator=replace(endpoint.paginator, page_size=self.page_size))
        return endpoint

    def fetch_orders(self, window_start: datetime, window_end: datetime) -> Iterator[list[dict[str, Any]]]:
        """Every order updated in the window (any status), one page of full order objects at a time;
        windows longer than 7 days are split."""
        yield from self.fetch_pages("orders", window_start, window_end)

    def records_from_page(self, endpoint_name: str, records: list[Any]) -> list[Any]:
        """The listing gives ids only: fetch each order (ids sent back exactly as listed)."""
        if endpoint_name != "orders":
            return records
        return [self.get_order(order_id) for order_id in records]

    def get_order(self, order_id: str | int) -> dict[str, Any]:
        """One order object (``order/get``'s ``order``)."""
        if isinstance(order_id, bool) or not isinstance(order_id, str | int):
            raise MalformedResponse(
                f"the order list held a {type(order_id).__name__} where an order id belongs",
                platform=self.platform,
            )
        order = self.get("order", body={"order_id": str(order_id)})
        if not isinstance(order, dict):
            raise MalformedResponse("order/get answered without an order object", platform=self.platform)
        return order

    # -- pushes --

    _companies: dict[str, str] | None = None

    def delivery_companies(self, *, refresh: bool = False) -> dict[str, str]:
        """``delivery_id -> delivery_name`` from ``deliverycompanylist/get`` (read once per connection)."""
        if self._companies is None or refresh:
            listed = self.get("delivery_companies")
            if not isinstance(listed, list):
                raise MalformedResponse("company_list is not a list", platform=self.platform)
            self._companies = {
                str(c["delivery_id"]): str(c.get("delivery_name", ""))
                for c in listed
                if isinstance(c, dict) and c.get("delivery_id")
            }
        return self._companies

    def push_shipment(self, push: ShipmentPush) -> PushResult:
        """Send one parcel (``delivery/send``), or recognise it as already there, or fix its waybill."""
        companies = self.delivery_companies()
        delivery_id = delivery_id_for(push.carrier, companies)
        if delivery_id is None:
            return PushResult(
                "rejected",
                detail=f"carrier {push.carrier!r} has no WeChat delivery_id on the shop's company list "
                f"({', '.join(sorted(companies))})",
            )
        try:
            wanted: dict[tuple[str, str], int] = {}
            for line in push.lines:
                if line.quantity <= 0:
                    raise ValueError(f"line {line.external_line_id!r} ships {line.quantity} units")
                key = _line_ids(line)
                wanted[key] = wanted.get(key, 0) + line.quantity
        except ValueError as problem:
            return PushResult("rejected", detail=str(problem))
        if not wanted:
            return PushResult("rejected", detail="the shipment lists no lines")
        waybill = push.tracking_number.strip()
        product_infos = [
            {"product_id": product_id, "sku_id": sku_id, "product_cnt": count}
            for (product_id, sku_id), count in wanted.items()
        ]
        parcel = {
            "delivery_id": delivery_id,
            "waybill_id": waybill,
            "deliver_type": DELIVER_TYPE_EXPRESS,
            "product_infos": product_infos,
        }
        try:
            order = self.get_order(push.external_order_id)
        except ApiError as error:
            if _is_refusal(error):
                return _rejection(error)
            raise
        parcels = order.get("order_detail", {}).get("delivery_info", {}).get("delivery_product_info") or []
        parcels = [p for p in parcels if isinstance(p, dict)] if isinstance(parcels, list) else []
        for existing in parcels:
            if existing.get("waybill_id") == waybill and existing.get("delivery_id") == delivery_id:
                held = _units(existing.get("product_infos"))
                if all(held.get(key, 0) >= count for key, count in wanted.items()):
                    done = PushResult(
                        "already_done",
                        detail="a parcel with this waybill holds these units",
                        platform_ref=waybill,
                    )
                    return self._with_shipping_info(push, order, parcels, done)
        operation, extra = "send_delivery", {"delivery_id": delivery_id}
        if (
            order.get("status") == STATUS_SHIPPED
            and len(parcels) == 1
            and _units(parcels[0].get("product_infos")) == wanted
        ):
            operation = "update_delivery"
            extra["replaced_waybill_id"] = str(parcels[0].get("waybill_id", ""))
            extra["replaced_delivery_id"] = str(parcels[0].get("delivery_id", ""))
        try:
            self.get(operation, body={"order_id": str(push.external_order_id), "delivery_list": [parcel]})
        except ApiError as error:
            if _is_refusal(error):
                return _rejection(error)
            raise
        sent = PushResult("pushed", detail=operation, platform_ref=waybill, extra=extra)
        after = [parcel] if operation == "update_delivery" else [*parcels, parcel]
        return self._with_shipping_info(push, order, after, sent)

    def _with_shipping_info(
        self, push: ShipmentPush, order: Mapping[str, Any], parcels: list[dict[str, Any]], sent: PushResult
    ) -> PushResult:
        """``sent`` once the payment's shipping info is on the mini-program service too (when configured).

        ``parcels`` are the order's parcels now, this push's included (the last one)."""
        if not self.mini_program_shipping:
            return sent
        waybill = push.tracking_number.strip()
        done = {
            "send_delivery": "delivery/send succeeded",
            "update_delivery": "deliveryinfo/update succeeded",
        }
        said = f"{done.get(sent.detail, 'the parcel was already on the order')}, but upload_shipping_info"
        detail = order.get("order_detail") if isinstance(order.get("order_detail"), dict) else {}
        pay_info = detail.get("pay_info") if isinstance(detail.get("pay_info"), dict) else {}
        transaction_id, openid = pay_info.get("transaction_id"), order.get("openid")
        if not transaction_id or not openid:
            return replace(
                sent,
                status="rejected",
                detail=f"{said} cannot run: the order has no transaction_id or openid",
            )
        try:
            payment = self.get("payment_order", body={"transaction_id": str(transaction_id)})
        except ApiError as error:
            if _is_refusal(error):
                return replace(sent, status="rejected", detail=f"{said} failed: {_rejection(error).detail}")
            raise
        shipping = payment.get("shipping") if isinstance(payment, dict) else None
        recorded = shipping.get("shipping_list") if isinstance(shipping, dict) else None
        recorded = [e for e in recorded if isinstance(e, dict)] if isinstance(recorded, list) else []
        if any(e.get("tracking_no") == waybill for e in recorded):
            return replace(sent, extra={**sent.extra, "shipping_info": "already uploaded"})

        titles = {
            (str(p.get("product_id")), str(p.get("sku_id"))): str(p.get("title") or "")
            for p in detail.get("product_infos") or []
            if isinstance(p, dict)
        }
        address = detail.get("delivery_info", {}).get("address_info") or {}
        contact = _masked_phone(address.get("tel_number") if isinstance(address, dict) else None)
        unified = push.completes_order and len(parcels) == 1
        if len(parcels) > MAX_SHIPPING_PARCELS:
            return replace(
                sent,
                status="rejected",
                detail=f"{said} cannot take {len(parcels)} parcels (at most {MAX_SHIPPING_PARCELS})",
            )
        shipping_list = [
            {
                "tracking_no": str(p.get("waybill_id", "")),
                "express_company": str(p.get("delivery_id", "")),
                "item_desc": _item_desc(p.get("product_infos"), titles),
                **({"contact": {"receiver_contact": contact}} if contact else {}),
            }
            for p in parcels
        ]
        upload_time = push.shipped_at.astimezone(CHINA_TIME)
        last = max(
            (e.get("upload_time") for e in recorded if isinstance(e.get("upload_time"), int)), default=None
        )
        if last is not None and upload_time.timestamp() <= last:  # updates must be later than the last one
            upload_time = datetime.fromtimestamp(last + 1, CHINA_TIME)
        body: dict[str, Any] = {
            "order_key": {
                "order_number_type": ORDER_NUMBER_TRANSACTION_ID,
                "transaction_id": str(transaction_id),
            },
            "delivery_mode": DELIVERY_MODE_UNIFIED if unified else DELIVERY_MODE_SPLIT,
            "logistics_type": LOGISTICS_EXPRESS,
            "shipping_list": shipping_list,
            "upload_time": upload_time.isoformat(timespec="milliseconds"),
            "payer": {"openid": str(openid)},
        }
        if not unified:
            body["is_all_delivered"] = push.completes_order
        try:
            self.get("upload_shipping_info", body=body)
        except ApiError as error:
            if _is_refusal(error):
                return replace(
                    sent, status="rejected", detail=f"{said} was refused: {_rejection(error).detail}"
                )
            raise
        mode = "unified" if unified else f"split, is_all_delivered={str(push.completes_order).lower()}"
        return replace(sent, extra={**sent.extra, "shipping_info": f"uploaded ({mode})"})

    def set_stock(self, push: StockPush) -> PushResult:
        """Set the sellable quantity (``diff_type`` 3); per warehouse when ``location_ref`` names one."""
        if not (push.channel_product_id and push.channel_variant_id):
            return PushResult(
                "rejected",
                detail=f"WeChat stock is set per product_id and sku_id; the listing of {push.merchant_sku!r} "
                "has none in the hub",
            )
        if push.quantity < 0:
            return PushResult("rejected", detail=f"cannot set a negative stock ({push.quantity})")
        body: dict[str, Any] = {
            "product_id": push.channel_product_id,
            "sku_id": push.channel_variant_id,
            "diff_type": DIFF_TYPE_SET,
            "num": push.quantity,
        }
        operation = "set_stock"
        if push.location_ref:
            operation, body["out_warehouse_id"] = "set_warehouse_stock", push.location_ref
        try:
            self.get(operation, body=body)
        except ApiError as error:
            if _is_refusal(error):
                return _rejection(error)
            raise
        extra = {"num": str(push.quantity)}
        if push.expected_current is not None:
            extra["compare_and_set"] = (
                "unsupported: WeChat has no conditional stock update; set unconditionally"
            )
        return PushResult(
            "pushed",
            detail=operation,
            platform_ref=f"{push.channel_product_id}:{push.channel_variant_id}",
            extra=extra,
        )

    def listed_stock(self, listing: StockPush) -> int | None:
        """The sellable stock WeChat lists for the listing's SKU (of its warehouse when ``location_ref`` names
        one). ``listing.quantity`` is ignored."""
        if not (listing.channel_product_id and listing.channel_variant_id):
            raise ApiError(
                f"the listing of {listing.merchant_sku!r} has no product_id/sku_id in the hub",
                platform=self.platform,
            )
        data = self.get_stock(listing.channel_product_id, listing.channel_variant_id)
        if listing.location_ref:
            for stock in data.get("warehouse_stocks") or []:
                if isinstance(stock, dict) and str(stock.get("out_warehouse_id")) == listing.location_ref:
                    return int(stock.get("num") or 0)
            return None
        value = data.get("normal_stock_num")
        return None if value is None else int(value)

    def get_stock(self, product_id: str, sku_id: str) -> dict[str, Any]:
        """``product/stock/get``'s ``data``: normal_stock_num, warehouse_stocks[], total_stock_num, ..."""
        data = self.get("stock", body={"product_id": str(product_id), "sku_id": str(sku_id)})
        if not isinstance(data, dict):
            raise MalformedResponse("stock/get answered without a data object", platform=self.platform)
        return data


def connector_for_channel(
    credentials: ChannelCredentials, channel: ChannelConfig, *, token_store: TokenStore | None = None
) -> WeChatChannelsConnector:
    """The connector for a configured channel: base URL, appid (login) and app secret (password) from its
    Airflow connection. The listing's page size is the channel's, capped at the platform's 100. The extra's
    ``mini_program_shipping`` (true, or "true") turns on the mini-program shipping-info upload."""
    flag = credentials.extra.get("mini_program_shipping", False)
    return WeChatChannelsConnector.from_connection(
        credentials.base_url or DEFAULT_BASE_URL,
        credentials.login or str(credentials.extra.get("appid", "")),
        credentials.secret,
        page_size=min(channel.page_size, MAX_PAGE_SIZE),
        timeout=channel.http_timeout,
        mini_program_shipping=flag is True or str(flag).strip().lower() in ("true", "1", "yes"),
        token_store=token_store,
    )
