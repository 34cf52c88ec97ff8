"""Contract tests of the WeChat Channels shop sandbox over real HTTP: it enforces the platform's limits and
answers with its error shapes (HTTP 200 + errcode), tokens included."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from sandbox.clock import Clock
from sandbox.server import RunningSandbox, run_sandbox
from sandbox.wechat_channels import SANDBOX_LOGIN, SANDBOX_MINI_PROGRAM_APPID, mini_program_secret

NOW = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
SECRET = "wx-app-secret-0123456789abcdef"
WINDOW = {"start_time": int((NOW - timedelta(hours=8)).timestamp()), "end_time": int(NOW.timestamp())}


@pytest.fixture
def shop() -> Iterator[RunningSandbox]:
    with run_sandbox(
        "wechat_channels",
        seed=11,
        access_token=SECRET,
        start=NOW - timedelta(days=2),
        interval=timedelta(minutes=10),
        clock=Clock.frozen(NOW),
    ) as running:
        yield running


def token_answer(sb: RunningSandbox, **overrides: str) -> requests.Response:
    params = {"grant_type": "client_credential", "appid": SANDBOX_LOGIN, "secret": SECRET, **overrides}
    return requests.get(f"{sb.base_url}/cgi-bin/token", params=params, timeout=5)


def token(sb: RunningSandbox) -> str:
    return token_answer(sb).json()["access_token"]


def call(
    sb: RunningSandbox, path: str, body: Any, access_token: str | None, **kwargs: Any
) -> requests.Response:
    params = {} if access_token is None else {"access_token": access_token}
    return requests.post(f"{sb.base_url}{path}", params=params, json=body, timeout=5, **kwargs)


def listing(sb: RunningSandbox, tok: str, body: dict[str, Any]) -> dict[str, Any]:
    answer = call(sb, "/channels/ec/order/list/get", body, tok)
    assert answer.status_code == 200
    return answer.json()


def admin(sb: RunningSandbox, path: str, body: dict[str, Any]) -> dict[str, Any]:
    answer = requests.post(f"{sb.base_url}{path}", json=body, timeout=5)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_token_endpoint_issues_7200_second_tokens_and_refuses_bad_credentials(shop):
    good = token_answer(shop).json()
    assert set(good) == {"access_token", "expires_in"} and good["expires_in"] == 7200
    for overrides, code in (
        ({"appid": "wx0000000000000000"}, 40013),
        ({"secret": "wrong-secret"}, 40125),
        ({"grant_type": "authorization_code"}, 40002),
    ):
        answer = token_answer(shop, **overrides)
        assert answer.status_code == 200
        assert answer.json()["errcode"] == code and " rid: " in answer.json()["errmsg"]


def test_business_calls_need_a_live_token(shop):
    assert (
        call(shop, "/channels/ec/order/list/get", {"update_time_range": WINDOW}, None).json()["errcode"]
        == 41001
    )
    assert (
        call(shop, "/channels/ec/order/list/get", {"update_time_range": WINDOW}, "80_x").json()["errcode"]
        == 40001
    )

    admin(shop, "/_sandbox/wechat", {"token_lifetime_seconds": 60})
    short_lived = token(shop)
    assert listing(shop, short_lived, {"update_time_range": WINDOW})["errcode"] == 0
    shop.clock.advance(timedelta(seconds=61))
    try:
        assert listing(shop, short_lived, {"update_time_range": WINDOW})["errcode"] == 42001
    finally:
        shop.clock.set(NOW)

    first = token(shop)
    second = token(shop)  # a refresh: the previous token stays usable for a few minutes, as on WeChat
    assert listing(shop, first, {"update_time_range": WINDOW})["errcode"] == 0
    admin(shop, "/_sandbox/wechat", {"expire_tokens": True})
    assert listing(shop, second, {"update_time_range": WINDOW})["errcode"] == 42001


def test_list_enforces_the_7_day_span_page_size_and_body_rules(shop):
    tok = token(shop)
    week = 7 * 86400
    end = WINDOW["end_time"]
    assert (
        listing(shop, tok, {"update_time_range": {"start_time": end - week, "end_time": end}})["errcode"] == 0
    )
    too_long = listing(shop, tok, {"update_time_range": {"start_time": end - week - 1, "end_time": end}})
    assert too_long["errcode"] == 40097 and "7 days" in too_long["errmsg"]
    assert listing(shop, tok, {"update_time_range": WINDOW, "page_size": 101})["errcode"] == 40097
    assert listing(shop, tok, {"update_time_range": WINDOW, "page_size": 100})["errcode"] == 0
    assert listing(shop, tok, {"status": 20})["errcode"] == 40097  # a time range is required
    reversed_range = {"start_time": WINDOW["end_time"], "end_time": WINDOW["start_time"]}
    assert listing(shop, tok, {"update_time_range": reversed_range})["errcode"] == 40097
    empty = requests.post(
        f"{shop.base_url}/channels/ec/order/list/get", params={"access_token": tok}, timeout=5
    )
    assert empty.json()["errcode"] == 44002
    not_json = requests.post(
        f"{shop.base_url}/channels/ec/order/list/get", params={"access_token": tok}, data=b"{oops", timeout=5
    )
    assert not_json.json()["errcode"] == 47001


def test_list_pages_19_digit_string_ids_with_next_key_and_has_more(shop):
    tok = token(shop)
    expected = {
        shop.app.state.renderer.order_id(s.index)
        for s in shop.world.updated_between(NOW - timedelta(hours=8), NOW)
    }
    body = {"update_time_range": WINDOW, "page_size": 7, "next_key": ""}
    got: list[str] = []
    pages = 0
    while True:
        answer = listing(shop, tok, body)
        assert answer["errcode"] == 0 and len(answer["order_id_list"]) <= 7
        got += answer["order_id_list"]
        pages += 1
        if not answer["has_more"]:
            break
        body = {**body, "next_key": answer["next_key"]}
    assert len(expected) > 14 and pages == -(-len(expected) // 7)
    assert len(got) == len(set(got)) and set(got) == expected
    assert all(isinstance(i, str) and len(i) == 19 and i.isdigit() for i in got)
    assert "order_detail" not in str(answer)  # ids only


def test_next_key_is_opaque_and_bound_to_its_query(shop):
    tok = token(shop)
    first = listing(shop, tok, {"update_time_range": WINDOW, "page_size": 3})
    key = first["next_key"]
    forged = base64.urlsafe_b64encode(b"0000000000000000:0:deadbeefdeadbeef").decode()
    assert (
        listing(shop, tok, {"update_time_range": WINDOW, "page_size": 3, "next_key": forged})["errcode"]
        == 40097
    )
    other_query = {"update_time_range": {**WINDOW, "start_time": WINDOW["start_time"] + 1}, "next_key": key}
    assert listing(shop, tok, other_query)["errcode"] == 40097
    second = listing(shop, tok, {"update_time_range": WINDOW, "page_size": 3, "next_key": key})
    assert second["errcode"] == 0 and not set(second["order_id_list"]) & set(first["order_id_list"])


def test_order_get_renders_fen_epoch_seconds_and_status_codes(shop):
    tok = token(shop)
    renderer = shop.app.state.renderer
    statuses = set()
    for state in shop.world.updated_between(NOW - timedelta(days=2), NOW):
        answer = call(
            shop, "/channels/ec/order/get", {"order_id": renderer.order_id(state.index)}, tok
        ).json()
        assert answer["errcode"] == 0
        order = answer["order"]
        statuses.add(order["status"])
        assert order["order_id"] == renderer.order_id(state.index)
        assert order["update_time"] == state.updated_ts and isinstance(order["create_time"], int)
        price = order["order_detail"]["price_info"]
        assert all(isinstance(price[k], int) for k in ("product_price", "order_price", "freight"))
        assert price["order_price"] == price["product_price"] - price["discounted_price"] + price["freight"]
        assert price["order_price"] == int((state.order.subtotal + state.order.shipping.price) * 100)
        for product in order["order_detail"]["product_infos"]:
            assert isinstance(product["product_id"], str) and isinstance(product["sale_price"], int)
        if len(statuses) >= 6:
            break
    assert statuses >= {10, 20, 30, 100} and statuses <= {10, 20, 21, 30, 100, 200, 250}
    missing = call(shop, "/channels/ec/order/get", {"order_id": "3704000000000000001"}, tok).json()
    assert missing["errcode"] != 0 and "order" not in missing


def test_quota_frequency_and_busy_faults_answer_with_errcodes(shop):
    tok = token(shop)
    body = {"update_time_range": WINDOW}
    shop.faults.update(rate_limit_storm=1.0)
    try:
        assert listing(shop, tok, body)["errcode"] == 45011
    finally:
        shop.faults.clear()
    shop.faults.update(server_error_rate=1.0)
    try:
        seen = set()
        for _ in range(12):
            answer = call(shop, "/channels/ec/order/list/get", body, tok)
            seen.add(answer.json()["errcode"] if answer.status_code == 200 else answer.status_code)
    finally:
        shop.faults.clear()
    assert -1 in seen and seen & {502, 503}
    admin(shop, "/_sandbox/wechat", {"daily_quota": 2, "reset_quota": True})
    assert [listing(shop, tok, body)["errcode"] for _ in range(3)] == [0, 0, 45009]
    state = requests.get(f"{shop.base_url}/_sandbox/state", timeout=5).json()
    assert state["requests"]["quota_refused"] == 1 and state["wechat"]["daily_quota"] == 2


def test_token_expiry_and_revoked_credentials_fault_knobs(shop):
    """``token_expiry_rate`` expires issued tokens before answering (42001, or 40001 "not latest"), sparing a
    token's first call; ``credentials_revoked`` is an app secret reset: cgi-bin/token 40125, calls 40001."""
    shop.faults.update(token_expiry_rate=1.0, seed=5)
    codes = []
    for _ in range(8):
        fresh = token(shop)
        codes.append(listing(shop, fresh, {"update_time_range": WINDOW})["errcode"])  # a first call: spared
        codes.append(listing(shop, fresh, {"update_time_range": WINDOW})["errcode"])
    assert codes[0::2] == [0] * 8 and set(codes[1::2]) == {42001, 40001}
    shop.faults.update(token_expiry_rate=0.0, credentials_revoked=True)
    assert token_answer(shop).json()["errcode"] == 40125
    shop.faults.update(credentials_revoked=False)
    live = token(shop)
    shop.faults.update(credentials_revoked=True)
    assert listing(shop, live, {"update_time_range": WINDOW})["errcode"] == 40001
    shop.faults.clear()
    assert listing(shop, token(shop), {"update_time_range": WINDOW})["errcode"] == 0


def test_a_duplicated_page_is_the_previous_next_keys_answer(shop):
    tok = token(shop)
    body = {"update_time_range": WINDOW, "page_size": 5}
    first = listing(shop, tok, body)
    shop.faults.update(duplicate_page_rate=1.0)
    assert listing(shop, tok, body)["order_id_list"] == first["order_id_list"]  # a first page comes as asked
    again = listing(shop, tok, {**body, "next_key": first["next_key"]})
    assert again == first  # the same ids and the same next_key: the cursor just sent
    shop.faults.clear()
    second = listing(shop, tok, {**body, "next_key": first["next_key"]})
    assert not set(second["order_id_list"]) & set(first["order_id_list"])


# -- stable tokens, apps, after-sales, carriers and parcel changes -----------------------------------------


def stable(sb: RunningSandbox, *, appid: str = SANDBOX_LOGIN, secret: str = SECRET, **body: Any) -> dict:
    answer = requests.post(
        f"{sb.base_url}/cgi-bin/stable_token",
        json={"grant_type": "client_credential", "appid": appid, "secret": secret, **body},
        timeout=5,
    )
    assert answer.status_code == 200
    return answer.json()


def wechat_state(sb: RunningSandbox) -> dict[str, Any]:
    return requests.get(f"{sb.base_url}/_sandbox/state", timeout=5).json()["wechat"]


def test_stable_token_hands_out_the_token_in_force_and_force_refresh_replaces_it(shop):
    first = stable(shop)
    assert first["expires_in"] == 7200
    shop.clock.advance(timedelta(seconds=100))
    try:
        again = stable(shop, force_refresh=False)
        assert again == {"access_token": first["access_token"], "expires_in": 7100}  # normal mode: the same
        classic = token(shop)  # cgi-bin/token is isolated: it revokes none of the stable tokens
        assert listing(shop, first["access_token"], {"update_time_range": WINDOW})["errcode"] == 0
        assert token(shop) != classic  # ... while each call of it replaces its own
        shop.clock.advance(
            timedelta(seconds=6800)
        )  # 300 s left: normal mode renews ahead, the old one lives on
        renewed = stable(shop)
        assert renewed["access_token"] != first["access_token"] and renewed["expires_in"] == 7200
        assert listing(shop, first["access_token"], {"update_time_range": WINDOW})["errcode"] == 0
        shop.clock.advance(timedelta(seconds=300))
        assert listing(shop, first["access_token"], {"update_time_range": WINDOW})["errcode"] == 42001

        forced = stable(shop, force_refresh=True)  # the previous token is invalid at once
        assert forced["access_token"] != renewed["access_token"]
        assert listing(shop, renewed["access_token"], {"update_time_range": WINDOW})["errcode"] == 40001
        assert stable(shop, force_refresh=True) == {**forced, "expires_in": 7200}  # within 30 s: no refresh
        for _ in range(19):  # 20 forced refreshes a day
            shop.clock.advance(timedelta(seconds=31))
            assert stable(shop, force_refresh=True)["access_token"]
        shop.clock.advance(timedelta(seconds=31))
        assert stable(shop, force_refresh=True)["errcode"] == 45009
        assert wechat_state(shop)["force_refreshes"] == 20
    finally:
        shop.clock.set(NOW)
    assert stable(shop, secret="wrong")["errcode"] == 40125
    assert stable(shop, force_refresh="yes")["errcode"] == 47001
    assert requests.get(f"{shop.base_url}/cgi-bin/stable_token", timeout=5).status_code == 405  # POST only


def test_each_app_has_its_own_tokens_and_the_rid_carries_the_platforms_time(shop):
    mini = stable(shop, appid=SANDBOX_MINI_PROGRAM_APPID, secret=mini_program_secret(SECRET))["access_token"]
    shops = stable(shop)["access_token"]
    assert mini != shops
    wrong_app = listing(shop, mini, {"update_time_range": WINDOW})
    assert wrong_app["errcode"] == 48001
    assert wrong_app["errmsg"].endswith(f"rid: {int(NOW.timestamp()):08x}" + wrong_app["errmsg"][-18:])
    answer = call(shop, "/wxa/sec/order/get_order", {"transaction_id": "4200000000000000000000000001"}, shops)
    assert answer.json()["errcode"] == 48001


def test_after_sale_orders_carry_the_exact_refunds(shop):
    tok = stable(shop)["access_token"]
    renderer = shop.app.state.renderer
    kinds = set()
    for state in shop.world.updated_between(NOW - timedelta(days=2), NOW):
        order = call(shop, "/channels/ec/order/get", {"order_id": renderer.order_id(state.index)}, tok).json()
        listed = order["order"]["aftersale_detail"]["aftersale_order_list"]
        found = [
            call(
                shop,
                "/channels/ec/aftersale/getaftersaleorder",
                {"after_sale_order_id": e["aftersale_order_id"]},
                tok,
            ).json()["after_sale_order"]
            for e in listed
        ]
        for entry, aftersale in zip(listed, found, strict=True):
            kinds.add((aftersale["type"], aftersale["status"]))
            assert {aftersale["type"], aftersale["status"], entry["status"]} in (
                {"REFUND", "MERCHANT_REFUND_SUCCESS", 13},
                {"RETURN", "MERCHANT_RETURN_SUCCESS", 14},
            )
            assert (
                aftersale["order_id"] == order["order"]["order_id"] and aftersale["product_info"]["count"] > 0
            )
        if order["order"]["status"] == 200:  # cancelled after payment: every fen back, freight included
            paid = order["order"]["order_detail"]["price_info"]["order_price"]
            assert sum(a["refund_info"]["amount"] for a in found) == paid and len(found) == len(
                order["order"]["order_detail"]["product_infos"]
            )
    assert kinds == {("REFUND", "MERCHANT_REFUND_SUCCESS"), ("RETURN", "MERCHANT_RETURN_SUCCESS")}
    missing = call(
        shop, "/channels/ec/aftersale/getaftersaleorder", {"after_sale_order_id": "1934000000000001"}, tok
    )
    assert missing.json()["errcode"] == 100002


def test_the_company_list_is_the_official_table(shop):
    tok = stable(shop)["access_token"]
    new = call(shop, "/channels/ec/order/deliverycompanylist/new/get", {"ewaybill_only": False}, tok).json()
    codes = {c["delivery_id"]: c["delivery_name"] for c in new["company_list"]}
    assert {"SF", "YTO", "ZTO", "STO", "YUNDA", "JTSD", "EMS", "JD", "DBKD"} <= set(codes)
    assert codes["YUNDA"] == "韵达" and codes["EMS"] == "中国邮政" and not {"YD", "YZPY"} & set(codes)
    assert (
        call(shop, "/channels/ec/order/deliverycompanylist/new/get", {"x": 1}, tok).json()["errcode"] == 40097
    )
    old = call(shop, "/channels/ec/order/deliverycompanylist/get", {}, tok).json()
    assert old["company_list"] == new["company_list"]


def test_deliveryinfo_update_changes_parcels_within_the_documented_limits(shop):
    tok = stable(shop)["access_token"]
    renderer = shop.app.state.renderer

    def order_in(status: int, parcels: int) -> dict[str, Any]:
        for index in reversed(shop.world.orders_visible()):
            state = shop.world.state(index)
            if state is not None and renderer.status(state) == status and len(state.fulfillments) == parcels:
                return renderer.render(state)
        raise AssertionError(f"no order in status {status} with {parcels} parcels")

    def update(order: dict[str, Any], **body: Any) -> int:
        answer = call(
            shop, "/channels/ec/order/deliveryinfo/update", {"order_id": order["order_id"], **body}, tok
        )
        return answer.json()["errcode"]

    def change(parcel: dict[str, Any], **new: Any) -> dict[str, Any]:
        was = {k: parcel[k] for k in ("delivery_id", "waybill_id", "product_infos")}
        return {"old": was, "new": {**was, **new}}

    done = order_in(100, 1)
    [parcel] = done["order_detail"]["delivery_info"]["delivery_product_info"]
    assert update(done, change_infos=[change(parcel, waybill_id="X1")]) == 101100  # completed: no change [U]

    split = order_in(30, 2)
    first, second = split["order_detail"]["delivery_info"]["delivery_product_info"]
    whole = {**second, "deliver_type": 1, "waybill_id": "X2"}
    assert update(split, delivery_list=[whole]) == 606040  # the whole-order form: not for split parcels
    assert update(split, change_infos=[change(second, delivery_id="YD")]) == 606004
    assert update(split, change_infos=[change(second, waybill_id=" ")]) == 606005
    fewer = change(second, waybill_id="X3")
    fewer["new"]["product_infos"] = [{**second["product_infos"][0], "product_cnt": 99}]
    assert update(split, change_infos=[fewer]) == 606042
    stranger = change(second, waybill_id="X4")
    stranger["old"]["waybill_id"] = "NOT-ON-THE-ORDER"
    assert update(split, change_infos=[stranger]) == 40097
    assert update(split, change_infos=[change(second, delivery_id="EMS", waybill_id="EA100000001CN")]) == 0
    shown = call(shop, "/channels/ec/order/get", {"order_id": split["order_id"]}, tok).json()["order"]
    assert [
        (p["delivery_id"], p["waybill_id"])
        for p in shown["order_detail"]["delivery_info"]["delivery_product_info"]
    ] == [
        (first["delivery_id"], first["waybill_id"]),
        ("EMS", "EA100000001CN"),
    ]
    assert shown["update_time"] > split["update_time"]  # the next incremental pull sees the change
    assert len(shop.app.state.delivery_updates) == 1
