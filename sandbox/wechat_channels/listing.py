"""The Channels order listing: ``order/list/get`` (time ranges, page size, the signed ``next_key``),
``order/get`` and ``aftersale/getaftersaleorder``."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response

from sandbox.common import b64url_decode, b64url_encode
from sandbox.faults import Faults, ServedPages
from sandbox.wechat_channels.render import WeChatChannelsRenderer
from sandbox.wechat_channels.wire import (
    DEFAULT_PAGE_SIZE,
    ERR_AFTERSALE_NOT_FOUND,
    ERR_INVALID_ARGS,
    KNOWN_STATUSES,
    MAX_PAGE_SIZE,
    MAX_SPAN_SECONDS,
    WeChatError,
    _int_field,
    json_body,
    ok,
)
from sandbox.world import OrderQuery, OrderState, World


def _time_range(body: dict[str, Any], name: str) -> tuple[int, int] | None:
    raw = body.get(name)
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise WeChatError(47001, f"data format error: {name} must be an object")
    start, end = _int_field(raw, "start_time"), _int_field(raw, "end_time")
    if start is None or end is None:
        raise WeChatError(40097, f"invalid args: {name} needs start_time and end_time")
    if start > end:
        raise WeChatError(40097, f"invalid args: {name}.start_time is after end_time")
    if end - start > MAX_SPAN_SECONDS:  # [U] the doc states the limit, not the code it answers with
        raise WeChatError(40097, f"invalid args: {name} must not span more than 7 days")
    return start, end


class NextKeyCodec:
    """``next_key``: base64url of {filters digest, last index} plus a signature; foreign keys are refused."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _sign(self, text: str) -> str:
        return hmac.new(self._secret, text.encode(), hashlib.sha256).hexdigest()[:16]

    def encode(self, filters_digest: str, last_index: int) -> str:
        text = f"{filters_digest}:{last_index}"
        raw = f"{text}:{self._sign(text)}".encode()
        return b64url_encode(raw)

    def decode(self, value: str, filters_digest: str) -> int:
        try:
            raw = b64url_decode(value).decode()
            digest, last, signature = raw.rsplit(":", 2)
            if not hmac.compare_digest(signature, self._sign(f"{digest}:{last}")):
                raise ValueError("bad signature")
            if digest != filters_digest:
                raise ValueError("next_key of another query")
            return int(last)
        except (ValueError, UnicodeDecodeError):
            raise WeChatError(40097, "invalid args: next_key") from None


def add_listing_routes(
    app: FastAPI,
    world: World,
    faults: Faults,
    renderer: WeChatChannelsRenderer,
    served: ServedPages,
    error: Callable[[WeChatError], Response],
) -> None:
    """The order reads; ``error`` answers a refusal (with the app's request ids)."""
    codec = NextKeyCodec(hashlib.sha256(f"channelhub-wechat-next-key:{world.seed}".encode()).digest())

    @app.post("/channels/ec/order/list/get")
    async def list_orders(request: Request) -> Response:
        faults.step_clock(world.clock)
        try:
            body = await json_body(request)
            created = _time_range(body, "create_time_range")
            updated = _time_range(body, "update_time_range")
            if created is None and updated is None:
                raise WeChatError(40097, "invalid args: create_time_range or update_time_range is required")
            page_size = _int_field(body, "page_size")
            page_size = DEFAULT_PAGE_SIZE if page_size is None else page_size
            if not 1 <= page_size <= MAX_PAGE_SIZE:
                raise WeChatError(40097, f"invalid args: page_size must be within 1..{MAX_PAGE_SIZE}")
            status = _int_field(body, "status")
            if status is not None and status not in KNOWN_STATUSES:
                raise WeChatError(40097, "invalid args: status")
            openid = body.get("openid") or None
            filters_digest = hashlib.sha256(
                json.dumps([created, updated, status, openid]).encode()
            ).hexdigest()[:16]
            next_key = body.get("next_key") or ""
            if not isinstance(next_key, str):
                raise WeChatError(47001, "data format error: next_key must be a string")
            after = codec.decode(next_key, filters_digest) if next_key else -1
        except WeChatError as err:
            return error(err)
        # A lagging cache: the answer to the previous next_key again (with that answer's next_key).
        listing = ServedPages.key([filters_digest, page_size])
        if (replayed := served.replay(listing, next_key, first=not next_key)) is not None:
            return ok(replayed)

        now_ts = world.now_ts()
        predicate = None
        if status is not None or openid is not None:

            def predicate(state: OrderState | None) -> bool:
                if state is None:
                    return False
                if status is not None and renderer.status(state) != status:
                    return False
                return openid is None or renderer.openid(state.index, state.order.customer) == openid

        query = OrderQuery(
            created_min=created[0] if created else None,
            created_max=created[1] if created else None,
            updated_min=updated[0] if updated else None,
            updated_max=updated[1] if updated else None,
            min_index=after + 1,
            predicate=predicate,
        )
        page = list(itertools.islice(world.scan(query, now_ts), page_size + 1))
        has_more = len(page) > page_size
        page = page[:page_size]
        last = page[-1] if page else after
        answer = {
            "order_id_list": [renderer.order_id(index) for index in faults.shuffled(page)],
            "next_key": codec.encode(filters_digest, last),  # from the sorted page, shuffled or not
            "has_more": has_more,
        }
        served.remember(listing, next_key, answer)
        return ok(answer)

    @app.post("/channels/ec/order/get")
    async def get_order(request: Request) -> Response:
        try:
            body = await json_body(request)
            raw_id = body.get("order_id")
            if isinstance(raw_id, bool) or not isinstance(raw_id, str | int):
                raise WeChatError(40097, "invalid args: order_id")
            index = renderer.index_of(str(raw_id))
            state = world.state(index, world.now_ts()) if index is not None else None
            if state is None:
                raise WeChatError(100002, "order not exist")  # [U] code not confirmed
        except WeChatError as err:
            return error(err)
        return ok({"order": renderer.render(state, malformed=faults.order_is_malformed(state.index))})

    @app.post("/channels/ec/aftersale/getaftersaleorder")
    async def get_aftersale_order(request: Request) -> Response:
        try:
            body = await json_body(request)
            raw_id = body.get("after_sale_order_id")
            if isinstance(raw_id, bool) or not isinstance(raw_id, str | int) or raw_id == "":
                raise WeChatError(ERR_INVALID_ARGS, "invalid args, after_sale_order_id")
            key = renderer.aftersale_key(str(raw_id))
            state = world.state(key[0], world.now_ts()) if key is not None else None
            listed = renderer.aftersales(state) if state is not None else []
            found = [a for a in listed if a["after_sale_order_id"] == str(raw_id)]
            if not found:
                raise WeChatError(ERR_AFTERSALE_NOT_FOUND, "aftersale order not exist")
        except WeChatError as err:
            return error(err)
        return ok({"after_sale_order": found[0]})
