"""The live POS feed: stores post sales, returns, counts: ``POST /stores/v1/documents`` (docs/pos-feed.md).

Per request, in this order: the store named (``X-Store-Code``) and its key (``Authorization: Bearer <key>``)
compared in constant time with the password of its Airflow connection ``pos_<store code>`` (401, nothing read
or stored, the key never logged); the body read with a cap (413); the document parsed and checked against its
JSON Schema (``canonical.pos_documents``: 400 not JSON, 422 not the schema; kept in the exception queue as
``bad_pos_document`` with the raw body); a store posts for its own location only (403); then
``warehouse.pos_documents.apply_document``: once per document id (the same again answers the first result,
200; another body under that id is 409 and queued), its lines by the store files' own rules.

A document that changed stock posts one event on the stock Asset through Airflow's REST API (a thread of its
own coalescing what arrives within ``COALESCE_SECONDS``), so every ``push_stock__<channel>`` runs within
seconds; when Airflow's API cannot be reached the document stays applied, the failure is logged and the
scheduled pushes catch up.

``channelhub stores serve`` runs it with uvicorn (``channelhub.webhooks.serving`` in a thread for tests).
"""

from __future__ import annotations

import hmac
import logging
import queue
import re
import threading
import time
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import Engine, text
from starlette.concurrency import run_in_threadpool

from canonical.pos_documents import BadPosDocument, PosDocument, parse_document
from channelhub.credentials import CredentialsError, load_credentials
from channelhub.webhooks import BodyTooLarge, background_lifespan, next_batch, read_capped
from connectors.auth import Secret
from warehouse.pos_documents import DocumentOutcome, apply_document, queue_bad_document

log = logging.getLogger("channelhub.store_feed")

DOCUMENTS_PATH = "/stores/v1/documents"
HEALTH_PATH = "/stores/v1/health"
STORE_HEADER = "x-store-code"
DEFAULT_PORT = 8791  # HUB_STORE_FEED_PORT
MAX_DOCUMENT_BYTES = 512 * 1024  # a 1,000-line receipt is well under 200 KiB
KEYS_TTL_SECONDS = 60.0  # a rotated key is read again within a minute
MAX_CACHED_STORES = 10_000
MAX_STORE_CODE = 100  # as a location code in the document's schema
COALESCE_SECONDS = 0.2  # documents this close together make one stock asset event

StoreKeys = Callable[[str], Secret | None]  # store code -> its key (None: the store has none)
StockChanged = Callable[[dict[str, Any]], None]


def store_conn_id(store: str) -> str:
    """The Airflow connection holding a store's key: ``pos_`` + its code in lower case, other characters
    than letters and digits as ``_`` (``S-001`` -> ``pos_s_001``, env ``AIRFLOW_CONN_POS_S_001``)."""
    return "pos_" + re.sub(r"[^a-z0-9]+", "_", store.lower()).strip("_")


def keys_from_airflow(store: str) -> Secret | None:
    """The store's key: the password of its Airflow connection (None when it has none)."""
    try:
        secret = load_credentials(store_conn_id(store)).secret
    except CredentialsError:
        return None
    return secret or None


class _KeyCache:
    def __init__(self, keys: StoreKeys) -> None:
        self.keys = keys
        self._cached: dict[str, tuple[float, Secret | None]] = {}
        self._lock = threading.Lock()

    def key(self, store: str) -> Secret | None:
        now = time.monotonic()
        with self._lock:
            hit = self._cached.get(store)
        if hit is not None and now - hit[0] < KEYS_TTL_SECONDS:
            return hit[1]
        found = self.keys(store)
        with self._lock:
            if len(self._cached) >= MAX_CACHED_STORES:  # codes anyone may send: the cache stays bounded
                self._cached.clear()
            self._cached[store] = (now, found)
        return found


def key_matches(expected: Secret, given: str) -> bool:
    """Constant time in the key's content (``hmac.compare_digest``)."""
    return hmac.compare_digest(expected.reveal().encode("utf-8"), given.encode("utf-8"))


class StockNotifier:
    """Posts the stock asset events off the request path: one per burst of documents that changed stock."""

    def __init__(self, stock_changed: StockChanged) -> None:
        self.stock_changed = stock_changed
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self.stopping.clear()
                self._thread = threading.Thread(target=self._loop, name="pos-feed-stock-events", daemon=True)
                self._thread.start()

    def stop(self, timeout: float = 15.0) -> None:
        self.stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def submit(self, event: dict[str, Any]) -> None:
        self.start()
        self.events.put(event)

    def _loop(self) -> None:
        while not (self.stopping.is_set() and self.events.empty()):
            if batch := next_batch(self.events, wait=0.2, within=COALESCE_SECONDS):
                self._post(batch)

    def _post(self, batch: list[dict[str, Any]]) -> None:
        documents = [f"{e['location']}:{e['document_id']}" for e in batch]
        units: dict[str, int] = {}
        for event in batch:
            for effect, count in event["units"].items():
                units[effect] = units.get(effect, 0) + count
        try:
            self.stock_changed({"source": "pos_feed", "documents": documents, "units": units})
        except Exception as err:  # the documents are applied; the scheduled pushes catch up
            log.warning(
                "pos feed: the stock asset event for %d document(s) failed (%s): stock pushes wait for "
                "their schedule",
                len(batch),
                type(err).__name__,
            )
        else:
            log.info("pos feed: stock asset event posted for %d document(s)", len(batch))


def _answer(status: int, error: str, reason: str, **more: Any) -> JSONResponse:
    return JSONResponse({"error": error, "reason": reason, **more}, status_code=status)


def _bearer(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def create_feed(
    engine: Engine,
    *,
    keys: StoreKeys = keys_from_airflow,
    stock_changed: StockChanged | None = None,
    max_bytes: int = MAX_DOCUMENT_BYTES,
) -> FastAPI:
    """The feed app. ``keys`` gives a store's key (default: its Airflow connection); ``stock_changed`` posts
    a stock asset event (``airflow_stock_changed()``; None: the scheduled pushes only)."""
    key_cache = _KeyCache(keys)
    notifier = StockNotifier(stock_changed) if stock_changed is not None else None

    app = FastAPI(
        title="ChannelHub POS feed",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=background_lifespan(notifier),
    )
    app.state.notifier = notifier

    @app.get(HEALTH_PATH)
    async def health() -> JSONResponse:
        def ping() -> None:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))

        try:
            await run_in_threadpool(ping)
        except Exception as err:
            log.error("pos feed: the warehouse does not answer: %s", type(err).__name__)
            return _answer(503, "unavailable", "the warehouse does not answer")
        return JSONResponse({"status": "ok"})

    @app.post(DOCUMENTS_PATH)
    async def post_document(request: Request) -> JSONResponse:
        store = request.headers.get(STORE_HEADER, "").strip()
        given = _bearer(request)
        if not store or len(store) > MAX_STORE_CODE or not store.isprintable() or given is None:
            log.warning("pos feed: refused (401): no store code or no bearer key")
            return _answer(
                401,
                "unauthorized",
                "name the store in X-Store-Code and send its key as 'Authorization: Bearer'",
            )
        expected = await run_in_threadpool(key_cache.key, store)
        if expected is None or not key_matches(expected, given):
            why = "no key configured" if expected is None else "wrong key"
            log.warning("pos feed %s: refused (401): %s (connection %s)", store, why, store_conn_id(store))
            return _answer(401, "unauthorized", "unknown store or wrong key")

        try:
            body = await read_capped(request, max_bytes)
        except BodyTooLarge:
            reason = f"the document is over {max_bytes} bytes: post it in parts (documents of their own)"
            exception_id = await run_in_threadpool(queue_bad_document, engine, store, reason, (), b"")
            log.warning("pos feed %s: refused (413): %s", store, reason)
            return _answer(413, "bad_pos_document", reason, exception_id=exception_id)

        try:
            document = parse_document(body)
        except BadPosDocument as bad:
            return await _refused(store, bad, body)
        if document.location != store:
            reason = f"store {store} may post documents of location {store} only, not {document.location!r}"
            log.warning("pos feed %s: refused (403): %s", store, reason)
            return _answer(403, "wrong_location", reason)

        try:
            outcome = await run_in_threadpool(apply_document, engine, document)
        except BadPosDocument as bad:
            return await _refused(store, bad, body)
        except Exception as err:  # a warehouse outage: nothing half-done is answered; the POS posts again
            log.error(
                "pos feed %s: document %s not applied: %s", store, document.document_id, type(err).__name__
            )
            return _answer(
                503, "unavailable", "the warehouse cannot apply documents now: post it again later"
            )
        return _applied(document, outcome)

    async def _refused(store: str, bad: BadPosDocument, body: bytes) -> JSONResponse:
        exception_id = await run_in_threadpool(
            queue_bad_document, engine, store, bad.reason, bad.errors, body
        )
        log.warning("pos feed %s: refused (%d): %s", store, bad.status, bad.reason)
        return _answer(
            bad.status, "bad_pos_document", bad.reason, errors=list(bad.errors), exception_id=exception_id
        )

    def _applied(document: PosDocument, outcome: DocumentOutcome) -> JSONResponse:
        if outcome.status == "conflict":
            log.warning("pos feed %s: refused (409): %s", document.location, outcome.result["reason"])
            return JSONResponse(dict(outcome.result), status_code=409)
        result = outcome.result
        counts: dict[str, int] = {}
        for line in result["lines"]:
            counts[line["outcome"]] = counts.get(line["outcome"], 0) + 1
        log.info(
            "pos feed %s: %s %s %s: %s",
            document.location,
            document.type,
            document.document_id,
            outcome.status,
            ", ".join(f"{k}={v}" for k, v in sorted(counts.items())),
        )
        if outcome.stock_changed and notifier is not None:
            notifier.submit(
                {
                    "location": document.location,
                    "document_id": document.document_id,
                    "units": dict(outcome.changed_units),
                }
            )
        return JSONResponse(dict(result), status_code=200)

    return app


def airflow_stock_changed() -> StockChanged | None:
    """``channelhub.airflow_api``'s stock asset events, when its Airflow connection is configured."""
    from channelhub.airflow_api import AIRFLOW_API_CONN_ID, stock_asset_events

    events = stock_asset_events()
    if events is None:
        log.warning(
            "pos feed: Airflow connection %s not configured; stock pushes wait for their schedule",
            AIRFLOW_API_CONN_ID,
        )
        return None
    return events.stock_changed
