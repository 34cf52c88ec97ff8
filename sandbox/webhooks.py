"""Signed webhook deliveries, shared by every simulator whose platform pushes over HTTP.

A platform's ``sandbox/<platform>/webhooks.py`` gives only its wire format (a ``WebhookFormat``: topics,
headers, signing, body, ack, retry schedule, registration routes) and calls ``install_webhooks`` from its
``create_app``; this module does the rest the same way for all of them:

- a subscription book (``Subscription``: id, topic or every topic, address, secret, platform keys);
- a background thread per app, alive only while a subscription exists, that every ``TICK_SECONDS`` finds the
  orders whose updated time moved into (last tick, now] by the platform's clock (the hub's pushes through the
  overlay included, even when recorded at a time the last tick already covered), asks the format for the
  messages those changes make, and POSTs them with ``requests`` (5 s timeout);
- retries on the platform's schedule (``WebhookFormat.retry_delays``) times ``Faults.webhook_retry_scale``,
  and WooCommerce's "disable after consecutive failures" (``WebhookFormat.max_failures``);
- the fault knobs (``Faults.webhook_*``), drawn from their own seeded RNG so a run repeats whatever the API
  traffic: lost (never sent), duplicate (sent twice, same delivery id), reorder (held back and sent after the
  next delivery, or after ``HOLD_TICKS`` ticks when none comes), forged (an *extra* request signed with a key
  that is not the platform's, sent just before the real one, as someone else's forgery would be: the real
  delivery still goes out, so a receiver that refuses the forgery loses nothing);
- the console routes ``/_sandbox/webhooks`` (configure, list, clear) and ``/_sandbox/webhooks/deliveries``
  (every attempt: id, topic, order id, attempt, answer status).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import math
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import requests
from fastapi import FastAPI, Request, Response

from sandbox.admin import json_response
from sandbox.faults import Faults
from sandbox.world import OrderState, World

TICK_SECONDS = 0.2
TIMEOUT_SECONDS = 5.0
HOLD_TICKS = 5  # a reordered delivery waits at most this many ticks for a next one to overtake it
MAX_WINDOW_SECONDS = 86_400.0  # a clock jumped further than this delivers only the last day's changes
LOG_LIMIT = 10_000
log = logging.getLogger(__name__)


@dataclass
class Subscription:
    id: str
    topic: str | None  # None: every topic (a console-configured push URL)
    address: str
    secret: str = field(default="", repr=False)
    keys: dict[str, str] = field(default_factory=dict, repr=False)  # platform keys (WeChat token, AES key)
    status: str = "active"
    failures: int = 0  # consecutive failed deliveries
    fields: dict[str, Any] = field(default_factory=dict)  # what the platform echoes back (name, ...)


@dataclass(frozen=True)
class Change:
    """An order that moved in (since, now]: was it created there, and the kinds of event that happened
    (``paid``, ``cancelled``, ``fulfilled``, ``refunded``, ``closed``; the hub's pushes included)."""

    state: OrderState
    since: float
    created: bool
    kinds: tuple[str, ...]


@dataclass(frozen=True)
class Message:
    """One event about one order (or about the shop: ``order_index`` None), rendered when it happened:
    a retry carries the payload of the first attempt, as the platforms do."""

    topic: str
    order_id: str | None
    occurred_ts: float
    payload: Any
    event_id: str = field(default_factory=lambda: str(uuid.uuid4()))


@dataclass
class Delivery:
    id: str  # the delivery id: the same on every retry and duplicate
    subscription: Subscription
    messages: tuple[Message, ...]
    attempt: int = 0


@dataclass(frozen=True)
class Outgoing:
    body: bytes
    headers: dict[str, str]
    params: dict[str, str] = field(default_factory=dict)


class WebhookFormat(Protocol):
    """A platform's side of its webhooks: only the format, no delivery machinery."""

    retry_delays: tuple[float, ...]  # seconds before each retry (len = number of retries)
    max_failures: int | None  # a subscription is disabled once a failure comes with more than this before
    batches: bool  # one delivery may carry every message of a tick (Douyin)

    def messages(self, change: Change) -> list[Message]: ...

    def poll(self) -> list[Message]:
        """Messages not about an order change (Shopify ``app/uninstalled``); called every tick."""
        ...

    def request(self, delivery: Delivery, *, forged: bool) -> Outgoing: ...

    def acknowledged(self, response: requests.Response) -> bool: ...

    def subscription(self, dispatcher: WebhookDispatcher, body: dict[str, Any]) -> Subscription:
        """The console configuration ``body`` as a subscription (ValueError: refused, with the reason)."""
        ...

    def add_routes(self, app: FastAPI, dispatcher: WebhookDispatcher) -> None:
        """Registration routes of a platform with an API for them (nothing for console-only ones)."""
        ...


def sha_id(*parts: object) -> str:
    return uuid.uuid5(uuid.NAMESPACE_URL, ":".join(map(str, parts))).hex


class WebhookDispatcher:
    """The subscription book and the delivery thread of one simulator app."""

    def __init__(self, world: World, faults: Faults, fmt: WebhookFormat) -> None:
        self.world, self.faults, self.format = world, faults, fmt
        self._lock = threading.RLock()
        self._subscriptions: dict[str, Subscription] = {}
        self._ids = itertools.count(1)
        self._queue: list[tuple[float, int, Delivery]] = []
        self._order = itertools.count()
        self._held: tuple[Delivery, int] | None = None  # (reordered delivery, ticks waited)
        self._log: list[dict[str, Any]] = []
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._since = 0.0
        self._overlay_seen: dict[int, int] = {}
        self._session = requests.Session()

    # -- the book ---------------------------------------------------------------------------------------

    def next_id(self) -> int:
        return next(self._ids)

    def add(self, subscription: Subscription) -> Subscription:
        with self._lock:
            if not self._subscriptions:
                self._since = self.world.now_ts()
                self._overlay_seen = {i: len(self.world.overlay.events_for(i)) for i in self._touched()}
            self._subscriptions[subscription.id] = subscription
            if self._thread is None or not self._thread.is_alive():
                self._stop.clear()
                self._thread = threading.Thread(target=self._run, name="sandbox-webhooks", daemon=True)
                self._thread.start()
        return subscription

    def remove(self, subscription_id: str) -> Subscription | None:
        with self._lock:
            return self._subscriptions.pop(subscription_id, None)

    def clear(self) -> None:
        with self._lock:
            self._subscriptions.clear()

    def subscriptions(self) -> list[Subscription]:
        with self._lock:
            return list(self._subscriptions.values())

    def get(self, subscription_id: str) -> Subscription | None:
        with self._lock:
            return self._subscriptions.get(subscription_id)

    def deliveries(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._log)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=TIMEOUT_SECONDS + 1)

    def send_now(self, address: str, outgoing: Outgoing) -> requests.Response | None:
        """A one-off request (WooCommerce's ping, WeChat's URL check); None when it did not get an answer."""
        try:
            return self._session.post(
                address,
                data=outgoing.body,
                headers=outgoing.headers,
                params=outgoing.params,
                timeout=TIMEOUT_SECONDS,
            )
        except requests.RequestException:
            return None

    # -- the thread -------------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.wait(TICK_SECONDS):
            with self._lock:
                if not self._subscriptions and not self._queue:
                    self._thread = None
                    return  # no CPU burned without subscribers
            try:
                self.tick()
            except Exception:  # a bug in one tick must not end deliveries for good
                log.exception("webhook tick failed")

    def tick(self) -> None:
        now = self.world.now_ts()
        messages = [m for change in self._changes(now) for m in self.format.messages(change)]
        messages += self.format.poll()
        for delivery in self._deliveries(messages):
            self._schedule(delivery, time.monotonic())
        self._send_due()

    def _touched(self) -> list[int]:
        return self.world.overlay.touched_indices()

    def _changes(self, now: float) -> list[Change]:
        with self._lock:
            since = max(self._since, now - MAX_WINDOW_SECONDS)
            self._since = max(self._since, now)
        world = self.world
        found: dict[int, Change] = {}
        low, high = math.floor(since) + 1, math.floor(now)
        if high >= low:
            moment = datetime.fromtimestamp(now, UTC)
            for state in world.updated_between(_utc(low), _utc(high), now=moment):
                events = sorted((*state.order.events, *world.overlay.events_for(state.index)), key=_at)
                kinds = tuple(e.kind for e in events if since < e.at <= now)
                found[state.index] = Change(state, since, since < state.order.created_ts <= now, kinds)
        # The hub's pushes recorded at a time the last tick already covered still make a change.
        for index in self._touched():
            extra = world.overlay.events_for(index)
            seen = self._overlay_seen.get(index, 0)
            self._overlay_seen[index] = len(extra)
            late = tuple(e.kind for e in extra[seen:] if e.at <= since)
            if not late:
                continue
            if index in found:
                old = found[index]
                found[index] = Change(old.state, since, old.created, old.kinds + late)
            elif (state := world.state(index, now)) is not None:
                found[index] = Change(state, since, False, late)
        return [found[i] for i in sorted(found)]

    def _deliveries(self, messages: list[Message]) -> Iterable[Delivery]:
        for subscription in self.subscriptions():
            if subscription.status != "active":
                continue
            wanted = tuple(m for m in messages if subscription.topic in (None, m.topic))
            groups = [wanted] if self.format.batches and wanted else [(m,) for m in wanted]
            for group in groups:
                yield Delivery(str(uuid.uuid4()), subscription, group)

    def _schedule(self, delivery: Delivery, due: float) -> None:
        with self._lock:
            heapq.heappush(self._queue, (due, next(self._order), delivery))

    def _send_due(self) -> None:
        while True:
            with self._lock:
                if not self._queue or self._queue[0][0] > time.monotonic():
                    break
                _, _, delivery = heapq.heappop(self._queue)
            self._dispatch(delivery)
        with self._lock:
            held = self._held
            if held is not None and held[1] >= HOLD_TICKS:
                self._held = None
            elif held is not None:
                self._held = (held[0], held[1] + 1)
                held = None
        if held is not None:
            self._attempt(held[0])

    def _dispatch(self, delivery: Delivery) -> None:
        """A delivery's first attempt meets the fault knobs; retries go out as they are."""
        faults = self.faults
        if delivery.attempt == 0:
            if faults.webhook_roll(faults.webhook_lost_rate):
                self._record(delivery, None, "lost")
                return
            if faults.webhook_roll(faults.webhook_reorder_rate) and self._held is None:
                self._held = (delivery, 0)
                return
            if faults.webhook_roll(faults.webhook_forged_rate):
                forged = self.format.request(delivery, forged=True)
                answer = self.send_now(delivery.subscription.address, forged)
                self._record(delivery, answer, "forged")
        self._attempt(delivery)
        if delivery.attempt == 1 and faults.webhook_roll(faults.webhook_duplicate_rate):
            outgoing = self.format.request(delivery, forged=False)
            answer = self.send_now(delivery.subscription.address, outgoing)
            self._record(delivery, answer, "duplicate")
        with self._lock:
            held, self._held = self._held, None
        if held is not None:
            self._attempt(held[0])  # the held-back delivery goes out after the one that overtook it

    def _attempt(self, delivery: Delivery) -> None:
        subscription = delivery.subscription
        if subscription.status != "active" or self.get(subscription.id) is not subscription:
            return  # deleted or disabled meanwhile
        delivery.attempt += 1
        outgoing = self.format.request(delivery, forged=False)
        answer = self.send_now(subscription.address, outgoing)
        acked = answer is not None and self.format.acknowledged(answer)
        self._record(delivery, answer, "acked" if acked else "failed")
        with self._lock:
            if acked:
                subscription.failures = 0
                return
            limit = self.format.max_failures
            if limit is not None and subscription.failures > limit:
                subscription.status = "disabled"  # WooCommerce: count first, disable past the limit
            else:
                subscription.failures += 1
        delays = self.format.retry_delays
        if delivery.attempt <= len(delays):
            wait = delays[delivery.attempt - 1] * self.faults.webhook_retry_scale
            self._schedule(delivery, time.monotonic() + wait)

    def _record(self, delivery: Delivery, answer: requests.Response | None, outcome: str) -> None:
        entry = {
            "id": delivery.id,
            "subscription_id": delivery.subscription.id,
            "topic": delivery.messages[0].topic,
            "topics": [m.topic for m in delivery.messages],
            "order_id": delivery.messages[0].order_id,
            "attempt": delivery.attempt,
            "status": answer.status_code if answer is not None else None,
            "outcome": outcome,
            "at": time.time(),
        }
        with self._lock:
            self._log.append(entry)
            del self._log[:-LOG_LIMIT]


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def _at(event: Any) -> int:
    return int(event.at)


def subscription_view(subscription: Subscription) -> dict[str, Any]:
    return {
        "id": subscription.id,
        "topic": subscription.topic,
        "address": subscription.address,
        "status": subscription.status,
        "failures": subscription.failures,
        **subscription.fields,
    }


def install_webhooks(app: FastAPI, fmt: WebhookFormat) -> WebhookDispatcher:
    """Give ``app`` (a simulator with ``app.state.world`` and ``app.state.faults``) webhook deliveries in
    ``fmt``: its registration routes and the console routes. Call it before any catch-all route."""
    dispatcher = WebhookDispatcher(app.state.world, app.state.faults, fmt)
    app.state.webhooks = dispatcher
    fmt.add_routes(app, dispatcher)

    @app.post("/_sandbox/webhooks")
    async def configure(request: Request) -> Response:
        """Body: {"address": url, "topic"?: one topic, ...the platform's keys}: the console's push URL."""
        try:
            body = await request.json()
            if not isinstance(body, dict) or not isinstance(body.get("address"), str):
                raise ValueError('send {"address": "http://...", ...}')
            # The console may call the URL first (WeChat's check): not on the event loop.
            subscription = await asyncio.to_thread(fmt.subscription, dispatcher, body)
        except ValueError as error:
            return json_response({"errors": str(error)}, 400)
        dispatcher.add(subscription)
        return json_response(subscription_view(subscription), 201)

    @app.get("/_sandbox/webhooks")
    def list_subscriptions() -> Response:
        return json_response([subscription_view(s) for s in dispatcher.subscriptions()])

    @app.delete("/_sandbox/webhooks")
    def clear_subscriptions() -> Response:
        dispatcher.clear()
        return json_response([])

    @app.get("/_sandbox/webhooks/deliveries")
    def list_deliveries() -> Response:
        return json_response(dispatcher.deliveries())

    return dispatcher


def console_subscription(
    dispatcher: WebhookDispatcher,
    body: dict[str, Any],
    secret: str,
    keys: dict[str, str] | None = None,
) -> Subscription:
    """A console-configured push URL (every topic, or ``topic`` when given) signed with ``secret``."""
    topic = body.get("topic")
    if topic is not None and not isinstance(topic, str):
        raise ValueError("topic must be a string")
    return Subscription(str(dispatcher.next_id()), topic, body["address"], secret, dict(keys or {}))


def answered_code_zero(response: requests.Response) -> bool:
    """The Chinese platforms' acknowledgement: HTTP 200 with ``{"code": 0, ...}``."""
    try:
        body = response.json()
    except ValueError:
        return False
    return response.status_code == 200 and isinstance(body, dict) and body.get("code") == 0
