"""World order states -> Taobao trades as ``taobao.trade.fullinfo.get`` answers them (sources: NOTES.md).

- Ids: ``tid`` a 19-digit number (above 2^53, so ``tid_str`` comes too), sub-orders ``oid`` likewise; the
  world's Taobao listing ids are ``num_iid`` and ``sku_id`` (a string, as TOP's Order model has it).
- Money: CNY yuan strings. Chinese retail prices include VAT and TOP has no tax field, so ``payment`` = goods
  - discounts + postage. A sub-order's ``payment`` includes the postage when the trade has one sub-order
  (TOP's doc says so); ``divide_order_fee`` is its share of the paid goods.
- Times: naive Beijing wall times; "" when unset.
- Statuses: unpaid ``WAIT_BUYER_PAY``; closed before payment ``TRADE_CLOSED_BY_TAOBAO``, after it (a
  cancellation or a full refund) ``TRADE_CLOSED``; some sub-orders shipped ``SELLER_CONSIGNED_PART``, all
  ``WAIT_BUYER_CONFIRM_GOODS``, closed by the buyer's receipt ``TRADE_FINISHED``.
- Taobao ships and refunds whole sub-orders: a sub-order with refunded units is ``refund_status`` SUCCESS;
  one whose units all left carries the ``invoice_no``/``logistics_company``/``consign_time`` of the parcel
  that completed it (Taobao's carrier code for the hub's pushes, the world's name for its own).
"""

from __future__ import annotations

from typing import Any

from sandbox.common import line_payment, paid_ts
from sandbox.common import two_decimals as yuan
from sandbox.gateway import china_time
from sandbox.world import ZERO, Fulfillment, OrderState, World

TID_BASE = 3_300_000_000_000_000_000
OID_STEP = 16
SHIPPED_STATUSES = ("WAIT_BUYER_CONFIRM_GOODS", "TRADE_FINISHED")


class TaobaoRenderer:
    def __init__(self, world: World) -> None:
        self.world = world
        # (order index, line index) -> (company code, waybill) set by taobao.logistics.consign.resend
        self.resent: dict[tuple[int, int], tuple[str, str]] = {}

    # ---------------------------------------------------------------- ids
    def tid(self, index: int) -> int:
        return TID_BASE + index * 1000 + 214

    def index_of(self, tid: Any) -> int | None:
        try:
            value = int(str(tid))
        except ValueError:
            return None
        index, rest = divmod(value - TID_BASE, 1000)
        return index if rest == 214 and index >= 0 else None

    def oid(self, index: int, line: int) -> int:
        return self.tid(index) + OID_STEP * (line + 1) * 1000

    def line_of(self, index: int, oid: Any) -> int | None:
        try:
            value = int(str(oid))
        except ValueError:
            return None
        step, rest = divmod(value - self.tid(index), OID_STEP * 1000)
        line = step - 1
        return line if rest == 0 and 0 <= line < len(self.world.get(index).lines) else None

    # ---------------------------------------------------------------- pieces
    paid_ts = staticmethod(paid_ts)
    line_payment = staticmethod(line_payment)

    def parcel(self, state: OrderState, line: int) -> Fulfillment | None:
        """The parcel that took the line's last unit, once every unit to ship has left."""
        if state.shipped[line] == 0 or state.fulfillable(line) > 0:
            return None
        shipped = 0
        for fulfillment in state.fulfillments:
            shipped += sum(qty for index, qty in fulfillment.lines if index == line)
            if shipped >= state.shipped[line]:
                return fulfillment
        return None

    def waybill(self, state: OrderState, line: int) -> tuple[str, str] | None:
        resent = self.resent.get((state.index, line))
        if resent is not None:
            return resent
        parcel = self.parcel(state, line)
        return None if parcel is None else (parcel.tracking_company, parcel.tracking_number)

    def status(self, state: OrderState) -> str:
        paid_ts = self.paid_ts(state)
        if paid_ts is None:
            return "TRADE_CLOSED_BY_TAOBAO" if state.cancelled else "WAIT_BUYER_PAY"
        lines = range(len(state.order.lines))
        shipped = [line for line in lines if self.parcel(state, line) is not None]
        open_lines = [line for line in lines if state.refunded[line] == 0]
        if state.cancelled or not open_lines:
            return "TRADE_CLOSED"  # cancelled after payment, or every sub-order refunded
        if all(line in shipped for line in open_lines):
            return "TRADE_FINISHED" if state.closed else "WAIT_BUYER_CONFIRM_GOODS"
        return "SELLER_CONSIGNED_PART" if shipped else "WAIT_SELLER_SEND_GOODS"

    # ---------------------------------------------------------------- the trade
    def render(self, state: OrderState, *, malformed: bool = False) -> dict[str, Any]:
        order, index = state.order, state.order.index
        status = self.status(state)
        paid_ts = self.paid_ts(state)
        single = len(order.lines) == 1
        post_fee = order.shipping.price
        orders = []
        for line in order.lines:
            listing = line.variant.listing("taobao")
            oid = self.oid(index, line.index)
            paid = self.line_payment(line)
            waybill = self.waybill(state, line.index)
            refunded = state.refunded[line.index] > 0
            if status in ("WAIT_BUYER_PAY", "TRADE_CLOSED_BY_TAOBAO"):
                line_status = status
            elif refunded and waybill is None:
                line_status = "TRADE_CLOSED"
            elif waybill is not None:
                line_status = "TRADE_FINISHED" if status == "TRADE_FINISHED" else "WAIT_BUYER_CONFIRM_GOODS"
            else:
                line_status = "WAIT_SELLER_SEND_GOODS"
            parcel = self.parcel(state, line.index)
            orders.append(
                {
                    "oid": oid,
                    "oid_str": str(oid),
                    "num_iid": listing.product_id,
                    "sku_id": str(listing.variant_id),
                    "outer_iid": line.variant.product_key,
                    "outer_sku_id": listing.sku,
                    "title": line.variant.product_title,
                    "sku_properties_name": f"规格:{line.variant.variant_title}"
                    if line.variant.variant_title
                    else "",
                    "num": line.quantity,
                    "price": yuan(line.unit_price),
                    "total_fee": yuan(paid),
                    "payment": yuan(paid + post_fee if single else paid),
                    "divide_order_fee": yuan(paid),
                    "discount_fee": "0.00",
                    "adjust_fee": "0.00",
                    "part_mjz_discount": yuan(line.discount),
                    "status": line_status,
                    "refund_status": "SUCCESS" if refunded else "NO_REFUND",
                    "consign_time": china_time(parcel.at) if parcel is not None else "",
                    "invoice_no": waybill[1] if waybill else "",
                    "logistics_company": waybill[0] if waybill else "",
                    "shipping_type": "express",
                    "order_from": "TAOBAO",
                    "seller_type": "C",
                    "pic_path": f"https://img.alicdn.com/bao/uploaded/sandbox/{line.variant.product_key}.jpg",
                }
            )
        if malformed:
            orders[0]["num"] = f"{orders[0]['num']}件"  # the kind of bug the connector schema must catch
        goods = sum((line.line_total for line in order.lines), ZERO)
        paid_goods = sum((self.line_payment(line) for line in order.lines), ZERO)
        payment = paid_goods + post_fee
        consigned = [p.at for line in order.lines if (p := self.parcel(state, line.index)) is not None]
        address, customer = order.shipping_address, order.customer
        trade: dict[str, Any] = {
            "tid": self.tid(index),
            "tid_str": str(self.tid(index)),
            "status": status,
            "type": "fixed",
            "created": china_time(order.created_ts),
            "modified": china_time(state.updated_ts),
            "pay_time": china_time(paid_ts),
            "consign_time": china_time(max(consigned)) if consigned else "",
            "end_time": china_time(state.updated_ts)
            if status in ("TRADE_CLOSED", "TRADE_CLOSED_BY_TAOBAO")
            else "",
            "payment": yuan(payment),
            "total_fee": yuan(goods),
            "post_fee": yuan(post_fee),
            "discount_fee": yuan(goods - paid_goods),
            "adjust_fee": "0.00",
            "received_payment": yuan(payment) if status == "TRADE_FINISHED" else "0.00",
            "buyer_nick": f"{customer.name[:1]}**" if customer else "t**",
            "buyer_open_uid": f"AAH{(customer.index if customer else index) * 7919 % 10**9:09d}sandbox",
            "buyer_message": order.note or "",
            "shipping_type": "express",
            "receiver_name": address.name,
            "receiver_mobile": "".join(ch for ch in address.phone or "" if ch.isdigit())[-11:],
            "receiver_phone": "",
            "receiver_country": "",
            "receiver_state": address.province,
            "receiver_city": address.city,
            "receiver_district": "",
            "receiver_town": "",
            "receiver_address": " ".join(p for p in (address.address1, address.address2) if p),
            "receiver_zip": address.zip,
            "orders": {"order": orders},
        }
        if order.discount is not None:
            trade["promotion_details"] = {
                "promotion_detail": [
                    {
                        "id": self.tid(index),
                        "promotion_name": order.discount.code,
                        "promotion_id": f"shopbonus-{order.discount.code}",
                        "discount_fee": yuan(order.discount.amount),
                    }
                ]
            }
        return trade
