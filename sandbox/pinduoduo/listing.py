"""``pdd.order.number.list.increment.get`` and ``pdd.order.information.get`` over the world.

- ``start_updated_at``/``end_updated_at``: epoch seconds, both required, both bounds inclusive, at most 30
  minutes apart (over: 10000 with the rule in ``sub_msg``); start after end is refused too.
- ``page`` from 1, ``page_size`` 1..100 (default 100); ``order_status`` 1/2/3/5 and ``refund_status`` 1..5
  filter (5: all); ``is_lucky_flag`` is taken and ignored (the world draws no lottery orders).
- Sorted by update time, newest first, as Pinduoduo's advice to page from the last page backwards implies;
  ``total_count`` states the window's count, or with ``use_has_next=true`` only ``has_next``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sandbox.faults import Faults, ServedPages
from sandbox.pinduoduo.render import PinduoduoRenderer
from sandbox.world import OrderQuery, World

MAX_SPAN_SECONDS = 30 * 60
MAX_PAGE_SIZE = 100
INVALID_PARAMETER = 10000  # 参数错误 [C: SDK error.json]
BUSINESS_REFUSAL = 50001  # a business rule refused the call [C: SDK error.json; U: for each rule below]


class PddError(Exception):
    """An ``error_response`` the gateway answers with HTTP 200."""

    def __init__(self, code: int, message: str, sub_code: str | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.sub_code = code, message, sub_code


def int_param(params: Mapping[str, Any], name: str, default: int | None = None) -> int:
    value = params.get(name, default)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise PddError(INVALID_PARAMETER, f"参数错误:{name}", f"isv.invalid-parameter:{name}")
    return value


def listing_handlers(
    world: World, faults: Faults, renderer: PinduoduoRenderer
) -> dict[str, Callable[[Mapping[str, Any]], dict[str, Any]]]:
    served = ServedPages(faults)

    def increment_get(params: Mapping[str, Any]) -> dict[str, Any]:
        faults.step_clock(world.clock)
        start = int_param(params, "start_updated_at")
        end = int_param(params, "end_updated_at")
        if start > end:
            raise PddError(
                INVALID_PARAMETER, "参数错误:开始时间不能大于结束时间", "isv.invalid-parameter:time"
            )
        if end - start > MAX_SPAN_SECONDS:
            raise PddError(
                INVALID_PARAMETER,
                "参数错误:开始时间结束时间间距不超过30分钟",  # [U] wording; the rule is [C: SDK docs]
                "isv.invalid-parameter:end_updated_at",
            )
        page = int_param(params, "page", 1)
        page_size = int_param(params, "page_size", MAX_PAGE_SIZE)
        if page < 1 or not 1 <= page_size <= MAX_PAGE_SIZE:
            raise PddError(INVALID_PARAMETER, "参数错误:page_size最大100", "isv.invalid-parameter:page_size")
        order_status = int_param(params, "order_status", 5)
        refund_status = int_param(params, "refund_status", 5)
        has_next_only = str(params.get("use_has_next", "false")).lower() == "true"
        listing = ServedPages.key(
            {k: v for k, v in params.items() if k not in ("page", "sign", "timestamp", "access_token")}
        )
        if (replayed := served.replay(listing, page, first=page == 1)) is not None:
            return replayed
        now_ts = world.now_ts()
        matches: list[tuple[int, int]] = []
        for index in world.scan(OrderQuery(updated_min=start, updated_max=end), now_ts):
            state = world.state(index, now_ts)
            if state is None:
                continue
            if order_status != 5 and renderer.order_status(state) != order_status:
                continue
            refunded = 4 if renderer.refunded_in_full(state) else 1
            if refund_status != 5 and refunded != refund_status:
                continue
            matches.append((state.updated_ts, index))
        matches.sort(reverse=True)  # newest update first
        chosen = matches[(page - 1) * page_size : page * page_size]
        orders = []
        for _, index in faults.shuffled(chosen):
            state = world.state(index, now_ts)
            if state is not None:
                orders.append(renderer.render(state, malformed=faults.order_is_malformed(index)))
        body: dict[str, Any] = {"order_sn_list": orders}
        if has_next_only:
            body["has_next"] = page * page_size < len(matches)
        else:
            body["total_count"] = len(matches)
        answer = {"order_sn_increment_get_response": body}
        served.remember(listing, page, answer)
        return answer

    def information_get(params: Mapping[str, Any]) -> dict[str, Any]:
        order_sn = params.get("order_sn")
        index = renderer.index_of(order_sn) if isinstance(order_sn, str) else None
        state = world.state(index, world.now_ts()) if index is not None else None
        if index is None or state is None:
            raise PddError(BUSINESS_REFUSAL, "订单不存在", "isv.order-not-exist")  # [U] wording
        return {
            "order_info_get_response": {
                "order_info": renderer.render(state, malformed=faults.order_is_malformed(index))
            }
        }

    return {
        "pdd.order.number.list.increment.get": increment_get,
        "pdd.order.information.get": information_get,
    }
