"""WooCommerce's order listing: the query parameters WordPress takes, time windows, page numbers with
``X-WP-Total`` and Link headers, checkout drafts; single orders and refunds."""

from __future__ import annotations

import heapq
import math
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import FastAPI, Request
from fastapi.responses import Response

from sandbox.admin import json_response
from sandbox.faults import Faults, ServedPages
from sandbox.woocommerce.render import WooRenderer, render_order, wc_status
from sandbox.woocommerce.store import WooStore
from sandbox.woocommerce.wire import (
    _ISO_DATE_TIME,
    API_PREFIX,
    CREDENTIAL_PARAMS,
    DEFAULT_PER_PAGE,
    DRAFT_ID_OFFSET,
    DRAFT_LEAD_SECONDS,
    INVALID_ID,
    MAX_PER_PAGE,
    NOT_FILTERS,
    ORDERBY,
    STATUSES,
    BadRequest,
    _error,
)
from sandbox.world import OrderQuery, OrderState, World

# --------------------------------------------------------------------------------------------------
# Request parsing (WordPress REST argument validation)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Listing:
    page: int
    per_page: int
    offset: int | None
    descending: bool
    statuses: frozenset[str] | None  # None: any
    created_after: float | None
    created_before: float | None
    modified_after: float | None
    modified_before: float | None
    include: frozenset[int] | None
    exclude: frozenset[int]
    include_drafts: frozenset[int] = frozenset()  # slot indices of the checkout drafts named by id
    exclude_drafts: frozenset[int] = frozenset()


def _integer(name: str, raw: str, minimum: int, maximum: int | None = None) -> int:
    if not re.fullmatch(r"-?\d{1,9}", raw.strip()):
        raise BadRequest({name: f"{name} is not of type integer."})
    value = int(raw)
    if maximum is not None and not minimum <= value <= maximum:
        raise BadRequest({name: f"{name} must be between {minimum} (inclusive) and {maximum} (inclusive)"})
    if value < minimum:
        raise BadRequest({name: f"{name} must be greater than or equal to {minimum}"})
    return value


def _boolean(name: str, raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("1", "true"):
        return True
    if lowered in ("0", "false", ""):
        return False
    raise BadRequest({name: f"{name} is not of type boolean."})


def _list_param(request: Request, name: str) -> list[str]:
    """WordPress arrays: ``status=a,b``, ``status[]=a&status[]=b`` or ``status[0]=a``."""
    values: list[str] = []
    for key, value in request.query_params.multi_items():
        if key == name or key == f"{name}[]" or re.fullmatch(rf"{re.escape(name)}\[\d+\]", key):
            values.extend(part.strip() for part in value.split(",") if part.strip())
    return values


def parse_time(name: str, raw: str, *, gmt: bool, site_zone: ZoneInfo) -> float:
    """A date-time parameter: with an offset it is that instant; without, UTC when ``dates_are_gmt`` is
    true, else the site's local time (the WooCommerce behaviour that makes offset-less calls drift)."""
    match = _ISO_DATE_TIME.fullmatch(raw.strip())
    if not match:
        raise BadRequest({name: "Invalid date."})
    date, clock, fraction, zone = match.groups()
    try:
        naive = datetime.fromisoformat(f"{date}T{clock}{fraction or ''}")
    except ValueError:
        raise BadRequest({name: "Invalid date."}) from None
    if zone:
        offset = "+00:00" if zone.upper() == "Z" else zone
        return datetime.fromisoformat(f"{date}T{clock}{fraction or ''}{offset}").timestamp()
    return naive.replace(tzinfo=UTC if gmt else site_zone).timestamp()


def parse_listing(request: Request, renderer: WooRenderer) -> Listing:
    params = request.query_params
    page = _integer("page", params["page"], 1) if "page" in params else 1
    per_page = (
        _integer("per_page", params["per_page"], 1, MAX_PER_PAGE)
        if "per_page" in params
        else DEFAULT_PER_PAGE
    )
    offset = _integer("offset", params["offset"], 0) if "offset" in params else None
    order = params.get("order", "desc")
    if order not in ("asc", "desc"):
        raise BadRequest({"order": "order is not one of asc and desc."})
    orderby = params.get("orderby", "date")
    if orderby not in ORDERBY:
        raise BadRequest({"orderby": f"orderby is not one of {', '.join(ORDERBY[:-1])} and {ORDERBY[-1]}."})
    statuses = _list_param(request, "status") or ["any"]
    for position, status in enumerate(statuses):
        if status != "any" and status not in STATUSES:
            allowed = ", ".join(("any", *STATUSES[:-1]))
            raise BadRequest({"status": f"status[{position}] is not one of {allowed} and {STATUSES[-1]}."})
    gmt = _boolean("dates_are_gmt", params["dates_are_gmt"]) if "dates_are_gmt" in params else False
    zone = renderer.time.zone
    times = {
        name: parse_time(name, params[name], gmt=gmt, site_zone=zone)
        for name in ("after", "before", "modified_after", "modified_before")
        if name in params
    }

    def ids(name: str, of: Callable[[int], int | None]) -> frozenset[int]:
        found = set()
        for value in _list_param(request, name):
            if not value.isdigit():
                raise BadRequest({name: f"{name}[0] is not of type integer."})
            index = of(int(value))
            if index is not None:
                found.add(index)
        return frozenset(found)

    return Listing(
        page=page,
        per_page=per_page,
        offset=offset,
        descending=order == "desc",
        statuses=None if "any" in statuses else frozenset(statuses),
        created_after=times.get("after"),
        created_before=times.get("before"),
        modified_after=times.get("modified_after"),
        modified_before=times.get("modified_before"),
        include=ids("include", renderer.index_of) if _list_param(request, "include") else None,
        exclude=ids("exclude", renderer.index_of),
        include_drafts=ids("include", renderer.draft_index_of),
        exclude_drafts=ids("exclude", renderer.draft_index_of),
    )


# WP_Date_Query bounds are exclusive; the world's are inclusive, in whole seconds.
def _above(ts: float | None) -> float | None:
    return None if ts is None else float(math.floor(ts) + 1)


def _below(ts: float | None) -> float | None:
    return None if ts is None else float(math.ceil(ts) - 1)


def listing_entries(
    renderer: WooRenderer, listing: Listing, now_ts: float, *, drafts: bool
) -> list[tuple[int, bool]]:
    """(slot index, is a checkout draft) of every order the listing holds, ascending by (creation date,
    id): the world's orders and, with ``drafts``, the checkout drafts ``status=any`` also returns."""
    orders = matching_indices(renderer.world, listing, now_ts)
    found = matching_drafts(renderer, listing, now_ts) if drafts else []
    if not found:
        return [(index, False) for index in orders]
    world = renderer.world
    keyed_orders = ((world.timeline(i).created_ts, renderer.order_id(i), i, False) for i in orders)
    keyed_drafts = ((renderer.draft_ts(i), renderer.order_id(i) + DRAFT_ID_OFFSET, i, True) for i in found)
    return [(index, draft) for _, _, index, draft in heapq.merge(keyed_orders, keyed_drafts)]


def matching_drafts(renderer: WooRenderer, listing: Listing, now_ts: float) -> list[int]:
    """Slot indices of the checkout drafts the listing holds, by creation time (a draft never changes:
    its modified time is its creation time)."""
    if listing.statuses is not None and "checkout-draft" not in listing.statuses:
        return []
    bounds_low = [t for t in (_above(listing.created_after), _above(listing.modified_after)) if t is not None]
    bounds_high = [_below(listing.created_before), _below(listing.modified_before), float(math.floor(now_ts))]
    low = max(bounds_low, default=None)
    high = min(t for t in bounds_high if t is not None)
    if listing.include is not None:
        candidates: Iterable[int] = sorted(listing.include_drafts)
    else:
        lead = DRAFT_LEAD_SECONDS
        candidates = renderer.world.created_index_range(None if low is None else low + lead, high + lead)
    return [
        index
        for index in candidates
        if renderer.has_draft(index)
        and index not in listing.exclude_drafts
        and (low is None or low <= renderer.draft_ts(index))
        and renderer.draft_ts(index) <= high
    ]


def matching_indices(world: World, listing: Listing, now_ts: float) -> list[int]:
    """World indices of the listing, ascending by (creation date, id): stable while orders change."""
    if listing.statuses is not None and not listing.statuses - {"checkout-draft"}:
        return []  # the world's orders are never drafts
    query = OrderQuery(
        created_min=_above(listing.created_after),
        created_max=_below(listing.created_before),
        updated_min=_above(listing.modified_after),
        updated_max=_below(listing.modified_before),
    )
    if listing.include is not None:
        candidates: Iterator[int] = (
            i for i in sorted(listing.include) if query.matches_timeline(world.timeline(i), now_ts)
        )
    else:
        candidates = world.scan(query, now_ts)
    found = []
    for index in candidates:
        if index in listing.exclude:
            continue
        if listing.statuses is not None:
            state = world.state(index, now_ts)
            if state is None or wc_status(state) not in listing.statuses:
                continue
        found.append(index)
    return found


def add_listing_routes(
    app: FastAPI, world: World, faults: Faults, renderer: WooRenderer, store: WooStore, served: ServedPages
) -> None:
    """``GET orders`` (filters, pages, the lagging page cache), ``orders/{id}``, its refunds."""

    def link_header(request: Request, page: int, total_pages: int) -> str:
        query = [
            (k, v)
            for k, v in request.query_params.multi_items()
            if k != "page" and k not in CREDENTIAL_PARAMS
        ]
        base = str(request.base_url).rstrip("/") + request.url.path

        def url(number: int) -> str:
            return f"<{base}?{urlencode([*query, ('page', str(number))])}>"

        links = []
        if page > 1:
            links.append(f'{url(min(page - 1, max(total_pages, 1)))}; rel="prev"')
        if page < total_pages:
            links.append(f'{url(page + 1)}; rel="next"')
        links.append(f'{url(1)}; rel="first"')
        links.append(f'{url(max(total_pages, 1))}; rel="last"')
        return ", ".join(links)

    @app.get(API_PREFIX + "/orders")
    def list_orders(request: Request) -> Response:
        faults.step_clock(world.clock)
        try:
            listing = parse_listing(request, renderer)
        except BadRequest as error:
            return json_response(error.body(), 400)
        # A lagging page cache in front of WordPress: the page it served last, for the page asked for now.
        key = ServedPages.key(
            sorted((k, v) for k, v in request.query_params.multi_items() if k not in NOT_FILTERS)
        )
        if (replayed := served.replay(key, listing.page, first=listing.page == 1)) is not None:
            return json_response(*replayed)
        now_ts = world.now_ts()
        entries = listing_entries(renderer, listing, now_ts, drafts=store.checkout_drafts)
        if listing.descending:
            entries.reverse()
        total = len(entries)
        start = listing.offset if listing.offset is not None else (listing.page - 1) * listing.per_page
        total_pages = math.ceil(total / listing.per_page)
        orders = []
        for index, draft in faults.shuffled(entries[start : start + listing.per_page]):
            if draft:
                orders.append(renderer.render_draft(index))
            elif (state := world.state(index, now_ts)) is not None:
                orders.append(render_order(faults, renderer, state, store))
        headers = {
            "X-WP-Total": str(total),
            "X-WP-TotalPages": str(total_pages),
            "Link": link_header(request, listing.page, total_pages),
        }
        served.remember(key, listing.page, (orders, 200, headers))
        return json_response(orders, 200, headers)

    def state_of(order_ref: str) -> OrderState | None:
        index = renderer.index_of(int(order_ref)) if order_ref.isdigit() else None
        return world.state(index, world.now_ts()) if index is not None else None

    @app.get(API_PREFIX + "/orders/{order_ref}")
    def get_order(order_ref: str) -> Response:
        state = state_of(order_ref)
        if state is None:
            draft = renderer.draft_index_of(int(order_ref)) if order_ref.isdigit() else None
            if draft is not None and store.checkout_drafts and renderer.draft_ts(draft) <= world.now_ts():
                return json_response(renderer.render_draft(draft))
            return json_response(INVALID_ID, 404)
        return json_response(render_order(faults, renderer, state, store))

    @app.get(API_PREFIX + "/orders/{order_ref}/refunds")
    def list_refunds(order_ref: str, request: Request) -> Response:
        """Newest first (WordPress's default ``order=desc`` by date). An unknown order lists nothing:
        WooCommerce queries refunds by parent id without checking the parent [U]."""
        params = request.query_params
        try:
            page = _integer("page", params["page"], 1) if "page" in params else 1
            per_page = (
                _integer("per_page", params["per_page"], 1, MAX_PER_PAGE)
                if "per_page" in params
                else DEFAULT_PER_PAGE
            )
        except BadRequest as error:
            return json_response(error.body(), 400)
        state = state_of(order_ref)
        refunds = renderer.served_refunds(state) if state is not None else []
        chosen = refunds[(page - 1) * per_page : page * per_page]
        assert state is not None or not chosen
        body = [renderer.render_refund(state, refund) for refund in chosen]  # type: ignore[arg-type]
        headers = {
            "X-WP-Total": str(len(refunds)),
            "X-WP-TotalPages": str(math.ceil(len(refunds) / per_page)),
        }
        return json_response(body, 200, headers)

    @app.get(API_PREFIX + "/orders/{order_ref}/refunds/{refund_ref}")
    def get_refund(order_ref: str, refund_ref: str) -> Response:
        state = state_of(order_ref)
        for refund in renderer.served_refunds(state) if state is not None else []:
            if str(renderer.order_id(state.index) + refund.seq) == refund_ref:  # type: ignore[union-attr]
                return json_response(renderer.render_refund(state, refund))  # type: ignore[arg-type]
        return json_response(_error("woocommerce_rest_shop_order_refund_invalid_id", "Invalid ID.", 404), 404)
