"""``jingdong.pop.order.search`` and ``jingdong.pop.order.get`` over the world (platforms/jd/NOTES.md).

- ``start_date``/``end_date``: Beijing ``yyyy-MM-dd HH:mm:ss``, both bounds inclusive, at most one calendar
  month apart ("不得相差超过1个月"); both required unless ``order_state`` is only WAIT_SELLER_STOCK_OUT (then
  the month before now). ``dateType`` 1 filters by creation, anything else by modified time (JD's default).
- ``order_state``: a comma list of JD's state names (required); ``optional_fields`` required (the fields
  returned are not narrowed here: a client must not rely on the narrowing).
- ``page`` from 1, ``page_size`` 1..100; ``sortType`` 1 = newest first, anything else oldest first.
- The answer: ``searchorderinfo_result`` = ``{apiResult, orderInfoList, orderTotal}`` (the window's count).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sandbox.common import months_later, whole_number
from sandbox.faults import Faults, ServedPages
from sandbox.gateway import CHINA, china_seconds_or_none
from sandbox.jd.render import JdRenderer
from sandbox.world import OrderQuery, World

MAX_PAGE_SIZE = 100
STATES = frozenset(
    {
        "WAIT_SELLER_STOCK_OUT",
        "WAIT_SELLER_DELIVERY",
        "WAIT_GOODS_RECEIVE_CONFIRM",
        "FINISHED_L",
        "TRADE_CANCELED",
        "LOCKED",
        "PAUSE",
        "POP_ORDER_PAUSE",
    }
)
# Business refusals of the order APIs, in ``apiResult`` [U: the codes are the sandbox's; JD's words].
BAD_PARAM = "10100001"
ORDER_NOT_FOUND = "10100002"


class BusinessError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _time(name: str, value: Any) -> float:
    seconds = china_seconds_or_none(value)
    if seconds is None:
        raise BusinessError(BAD_PARAM, f"{name}格式错误，应为yyyy-MM-dd HH:mm:ss")
    return seconds


def _int(params: dict[str, Any], name: str, default: int) -> int:
    value = whole_number(params.get(name, default))
    if value is None:
        raise BusinessError(BAD_PARAM, f"{name}必须为整数")
    return value


class Listing:
    def __init__(self, world: World, renderer: JdRenderer, faults: Faults) -> None:
        self.world = world
        self.renderer = renderer
        self.faults = faults
        self.served = ServedPages(faults)

    def search(self, params: dict[str, Any]) -> dict[str, Any]:
        self.faults.step_clock(self.world.clock)
        states = {s.strip() for s in str(params.get("order_state") or "").split(",") if s.strip()}
        if not states or not states <= STATES:
            raise BusinessError(BAD_PARAM, "order_state不能为空或取值错误")
        if not params.get("optional_fields"):
            raise BusinessError(BAD_PARAM, "optional_fields不能为空")
        page, size = _int(params, "page", 1), _int(params, "page_size", 20)
        if page < 1:
            raise BusinessError(BAD_PARAM, "page必须大于0")
        if not 1 <= size <= MAX_PAGE_SIZE:
            raise BusinessError(BAD_PARAM, "每页的条数最大为100")
        listing = ServedPages.key({k: v for k, v in params.items() if k != "page"})
        if (replayed := self.served.replay(listing, page, first=page == 1)) is not None:
            return replayed
        now_ts = self.world.now_ts()
        start, end = params.get("start_date"), params.get("end_date")
        if start in (None, "") and end in (None, "") and states == {"WAIT_SELLER_STOCK_OUT"}:
            low, high = now_ts - 30 * 86400, now_ts  # "默认返回前一个月的订单"
        else:
            low, high = _time("start_date", start), _time("end_date", end)
            if low > high:
                raise BusinessError(BAD_PARAM, "开始时间不能大于结束时间")
            if high > months_later(datetime.fromtimestamp(low, CHINA), 1).timestamp():
                raise BusinessError(BAD_PARAM, "开始时间和结束时间，不得相差超过1个月")
        by_created = str(params.get("dateType", "0")) == "1"
        query = (
            OrderQuery(created_min=low, created_max=high)
            if by_created
            else OrderQuery(updated_min=low, updated_max=high)
        )
        matches: list[tuple[int, int]] = []
        for index in self.world.scan(query, now_ts):
            state = self.world.state(index, now_ts)
            if state is None or not self.renderer.visible(state):
                continue
            if self.renderer.order_state(state) in states:
                matches.append((state.order.created_ts if by_created else state.updated_ts, index))
        matches.sort(reverse=str(params.get("sortType", "0")) == "1")
        chosen = matches[(page - 1) * size : page * size]
        orders = []
        for _, index in self.faults.shuffled(chosen):
            state = self.world.state(index, now_ts)
            if state is not None:
                orders.append(self.renderer.render(state, malformed=self.faults.order_is_malformed(index)))
        answer = {"orderInfoList": orders, "orderTotal": len(matches)}
        self.served.remember(listing, page, answer)
        return answer

    def get(self, params: dict[str, Any]) -> dict[str, Any]:
        index = self.renderer.index_of(params.get("order_id"))
        state = self.world.state(index, self.world.now_ts()) if index is not None else None
        if state is None or not self.renderer.visible(state):
            raise BusinessError(ORDER_NOT_FOUND, "订单不存在")
        return {"orderInfo": self.renderer.render(state, malformed=self.faults.order_is_malformed(index))}
