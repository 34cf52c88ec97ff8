"""``taobao.trades.sold.increment.get`` and ``taobao.trade.fullinfo.get`` over the world.

- ``start_modified``/``end_modified`` (both required, Beijing ``yyyy-MM-dd HH:mm:ss``, both inclusive) at most
  one day apart, start not after end; ``page_no`` from 1, ``page_size`` 1..100 (default 40); results newest
  modification first; only the fields asked for (``fields``; ``orders`` brings the sub-orders).
- ``use_has_next=true``: ``has_next`` instead of ``total_results`` (TOP: faster, no count).
- Faults: ``clock_step_seconds`` moves the world on before answering, ``duplicate_page_rate`` serves the page
  served last again, ``shuffle_page_rate`` mixes a page.
"""

from __future__ import annotations

from typing import Any

from sandbox.faults import Faults, ServedPages
from sandbox.gateway import TIME_TEXT, china_seconds
from sandbox.taobao.render import TaobaoRenderer
from sandbox.world import OrderQuery, OrderState, World

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 40
MAX_SPAN_SECONDS = 86400


class BusinessError(Exception):
    """A TOP refusal: ``code`` (15 business, 40/41 arguments), ``sub_code``/``sub_msg`` saying what."""

    def __init__(self, code: int, msg: str, sub_code: str | None = None, sub_msg: str | None = None) -> None:
        super().__init__(sub_msg or msg)
        self.code, self.msg, self.sub_code, self.sub_msg = code, msg, sub_code, sub_msg


def missing(name: str) -> BusinessError:
    return BusinessError(40, "Missing required arguments:" + name, "isv.missing-parameter:" + name)


def refusal(sub_code: str, sub_msg: str) -> BusinessError:
    return BusinessError(15, "Remote service error", sub_code, sub_msg)


def find_trade(world: World, renderer: TaobaoRenderer, params: dict[str, str]) -> tuple[int, OrderState]:
    """The trade ``tid`` names and its state now (what fullinfo reads and the pushes act on); a refusal
    ``isv.trade-not-exist`` where the world has none."""
    tid = params.get("tid") or ""
    if not tid:
        raise missing("tid")
    index = renderer.index_of(tid)
    state = world.state(index, world.now_ts()) if index is not None else None
    if index is None or state is None:
        raise refusal("isv.trade-not-exist", "交易不存在")
    return index, state


def invalid(name: str, why: str) -> BusinessError:
    return BusinessError(41, "Invalid arguments:" + name, "isv.invalid-parameter:" + name, why)


def integer(params: dict[str, str], name: str, default: int | None = None) -> int:
    value = params.get(name)
    if value in (None, ""):
        if default is None:
            raise missing(name)
        return default
    if not value.lstrip("-").isdigit():
        raise invalid(name, f"{name}必须为整数")
    return int(value)


def beijing(params: dict[str, str], name: str) -> float:
    value = params.get(name)
    if not value:
        raise missing(name)
    if not TIME_TEXT.fullmatch(value):
        raise invalid(name, f"{name}格式必须为yyyy-MM-dd HH:mm:ss")
    try:
        return china_seconds(value)
    except ValueError:
        raise invalid(name, f"{name}不是合法的时间") from None


def only_fields(trade: dict[str, Any], fields: str) -> dict[str, Any]:
    """The trade with the fields asked for (TOP returns only those)."""
    wanted = {name.strip() for name in fields.split(",") if name.strip()}
    return {key: value for key, value in trade.items() if key in wanted}


class Listing:
    def __init__(self, world: World, renderer: TaobaoRenderer, faults: Faults) -> None:
        self.world, self.renderer, self.faults = world, renderer, faults
        self.served = ServedPages(faults)

    def increment(self, params: dict[str, str]) -> dict[str, Any]:
        self.faults.step_clock(self.world.clock)
        fields = params.get("fields") or ""
        if not fields:
            raise missing("fields")
        low, high = beijing(params, "start_modified"), beijing(params, "end_modified")
        if low > high:
            raise invalid("start_modified", "start_modified不能晚于end_modified")
        if high - low > MAX_SPAN_SECONDS:
            # [U] wording: TOP documents the one-day limit, not its refusal's text.
            raise invalid("end_modified", "start_modified和end_modified的时间间隔不能超过一天")
        page_no = integer(params, "page_no", 1)
        page_size = integer(params, "page_size", DEFAULT_PAGE_SIZE)
        if page_no < 1:
            raise invalid("page_no", "page_no必须大于0")
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise invalid("page_size", "page_size取值范围为1~100")
        has_next_mode = params.get("use_has_next") == "true"
        filters = {k: v for k, v in params.items() if k in ("fields", "start_modified", "end_modified")}
        key = ServedPages.key({**filters, "page_size": page_size, "use_has_next": has_next_mode})
        if (again := self.served.replay(key, page_no, first=page_no == 1)) is not None:
            return again
        now = self.world.now_ts()
        matches = []
        for index in self.world.scan(OrderQuery(updated_min=low, updated_max=high), now):
            updated = self.world.timeline(index).updated_ts_at(now)
            if updated is not None:
                matches.append((updated, index))
        matches.sort(reverse=True)  # newest modification first
        chosen = matches[(page_no - 1) * page_size : page_no * page_size]
        trades = []
        for _, index in self.faults.shuffled(chosen):
            state = self.world.state(index, now)
            if state is not None:
                trades.append(only_fields(self.renderer.render(state), fields))
        answer: dict[str, Any] = {}
        if has_next_mode:
            answer["has_next"] = page_no * page_size < len(matches)
        else:
            answer["total_results"] = len(matches)
        if trades:  # TOP drops an empty list's wrapper
            answer["trades"] = {"trade": trades}
        self.served.remember(key, page_no, answer)
        return answer

    def fullinfo(self, params: dict[str, str]) -> dict[str, Any]:
        fields = params.get("fields") or ""
        if not fields:
            raise missing("fields")
        index, state = find_trade(self.world, self.renderer, params)
        trade = self.renderer.render(state, malformed=self.faults.order_is_malformed(index))
        return {"trade": only_fields(trade, fields)}
