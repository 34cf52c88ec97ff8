"""Contract tests of the Youzan sandbox: token, call pattern, envelope, limits and error shapes (§4)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import requests

from sandbox import youzan
from sandbox.clock import Clock
from sandbox.server import run_sandbox

NOW = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
SOLD_GET = "/api/youzan.trades.sold.get/4.0.4"


@pytest.fixture(scope="module")
def shop():
    with run_sandbox(
        "youzan", seed=11, start=NOW - timedelta(days=2), interval=300, clock=Clock.frozen(NOW)
    ) as sb:
        yield sb


def token_request(shop, **overrides) -> dict:
    body = {
        "client_id": youzan.SANDBOX_LOGIN,
        "client_secret": shop.access_token,
        "authorize_type": "silent",
        "grant_id": youzan.SANDBOX_KDT_ID,
        "refresh": True,
    }
    return {**body, **overrides}


@pytest.fixture(scope="module")
def token(shop) -> str:
    return requests.post(f"{shop.base_url}/auth/token", json=token_request(shop)).json()["data"][
        "access_token"
    ]


def sold_get(shop, token: str | None, body: dict, **kwargs) -> requests.Response:
    params = {"access_token": token} if token else None
    return requests.post(f"{shop.base_url}{SOLD_GET}", params=params, json=body, timeout=10, **kwargs)


def window(hours_back: float, hours_end: float = 0) -> dict:
    fmt = "%Y-%m-%d %H:%M:%S"
    china = youzan.CHINA
    return {
        "start_update": (NOW - timedelta(hours=hours_back)).astimezone(china).strftime(fmt),
        "end_update": (NOW - timedelta(hours=hours_end)).astimezone(china).strftime(fmt),
    }


def test_token_endpoint_issues_an_epoch_ms_expiry_and_refuses_bad_credentials(shop) -> None:
    answer = requests.post(f"{shop.base_url}/auth/token", json=token_request(shop)).json()
    assert answer["success"] is True and answer["code"] == 200
    expires = answer["data"]["expires"]
    assert expires > 1_000_000_000_000  # milliseconds
    assert abs(expires / 1000 - (datetime.now(UTC) + timedelta(days=7)).timestamp()) < 60
    wrong = requests.post(
        f"{shop.base_url}/auth/token", json=token_request(shop, client_secret="nope")
    ).json()
    assert wrong["success"] is False and "access_token" not in str(wrong)
    other_shop = requests.post(f"{shop.base_url}/auth/token", json=token_request(shop, grant_id=1)).json()
    assert other_shop["success"] is False


def test_token_only_counts_in_the_query_string(shop, token) -> None:
    illegal = {"gw_err_resp": {"err_msg": "非法的请求凭证", "err_code": 4201}}
    in_header = sold_get(shop, None, window(2), headers={"Authorization": f"Bearer {token}"})
    assert in_header.status_code == 200 and in_header.json() == illegal
    assert sold_get(shop, None, {**window(2), "access_token": token}).json() == illegal
    assert sold_get(shop, "not-a-token", window(2)).json() == illegal
    assert sold_get(shop, token, window(2)).json()["success"] is True


def test_envelope_window_and_paging(shop, token) -> None:
    body = {**window(24), "page_size": 7}
    first = sold_get(shop, token, body).json()
    assert set(first) == {"success", "code", "message", "data", "trace_id"}
    assert first["code"] == 200 and first["trace_id"].startswith("yz7-")
    expected = {
        shop.app.state.renderer.tid(s.index)
        for s in shop.world.updated_between(NOW - timedelta(hours=24), NOW)
    }
    total = first["data"]["total_results"]
    assert total == len(expected) > 7
    seen = []
    for page in range(1, -(-total // 7) + 1):
        items = sold_get(shop, token, {**body, "page_no": page}).json()["data"]["full_order_info_list"]
        seen += [i["full_order_info"]["order_info"]["tid"] for i in items]
    assert len(seen) == len(set(seen)) and set(seen) == expected
    updates = [
        i["full_order_info"]["order_info"]["update_time"] for i in first["data"]["full_order_info_list"]
    ]
    assert updates == sorted(updates, reverse=True)  # newest update first
    default = sold_get(shop, token, window(24)).json()["data"]["full_order_info_list"]
    assert len(default) == 20  # page_size defaults to 20


def test_times_are_beijing_wall_time_and_money_yuan_strings(shop, token) -> None:
    item = sold_get(shop, token, window(24)).json()["data"]["full_order_info_list"][0]
    info = item["full_order_info"]
    tid = info["order_info"]["tid"]
    state = shop.world.state(shop.app.state.renderer.index_of(tid), NOW)
    created = datetime.fromtimestamp(state.order.created_ts, youzan.CHINA).strftime("%Y-%m-%d %H:%M:%S")
    assert info["order_info"]["created"] == created and tid[1:15] == created.replace("-", "").replace(
        " ", ""
    ).replace(":", "")
    assert isinstance(info["pay_info"]["payment"], str) and isinstance(info["pay_info"]["deduction_pay"], int)
    assert all(isinstance(o["oid"], str) and isinstance(o["num"], int) for o in info["orders"])


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        ({"page_size": 101}, 5000, "每页最多显示100条数据"),
        ({"page_no": 101}, 5000, "100"),
        (
            {"start_update": "2026-11-21 10:00:00", "end_update": "2026-11-20 10:00:00"},
            5000,
            "开始时间不能大于结束时间",
        ),
        ({"start_update": "2026-07-01 00:00:00", "end_update": "2026-10-02 00:00:00"}, 5000, "3个月"),
        ({"start_update": "2026-11-21T10:00:00Z", "end_update": "2026-11-21 11:00:00"}, 5000, "格式"),
    ],
)
def test_business_errors_are_http_200_with_success_false_and_an_empty_list(
    shop, token, body, code, message
) -> None:
    answer = sold_get(shop, token, {**window(2), **body})
    assert answer.status_code == 200
    payload = answer.json()
    assert payload["success"] is False and payload["code"] == code and message in payload["message"]
    assert payload["data"]["full_order_info_list"] == []  # a client trusting the list alone is fooled


def test_an_incomplete_time_pair_is_ignored(shop, token) -> None:
    only_start = sold_get(shop, token, {"start_update": "2026-11-21 16:00:00"}).json()
    assert only_start["success"] is True
    assert (
        only_start["data"]["total_results"] > sold_get(shop, token, window(1)).json()["data"]["total_results"]
    )


def test_trade_get_has_the_list_item_shape(shop, token) -> None:
    item = sold_get(shop, token, window(24)).json()["data"]["full_order_info_list"][0]
    tid = item["full_order_info"]["order_info"]["tid"]
    answer = requests.post(
        f"{shop.base_url}/api/youzan.trade.get/4.0.0", params={"access_token": token}, json={"tid": tid}
    ).json()
    assert answer["success"] is True and answer["data"] == item
    missing = requests.post(
        f"{shop.base_url}/api/youzan.trade.get/4.0.0", params={"access_token": token}, json={"tid": "E1"}
    ).json()
    assert missing["success"] is False and missing["code"] == 106100110


def test_throttling_is_a_configurable_gateway_code_with_http_200() -> None:
    with run_sandbox("youzan", seed=3, start=NOW - timedelta(hours=2), clock=Clock.frozen(NOW)) as sb:
        tok = requests.post(f"{sb.base_url}/auth/token", json=token_request(sb)).json()["data"][
            "access_token"
        ]
        sb.faults.update(rate_limit_storm=1.0)
        throttled = sold_get(sb, tok, window(1))
        sb.faults.clear()
    assert throttled.status_code == 200
    assert throttled.json()["gw_err_resp"]["err_code"] == youzan.DEFAULT_THROTTLE_CODE


def test_qps_limit_throttles_a_burst_with_the_chosen_code() -> None:
    with run_sandbox("youzan", seed=5, start=NOW - timedelta(hours=1), clock=Clock.frozen(NOW)) as sb:
        sb.app.state.limiter.limit = 3
        sb.app.state.throttle_code = 7001
        tok = requests.post(f"{sb.base_url}/auth/token", json=token_request(sb)).json()["data"][
            "access_token"
        ]
        answers = [sold_get(sb, tok, window(1)).json() for _ in range(6)]
    codes = [a.get("gw_err_resp", {}).get("err_code") for a in answers]
    assert codes[0] is None and 7001 in codes  # a burst over 3 per second is refused with the chosen code


def test_expired_tokens_answer_4201(shop) -> None:
    tok = requests.post(f"{shop.base_url}/auth/token", json=token_request(shop)).json()["data"][
        "access_token"
    ]
    assert sold_get(shop, tok, window(1)).json()["success"] is True
    requests.post(f"{shop.base_url}/_sandbox/youzan/expire_tokens")
    assert sold_get(shop, tok, window(1)).json()["gw_err_resp"]["err_code"] == 4201


def test_refunds_and_deliveries_are_rendered_per_sub_order(shop) -> None:
    token = requests.post(f"{shop.base_url}/auth/token", json=token_request(shop)).json()["data"][
        "access_token"
    ]
    items = sold_get(shop, token, {**window(48), "page_size": 100}).json()["data"]["full_order_info_list"]
    with_refund = [i for i in items if i["refund_order"]]
    with_delivery = [i for i in items if i["delivery_order"]]
    assert with_refund and with_delivery
    for item in with_refund + with_delivery:
        oids = {o["oid"] for o in item["full_order_info"]["orders"]}
        for entry in item["refund_order"] + item["delivery_order"]:
            assert {o["oid"] for o in entry["oids"]} <= oids
    for item in with_delivery:
        for delivery in item["delivery_order"]:
            assert delivery["express_state"] == 1 and delivery["dists"][0]["express_info"]["express_no"]


def test_token_expiry_and_revoked_credentials_fault_knobs() -> None:
    """``token_expiry_rate`` expires the issued tokens before answering (4201), sparing a token's first call;
    ``credentials_revoked``: /auth/token refuses the client (4001) and every call is 4201."""
    with run_sandbox("youzan", seed=7, start=NOW - timedelta(hours=2), clock=Clock.frozen(NOW)) as sb:

        def new_token() -> dict:
            return requests.post(f"{sb.base_url}/auth/token", json=token_request(sb), timeout=10).json()

        sb.faults.update(token_expiry_rate=1.0)
        tok = new_token()["data"]["access_token"]
        assert sold_get(sb, tok, window(1)).json()["success"] is True  # its first call is spared
        assert sold_get(sb, tok, window(1)).json()["gw_err_resp"]["err_code"] == 4201
        sb.faults.update(token_expiry_rate=0.0, credentials_revoked=True)
        assert new_token()["code"] == 4001
        sb.faults.update(credentials_revoked=False)
        tok = new_token()["data"]["access_token"]
        sb.faults.update(credentials_revoked=True)
        assert sold_get(sb, tok, window(1)).json()["gw_err_resp"]["err_code"] == 4201
        sb.faults.clear()
        assert sold_get(sb, new_token()["data"]["access_token"], window(1)).json()["success"] is True


def test_a_duplicated_page_is_the_previous_pages_content_for_the_next_page_no(shop) -> None:
    token = requests.post(f"{shop.base_url}/auth/token", json=token_request(shop)).json()["data"][
        "access_token"
    ]
    body = {**window(24), "page_size": 5}
    first = sold_get(shop, token, {**body, "page_no": 1}).json()["data"]
    shop.faults.update(duplicate_page_rate=1.0)
    try:
        assert sold_get(shop, token, {**body, "page_no": 2}).json()["data"] == first
        shop.faults.update(duplicate_page_rate=0.0, shuffle_page_rate=1.0)
        shuffled = sold_get(shop, token, {**body, "page_no": 1}).json()["data"]
    finally:
        shop.faults.clear()
    second = sold_get(shop, token, {**body, "page_no": 2}).json()["data"]
    assert second != first and second["total_results"] == first["total_results"]

    def tids(data: dict) -> list[str]:
        return [i["full_order_info"]["order_info"]["tid"] for i in data["full_order_info_list"]]

    assert tids(shuffled) != tids(first) and sorted(tids(shuffled)) == sorted(tids(first))
