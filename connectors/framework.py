"""Declarative connectors: a platform is a ``PlatformSpec`` (data) plus the few hooks its API needs (code).

Shape borrowed from dlt's ``rest_api`` source and Airbyte's declarative CDK: a client (base path, auth, error
policy, rate limiter), endpoints (path, static params, where the records sit, paginator) and an incremental
window (param names, time format, longest span). ``Connector`` executes any spec through one ``HttpClient``:

    for page in connector.fetch_orders(window_start, window_end):   # raw platform payloads, page by page
        ...

``fetch_orders`` splits the window to the platform's longest span, walks each sub-window's pages lazily
(memory is bounded by one page, not by the window), and narrows a sub-window by halving it when the
platform's page cap would be exceeded. Two checks keep a walk complete (each bounded, then a
``TransientError``): a page that repeats the page before it (the same records, by ``record_key``: a lagging
cache serving the previous cursor's or page number's answer again) is asked for again, since passed on it
would hide the page it replaced or send a cursor paginator round in a loop; and a walk that brought back
fewer distinct records than the listing's own total says (orders moving in the sort order while it was
paged) is walked again. It only fetches: overlap, schema checks, mapping and ingest belong to the sync
pipeline.

Hooks a platform module may override:
- ``records_from_page(endpoint_name, records)``: turn one page into order payloads (WeChat lists ids, then
  fetches each order);
- ``fetch_orders`` itself, when listing needs more than one endpoint;
- ``listed_stocks``, when the platform reads many listings' stock in one call (Shopify);
- ``warnings_for_window``, when a window may be incomplete for a reason the platform can tell before the pull
  (Shopify hides orders older than 60 days from a token without ``read_all_orders``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, Self

import requests

from connectors.auth import AuthSpec, Secret
from connectors.errors import ConnectorError, MalformedResponse, PageCapExceeded, TransientError
from connectors.http import BodyPath, ErrorPolicy, HttpClient, NoThrottle, Request, RetryPolicy, Throttle, dig
from connectors.paginators import Page, Paginator, SinglePage
from connectors.tokens import TokenStore
from connectors.windows import WindowSpec, bisect_window

if TYPE_CHECKING:
    from connectors.pushes import StockPush

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SyncWarning:
    """Something the run should tell ops though nothing failed: what it pulled may be incomplete. ``code`` is
    stable (what the page and alerts key on), ``message`` says what and what to do."""

    code: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


@dataclass(frozen=True)
class Endpoint:
    """One API operation.

    path: relative to the platform's base path; ``{name}`` placeholders are filled from path parameters.
    params/json: static query parameters / JSON body (window, paging and auth values are added per request).
    records_path: dotted path of the records in the body (``"orders"``, ``"data.full_order_info_list"``);
        None means the whole body; a tuple names alternatives, the first present wins (Youzan's 4.x
        ``data.*`` and 3.0.0 ``response.*`` envelopes).
    idempotent: whether replaying after an ambiguous failure is safe; None = decided by the HTTP method.
        Read-only POST endpoints (WeChat, Youzan) declare True.
    record_key: dotted path of a record's identity (``"id"``, ``"full_order_info.order_info.tid"``); None
        means the record itself (WeChat lists bare ids). Paging uses it to recognise a page served again.
    """

    path: str
    method: str = "GET"
    params: Mapping[str, Any] = field(default_factory=dict)
    json: Mapping[str, Any] | None = None
    records_path: BodyPath | None = None
    paginator: Paginator = field(default_factory=SinglePage)
    window: WindowSpec | None = None
    idempotent: bool | None = None
    missing_records_mean_empty: bool = False  # some platforms drop the list key when nothing matched
    record_key: str | None = None

    def __post_init__(self) -> None:  # specs are shared module constants: make their templates read-only
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))
        if self.json is not None:
            object.__setattr__(self, "json", MappingProxyType(dict(self.json)))


@dataclass(frozen=True)
class PlatformSpec:
    """Everything generic about one platform's API, as data."""

    name: str
    auth: AuthSpec
    endpoints: Mapping[str, Endpoint]
    base_path: str = ""  # may hold {placeholders} filled from the connection's path variables
    errors: ErrorPolicy = field(default_factory=ErrorPolicy)
    throttle: Callable[[], Throttle] = NoThrottle  # a factory: every connection keeps its own budget state
    default_headers: Mapping[str, str] = field(default_factory=lambda: {"Accept": "application/json"})
    path_variables: Mapping[str, str] = field(
        default_factory=dict
    )  # defaults, e.g. {"api_version": "2026-10"}

    def with_page_size(self, endpoint: str, page_size: int) -> PlatformSpec:
        """A copy whose ``endpoint`` pages by ``page_size``: specs are shared module constants, so a
        connection with its own page size gets its own spec rather than changing everyone's."""
        listing = self.endpoints[endpoint]
        paginator = replace(listing.paginator, page_size=page_size)  # type: ignore[type-var]
        return replace(self, endpoints={**self.endpoints, endpoint: replace(listing, paginator=paginator)})


class Connector:
    """Runs a ``PlatformSpec``. Subclasses set ``spec`` and add hooks and named operations."""

    spec: ClassVar[PlatformSpec]
    orders_endpoint: ClassVar[str] = "orders"

    def __init__(self, client: HttpClient) -> None:
        self.client = client

    @classmethod
    def connect(
        cls,
        base_url: str,
        credentials: Mapping[str, str | Secret],
        *,
        path_variables: Mapping[str, str] | None = None,
        retry: RetryPolicy | None = None,
        timeout: tuple[float, float] = (5.0, 30.0),
        throttle: Throttle | None = None,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] | None = None,
        token_store: TokenStore | None = None,
        spec: PlatformSpec | None = None,
    ) -> Self:
        """Build the shared client for this platform from a connection's base URL and credentials; a
        short-lived token is kept in ``token_store`` (the hub passes the warehouse's, shared by every
        process) or, without one, by this connector alone. ``spec``: this connection's own declaration
        when it differs from the class's (a page size, an auth kind chosen by the URL's scheme)."""
        spec = spec or cls.spec
        variables = {**spec.path_variables, **(path_variables or {})}
        options: dict[str, Any] = {} if sleep is None else {"sleep": sleep}
        client = HttpClient(
            base_url,
            platform=spec.name,
            base_path=spec.base_path.format(**variables),
            auth=spec.auth.bind(credentials, token_store=token_store),
            errors=spec.errors,
            throttle=throttle if throttle is not None else spec.throttle(),
            retry=retry,
            timeout=timeout,
            default_headers=spec.default_headers,
            session=session,
            **options,
        )
        connector = cls(client)
        if spec is not cls.spec:
            connector.spec = spec  # type: ignore[misc]  # this connection's declaration
        return connector

    @property
    def platform(self) -> str:
        return self.spec.name

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.client!r})"

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- generic operations --

    def endpoint(self, name: str) -> Endpoint:
        try:
            return self.spec.endpoints[name]
        except KeyError:
            raise KeyError(f"{self.platform} declares no endpoint {name!r}") from None

    def build_request(
        self,
        name: str,
        *,
        path_params: Mapping[str, Any] | None = None,
        window: tuple[datetime, datetime] | None = None,
        params: Mapping[str, Any] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> Request:
        """The first request of endpoint ``name``: declared values, then the caller's, then the window."""
        endpoint = self.endpoint(name)
        json_body = None
        if endpoint.json is not None or body is not None:
            json_body = {**(endpoint.json or {}), **(body or {})}
        request = Request(
            endpoint.method,
            endpoint.path.format(**(path_params or {})),
            params={**endpoint.params, **(params or {})},
            json=json_body,
            idempotent=endpoint.idempotent,
        )
        if window is not None:
            if endpoint.window is None:
                raise ValueError(f"{self.platform} endpoint {name!r} takes no time window")
            rendered = endpoint.window.render(*window)
            if endpoint.window.location == "body":
                request.json = {**(request.json or {}), **rendered}
            else:
                request.params.update(rendered)
        return request

    def fetch_pages(
        self,
        name: str,
        window_start: datetime | None = None,
        window_end: datetime | None = None,
        *,
        path_params: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> Iterator[list[Any]]:
        """Records of endpoint ``name``, one non-empty list per page, fetched lazily."""
        endpoint = self.endpoint(name)
        if endpoint.window is None:
            if window_start is not None or window_end is not None:
                raise ValueError(f"{self.platform} endpoint {name!r} takes no time window")
            yield from self._walk(name, self.build_request(name, path_params=path_params, params=params))
            return
        if window_start is None or window_end is None:
            raise ValueError(f"{self.platform} endpoint {name!r} needs window_start and window_end")
        for start, end in endpoint.window.split(window_start, window_end):
            yield from self._walk_window(name, endpoint, start, end, path_params, params)

    def _walk_window(
        self,
        name: str,
        endpoint: Endpoint,
        start: datetime,
        end: datetime,
        path_params: Mapping[str, Any] | None,
        params: Mapping[str, Any] | None,
    ) -> Iterator[list[Any]]:
        assert endpoint.window is not None
        request = self.build_request(name, path_params=path_params, window=(start, end), params=params)
        try:
            yield from self._walk(name, request)
        except PageCapExceeded:
            halves = bisect_window(start, end, endpoint.window.time_format.granularity)
            if halves is None:
                raise
            log.info(
                "%s %s: [%s, %s) holds more than the page cap allows; halving it",
                self.platform,
                name,
                start.isoformat(),
                end.isoformat(),
            )
            for half_start, half_end in halves:
                yield from self._walk_window(name, endpoint, half_start, half_end, path_params, params)

    def _walk(self, name: str, first: Request) -> Iterator[list[Any]]:
        """Every page of one listing. Where the listing states how many records it holds (a page-number
        total), a walk that brought back fewer distinct records missed some (an order moved into the window
        while it was paged shifted one past us: a backwards walk of a window ending in the platform's future)
        and is walked again, a bounded number of times; pages already passed on come again (ingest is
        idempotent)."""
        endpoint = self.endpoint(name)
        attempts = self.client.retry.max_attempts
        for walk in range(1, attempts + 1):
            seen: set[str] = set()
            total: int | None = None
            for page in endpoint.paginator.pages(self._page_fetcher(endpoint, name), first):
                seen |= self._record_keys(endpoint, page.records)
                total = endpoint.paginator.records_total(page.response)
                records = self.records_from_page(name, page.records)
                if records:
                    yield records
            if total is None or len(seen) >= total:
                return
            if walk < attempts:
                log.warning(
                    "%s %s: the listing holds %d records by its own total, %d came back (it changed while we "
                    "paged); reading it again",
                    self.platform,
                    name,
                    total,
                    len(seen),
                )
        raise TransientError(
            f"{name!r}: the listing holds {total} records by its own total, but only {len(seen)} came back, "
            f"{attempts} walks in a row",
            platform=self.platform,
        )

    def _page_fetcher(self, endpoint: Endpoint, name: str) -> Callable[[Request], Page]:
        """``fetch`` for one walk. A page holding exactly the records of the page before it was served again
        in place of the one asked for: it is asked for again rather than taken (the page it replaced would be
        lost, or a cursor paginator sent round in a loop)."""
        previous: frozenset[str] = frozenset()

        def fetch(request: Request) -> Page:
            nonlocal previous
            attempts = self.client.retry.max_attempts
            for attempt in range(1, attempts + 1):
                response = self.client.send(request)
                records = self._records(endpoint, name, response.body)
                keys = self._record_keys(endpoint, records)
                if not keys or keys != previous:
                    previous = keys
                    return Page(records, response)
                if attempt < attempts:
                    log.warning(
                        "%s %s: the answer repeats the page before it (attempt %d); asking again: %s",
                        self.platform,
                        name,
                        attempt,
                        response.url,
                    )
                    self.client.wait_before_retry(attempt)
            raise TransientError(
                f"{name!r} answered {attempts} times with the page before the one asked for (a page served "
                "again); giving up rather than skip the page it replaces",
                platform=self.platform,
                url=response.url,
            )

        return fetch

    @staticmethod
    def _record_keys(endpoint: Endpoint, records: list[Any]) -> frozenset[str]:
        """The identities of a page's records (by ``endpoint.record_key``), as text."""
        keys = set()
        for record in records:
            value = dig(record, endpoint.record_key) if endpoint.record_key else None
            value = record if value is None else value  # no identity of its own: the record as a whole
            keys.add(value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str))
        return frozenset(keys)

    def _records(self, endpoint: Endpoint, name: str, body: Any) -> list[Any]:
        records = dig(body, endpoint.records_path)
        if records is None and endpoint.missing_records_mean_empty:
            return []
        if not isinstance(records, list):
            raise MalformedResponse(
                f"expected a list at {endpoint.records_path or '<body>'!r} in the {name!r} answer, "
                f"got {type(records).__name__}",
                platform=self.platform,
            )
        return records

    def get(
        self,
        name: str,
        *,
        path_params: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> Any:
        """One request to endpoint ``name``; returns the value at its ``records_path``."""
        endpoint = self.endpoint(name)
        request = self.build_request(name, path_params=path_params, params=params, body=body)
        response = self.client.send(request)
        value = dig(response.body, endpoint.records_path)
        if value is None:
            raise MalformedResponse(
                f"{name!r} answer has nothing at {endpoint.records_path!r}",
                platform=self.platform,
                url=response.url,
            )
        return value

    def count(self, name: str, window_start: datetime, window_end: datetime) -> int:
        """Sum of a count endpoint over the window (split to the platform's longest span)."""
        endpoint = self.endpoint(name)
        if endpoint.window is None:
            raise ValueError(f"{self.platform} endpoint {name!r} takes no time window")
        total = 0
        for start, end in endpoint.window.split(window_start, window_end):
            response = self.client.send(self.build_request(name, window=(start, end)))
            value = dig(response.body, endpoint.records_path)
            if not isinstance(value, int):
                raise MalformedResponse(
                    f"{name!r} answer has no count", platform=self.platform, url=response.url
                )
            total += value
        return total

    # -- hooks --

    def records_from_page(self, endpoint_name: str, records: list[Any]) -> list[Any]:
        """Turn one page's records into what the caller wants (identity unless a platform needs more)."""
        return records

    def fetch_orders(self, window_start: datetime, window_end: datetime) -> Iterator[list[dict[str, Any]]]:
        """Raw order payloads updated in ``[window_start, window_end)``, one page at a time."""
        yield from self.fetch_pages(self.orders_endpoint, window_start, window_end)

    def warnings_for_window(self, window_start: datetime, window_end: datetime) -> list[SyncWarning]:
        """What may keep ``fetch_orders`` of this window from being complete (none unless a platform says)."""
        return []

    def listed_stock(self, listing: StockPush) -> int | None:
        """What the channel lists as available for ``listing`` (None: no level there yet)."""
        raise NotImplementedError(f"{self.platform} cannot read a listing's stock")

    def listed_stocks(self, listings: Sequence[StockPush]) -> list[int | ConnectorError | None]:
        """``listed_stock`` of each listing, in order; a listing that could not be read holds its error and
        the others are still read. One request (or two) per listing here: a platform whose API reads many
        listings in one call overrides this."""
        results: list[int | ConnectorError | None] = []
        for listing in listings:
            try:
                results.append(self.listed_stock(listing))
            except ConnectorError as error:
                results.append(error)
        return results
