"""Shipment pushes that also upload the mini-program shipping info (``wxa/sec/order/upload_shipping_info``),
against the WeChat sandbox over real HTTP.

The upload is the mini program's API: it takes the mini program's own token (its own appid and secret, a
second Airflow connection) and the payer's openid under the mini program's appid, which the mini program's
``wxa/sec/order/get_order`` gives (a Channels order's openid is the shop's). What was recorded is read back
through the sandbox's ``get_order`` with a token from the real token endpoint.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from hub_configs import hub_config

from channelhub.credentials import ChannelCredentials, CredentialsError
from connectors.auth import Secret
from connectors.http import RetryPolicy
from connectors.pushes import ShipmentLine, ShipmentPush
from platforms.wechat_channels.connector import WeChatChannelsConnector, connector_for_channel
from platforms.wechat_channels.mapping import map_order
from sandbox.clock import Clock
from sandbox.server import RunningSandbox, run_sandbox
from sandbox.wechat_channels import (
    SANDBOX_LOGIN,
    SANDBOX_MCHID,
    SANDBOX_MINI_PROGRAM_APPID,
    mini_program_secret,
)

NOW = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
SECRET = "wx-app-secret-5c0ffee5c0ffee5c0ffee"
MP_SECRET = mini_program_secret(SECRET)
FAST = RetryPolicy(
    max_attempts=3,
    malformed_attempts=2,
    rate_limit_attempts=5,
    backoff_initial=0.01,
    backoff_max=0.02,
    backoff_jitter=0.005,
    retry_after_default=0.01,
    retry_after_max=0.01,  # 45011 says "the next minute": the tests do not wait it out
)
UPLOAD = "wxa/sec/order/upload_shipping_info"


class CountingSession(requests.Session):
    """A real session that counts requests per API path."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: dict[str, int] = {}

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:
        path = url.split("://", 1)[-1].split("/", 1)[-1].split("?", 1)[0]
        self.calls[path] = self.calls.get(path, 0) + 1
        return super().request(method, url, *args, **kwargs)


@pytest.fixture
def shop() -> Iterator[RunningSandbox]:
    with run_sandbox(
        "wechat_channels",
        seed=11,
        access_token=SECRET,
        clock=Clock.frozen(NOW),
        start=NOW - timedelta(days=2),
        interval=timedelta(minutes=10),
    ) as running:
        yield running


def connector_for(
    sb: RunningSandbox, session: requests.Session | None = None, *, mini_program: bool = True
) -> WeChatChannelsConnector:
    return WeChatChannelsConnector.from_connection(
        sb.base_url,
        SANDBOX_LOGIN,
        SECRET,
        retry=FAST,
        session=session,
        mini_program=(SANDBOX_MINI_PROGRAM_APPID, MP_SECRET) if mini_program else None,
    )


def find_order(sb: RunningSandbox, status: int = 20, *, min_products: int = 1) -> str:
    renderer = sb.app.state.renderer
    for index in reversed(sb.world.orders_visible()):
        state = sb.world.state(index)
        if (
            state is not None
            and renderer.status(state) == status
            and len(renderer.products(state)) >= min_products
        ):
            return renderer.order_id(index)
    raise AssertionError(f"the world has no order in status {status} with {min_products}+ products")


def shipment(
    connector: WeChatChannelsConnector,
    order_id: str,
    carrier: str,
    tracking: str,
    quantities: dict[str, int] | None = None,
    *,
    shipped_at: datetime = NOW,
) -> ShipmentPush:
    """A push of ``quantities`` per external line id (default: every unit not yet shipped)."""
    order = map_order(connector.get_order(order_id))
    open_units = {
        line.external_line_id: line.quantity - line.shipped_quantity
        for line in order.lines
        if line.quantity > line.shipped_quantity
    }
    wanted = quantities or open_units
    by_id = {line.external_line_id: line for line in order.lines}
    return ShipmentPush(
        external_order_id=order_id,
        shipment_key=tracking,
        carrier=carrier,
        tracking_number=tracking,
        lines=tuple(
            ShipmentLine(line_id, qty, by_id[line_id].channel_product_id, by_id[line_id].channel_variant_id)
            for line_id, qty in wanted.items()
        ),
        shipped_at=shipped_at,
        completes_order=wanted == open_units,
    )


def token_of(sb: RunningSandbox, appid: str, secret: str) -> str:
    return requests.post(
        f"{sb.base_url}/cgi-bin/stable_token",
        json={"grant_type": "client_credential", "appid": appid, "secret": secret},
        timeout=5,
    ).json()["access_token"]


def call(sb: RunningSandbox, path: str, body: Any, *, as_shop: bool = False) -> dict[str, Any]:
    """One raw call of the mini program's API (the shop's with ``as_shop``), with a token from the real
    token endpoint."""
    token = (
        token_of(sb, SANDBOX_LOGIN, SECRET)
        if as_shop
        else token_of(sb, SANDBOX_MINI_PROGRAM_APPID, MP_SECRET)
    )
    kwargs = {"json": body} if isinstance(body, dict) else {"data": body}
    answer = requests.post(f"{sb.base_url}/{path}", params={"access_token": token}, timeout=5, **kwargs)
    assert answer.status_code == 200
    return answer.json()


def payment(sb: RunningSandbox, connector: WeChatChannelsConnector, order_id: str) -> tuple[str, str]:
    """(transaction_id, the payer's openid under the mini program): the Channels order gives the first, and
    its own openid (the shop's) is not the second."""
    raw = connector.get_order(order_id)
    renderer = sb.app.state.renderer
    state = sb.world.state(renderer.index_of(order_id))
    payer = renderer.payer_openid(state.index, state.order.customer)
    assert raw["openid"] != payer
    return raw["order_detail"]["pay_info"]["transaction_id"], payer


def recorded(sb: RunningSandbox, transaction_id: str) -> dict[str, Any]:
    answer = call(sb, "wxa/sec/order/get_order", {"transaction_id": transaction_id})
    assert answer["errcode"] == 0, answer
    return answer["order"]


def uploads(sb: RunningSandbox) -> int:
    return requests.get(f"{sb.base_url}/_sandbox/state", timeout=5).json()["requests"]["shipping_uploads"]


def test_a_full_shipment_records_unified_shipping_info(shop):
    connector = connector_for(shop)
    order_id = find_order(shop, min_products=2)
    raw = connector.get_order(order_id)
    titles = [p["title"] for p in raw["order_detail"]["product_infos"]]
    transaction_id, openid = payment(shop, connector, order_id)
    assert recorded(shop, transaction_id)["order_state"] == 1 and "shipping" not in recorded(
        shop, transaction_id
    )

    result = connector.push_shipment(shipment(connector, order_id, "SF Express", "SF1400000000001"))

    assert result.status == "pushed" and result.extra["shipping_info"] == "uploaded (unified)"
    order = recorded(shop, transaction_id)
    assert order["openid"] == openid and order["merchant_trade_no"] == order_id
    assert order["order_state"] == 2
    shipping = order["shipping"]
    assert (shipping["delivery_mode"], shipping["logistics_type"], shipping["finish_shipping"]) == (
        1,
        1,
        True,
    )
    assert shipping["shipping_list"] == [
        {"tracking_no": "SF1400000000001", "express_company": "SF", "upload_time": int(NOW.timestamp())}
    ]
    assert all(f"{title}*" in shipping["goods_desc"] for title in titles)
    [parcel] = shop.app.state.shipping[shop.app.state.renderer.index_of(order_id)].shipping_list
    assert parcel["contact"]["receiver_contact"].count("*") == 4  # SF needs a (masked) contact


def test_a_retry_uploads_nothing_twice(shop):
    session = CountingSession()
    connector = connector_for(shop, session)
    order_id = find_order(shop)
    push = shipment(connector, order_id, "YTO", "YT7000000000001")

    assert connector.push_shipment(push).status == "pushed"
    retried = connector.push_shipment(push)

    assert retried.status == "already_done" and retried.extra["shipping_info"] == "already uploaded"
    assert session.calls[UPLOAD] == 1 and uploads(shop) == 1
    assert len(recorded(shop, payment(shop, connector, order_id)[0])["shipping"]["shipping_list"]) == 1


def test_with_the_setting_off_nothing_is_uploaded(shop):
    session = CountingSession()
    connector = connector_for(shop, session, mini_program=False)
    order_id = find_order(shop)

    result = connector.push_shipment(shipment(connector, order_id, "ZTO", "ZT7500000000002"))

    assert result.status == "pushed" and "shipping_info" not in result.extra
    assert not any(path.startswith("wxa/") for path in session.calls)
    order = recorded(shop, payment(shop, connector, order_id)[0])
    assert order["order_state"] == 1 and "shipping" not in order


def test_a_refused_upload_is_rejected_with_the_platforms_words(shop):
    connector = connector_for(shop)
    order_id = find_order(shop)
    transaction_id, _ = payment(shop, connector, order_id)
    requests.post(f"{shop.base_url}/_sandbox/wechat", json={"complete_payments": [transaction_id]}, timeout=5)
    push = shipment(connector, order_id, "STO", "77300000000001")

    result = connector.push_shipment(push)

    assert result.status == "rejected" and result.platform_ref == "77300000000001"
    assert "10060004" in result.detail and "支付单处于不可发货的状态" in result.detail
    assert "delivery/send succeeded" in result.detail
    assert len(connector.get_order(order_id)["order_detail"]["delivery_info"]["delivery_product_info"]) == 1
    again = connector.push_shipment(push)  # the next run: the parcel is there, the upload is refused again
    assert (
        again.status == "rejected" and "already on the order" in again.detail and "10060004" in again.detail
    )
    assert uploads(shop) == 0


def test_a_partial_shipment_is_split_then_the_last_one_is_all_delivered(shop):
    connector = connector_for(shop)
    order_id = find_order(shop, min_products=2)
    transaction_id, _ = payment(shop, connector, order_id)
    first = map_order(connector.get_order(order_id)).lines[0]

    partial = connector.push_shipment(
        shipment(connector, order_id, "YUNDA", "4300000000001", {first.external_line_id: first.quantity})
    )
    assert partial.extra["shipping_info"] == "uploaded (split, is_all_delivered=false)"
    middle = recorded(shop, transaction_id)
    assert middle["order_state"] == 1 and middle["shipping"]["delivery_mode"] == 2
    assert middle["shipping"]["finish_shipping"] is False
    assert [e["tracking_no"] for e in middle["shipping"]["shipping_list"]] == ["4300000000001"]

    # the same shipped_at: the upload moves one second past the last one (updates must be later)
    last = connector.push_shipment(shipment(connector, order_id, "JD", "JDVA00000000002"))

    assert (
        last.status == "pushed" and last.extra["shipping_info"] == "uploaded (split, is_all_delivered=true)"
    )
    done = recorded(shop, transaction_id)
    assert done["order_state"] == 2 and done["shipping"]["finish_shipping"] is True
    assert done["shipping"]["shipping_list"] == [
        {"tracking_no": "4300000000001", "express_company": "YUNDA", "upload_time": int(NOW.timestamp())},
        {"tracking_no": "JDVA00000000002", "express_company": "JD", "upload_time": int(NOW.timestamp()) + 1},
    ]


def test_the_setting_needs_the_mini_programs_own_connection(shop):
    channel = hub_config("wx", "wechat_channels").channel("wx")
    # a connection without a host (load_credentials makes its base_url "https://"): the shop's URL is used
    mini = ChannelCredentials("wx_mp", "https://", login=SANDBOX_MINI_PROGRAM_APPID, secret=Secret(MP_SECRET))

    def credentials(**extra: Any) -> ChannelCredentials:
        return ChannelCredentials(
            "wx",
            shop.base_url,
            login=SANDBOX_LOGIN,
            secret=Secret(SECRET),
            extra=extra,
            links={"wx_mp": mini},
        )

    linked = {"mini_program_conn_id": "wx_mp"}
    enabled = connector_for_channel(credentials(mini_program_shipping=True, **linked), channel)
    assert enabled.mini_program is not None and enabled.mini_program.client.origin == shop.base_url
    assert connector_for_channel(
        credentials(mini_program_shipping="true", **linked), channel
    ).mini_program_shipping
    assert not connector_for_channel(credentials(**linked), channel).mini_program_shipping
    assert not connector_for_channel(credentials(mini_program_shipping=False), channel).mini_program_shipping
    with pytest.raises(ValueError, match="mini_program_conn_id") as refused:
        connector_for_channel(credentials(mini_program_shipping=True), channel)  # the shop's appid cannot
    assert SECRET not in str(refused.value)
    keyless = ChannelCredentials("wx_mp", shop.base_url, login=SANDBOX_MINI_PROGRAM_APPID)
    broken = replace(credentials(mini_program_shipping=True, **linked), links={"wx_mp": keyless})
    with pytest.raises(ValueError, match="app secret as password"):
        connector_for_channel(broken, channel)


def test_the_linked_connection_is_read_from_airflow(shop, monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_WX_MP_LINKED",
        json.dumps(
            {
                "conn_type": "http",
                "host": shop.base_url,
                "login": SANDBOX_MINI_PROGRAM_APPID,
                "password": MP_SECRET,
            }
        ),
    )
    credentials = ChannelCredentials(
        "wx",
        shop.base_url,
        login=SANDBOX_LOGIN,
        secret=Secret(SECRET),
        extra={"mini_program_shipping": True, "mini_program_conn_id": "wx_mp_linked"},
    )
    connector = connector_for_channel(credentials, hub_config("wx", "wechat_channels").channel("wx"))
    order_id = find_order(shop)

    result = connector.push_shipment(shipment(connector, order_id, "SF", "SF1400000000901"))

    assert result.status == "pushed" and result.extra["shipping_info"] == "uploaded (unified)"
    missing = replace(credentials, extra={**credentials.extra, "mini_program_conn_id": "wx_mp_nowhere"})
    with pytest.raises(CredentialsError, match="AIRFLOW_CONN_WX_MP_NOWHERE"):
        connector_for_channel(missing, hub_config("wx", "wechat_channels").channel("wx"))


def test_the_upload_runs_under_the_mini_programs_own_token(shop):
    session = CountingSession()
    connector = connector_for(shop, session)
    order_id = find_order(shop)

    assert connector.push_shipment(shipment(connector, order_id, "ZTO", "ZT7500000000009")).status == "pushed"

    assert session.calls["cgi-bin/stable_token"] == 2  # the shop's token and the mini program's
    assert connector.mini_program is not None and connector.mini_program.client.auth.fetch_count == 1
    transaction_id, _ = payment(shop, connector, order_id)
    shop_token = call(shop, "wxa/sec/order/get_order", {"transaction_id": transaction_id}, as_shop=True)
    assert shop_token["errcode"] == 48001  # the shop's token does not open the mini program's API


def test_a_payment_the_mini_program_does_not_know_is_rejected_with_its_words(shop):
    connector = connector_for(shop)
    order_id = find_order(shop)
    transaction_id, _ = payment(shop, connector, order_id)
    requests.post(f"{shop.base_url}/_sandbox/wechat", json={"foreign_payments": [transaction_id]}, timeout=5)

    result = connector.push_shipment(shipment(connector, order_id, "SF", "SF1400000000777"))

    assert result.status == "rejected" and "10060001" in result.detail and "支付单不存在" in result.detail
    assert "delivery/send succeeded" in result.detail and uploads(shop) == 0


def test_the_sandbox_service_follows_the_contract(shop):
    connector = connector_for(shop, mini_program=False)
    order_id = find_order(shop)
    transaction_id, openid = payment(shop, connector, order_id)

    def upload(**changes: Any) -> dict[str, Any]:
        body = {
            "order_key": {"order_number_type": 2, "transaction_id": transaction_id},
            "delivery_mode": 1,
            "logistics_type": 1,
            "shipping_list": [{"tracking_no": "YT1", "express_company": "YTO", "item_desc": "T恤*1"}],
            "upload_time": "2026-11-21T17:00:00.000+08:00",
            "payer": {"openid": openid},
        } | changes
        return call(shop, UPLOAD, body)

    shops_openid = connector.get_order(order_id)["openid"]
    assert upload(payer={"openid": shops_openid})["errcode"] == 10060031  # the shop's openid is not the payer
    two = [{"tracking_no": f"YT{n}", "express_company": "YTO", "item_desc": "T恤*1"} for n in (1, 2)]
    assert upload(shipping_list=two)["errcode"] == 10060014  # UNIFIED takes exactly one entry
    assert upload(delivery_mode=2, shipping_list=two)["errcode"] == 10060014  # SPLIT needs is_all_delivered
    assert upload(delivery_mode=2, is_all_delivered=False, shipping_list=two * 8)["errcode"] == 10060014
    assert upload(logistics_type=5)["errcode"] == 10060014
    assert upload(upload_time="2026-11-21 17:00:00")["errcode"] == 47001  # not RFC 3339
    assert call(shop, UPLOAD, "order_key=1&delivery_mode=1")["errcode"] == 47001  # form data, not JSON
    unknown = upload(order_key={"order_number_type": 2, "transaction_id": "4200000000000000000000000001"})
    assert unknown["errcode"] == 10060001 and "支付单不存在" in unknown["errmsg"]
    sf = [{"tracking_no": "SF1", "express_company": "SF", "item_desc": "T恤*1"}]
    assert upload(shipping_list=sf)["errcode"] == 10060014  # SF needs a contact [U]
    assert uploads(shop) == 0

    by_trade_no = {"order_number_type": 1, "mchid": SANDBOX_MCHID, "out_trade_no": order_id}
    assert upload(order_key=by_trade_no)["errcode"] == 0
    assert upload()["errcode"] == 10060023  # the same upload_time again: not an update
    assert upload(upload_time="2026-11-21T17:05:00+08:00")["errcode"] == 0  # the one re-shipment
    reshipped = upload(upload_time="2026-11-21T17:10:00+08:00")
    assert reshipped["errcode"] == 10060003 and "重新发货" in reshipped["errmsg"]
    shipping = recorded(shop, transaction_id)["shipping"]
    assert shipping["finish_shipping_count"] == 2 and uploads(shop) == 2
