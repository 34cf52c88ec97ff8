"""Pagination kinds. A paginator is configuration; ``pages()`` walks one listing lazily, one request per page.

``fetch(request) -> Page`` is supplied by the framework (it sends through the shared client and picks the
records out of the body), so a paginator only decides *which request comes next* and *when to stop*:

- ``LinkHeaderPaginator``: follow ``Link: <...>; rel="next"`` exactly as given (Shopify ``page_info``: the URL
  carries the cursor and ``limit``; resending the original filters is a 400 there).
- ``PageNumberPaginator``: ``page``/``page_no`` with a total (pages or results, from a header or the body)
  or a ``has_more`` flag; a page cap (Youzan ``page_no <= 100``) raises ``PageCapExceeded`` so the framework
  narrows the window; ``backwards=True`` reads the last page first (Taobao, Youzan: results sorted newest
  first shift while you page; reading from the end turns a would-be miss into a harmless duplicate). A
  total of results (``records_total``) lets the framework notice a walk that still came back short. Body
  paths may name alternatives (a tuple: the first present wins), for a platform whose versions state the
  same total in different places (Youzan ``data.total_results``, ``data.paginator.total_count``).
- ``CursorPaginator``: opaque cursor + ``has_more`` (WeChat ``next_key``), in the query or the JSON body.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from connectors.errors import ConnectorError, MalformedResponse, PageCapExceeded
from connectors.http import ApiResponse, BodyPath, Request, dig

Location = Literal["query", "body"]


@dataclass(frozen=True)
class Page:
    records: list[Any]
    response: ApiResponse
    number: int | None = None  # page number, for page-number paginators


Fetch = Callable[[Request], Page]


class Paginator(ABC):
    @abstractmethod
    def pages(self, fetch: Fetch, first: Request) -> Iterator[Page]:
        """Yield pages lazily: the next request is sent only when the previous page has been consumed."""

    def records_total(self, response: ApiResponse) -> int | None:
        """How many records the whole listing holds, by this answer (None: the platform does not say)."""
        return None


@dataclass(frozen=True)
class SinglePage(Paginator):
    def pages(self, fetch: Fetch, first: Request) -> Iterator[Page]:
        yield fetch(first)


@dataclass(frozen=True)
class LinkHeaderPaginator(Paginator):
    """``rel`` link of the RFC 8288 ``Link`` header. ``carry_params`` are re-added to follow-up requests when
    the link lacks them (e.g. ``fields``); everything else comes only from the link URL."""

    rel: str = "next"
    carry_params: tuple[str, ...] = ()

    def pages(self, fetch: Fetch, first: Request) -> Iterator[Page]:
        request = first
        seen: set[str] = set()
        while True:
            page = fetch(request)
            yield page
            next_url = page.response.links.get(self.rel, {}).get("url")
            if not next_url:
                return
            if next_url in seen:
                raise MalformedResponse(
                    "the Link header points back to a page already read", url=page.response.url
                )
            seen.add(next_url)
            carried = {
                k: first.params[k] for k in self.carry_params if k in first.params and f"{k}=" not in next_url
            }
            request = Request(first.method, next_url, carried, None, dict(first.headers), first.idempotent)


@dataclass(frozen=True)
class PageNumberPaginator(Paginator):
    """Numbered pages. Say how the end is known: ``total_pages_*``, ``total_results_*`` or ``has_more_path``;
    with none of them the walk stops at the first short page. A total wins over ``has_more_path`` when an
    answer carries both.

    A backwards walk needs the number of pages before its first read. From a total it is arithmetic; from
    ``has_more_path`` alone (the answer only says whether a next page exists) the last page is found by
    asking pages 2, 4, 8, ... until one says no more (or the page cap, itself still saying more, raises
    ``PageCapExceeded``), then bisecting: about 2 log2(pages) extra requests per listing. Such a listing
    gives no total, so ``records_total`` is None and a walk that came back short cannot be noticed: declare
    the total paths first wherever the platform may state one."""

    page_param: str = "page"
    size_param: str | None = "per_page"
    page_size: int = 100
    first_page: int = 1
    location: Location = "query"
    total_pages_header: str | None = None  # WooCommerce X-WP-TotalPages
    total_pages_path: BodyPath | None = None
    total_results_header: str | None = None  # WooCommerce X-WP-Total
    total_results_path: BodyPath | None = None  # Youzan data.total_results, Taobao ..._response.total_results
    has_more_path: BodyPath | None = None  # Taobao has_next, Youzan data.paginator.has_next
    max_page: int | None = None  # Youzan 100
    backwards: bool = False

    def _request(self, first: Request, number: int) -> Request:
        request = first.with_value(self.page_param, number, self.location)
        if self.size_param:
            request = request.with_value(self.size_param, self.page_size, self.location)
        return request

    def records_total(self, response: ApiResponse) -> int | None:
        return _int_or_none(self._read(response, self.total_results_header, self.total_results_path))

    def _total_pages(self, response: ApiResponse) -> int | None:
        pages = _int_or_none(self._read(response, self.total_pages_header, self.total_pages_path))
        if pages is not None:
            return pages
        results = _int_or_none(self._read(response, self.total_results_header, self.total_results_path))
        return None if results is None else math.ceil(results / self.page_size)

    @staticmethod
    def _read(response: ApiResponse, header: str | None, path: BodyPath | None) -> Any:
        if header and (value := response.headers.get(header)) is not None:
            return value
        return dig(response.body, path) if path else None

    def _check_cap(self, total_pages: int | None, response: ApiResponse) -> None:
        if self.max_page is not None and total_pages is not None and total_pages > self.max_page:
            raise PageCapExceeded(
                f"{total_pages} pages of {self.page_size} exceed the page cap of {self.max_page}",
                url=response.url,
            )

    def pages(self, fetch: Fetch, first: Request) -> Iterator[Page]:
        if self.backwards:
            yield from self._backwards(fetch, first)
            return
        number = self.first_page
        while True:
            page = fetch(self._request(first, number))
            total_pages = self._total_pages(page.response)
            if number == self.first_page:
                self._check_cap(total_pages, page.response)  # before yielding: the caller splits cleanly
            page = Page(page.records, page.response, number)
            yield page
            if not page.records:
                return
            if total_pages is not None:
                if number - self.first_page + 1 >= total_pages:
                    return
            elif self.has_more_path is not None:
                if not dig(page.response.body, self.has_more_path):
                    return
            elif len(page.records) < self.page_size:
                return
            number += 1
            if self.max_page is not None and number > self.max_page:
                raise PageCapExceeded(f"more than {self.max_page} pages", url=page.response.url)

    def _backwards(self, fetch: Fetch, first: Request) -> Iterator[Page]:
        probe = fetch(self._request(first, self.first_page))
        total_pages = self._total_pages(probe.response)
        ready: Page | None = None  # the last page, when finding it was the latest read
        if total_pages is None:
            if self.has_more_path is None:
                raise ConnectorError("backwards paging needs a total (pages or results) in the first answer")
            total_pages, ready = self._count_pages(fetch, first, probe)
        self._check_cap(total_pages, probe.response)
        if total_pages <= 1:
            yield Page(probe.records, probe.response, self.first_page)
            return
        # The probe only told us the page count. The first page is read again at the end, because records
        # leaving the window while we walk shift later records towards it.
        last = self.first_page + total_pages - 1
        for number in range(last, self.first_page - 1, -1):
            if ready is not None and ready.number == number:
                # Read just now while counting: asked for again at once it would look like a page served
                # again (the framework's lagging-cache check), so it is taken as it is.
                page, ready = ready, None
            else:
                page = fetch(self._request(first, number))
            yield Page(page.records, page.response, number)

    def _more(self, page: Page) -> bool:
        return bool(page.records) and bool(dig(page.response.body, self.has_more_path))

    def _count_pages(self, fetch: Fetch, first: Request, probe: Page) -> tuple[int, Page | None]:
        """Pages of a listing that states only ``has_more_path``, and the page read last if it is the last
        one. ``more(k)`` (page k says a next page exists) holds for every page before the last: double k
        until it fails, then bisect."""
        if not self._more(probe):
            return 1, None
        more, beyond = 1, None  # pages counted from 1: page ``more`` says more follow, page ``beyond`` not
        latest = probe
        while beyond is None:
            k = more * 2 if self.max_page is None else min(more * 2, self.max_page - self.first_page + 1)
            if k == more:  # the page cap itself still says more
                raise PageCapExceeded(f"more than {self.max_page} pages", url=latest.response.url)
            latest = self._read_page(fetch, first, k)
            if self._more(latest):
                more = k
            else:
                beyond = k
        while beyond - more > 1:
            k = (more + beyond) // 2
            latest = self._read_page(fetch, first, k)
            if self._more(latest):
                more = k
            else:
                beyond = k
        last = self.first_page + beyond - 1
        return beyond, latest if latest.number == last else None

    def _read_page(self, fetch: Fetch, first: Request, k: int) -> Page:
        """The k-th page (counted from 1), numbered as the platform numbers it."""
        number = self.first_page + k - 1
        page = fetch(self._request(first, number))
        return Page(page.records, page.response, number)


@dataclass(frozen=True)
class CursorPaginator(Paginator):
    """Opaque cursor from the previous answer (``cursor_path``) sent back as ``cursor_param``, while
    ``has_more_path`` is true (or, without it, while a cursor comes back)."""

    cursor_param: str = "next_key"
    cursor_path: str = "next_key"
    has_more_path: str | None = "has_more"
    size_param: str | None = "page_size"
    page_size: int = 100
    location: Location = "body"

    def pages(self, fetch: Fetch, first: Request) -> Iterator[Page]:
        request = (
            first.with_value(self.size_param, self.page_size, self.location) if self.size_param else first
        )
        seen: set[str] = set()
        while True:
            page = fetch(request)
            yield page
            if self.has_more_path is not None and not dig(page.response.body, self.has_more_path):
                return
            cursor = dig(page.response.body, self.cursor_path)
            if cursor in (None, ""):
                return
            if str(cursor) in seen:
                raise MalformedResponse(
                    "the platform returned a cursor it had already given", url=page.response.url
                )
            seen.add(str(cursor))
            request = request.with_value(self.cursor_param, cursor, self.location)


def newest_copies(
    pages: Iterable[list[Any]], version: Callable[[Any], tuple[str, Any] | None]
) -> Iterator[list[Any]]:
    """Each page without the records already passed on in the same or a newer version.

    A backwards walk (and a window narrowed and read again) can list one order twice while orders change;
    ``version(record)`` gives its id and a comparable stamp (Beijing wall time as text, epoch seconds), or
    None for a record with no usable id: that one always goes on, so the schema check queues it. A page
    left empty is not yielded.
    """
    seen: dict[str, Any] = {}  # id -> the stamp of the copy passed on
    for page in pages:
        fresh = []
        for record in page:
            key = version(record)
            if key is not None:
                record_id, stamp = key
                if record_id in seen and stamp <= seen[record_id]:
                    continue
                seen[record_id] = stamp
            fresh.append(record)
        if fresh:
            yield fresh


def _int_or_none(value: Any) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise MalformedResponse(f"expected a whole number for a page total, got {value!r}") from None
