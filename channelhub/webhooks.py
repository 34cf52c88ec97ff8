"""The webhook receiver: one route per channel, ``GET|POST /webhooks/{channel_code}`` (a small ASGI app).

The request path does only what must happen before the answer, in this order: the body read with a cap
(413), the platform contract's ``verify`` on the raw bytes (``WebhookRefused``: its status, the reason
logged, nothing stored), the events stored in the inbox in one transaction (``warehouse.webhook_inbox``: a
duplicate stores nothing), the contract's answer. No platform I/O and no ingest there: the new row ids go to
an ``ApplyWorker`` thread, which coalesces what arrives within ``COALESCE_SECONDS`` into one batch
(``channelhub.webhook_apply``), and a sweeper thread applies whatever a killed process left pending.

``channelhub webhooks serve`` runs it with uvicorn; the Airflow plugin mounts ``lazy_receiver()`` (no Airflow
login: platforms do not log in, the signature is the authentication).
"""

from __future__ import annotations

import logging
import queue
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from datetime import UTC, datetime
from functools import cache, partial
from typing import Any, Protocol, TypeVar

from fastapi import FastAPI, Request, Response
from starlette.concurrency import run_in_threadpool
from starlette.types import Receive, Scope, Send

from channelhub.config import ChannelConfig, HubConfig
from channelhub.credentials import CredentialsError
from channelhub.platforms import get_platform
from channelhub.sync import register_config
from channelhub.webhook_apply import (
    CredentialsFor,
    StockChanged,
    apply_pending,
    credentials_from_airflow,
    sweep_inbox,
)
from connectors.webhooks import (
    MAX_BODY_BYTES,
    WebhookContract,
    WebhookKeys,
    WebhookRefused,
    WebhookRequest,
)
from warehouse import webhook_inbox

log = logging.getLogger("channelhub.webhooks")

T = TypeVar("T")

COALESCE_SECONDS = 0.2  # events arriving this close together are applied as one batch (one asset event)
SWEEP_EVERY_SECONDS = 15.0
KEYS_TTL_SECONDS = 60.0  # a rotated secret is read again within a minute


class BodyTooLarge(Exception):
    pass


async def read_capped(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The raw body, refused past ``limit`` bytes: Content-Length first, then counting what streams in (a
    sender may lie or send chunked)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


class ApplyWorker:
    """The receiver's applier: a thread taking stored row ids from a queue, and a sweeper every
    ``SWEEP_EVERY_SECONDS`` (also once at start). Both only ever claim rows with ``SKIP LOCKED``, so several
    receivers and the sweep DAG can run at once."""

    def __init__(
        self,
        engine: Any,
        config: HubConfig,
        credentials: CredentialsFor,
        stock_changed: StockChanged | None,
        sweep_every: float = SWEEP_EVERY_SECONDS,
    ) -> None:
        self.engine, self.config = engine, config
        self.credentials, self.stock_changed = credentials, stock_changed
        self.sweep_every = sweep_every
        self.ids: queue.Queue[int] = queue.Queue()
        self.stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        with self._lock:
            if self._threads:
                return
            self.stopping.clear()
            self._threads = [
                threading.Thread(target=self._apply_loop, name="webhook-apply", daemon=True),
                threading.Thread(target=self._sweep_loop, name="webhook-sweep", daemon=True),
            ]
            for thread in self._threads:
                thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self.stopping.set()
        for thread in self._threads:
            thread.join(timeout)
        self._threads = []

    def submit(self, ids: list[int]) -> None:
        for row_id in ids:
            self.ids.put(row_id)

    def _apply_loop(self) -> None:
        while not self.stopping.is_set():
            batch = next_batch(self.ids, wait=0.5, within=COALESCE_SECONDS)
            if not batch:
                continue
            self._guarded(
                partial(
                    apply_pending,
                    self.engine,
                    self.config,
                    ids=batch,
                    credentials=self.credentials,
                    stock_changed=self.stock_changed,
                )
            )

    def _sweep_loop(self) -> None:
        while True:
            self._guarded(
                lambda: sweep_inbox(
                    self.engine, self.config, credentials=self.credentials, stock_changed=self.stock_changed
                )
            )
            if self.stopping.wait(self.sweep_every):
                return

    @staticmethod
    def _guarded(work: Callable[[], Any]) -> None:
        try:
            work()
        except Exception as err:  # a warehouse outage: the rows stay pending for the next sweep
            log.error("webhooks: applying the inbox failed: %s: %s", type(err).__name__, err)


class _KeysCache:
    def __init__(self, credentials: CredentialsFor) -> None:
        self.credentials = credentials
        self._cached: dict[str, tuple[float, WebhookKeys]] = {}
        self._lock = threading.Lock()

    def keys(self, channel: ChannelConfig) -> WebhookKeys:
        now = time.monotonic()
        with self._lock:
            hit = self._cached.get(channel.code)
            if hit is not None and now - hit[0] < KEYS_TTL_SECONDS:
                return hit[1]
        found = self.credentials(channel)
        keys = WebhookKeys(found.login, found.secret, dict(found.extra))
        with self._lock:
            self._cached[channel.code] = (now, keys)
        return keys


def next_batch(items: queue.Queue[T], *, wait: float, within: float) -> list[T]:
    """The next item (waiting up to ``wait`` seconds; [] when none came) and every item that follows it within
    ``within`` seconds: a burst becomes one batch, so one action (one asset event) serves it."""
    try:
        batch = [items.get(timeout=wait)]
    except queue.Empty:
        return []
    deadline = time.monotonic() + within
    while (left := deadline - time.monotonic()) > 0:
        try:
            batch.append(items.get(timeout=left))
        except queue.Empty:
            break
    return batch


class Background(Protocol):
    """A thread an app runs beside its requests (the inbox's apply worker, the POS feed's stock notifier)."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


def background_lifespan(
    background: Background | None,
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """An app lifespan that starts ``background`` (if any) with the server and stops it at shutdown."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if background is not None:
            background.start()
        yield
        if background is not None:
            background.stop()

    return lifespan


def create_receiver(
    engine: Any,
    config: HubConfig,
    *,
    credentials: CredentialsFor = credentials_from_airflow,
    stock_changed: StockChanged | None = None,
    apply: bool = True,
    contracts: Mapping[str, WebhookContract] | None = None,
    sweep_every: float = SWEEP_EVERY_SECONDS,
) -> FastAPI:
    """The receiver app. ``apply=False``: inbox only (the sweeper, the DAG or another process applies).
    ``contracts`` overrides platforms' declared contracts by platform name (a contract under test)."""
    worker = ApplyWorker(engine, config, credentials, stock_changed, sweep_every) if apply else None
    keys = _KeysCache(credentials)
    channels = {channel.code: channel for channel in config.channels if channel.enabled}
    registered: list[bool] = []

    def contract_of(channel: ChannelConfig) -> WebhookContract | None:
        if contracts is not None and channel.platform in contracts:
            return contracts[channel.platform]
        return get_platform(channel.platform).webhook_contract

    def store(
        channel: ChannelConfig, request: WebhookRequest, events: list[webhook_inbox.InboxEvent]
    ) -> list[int]:
        if not registered:  # a fresh warehouse knows no channel before its first sync (idempotent)
            register_config(engine, config)
            registered.append(True)
        with engine.begin() as conn:
            return webhook_inbox.store_events(
                conn,
                channel.code,
                events,
                raw_body=request.body,
                headers=request.headers,
                received_at=request.received_at,
            )

    app = FastAPI(
        title="ChannelHub webhooks",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=background_lifespan(worker),
    )
    app.state.worker = worker

    @app.api_route("/webhooks/{channel_code}", methods=["GET", "POST"])
    async def receive(channel_code: str, request: Request) -> Response:
        channel = channels.get(channel_code)
        contract = contract_of(channel) if channel is not None else None
        if channel is None or contract is None:
            return Response("no such webhook endpoint\n", status_code=404, media_type="text/plain")
        if worker is not None:
            worker.start()  # mounted in another app (Airflow's), this app's lifespan never runs
        try:
            body = await read_capped(request)
        except BodyTooLarge:
            log.warning("webhooks %s: refused: too_large (over %d bytes)", channel.code, MAX_BODY_BYTES)
            return Response("too large\n", status_code=413, media_type="text/plain")
        delivery = WebhookRequest(
            method=request.method,
            headers={name.lower(): value for name, value in request.headers.items()},
            query=dict(request.query_params),
            body=body,
            received_at=datetime.now(UTC),
        )
        try:
            channel_keys = await run_in_threadpool(keys.keys, channel)
        except CredentialsError as err:  # the platform retries; ops must define the connection
            log.error("webhooks %s: cannot verify: %s", channel.code, err)
            return Response("not ready\n", status_code=503, media_type="text/plain")
        try:
            verified = contract.verify(delivery, channel_keys)
        except WebhookRefused as refused:  # the reason only: never the body, a header or a key
            log.warning("webhooks %s: refused (%d): %s", channel.code, refused.status, refused.reason)
            return Response("refused\n", status_code=refused.status, media_type="text/plain")
        events = [
            webhook_inbox.InboxEvent(e.event_id, e.topic, e.order_id, e.order_payload)
            for e in verified.events
        ]
        new_ids = await run_in_threadpool(store, channel, delivery, events)
        log.info("webhooks %s: %d event(s) verified, %d new", channel.code, len(events), len(new_ids))
        if worker is not None and new_ids:
            worker.submit(new_ids)
        answer = verified.answer
        return Response(answer.body, status_code=answer.status, media_type=answer.media_type)

    return app


def airflow_stock_changed() -> StockChanged | None:
    """``channelhub.airflow_api``'s stock asset events, when its Airflow connection is configured."""
    from channelhub.airflow_api import stock_asset_events

    events = stock_asset_events()
    if events is None:
        log.warning("webhooks: Airflow API connection not configured; stock pushes wait for their schedule")
        return None
    return events.stock_changed


def lazy_receiver() -> Callable[[Scope, Receive, Send], Any]:
    """An ASGI app that builds the receiver on its first request (the Airflow plugin mounts it: importing a
    plugin must not reach the warehouse or read the channels' config)."""
    built: list[FastAPI] = []
    lock = threading.Lock()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":  # a mounted app gets none; served alone, nothing to start yet
            message = await receive()
            while message["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
                message = await receive()
            await send({"type": "lifespan.shutdown.complete"})
            return
        if not built:
            with lock:
                if not built:
                    from channelhub.config import load_config
                    from channelhub.db import get_engine

                    built.append(
                        create_receiver(get_engine(), load_config(), stock_changed=airflow_stock_changed())
                    )
        await built[0](scope, receive, send)

    app.built = built  # type: ignore[attr-defined]  # the receiver once built (its worker: ``state.worker``)
    return app


@cache
def plugin_receiver() -> Callable[[Scope, Receive, Send], Any]:
    """The one lazily built receiver of this process (the Airflow plugin's mount)."""
    return lazy_receiver()


@contextmanager
def serving(app: Any, host: str = "127.0.0.1") -> Iterator[str]:
    """``app`` served by uvicorn in a thread of this process, lifespan on (it starts the receiver's apply
    worker), on a free port; its base URL until the block exits (tests, the fault matrix)."""
    import uvicorn

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind((host, 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the webhook receiver did not start")
        time.sleep(0.02)
    try:
        yield f"http://{host}:{listener.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        listener.close()
