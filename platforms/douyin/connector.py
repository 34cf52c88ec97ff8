"""Douyin shop 抖店 open platform as a declaration, plus the hooks it needs (a token from ``token.create``,
de-duplication by order id). Every fact and its source: ``NOTES.md``.

- One host, one path per API (``/order/searchList`` for ``order.searchList``); system parameters ``app_key``,
  ``method``, ``access_token``, ``timestamp`` (epoch seconds, as the official SDK sends), ``v=2``,
  ``sign_method=hmac-sha256`` and ``sign``; the business parameters travel as one ``param_json`` text, keys
  sorted, no spaces. ``sign`` = lower-hex HMAC-SHA256(key=secret, secret + "app_key..method..param_json..
  timestamp..v.." + secret): ``connectors.gateway.SignedGatewayAuth`` with ``hmac_wraps_secret``.
- Answers are HTTP 200 ``{"code", "msg", "sub_code", "sub_msg", "log_id", "data"}``, ``code`` 10000 for
  success. For the platform codes 40001/40003/30001/50001/70000/90000 the ``sub_code`` says what happened
  (``isv.access-token-expired``: a new token and one replay; ``isv.signature-invalid``: refused), the others
  are read by ``code`` (60000 throttled, 20000/20001 transient, 40004/50002 a business refusal).
- Tokens: a self-use (自用型) app asks ``token.create`` with ``{code: "", grant_type: "authorization_self",
  shop_id}`` (the official SDK's ``BuildAccessToken`` without a code) -> ``data.access_token`` and
  ``expires_in`` (7 days). No refresh token needs keeping: the app's secret and the shop id get a token again
  whenever one expires, and the token goes in the warehouse's shared store, one fetch per expiry for every
  process (``connectors.tokens``).
- ``order.searchList`` by ``update_time_start``/``update_time_end`` (epoch seconds), ``order_by:
  update_time``, newest first; ``page`` from 0, ``size`` <= 100, ``data.total``. Read from the last page
  back (orders updated while we page leave the window and shift the rest towards page 0). Each record is a
  whole shop order (sku orders and packages included): the same shape as ``order.orderDetail``'s
  ``data.shop_order_detail``, so one mapping reads both.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from connectors.auth import Authenticator, Secret, as_secret, required_credential
from connectors.errors import AuthError, MalformedResponse
from connectors.framework import Connector, Endpoint, PlatformSpec
from connectors.gateway import SignedGatewayAuth, _SignedGateway, epoch_seconds
from connectors.http import (
    ErrorPolicy,
    ErrorShape,
    HttpClient,
    RateLimitSignal,
    Request,
    RequestRateThrottle,
    dig,
)
from connectors.paginators import PageNumberPaginator, newest_copies
from connectors.tokens import TokenEndpoint, TokenStore, _TokenFromEndpoint
from connectors.windows import EPOCH_SECONDS, WindowSpec
from platforms.douyin.pushes import DouyinPushes

if TYPE_CHECKING:
    from channelhub.config import ChannelConfig
    from channelhub.credentials import ChannelCredentials

MAX_PAGE_SIZE = 100  # "单页大小，限制100以内" (SDK order_searchList_request.go)
MAX_WINDOW = timedelta(days=1)  # [U] no published limit found: one day keeps every window small
REQUESTS_PER_SECOND = 10.0  # [U] Douyin's QPS is per API and app and not published
TOKEN_LIFETIME = 7 * 86400  # "默认有效期：7天" (SDK core/create_token_request.go)
# Platform codes whose sub_code says what happened (error code table, NOTES.md); the others are read by code.
SUB_CODED = frozenset({"10000", "40001", "40003", "30001", "50001", "70000", "90000"})
TOKEN_EXPIRED = frozenset({"isv.access-token-expired", "isv.access-token-no-existed"})
REFUSED = frozenset(
    {
        "30002",  # the caller's IP is not on the app's whitelist
        "isv.signature-invalid",
        "isv.access-token-invalid",  # app_key and token do not match
        "isv.app-id-invalid",
        "isv.app-id-expired",
        "isv.app-permissions-insufficient",
        "dop.authorization-no-existed",  # the shop withdrew its grant
        "dop.authorization-closed",
        "dop.app-forbidden",
        "dop.token-generate-failed:app-secret-invalid",
        "dop.token-generate-failed:no-authorization",
        "dop.token-generate-failed:grant-type-invalid",
        "dop.token-generate-failed:app-forbidden",
    }
)
ERRORS = ErrorPolicy(
    shapes=(
        ErrorShape(code_path="code", message_path="sub_msg", ok_codes=SUB_CODED),
        ErrorShape(code_path="sub_code", message_path="sub_msg", ok_codes=frozenset({""})),
        ErrorShape(code_path="code", message_path="msg", ok_codes=frozenset({"10000"})),
    ),
    rate_limit=RateLimitSignal(statuses=frozenset({429}), body_codes=frozenset({"60000"})),
    auth_codes=REFUSED,
    token_expired_codes=TOKEN_EXPIRED,
    transient_codes=frozenset({"20000", "20001"}),
    request_id_header=None,
    request_id_path="log_id",
)


@dataclass(frozen=True)
class DouyinAuth(SignedGatewayAuth):
    """The gateway's signing with a token from ``token.create`` (credential ``shop_id`` names the shop)."""

    shop_id: str = "shop_id"

    def bind(
        self, credentials: Mapping[str, Secret | str], *, token_store: TokenStore | None = None
    ) -> Authenticator:
        # Only the app secret is secret (redacted from every text); the app key and shop id are public ids.
        given = dict(credentials)
        if self.app_secret in given:
            given[self.app_secret] = as_secret(given[self.app_secret])
        return _DouyinToken(self, given, token_store)


class _Signer(_SignedGateway):
    """The gateway's signer, with the token the token holder has at the moment."""

    def __init__(self, spec: SignedGatewayAuth, key: Secret, secret: Secret, holder: _DouyinToken | None):
        super().__init__(spec, key, secret, None)
        self._holder = holder

    def access_token(self) -> str | None:
        token = self._holder.current() if self._holder is not None else None
        return token.reveal() if token is not None else None


class _DouyinToken(_TokenFromEndpoint):
    """The shared-store token machinery of ``connectors.tokens``; only the token request differs (a signed
    ``token.create`` call) and every business call is signed."""

    def __init__(self, spec: DouyinAuth, credentials: dict[str, Secret | str], store: TokenStore | None):
        endpoint = TokenEndpoint("/token/create", default_lifetime_seconds=TOKEN_LIFETIME)
        super().__init__(endpoint, credentials, "access_token", store)
        key = required_credential(credentials, spec.app_key)
        secret = required_credential(credentials, spec.app_secret)
        self._shop_id = required_credential(credentials, spec.shop_id).reveal()
        self._signer = _Signer(spec, key, secret, self)
        self._anonymous = _Signer(spec, key, secret, None)  # token.create carries no token

    def current(self) -> Secret | None:
        return self._token

    def apply(self, request: Request) -> None:
        if self._token is None:
            raise AuthError("no access token: prepare() was not called")
        self._signer.apply(request)

    def _request_token(self, client: HttpClient, json: Mapping[str, Any] | None) -> tuple[str, str, float]:
        shop_id: int | str = int(self._shop_id) if self._shop_id.isdigit() else self._shop_id
        params = {
            "method": "token.create",
            "code": "",
            "grant_type": "authorization_self",
            "shop_id": shop_id,
        }
        request = Request("POST", "/token/create", params, idempotent=True)
        self._anonymous.apply(request)
        response = client.send(request, authenticate=False)
        token = dig(response.body, "data.access_token")
        if not isinstance(token, str) or not token:
            raise MalformedResponse(
                "token.create answered without data.access_token", platform=client.platform
            )
        lifetime = dig(response.body, "data.expires_in")
        lifetime = float(lifetime) if isinstance(lifetime, int | float) else float(TOKEN_LIFETIME)
        now = self._clock()
        sealed = self._fernet.encrypt(token.encode()).decode("ascii")
        return token, sealed, now + max(lifetime - self._endpoint.refresh_margin_seconds, 0.0)


def _api(method: str, **options: Any) -> Endpoint:
    """An API at its own path (``order.searchList`` -> ``/order/searchList``), its name in ``method``."""
    params = {"method": method, **options.pop("params", {})}
    return Endpoint("/" + method.replace(".", "/"), method="POST", params=params, **options)


DOUYIN = PlatformSpec(
    name="douyin",
    auth=DouyinAuth(
        app_key_param="app_key",
        token_param="access_token",
        algorithm="hmac-sha256",
        timestamp=epoch_seconds,
        static_params={"v": "2"},
        json_param="param_json",
        signed_params=frozenset({"app_key", "method", "param_json", "timestamp", "v"}),
        uppercase=False,
        hmac_wraps_secret=True,
    ),
    errors=ERRORS,
    throttle=lambda: RequestRateThrottle(REQUESTS_PER_SECOND),
    endpoints={
        "orders": _api(
            "order.searchList",
            params={"order_by": "update_time", "order_asc": False},
            idempotent=True,  # a read, though a POST
            records_path="data.shop_order_list",
            missing_records_mean_empty=True,  # read only once the envelope said success
            record_key="order_id",
            paginator=PageNumberPaginator(
                "page",
                "size",
                MAX_PAGE_SIZE,
                first_page=0,
                total_results_path="data.total",
                backwards=True,  # newest first: a forward walk skips an order when one leaves the window
            ),
            window=WindowSpec("update_time_start", "update_time_end", EPOCH_SECONDS, max_span=MAX_WINDOW),
        ),
        "order": _api("order.orderDetail", idempotent=True, records_path="data.shop_order_detail"),
        "ship": _api("order.logisticsAdd", idempotent=False),  # a replay could ship twice at worst
        "ship_pack": _api("order.logisticsAddSinglePack", idempotent=True),  # replay-safe by request_id
        "update_tracking": _api("order.logisticsEdit", idempotent=True),  # sets a value: replay-safe
        "update_pack": _api("order.logisticsEditByPack", idempotent=True),
        "set_stock": _api("sku.syncStock", params={"incremental": False}, idempotent=True),  # a full set
        "sku": _api("sku.detail", idempotent=True, records_path="data"),
    },
)


def _listed_version(record: Any) -> tuple[str, int] | None:
    """order_id and ``update_time`` (epoch seconds); None (passed on as it is) when either is missing."""
    order_id = record.get("order_id") if isinstance(record, dict) else None
    updated = record.get("update_time") if isinstance(record, dict) else None
    return (order_id, updated) if isinstance(order_id, str) and isinstance(updated, int) else None


class DouyinConnector(DouyinPushes, Connector):
    spec = DOUYIN

    def fetch_orders(self, window_start: datetime, window_end: datetime) -> Iterator[list[dict[str, Any]]]:
        """Every shop order updated in the window, last page first; each order once unless a later copy is
        newer (pages shift while orders change)."""
        yield from newest_copies(self.fetch_pages("orders", window_start, window_end), _listed_version)

    def get_order(self, order_id: str) -> dict[str, Any]:
        """One shop order (``order.orderDetail``'s ``data.shop_order_detail``)."""
        value = self.get("order", params={"shop_order_id": order_id})
        if not isinstance(value, dict):
            raise MalformedResponse(f"order.orderDetail answered no order for {order_id}", platform="douyin")
        return value


def connector_for_channel(
    credentials: ChannelCredentials, channel: ChannelConfig, *, token_store: TokenStore | None = None
) -> DouyinConnector:
    """The connection's login is the app_key, its password the app_secret, ``extra.shop_id`` the shop;
    ``extra.requests_per_second`` is optional."""
    if not credentials.login:
        raise ValueError(f"connection {credentials.conn_id!r}: set the Douyin app_key as its login")
    shop_id = str(credentials.extra.get("shop_id", "")).strip()
    if not shop_id.isdigit():
        raise ValueError(f"connection {credentials.conn_id!r}: set the numeric shop id as extra.shop_id")
    cls: type[DouyinConnector] = DouyinConnector
    size = min(max(channel.page_size, 1), MAX_PAGE_SIZE)
    if size != MAX_PAGE_SIZE:  # the spec is data: a connection with its own page size gets its own copy
        cls = type(cls.__name__, (cls,), {"spec": DOUYIN.with_page_size("orders", size)})
    rate = float(credentials.extra.get("requests_per_second", REQUESTS_PER_SECOND))
    return cls.connect(
        credentials.base_url,
        {"app_key": credentials.login, "app_secret": credentials.secret, "shop_id": shop_id},
        throttle=RequestRateThrottle(rate),
        timeout=channel.http_timeout,
        token_store=token_store,
    )
