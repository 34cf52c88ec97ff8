"""Contract tests of the Youzan sandbox: token, call pattern, envelope, limits and error shapes
(docs/platform-notes.md, Youzan)."""

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
        "refresh": False,
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


def gateway_error(answer: requests.Response) -> tuple[int, str]:
    """(err_code, err_msg) of a gateway refusal, which also carries a trace id."""
    assert answer.status_code == 200
    error = answer.json()["gw_err_resp"]
    assert error["trace_id"].startswith("yz7-")
    return error["err_code"], error["err_msg"]


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
    assert answer["data"]["authority_id"] == str(youzan.SANDBOX_KDT_ID)

    def refusal(**overrides) -> tuple[int, str]:
        body = requests.post(f"{shop.base_url}/auth/token", json=token_request(shop, **overrides)).json()
        assert body["success"] is False and body["data"] is None and "access_token" not in str(body)
        return body["code"], body["message"]

    assert refusal(client_id="test") == (1103, "Client 不存在")  # as a probe of the real endpoint saw
    assert refusal(client_secret="nope") == (1000, "应用信息错误")
    assert refusal(grant_id=1) == (1103, "授权关系不存在")
    assert refusal(authorize_type="authorization_code")[0] == 1105
    form = requests.post(f"{shop.base_url}/auth/token", data=token_request(shop)).json()
    assert form["code"] == 1000 and "not supported" in form["message"]  # JSON only


def own_shop(seed: int):
    """A sandbox of its own, for a test that expires or replaces the shop's token."""
    return run_sandbox("youzan", seed=seed, start=NOW - timedelta(hours=2), clock=Clock.frozen(NOW))


def test_a_token_is_reused_until_refresh_true_replaces_it() -> None:
    """``refresh: false`` hands back the live token, its expiry unchanged; ``refresh: true`` issues a new
    one and the old one is refused from then on ("Token 不存在")."""
    with own_shop(13) as shop:

        def ask(refresh: bool) -> dict:
            body = token_request(shop, refresh=refresh)
            return requests.post(f"{shop.base_url}/auth/token", json=body, timeout=10).json()["data"]

        first, again = ask(False), ask(False)
        assert again == first
        renewed = ask(True)
        assert renewed["access_token"] != first["access_token"] and renewed["expires"] >= first["expires"]
        assert gateway_error(sold_get(shop, first["access_token"], window(1))) == (4203, "Token 不存在")
        assert sold_get(shop, renewed["access_token"], window(1)).json()["success"] is True
        assert ask(False) == renewed


def test_token_only_counts_in_the_query_string(shop, token) -> None:
    illegal = (4201, "非法的请求凭证")
    in_header = sold_get(shop, None, window(2), headers={"Authorization": f"Bearer {token}"})
    assert gateway_error(in_header) == illegal
    assert gateway_error(sold_get(shop, None, {**window(2), "access_token": token})) == illegal
    assert gateway_error(sold_get(shop, "not-a-token", window(2))) == (4203, "Token 不存在")
    assert sold_get(shop, token, window(2)).json()["success"] is True


def test_the_gateway_checks_address_api_and_content_type_before_the_token(shop) -> None:
    params = {"access_token": "FAKE_TOKEN_TEST"}
    base = shop.base_url
    no_version = requests.post(f"{base}/api/youzan.trade.get", params=params, json={}, timeout=10)
    assert gateway_error(no_version) == (4001, "非法请求地址")
    for path in ("/api/youzan.nonexistent.fake.api/1.0.0", "/api/youzan.trade.get/9.9.9"):
        answer = requests.post(f"{base}{path}", params=params, json={}, timeout=10)
        assert gateway_error(answer) == (4005, "非法的API")
    text = requests.post(
        f"{base}/api/youzan.trade.get/4.0.0",
        params=params,
        data="{}",
        headers={"Content-Type": "text/plain"},
        timeout=10,
    )
    assert gateway_error(text) == (4007, "非法的请求姿势，httpMethod:POST, contentType:text/plain")


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
    assert gateway_error(throttled) == (youzan.DEFAULT_THROTTLE_CODE, "请求太频繁")
    assert youzan.DEFAULT_THROTTLE_CODE == 4101  # Youzan's gateway table; never a token code


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


def test_expired_tokens_answer_4202_and_forgotten_ones_4203() -> None:
    with own_shop(17) as shop:
        tok = requests.post(f"{shop.base_url}/auth/token", json=token_request(shop)).json()["data"][
            "access_token"
        ]
        assert sold_get(shop, tok, window(1)).json()["success"] is True
        requests.post(f"{shop.base_url}/_sandbox/youzan/expire_tokens")
        assert gateway_error(sold_get(shop, tok, window(1))) == (4202, "请求凭证过期")
        renewed = requests.post(f"{shop.base_url}/auth/token", json=token_request(shop)).json()["data"]
        assert renewed["access_token"] != tok  # an expired token is replaced even without refresh: true
        requests.post(f"{shop.base_url}/_sandbox/youzan/revoke_tokens")
        assert gateway_error(sold_get(shop, renewed["access_token"], window(1)))[0] == 4203


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
    """``token_expiry_rate`` expires the issued tokens before answering (4202), sparing a token's first
    call; ``credentials_revoked`` (the shop's grant withdrawn): /auth/token answers 1103, every call 4201."""
    with run_sandbox("youzan", seed=7, start=NOW - timedelta(hours=2), clock=Clock.frozen(NOW)) as sb:

        def new_token() -> dict:
            return requests.post(f"{sb.base_url}/auth/token", json=token_request(sb), timeout=10).json()

        sb.faults.update(token_expiry_rate=1.0)
        tok = new_token()["data"]["access_token"]
        assert sold_get(sb, tok, window(1)).json()["success"] is True  # its first call is spared
        assert gateway_error(sold_get(sb, tok, window(1)))[0] == 4202
        sb.faults.update(token_expiry_rate=0.0, credentials_revoked=True)
        refused = new_token()
        assert (refused["code"], refused["message"]) == (1103, "授权关系不存在")
        sb.faults.update(credentials_revoked=False)
        tok = new_token()["data"]["access_token"]
        sb.faults.update(credentials_revoked=True)
        assert gateway_error(sold_get(sb, tok, window(1)))[0] == 4201
        sb.faults.clear()
        assert sold_get(sb, tok, window(1)).json()["success"] is True  # the grant restored, the token works
        stats = requests.get(f"{sb.base_url}/_sandbox/state", timeout=10).json()
    assert stats["requests"]["tokens_issued"] == 2 and stats["requests"]["token_requests"] == 3


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


def test_sold_get_states_its_paging_in_the_chosen_shape(shop, token) -> None:
    body = {**window(24), "page_size": 7}
    total = sold_get(shop, token, body).json()["data"]["total_results"]
    last = -(-total // 7)
    try:
        shop.app.state.list_shape = "paginator"
        data = sold_get(shop, token, {**body, "page_no": 2}).json()["data"]
        assert data["paginator"] == {"page": 2, "page_size": 7, "total_count": total}
        assert "total_results" not in data and len(data["full_order_info_list"]) == 7
        shop.app.state.list_shape = "has_next"
        pages = {n: sold_get(shop, token, {**body, "page_no": n}).json()["data"] for n in (1, last, last + 1)}
    finally:
        shop.app.state.list_shape = "total_results"
    assert pages[1]["paginator"] == {"page": 1, "page_size": 7, "has_next": True}
    assert pages[last]["paginator"]["has_next"] is False and pages[last]["full_order_info_list"]
    assert pages[last + 1]["paginator"]["has_next"] is False and not pages[last + 1]["full_order_info_list"]
    assert all(
        "total_results" not in data and "total_count" not in data["paginator"] for data in pages.values()
    )


def test_the_3_0_0_methods_answer_in_the_3x_envelope_when_asked(shop, token) -> None:
    def call(path: str, body: dict) -> dict:
        return requests.post(
            f"{shop.base_url}/api/{path}", params={"access_token": token}, json=body, timeout=10
        ).json()

    try:
        shop.app.state.legacy_envelope = True
        express = call("youzan.logistics.express.get/3.0.0", {})
        missing = call("youzan.item.get/3.0.0", {"item_id": 1})
        listing = call("youzan.trades.sold.get/4.0.4", window(1))
    finally:
        shop.app.state.legacy_envelope = False
    assert set(express) == {"response"} and express["response"]["allExpress"]
    assert missing == {"error_response": {"code": youzan.ITEM_NOT_FOUND, "msg": "商品不存在或已删除"}}
    assert listing["success"] is True and "data" in listing  # 4.x methods keep their envelope
    assert set(call("youzan.logistics.express.get/3.0.0", {})) >= {"success", "code", "data"}
