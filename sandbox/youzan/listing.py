"""Youzan's order listing: sold.get's time windows, page numbers and answer shapes; trade.get."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI

from sandbox.common import months_later, whole_number
from sandbox.faults import Faults, ServedPages
from sandbox.gateway import china_seconds_or_none
from sandbox.world import OrderQuery, World
from sandbox.youzan.render import YouzanRenderer

MAX_PAGE_NO = 100
MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 20
MAX_SPAN_DAYS = 92  # "3 months"; the calendar check below is the real rule, this only bounds the work
SOLD_GET_VERSIONS = frozenset({"4.0.0", "4.0.1", "4.0.2", "4.0.3", "4.0.4"})
TRADE_GET_VERSIONS = frozenset({"4.0.0", "4.0.2"})
LIST_SHAPES = ("total_results", "paginator", "has_next")


class BusinessError(Exception):
    """A ``success: false`` answer of the >= 4.0 envelope."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def parse_china_time(name: str, value: Any) -> float:
    seconds = china_seconds_or_none(value)
    if seconds is None:
        raise BusinessError(5000, f"{name}格式错误，应为yyyy-MM-dd HH:mm:ss")  # [U] message
    return seconds


def _int_param(body: dict[str, Any], name: str, default: int) -> int:
    value = whole_number(body.get(name, default))
    if value is None:
        raise BusinessError(5000, f"{name}必须为整数")  # [U] message
    return value


class YouzanListing:
    """youzan.trades.sold.get (windows, paging, the lagging cache) and youzan.trade.get over the world.

    ``app`` is read at call time: ``app.state.list_shape`` may change while the sandbox runs."""

    def __init__(
        self, app: FastAPI, world: World, faults: Faults, renderer: YouzanRenderer, served: ServedPages
    ) -> None:
        self.app = app
        self.world = world
        self.faults = faults
        self.renderer = renderer
        self.served = served

    def sold_get(self, body: dict[str, Any]) -> dict[str, Any]:
        self.faults.step_clock(self.world.clock)
        page_no = _int_param(body, "page_no", 1)
        page_size = _int_param(body, "page_size", DEFAULT_PAGE_SIZE)
        if page_size > MAX_PAGE_SIZE:
            raise BusinessError(5000, "每页最多显示100条数据")
        if page_size < 1:
            raise BusinessError(5000, "page_size必须大于0")  # [U]
        if page_no < 1 or page_no > MAX_PAGE_NO:
            raise BusinessError(5000, "page_no最大为100")  # [U] message
        # A lagging cache: the page it served last for this query, for the page number asked for now.
        listing = ServedPages.key({k: v for k, v in body.items() if k != "page_no"})
        if (replayed := self.served.replay(listing, page_no, first=page_no == 1)) is not None:
            return replayed
        now_ts = self.world.now_ts()
        bounds: dict[str, tuple[float, float]] = {}
        for kind in ("update", "created"):
            start, end = body.get(f"start_{kind}"), body.get(f"end_{kind}")
            if start in (None, "") or end in (None, ""):
                continue  # an incomplete pair is ignored, as Youzan documents
            low, high = parse_china_time(f"start_{kind}", start), parse_china_time(f"end_{kind}", end)
            if low > high:
                raise BusinessError(5000, "开始时间不能大于结束时间")
            low_dt = datetime.fromtimestamp(low, UTC)
            if datetime.fromtimestamp(high, UTC) > months_later(low_dt, 3):
                raise BusinessError(5000, "查询时间跨度不能超过3个月")  # [U] message
            if high > now_ts + 7 * 86400:
                raise BusinessError(106000003, "结束时间不能超过当前时间7天")  # [S]
            bounds[kind] = (low, high)
        if not bounds:
            # No usable window: Youzan then lists recent orders; bound the work to the last 3 months.
            bounds["update"] = (now_ts - MAX_SPAN_DAYS * 86400, now_ts)
        updated = bounds.get("update")
        created = bounds.get("created")
        query = OrderQuery(
            updated_min=updated[0] if updated else None,
            updated_max=updated[1] if updated else None,
            created_min=created[0] if created else None,
            created_max=created[1] if created else None,
        )
        status = body.get("status")
        tid = body.get("tid")
        matches: list[tuple[int, int]] = []
        for index in self.world.scan(query, now_ts):
            if tid and self.renderer.tid(index) != tid:
                continue
            updated_ts = self.world.timeline(index).updated_ts_at(now_ts)
            if updated_ts is not None:
                matches.append((updated_ts, index))
        matches.sort(reverse=True)  # newest update first
        if status:
            matches = [m for m in matches if self.status_of(m[1]) == status]
        chosen = matches[(page_no - 1) * page_size : page_no * page_size]
        items = []
        for _, index in self.faults.shuffled(chosen):
            state = self.world.state(index, now_ts)
            if state is not None:
                items.append(self.renderer.render(state, malformed=self.faults.order_is_malformed(index)))
        answer = self.list_answer(items, len(matches), page_no, page_size)
        self.served.remember(listing, page_no, answer)
        return answer

    def list_answer(self, items: list[Any], total: int, page_no: int, page_size: int) -> dict[str, Any]:
        """sold.get's ``data`` in the shape ``app.state.list_shape`` names: 4.0.0's ``total_results``
        [C: SDK model], or a ``paginator`` with a total or only ``has_next`` (4.0.4, [U]: both are seen in
        client code)."""
        shape = self.app.state.list_shape
        if shape == "total_results":
            return {"total_results": total, "full_order_info_list": items}
        paginator: dict[str, Any] = {"page": page_no, "page_size": page_size}
        if shape == "paginator":
            paginator["total_count"] = total
        elif shape == "has_next":
            paginator["has_next"] = page_no * page_size < total
        else:
            raise ValueError(f"list_shape must be one of {LIST_SHAPES}, got {shape!r}")
        return {"full_order_info_list": items, "paginator": paginator}

    def status_of(self, index: int) -> str:
        state = self.world.state(index, self.world.now_ts())
        return "" if state is None else self.renderer.render(state)["full_order_info"]["order_info"]["status"]

    def trade_get(self, body: dict[str, Any]) -> dict[str, Any]:
        tid = body.get("tid")
        index = self.renderer.index_of(tid) if isinstance(tid, str) else None
        state = self.world.state(index, self.world.now_ts()) if index is not None else None
        if state is None:
            raise BusinessError(106100110, "非法的订单号")  # [S] 106100110 illegal tid
        return self.renderer.render(state, malformed=self.faults.order_is_malformed(index))
