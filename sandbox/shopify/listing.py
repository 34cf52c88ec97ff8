"""Shopify's order listing: filters and windows, cursor paging (``page_info``, Link headers), count and
single-order reads."""

from __future__ import annotations

import hashlib
import hmac
import json
import json.encoder
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.responses import Response

from sandbox.common import b64url_decode, b64url_encode
from sandbox.faults import Faults, ServedPages
from sandbox.shopify.render import ShopifyRenderer, render_order
from sandbox.shopify.wire import (
    API_PREFIX,
    DEFAULT_LIMIT,
    JSON_MEDIA_TYPE,
    MAX_LIMIT,
    NOT_FOUND_BODY,
    ORDER_VISIBILITY_DAYS,
    ShopAccess,
    _json_response,
)
from sandbox.world import (
    OrderQuery,
    OrderState,
    World,
)

_TIME_FILTERS = (
    "created_at_min",
    "created_at_max",
    "updated_at_min",
    "updated_at_max",
    "processed_at_min",
    "processed_at_max",
)
_LISTING_FILTERS = (
    "ids",
    "since_id",
    *_TIME_FILTERS,
    "attribution_app_id",
    "status",
    "financial_status",
    "fulfillment_status",
)
_ISO_WITH_OFFSET = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})")
_STATUSES = ("open", "closed", "cancelled", "any")
_FINANCIAL_FILTERS = {
    "authorized": {"authorized"},
    "pending": {"pending"},
    "paid": {"paid"},
    "partially_paid": {"partially_paid"},
    "refunded": {"refunded"},
    "voided": {"voided"},
    "partially_refunded": {"partially_refunded"},
    "unpaid": {"pending", "authorized", "partially_paid"},
}
_FULFILLMENT_FILTERS: dict[str, set[str | None]] = {
    "shipped": {"fulfilled"},
    "partial": {"partial"},
    "unshipped": {None},
    "unfulfilled": {None, "partial"},
}


class BadRequest(Exception):
    def __init__(self, errors: Any, status: int = 400) -> None:
        super().__init__(str(errors))
        self.errors = errors
        self.status = status


def parse_shopify_time(name: str, value: str) -> float:
    """Strict ISO-8601 with an offset ("Z" allowed) -> POSIX seconds; anything else is a 400."""
    if not _ISO_WITH_OFFSET.fullmatch(value):
        raise BadRequest({name: f"{name} must be an ISO-8601 time with a UTC offset, got {value!r}"})
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest({name: f"{name} is not a valid time: {value!r}"}) from None
    return parsed.timestamp()


def _parse_int(name: str, value: str) -> int:
    if not re.fullmatch(r"\d{1,19}", value):
        raise BadRequest({name: f"{name} must be a positive integer, got {value!r}"})
    return int(value)


@dataclass(frozen=True)
class ListFilters:
    """The filters of a listing request, as they travel inside ``page_info`` (JSON-safe values)."""

    status: str = "open"
    created_min: float | None = None
    created_max: float | None = None
    updated_min: float | None = None
    updated_max: float | None = None
    since_index: int = 0
    ids: tuple[int, ...] | None = None  # world indices
    financial_status: str | None = None
    fulfillment_status: str | None = None

    def to_query(self, min_index: int = 0, stop_index: int = 2**62) -> OrderQuery:
        predicate = None
        if self.financial_status not in (None, "any") or self.fulfillment_status not in (None, "any"):
            financial = _FINANCIAL_FILTERS.get(self.financial_status or "any")
            fulfilment = _FULFILLMENT_FILTERS.get(self.fulfillment_status or "any")

            def predicate(state: OrderState | None) -> bool:
                if state is None:
                    return False
                if financial is not None and state.financial_status not in financial:
                    return False
                return fulfilment is None or state.fulfillment_status in fulfilment

        return OrderQuery(
            status=self.status,  # type: ignore[arg-type]
            created_min=self.created_min,
            created_max=self.created_max,
            updated_min=self.updated_min,
            updated_max=self.updated_max,
            min_index=max(min_index, self.since_index),
            stop_index=stop_index,
            predicate=predicate,
        )


def parse_filters(
    params: dict[str, str], renderer: ShopifyRenderer, *, for_count: bool = False
) -> ListFilters:
    status = params.get("status", "open")
    if status not in _STATUSES:
        raise BadRequest({"status": f"status must be one of {', '.join(_STATUSES)}, got {status!r}"})
    times = {name: parse_shopify_time(name, params[name]) for name in _TIME_FILTERS if name in params}
    created_min = _tighter(max, times.get("created_at_min"), times.get("processed_at_min"))
    created_max = _tighter(min, times.get("created_at_max"), times.get("processed_at_max"))
    since_index = 0
    if "since_id" in params:
        since_index = renderer.first_index_after_id(_parse_int("since_id", params["since_id"]))
    ids: tuple[int, ...] | None = None
    if "ids" in params and not for_count:
        indices = set()
        for part in params["ids"].split(","):
            if part.strip():
                index = renderer.index_of(_parse_int("ids", part.strip()))
                if index is not None:
                    indices.add(index)
        ids = tuple(sorted(indices))
    financial = params.get("financial_status")
    if financial is not None and financial != "any" and financial not in _FINANCIAL_FILTERS:
        raise BadRequest({"financial_status": f"unknown financial_status {financial!r}"})
    fulfilment = params.get("fulfillment_status")
    if fulfilment is not None and fulfilment != "any" and fulfilment not in _FULFILLMENT_FILTERS:
        raise BadRequest({"fulfillment_status": f"unknown fulfillment_status {fulfilment!r}"})
    return ListFilters(
        status=status,
        created_min=created_min,
        created_max=created_max,
        updated_min=times.get("updated_at_min"),
        updated_max=times.get("updated_at_max"),
        since_index=since_index,
        ids=ids,
        financial_status=financial,
        fulfillment_status=fulfilment,
    )


def _tighter(pick: Callable[..., float], a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    return a if b is None else pick(a, b)


class PageInfoCodec:
    """``page_info``: base64url of JSON {filters, last_id, last_value, direction, signature}.

    The signature makes it tamper-evident: any edit is a 400, as Shopify rejects cursors it did not issue.
    """

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _sign(self, body: dict[str, Any]) -> str:
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
        return hmac.new(self._secret, canonical, hashlib.sha256).hexdigest()[:24]

    def encode(self, filters: ListFilters, last_id: int, direction: str) -> str:
        body: dict[str, Any] = {
            "filters": {k: v for k, v in asdict(filters).items() if v is not None},
            "last_id": last_id,
            "last_value": str(last_id),
            "direction": direction,
        }
        body["signature"] = self._sign(body)
        raw = json.dumps(body, separators=(",", ":")).encode()
        return b64url_encode(raw)

    def decode(self, value: str) -> tuple[ListFilters, int, str]:
        try:
            raw = b64url_decode(value)
            body = json.loads(raw)
            signature = body.pop("signature")
            if not hmac.compare_digest(signature, self._sign(body)):
                raise ValueError("bad signature")
            raw_filters = dict(body["filters"])
            if raw_filters.get("ids") is not None:
                raw_filters["ids"] = tuple(raw_filters["ids"])
            filters = ListFilters(**raw_filters)
            last_id, direction = int(body["last_id"]), body["direction"]
            if direction not in ("next", "prev"):
                raise ValueError("bad direction")
        except Exception:
            raise BadRequest({"page_info": "Invalid value."}) from None
        return filters, last_id, direction


def _iter_matching(
    world: World, filters: ListFilters, query: OrderQuery, now_ts: float, reverse: bool
) -> Iterator[int]:
    if filters.ids is None:
        yield from world.scan(query, now_ts, reverse=reverse)
        return
    indices = [i for i in filters.ids if query.min_index <= i < query.stop_index]
    for index in reversed(indices) if reverse else indices:
        if query.matches_timeline(world.timeline(index), now_ts) and (
            query.predicate is None or query.predicate(world.state(index, now_ts))
        ):
            yield index


def _take(iterator: Iterator[int], count: int) -> list[int]:
    taken = []
    for index in iterator:
        taken.append(index)
        if len(taken) == count:
            break
    return taken


def add_listing_routes(
    app: FastAPI,
    world: World,
    faults: Faults,
    renderer: ShopifyRenderer,
    access: ShopAccess,
    served: ServedPages,
) -> None:
    """``orders.json`` (filters, cursor pages with signed ``page_info`` and Link headers, the lagging cache),
    ``orders/count.json`` and ``orders/{id}.json``, each limited to what the token may see."""
    codec = PageInfoCodec(hashlib.sha256(f"channelhub-sandbox-page-info:{world.seed}".encode()).digest())

    def horizon(now_ts: float) -> float:
        """Orders created before this are hidden from the token (none without ``read_all_orders``)."""
        return -math.inf if access.reads_all_orders else now_ts - ORDER_VISIBILITY_DAYS * 86400

    def visible(query: OrderQuery, now_ts: float) -> OrderQuery:
        """``query`` limited to the orders the token may see; Shopify leaves the others out silently."""
        oldest = horizon(now_ts)
        if oldest == -math.inf or (query.created_min is not None and query.created_min >= oldest):
            return query
        return replace(query, created_min=oldest)

    def params_of(request: Request) -> dict[str, str]:
        return dict(request.query_params)

    def wanted_fields(params: dict[str, str]) -> frozenset[str] | None:
        raw = params.get("fields")
        if not raw:
            return None
        return frozenset(part.strip() for part in raw.split(",") if part.strip())

    def parse_limit(params: dict[str, str]) -> int:
        if "limit" not in params:
            return DEFAULT_LIMIT
        raw = params["limit"]
        limit = int(raw) if re.fullmatch(r"\d{1,6}", raw) else -1
        if not 1 <= limit <= MAX_LIMIT:
            raise BadRequest({"limit": f"limit must be between 1 and {MAX_LIMIT}, got {params['limit']!r}"})
        return limit

    def link(request: Request, limit: int, params: dict[str, str], page_info: str, rel: str) -> str:
        query = {"limit": str(limit), "page_info": page_info}
        if params.get("fields"):
            query["fields"] = params["fields"]
        base = str(request.base_url).rstrip("/")
        prefix = request.scope.get("shopify_api_prefix", API_PREFIX)
        return f'<{base}{prefix}/orders.json?{urlencode(query)}>; rel="{rel}"'

    @app.get(f"{API_PREFIX}/orders.json")
    def list_orders(request: Request) -> Response:
        faults.step_clock(world.clock)
        params = params_of(request)
        try:
            limit = parse_limit(params)
            wanted = wanted_fields(params)
            if "page_info" in params:
                passed = [name for name in _LISTING_FILTERS if name in params]
                if passed:
                    raise BadRequest(
                        {
                            passed[0]: f"{passed[0]} cannot be passed when page_info is present. "
                            "See https://shopify.dev/api/usage/pagination-rest for more information."
                        }
                    )
                filters, cursor_id, direction = codec.decode(params["page_info"])
            else:
                filters, cursor_id, direction = parse_filters(params, renderer), None, "next"
        except BadRequest as error:
            return _json_response({"errors": error.errors}, error.status)

        # A lagging cache: the answer to the previous cursor again (its Link still points at this cursor).
        listing = ServedPages.key([asdict(filters), limit, params.get("fields")])
        cursor = params.get("page_info", "")
        if (replayed := served.replay(listing, cursor, first=not cursor)) is not None:
            body, headers = replayed
            return Response(body, 200, headers=headers, media_type=JSON_MEDIA_TYPE)

        now_ts = world.now_ts()
        if direction == "next":
            start = 0 if cursor_id is None else renderer.first_index_after_id(cursor_id)
            query = visible(filters.to_query(min_index=start), now_ts)
            page = _take(_iter_matching(world, filters, query, now_ts, reverse=False), limit + 1)
            has_next, has_prev = len(page) > limit, cursor_id is not None
            page = page[:limit]
        else:
            stop = renderer.first_index_after_id(cursor_id - 1)  # indices strictly before the cursor
            query = visible(filters.to_query(stop_index=stop), now_ts)
            page = _take(_iter_matching(world, filters, query, now_ts, reverse=True), limit + 1)
            has_prev, has_next = len(page) > limit, True
            page = sorted(page[:limit])

        # The body is one join of encoded orders: a page is ~2.5 MB, and each extra copy of it (a str join, a
        # concatenation, encoding a str that one accented name made non-ASCII) cost milliseconds per page.
        pieces = [b'{"orders":[']
        for index in faults.shuffled(page):  # the cursors below still come from the sorted page
            state = world.state(index, now_ts)
            if state is not None:
                pieces += (render_order(faults, renderer, state, wanted).encode(), b",")
        if len(pieces) > 1:
            pieces.pop()  # the comma after the last order
        pieces.append(b"]}")
        links = []
        if page and has_prev:
            links.append(
                link(
                    request,
                    limit,
                    params,
                    codec.encode(filters, renderer.order_id(page[0]), "prev"),
                    "previous",
                )
            )
        if page and has_next:
            links.append(
                link(
                    request, limit, params, codec.encode(filters, renderer.order_id(page[-1]), "next"), "next"
                )
            )
        headers = {"Link": ", ".join(links)} if links else None
        body = b"".join(pieces)
        served.remember(listing, cursor, (body, headers))
        return Response(body, 200, headers=headers, media_type=JSON_MEDIA_TYPE)

    @app.get(f"{API_PREFIX}/orders/count.json")
    def count_orders(request: Request) -> Response:
        params = params_of(request)
        try:
            filters = parse_filters(params, renderer, for_count=True)
        except BadRequest as error:
            return _json_response({"errors": error.errors}, error.status)
        now_ts = world.now_ts()
        return _json_response({"count": world.count(visible(filters.to_query(), now_ts), now_ts)})

    @app.get(API_PREFIX + "/orders/{order_ref}.json")
    def get_order(request: Request, order_ref: str) -> Response:
        index = renderer.index_of(int(order_ref)) if order_ref.isdigit() else None
        now_ts = world.now_ts()
        state = world.state(index, now_ts) if index is not None else None
        if state is None or state.order.created_ts < horizon(now_ts):
            return _json_response(NOT_FOUND_BODY, 404)
        body = '{"order":' + render_order(faults, renderer, state, wanted_fields(params_of(request))) + "}"
        return Response(body.encode(), 200, media_type=JSON_MEDIA_TYPE)
