"""``order.searchList``: shop orders by update (or create) time, newest first, numbered pages from 0.

- ``update_time_start``/``update_time_end`` (or ``create_time_start``/``create_time_end``), epoch seconds,
  both bounds inclusive; a start after its end, or a span over ``MAX_SPAN`` [U: Douyin publishes none the
  sandbox could find; the connector's safe path is the same day] is 40004. No window: the last 90 days.
- ``page`` from 0, ``size`` 1..100 (default 10) [C: SDK parameter comments]; ``order_by`` ``update_time`` or
  ``create_time`` (default), ``order_asc`` false (default: newest first).
- The answer: ``{"page", "size", "total", "shop_order_list"}``.
Faults: the clock steps on each listing request, a page served again (``duplicate_page_rate``: the page it
served last for this listing, for a later page number), a page's items shuffled, malformed sku orders.
"""

from __future__ import annotations

from typing import Any

from sandbox.douyin.render import BusinessError, DouyinRenderer, int_param
from sandbox.faults import Faults, ServedPages
from sandbox.world import OrderQuery, World

MAX_SIZE = 100
DEFAULT_SIZE = 10
MAX_SPAN = 86400  # [U] seconds
DEFAULT_LOOKBACK = 90 * 86400


def search_list(
    world: World, renderer: DouyinRenderer, faults: Faults, served: ServedPages, params: dict[str, Any]
) -> dict[str, Any]:
    faults.step_clock(world.clock)
    page = int_param(params, "page", 0)
    size = int_param(params, "size", DEFAULT_SIZE)
    if not 1 <= size <= MAX_SIZE:
        raise BusinessError(40004, "isv.parameter-invalid", "size取值范围为1-100")  # [U] text
    if page < 0:
        raise BusinessError(40004, "isv.parameter-invalid", "page从0开始")  # [U] text
    listing = ServedPages.key({k: v for k, v in params.items() if k != "page"})
    if (replayed := served.replay(listing, page, first=page == 0)) is not None:
        return replayed
    now_ts = world.now_ts()
    bounds: dict[str, tuple[int, int]] = {}
    for kind in ("update", "create"):
        start, end = params.get(f"{kind}_time_start"), params.get(f"{kind}_time_end")
        if start in (None, "", 0) and end in (None, "", 0):
            continue
        low = int_param(params, f"{kind}_time_start", 0)
        high = int_param(params, f"{kind}_time_end", int(now_ts))
        if low > high:
            raise BusinessError(40004, "isv.parameter-invalid", "开始时间不能大于结束时间")  # [U]
        if high - low > MAX_SPAN:
            raise BusinessError(40004, "isv.parameter-invalid", "查询时间跨度不能超过1天")  # [U]
        bounds[kind] = (low, high)
    if not bounds:
        bounds["update"] = (int(now_ts) - DEFAULT_LOOKBACK, int(now_ts))
    updated, created = bounds.get("update"), bounds.get("create")
    query = OrderQuery(
        updated_min=updated[0] if updated else None,
        updated_max=updated[1] if updated else None,
        created_min=created[0] if created else None,
        created_max=created[1] if created else None,
    )
    by_update = params.get("order_by", "create_time") == "update_time"
    matches: list[tuple[int, int]] = []
    for index in world.scan(query, now_ts):
        timeline = world.timeline(index)
        updated_ts = timeline.updated_ts_at(now_ts)
        if updated_ts is not None:
            matches.append((updated_ts if by_update else timeline.created_ts, index))
    matches.sort(reverse=params.get("order_asc") not in (True, "true", 1, "1"))
    chosen = matches[page * size : (page + 1) * size]
    items = []
    for _, index in faults.shuffled(chosen):
        state = world.state(index, now_ts)
        if state is not None:
            items.append(renderer.render(state, malformed=faults.order_is_malformed(index)))
    answer = {"page": page, "size": size, "total": len(matches), "shop_order_list": items}
    served.remember(listing, page, answer)
    return answer
