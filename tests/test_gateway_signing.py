"""connectors.gateway: the marketplaces' signature against the published example; what goes on the wire."""

from __future__ import annotations

import json

from connectors.auth import Secret
from connectors.gateway import SignedGatewayAuth, sign
from connectors.http import Request

# Taobao's "API调用方法详解" example (md5): app secret helloworld; its published sign.
TOP_EXAMPLE = {
    "method": "taobao.item.seller.get",
    "app_key": "12345678",
    "session": "test",
    "timestamp": "2016-01-01 12:00:00",
    "format": "json",
    "v": "2.0",
    "sign_method": "md5",
    "fields": "num_iid,title,nick,price,num",
    "num_iid": "11223344",
}


def test_the_published_taobao_example_signs_as_documented() -> None:
    assert sign(TOP_EXAMPLE, "helloworld", "md5") == "66987CB115214E59E6EC978214934FB8"
    assert sign({**TOP_EXAMPLE, "empty": ""}, "helloworld", "md5") == "66987CB115214E59E6EC978214934FB8"


def test_business_parameters_travel_as_one_sorted_json_text_and_are_signed_with_it() -> None:
    auth = SignedGatewayAuth(
        app_key_param="app_key",
        token_param="access_token",
        algorithm="hmac-sha256",
        json_param="param_json",
        signed_params=frozenset({"app_key", "method", "param_json", "timestamp", "v"}),
        static_params={"v": "2"},
        uppercase=False,
        timestamp=lambda: "1700000000",
    ).bind({"app_key": "ak", "app_secret": Secret("s3cret"), "access_token": Secret("tok")})
    request = Request(
        "POST", "/order/searchList", params={"method": "order.searchList", "size": 10, "page": 0}
    )
    auth.apply(request)
    params = request.params
    assert json.loads(params["param_json"]) == {"page": 0, "size": 10}
    assert params["param_json"] == '{"page":0,"size":10}'
    assert params["access_token"] == "tok" and params["sign_method"] == "hmac-sha256"
    expected = sign(
        {k: params[k] for k in ("app_key", "method", "param_json", "timestamp", "v")},
        "s3cret",
        "hmac-sha256",
        uppercase=False,
    )
    assert params["sign"] == expected
    assert "s3cret" not in json.dumps(params) and "s3cret" in auth.secret_values()
