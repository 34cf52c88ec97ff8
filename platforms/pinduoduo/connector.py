"""Pinduoduo 拼多多 POP open platform as a declaration (facts and sources: NOTES.md).

- One router, ``POST https://gw-api.pinduoduo.com/api/router``: ``type`` (the API), ``client_id``,
  ``access_token``, ``timestamp`` (epoch seconds), ``data_type=JSON``, the business parameters, and
  ``sign`` = upper-case MD5 of ``client_secret + k1v1k2v2... + client_secret`` over the sorted parameters
  (``connectors.gateway``, no ``sign_method`` parameter).
- Errors: HTTP 200 ``{"error_response": {"error_code", "error_msg", "sub_code", "sub_msg", "request_id"}}``:
  10019 access_token expired (renew and replay once), 70031 throttled (wait, retry), 20004 signature refused
  and 20031 no grant for the API (credentials refused for good), 10000 parameter errors and 50001 business
  refusals (a push's rejection).
- The access token expires; ``pdd.pop.auth.token.refresh`` with the connection's ``refresh_token`` issues a
  new one (``connectors.gateway_tokens``), kept in the hub's shared token store.
- Orders: ``pdd.order.number.list.increment.get`` by ``start_updated_at``/``end_updated_at`` (epoch seconds,
  at most 30 minutes apart), every status (``order_status`` 5, ``refund_status`` 5, ``is_lucky_flag`` 0);
  ``page`` from 1, ``page_size`` <= 100; the answer's ``total_count`` gives the pages, walked from the last
  to the first as Pinduoduo tells integrators to (an order updated while we page leaves the window and the
  others move towards page 1). Each ``order_sn_list`` item is a whole order, the same object as
  ``pdd.order.information.get``'s ``order_info``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from connectors.auth import Cred
from connectors.errors import ApiError
from connectors.framework import Connector, Endpoint, PlatformSpec
from connectors.gateway import epoch_seconds
from connectors.gateway_tokens import GatewayTokenRefresh, RefreshedGatewayAuth
from connectors.http import ErrorPolicy, ErrorShape, RateLimitSignal, RequestRateThrottle
from connectors.paginators import PageNumberPaginator, newest_copies
from connectors.tokens import TokenStore
from connectors.windows import EPOCH_SECONDS, WindowSpec
from platforms.pinduoduo.pushes import PinduoduoPushes

if TYPE_CHECKING:
    from channelhub.config import ChannelConfig
    from channelhub.credentials import ChannelCredentials

ROUTER = "/api/router"
MAX_PAGE_SIZE = 100
MAX_WINDOW = timedelta(minutes=30)
DEFAULT_REQUESTS_PER_SECOND = 20.0  # [U] Pinduoduo limits per API and app; the SDK's limiters allow more
TOKEN_EXPIRED = frozenset({"10019"})
THROTTLED = frozenset({"70031"})
CREDENTIALS_REFUSED = frozenset({"20004", "20031"})
INCREMENT = "order_sn_increment_get_response"


def _call(api: str, records_path: str | None = None, *, idempotent: bool = True, **params: Any) -> Endpoint:
    """One gateway API: the router, its ``type``, and where its answer keeps what we want."""
    return Endpoint(ROUTER, "POST", {"type": api, **params}, records_path=records_path, idempotent=idempotent)


PINDUODUO = PlatformSpec(
    name="pinduoduo",
    auth=RefreshedGatewayAuth(
        app_key_param="client_id",
        token_param="access_token",
        sign_method_param=None,
        timestamp=epoch_seconds,
        static_params={"data_type": "JSON"},
        app_key="client_id",
        app_secret="client_secret",
        refresh=GatewayTokenRefresh(
            "pdd.pop.auth.token.refresh",
            ROUTER,
            params={"refresh_token": Cred("refresh_token")},
            token_path="pop_auth_token_refresh_response.access_token",
            expires_in_path="pop_auth_token_refresh_response.expires_in",
        ),
    ),
    errors=ErrorPolicy(
        shapes=(ErrorShape("error_response.error_code", "error_response.error_msg"),),
        rate_limit=RateLimitSignal(statuses=frozenset({429}), body_codes=THROTTLED),
        auth_codes=CREDENTIALS_REFUSED,
        token_expired_codes=TOKEN_EXPIRED,
        request_id_header=None,
        request_id_path="error_response.request_id",
    ),
    throttle=lambda: RequestRateThrottle(DEFAULT_REQUESTS_PER_SECOND),
    endpoints={
        "orders": Endpoint(
            ROUTER,
            "POST",
            {"type": "pdd.order.number.list.increment.get", "is_lucky_flag": 0, "order_status": 5},
            records_path=f"{INCREMENT}.order_sn_list",
            idempotent=True,  # a read, though a POST
            missing_records_mean_empty=True,
            record_key="order_sn",
            paginator=PageNumberPaginator(
                "page",
                "page_size",
                MAX_PAGE_SIZE,
                total_results_path=f"{INCREMENT}.total_count",
                has_more_path=f"{INCREMENT}.has_next",
                backwards=True,
            ),
            window=WindowSpec("start_updated_at", "end_updated_at", EPOCH_SECONDS, max_span=MAX_WINDOW),
        ),
        "order": _call("pdd.order.information.get", "order_info_get_response.order_info"),
        "logistics_companies": _call(
            "pdd.logistics.companies.get", "logistics_companies_get_response.logistics_companies"
        ),
        # Not idempotent: replayed after a lost answer it would be refused as shipped already at best.
        "ship": _call("pdd.logistics.online.send", "logistics_online_send_response", idempotent=False),
        "set_stock": _call("pdd.goods.quantity.update", "goods_quantity_update_response", update_type=1),
        "goods": _call("pdd.goods.detail.get", "goods_detail_get_response"),
    },
)


def _listed_version(record: Any) -> tuple[str, str] | None:
    """order_sn and ``updated_at``; None (passed on as it is) for a record without an order_sn."""
    sn = record.get("order_sn") if isinstance(record, dict) else None
    return (sn, str(record.get("updated_at") or "")) if isinstance(sn, str) else None


class PinduoduoConnector(PinduoduoPushes, Connector):
    spec = PINDUODUO

    def fetch_orders(self, window_start: datetime, window_end: datetime) -> Iterator[list[dict[str, Any]]]:
        """Every order updated in the window, last page first; each order_sn once unless a later copy is
        newer (``updated_at`` is Beijing wall time: it compares as text)."""
        yield from newest_copies(self.fetch_pages("orders", window_start, window_end), _listed_version)

    def get_order(self, order_sn: str) -> dict[str, Any]:
        """One order (``pdd.order.information.get``): the ``order_info`` object."""
        value = self.get("order", params={"order_sn": order_sn})
        if not isinstance(value, dict):
            raise ApiError(
                f"pdd.order.information.get answered no order for {order_sn}", platform=self.platform
            )
        return value


def connector_for_channel(
    credentials: ChannelCredentials, channel: ChannelConfig, *, token_store: TokenStore | None = None
) -> PinduoduoConnector:
    """The Airflow connection: login = client_id, password = client_secret, ``extra.refresh_token`` the
    shop's refresh token (long-lived; the access token is fetched with it); optional
    ``extra.requests_per_second``."""
    if not credentials.login:
        raise ValueError(f"connection {credentials.conn_id!r}: set the Pinduoduo client_id as its login")
    refresh_token = credentials.extra.get("refresh_token")
    if not isinstance(refresh_token, str) or not refresh_token:
        raise ValueError(
            f"connection {credentials.conn_id!r}: set the shop's refresh token as extra.refresh_token"
        )
    page_size = min(max(channel.page_size, 1), MAX_PAGE_SIZE)
    spec = PINDUODUO
    if page_size != MAX_PAGE_SIZE:  # the spec is data: a connection with its own page size gets a copy
        spec = spec.with_page_size("orders", page_size)
    rate = float(credentials.extra.get("requests_per_second", DEFAULT_REQUESTS_PER_SECOND))
    return PinduoduoConnector.connect(
        credentials.base_url,
        {"client_id": credentials.login, "client_secret": credentials.secret, "refresh_token": refresh_token},
        throttle=RequestRateThrottle(rate),
        timeout=channel.http_timeout,
        token_store=token_store,
        spec=spec,
    )
