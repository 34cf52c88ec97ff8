"""What every part of the WooCommerce sandbox shares: the API prefix and test credentials, WordPress's
id sequences and statuses, its error bodies, ``BadRequest`` and the JSON body reader."""

from __future__ import annotations

import json
import re
from typing import Any

from fastapi import Request

PLATFORM = "woocommerce"
API_PREFIX = "/wp-json/wc/v3"
# Sandbox test credentials (not secrets): real runs pass their own. The key is the connection's login.
SANDBOX_LOGIN = "ck_sandbox0000000000000000000000000000000000"
DEFAULT_CONSUMER_SECRET = "cs_sandbox0000000000000000000000000000000000"
DEFAULT_SITE_TIMEZONE = "America/Chicago"
DEFAULT_PER_PAGE = 10
MAX_PER_PAGE = 100
RETRY_AFTER_SECONDS = "1"
WC_VERSION = "9.4.2"

# WordPress post ids: orders, their refunds and line items come from small sequences.
ORDER_ID_BASE = 1_000
ORDER_ID_STRIDE = 4  # an order id, then two refund ids (the world makes at most two), then a draft's id
DRAFT_ID_OFFSET = 3  # order id + 3: the abandoned checkout draft of that order slot, when it has one
DRAFT_SHARE = 11  # one order slot in DRAFT_SHARE has one (drafts never change and never become orders)
DRAFT_LEAD_SECONDS = 150  # a draft was started this long before its slot's order
LINE_ITEM_ID_BASE = 50_000
LINE_ITEM_STRIDE = 8  # lines, then a shipping line, a tax line and a coupon line
DRAFT_ITEM_ID_BASE = 3_000_000  # a draft's items: its own id space, the same layout
REFUND_ITEM_ID_BASE = 6_000_000  # a refund's items: LINE_ITEM_STRIDE per (order, refund seq)
RESTOCKING_STATUSES = frozenset({"on-hold", "processing", "completed", "refunded"})  # stock was reduced
CUSTOMER_ID_BASE = 2
TAX_RATE_ID_BASE = 70

STATUSES = (
    "pending",
    "processing",
    "on-hold",
    "completed",
    "cancelled",
    "refunded",
    "failed",
    "checkout-draft",
    "trash",
)
ORDERBY = ("date", "id", "include", "title", "slug")


def _error(code: str, message: str, status: int, **data: Any) -> dict[str, Any]:
    return {"code": code, "message": message, "data": {"status": status, **data}}


CANNOT_VIEW = _error("woocommerce_rest_cannot_view", "Sorry, you cannot list resources.", 401)
# Credentials in the query string; a page cache (and the sandbox's Link header) leaves them out.
CREDENTIAL_PARAMS = frozenset(
    {
        "consumer_key",
        "consumer_secret",
        "oauth_consumer_key",
        "oauth_timestamp",
        "oauth_nonce",
        "oauth_signature",
        "oauth_signature_method",
        "oauth_version",
    }
)
NOT_FILTERS = frozenset({"page", *CREDENTIAL_PARAMS})  # what a page cache keys on: the rest
BAD_KEY = _error("woocommerce_rest_authentication_error", "Consumer key is invalid.", 401)
BAD_SECRET = _error("woocommerce_rest_authentication_error", "Consumer secret is invalid.", 401)
NO_ROUTE = _error("rest_no_route", "No route was found matching the URL and request method.", 404)
INVALID_ID = _error("woocommerce_rest_shop_order_invalid_id", "Invalid ID.", 404)
CRITICAL_ERROR = {
    "code": "internal_server_error",
    "message": "<p>There has been a critical error on this website.</p>"
    '<p><a href="https://wordpress.org/documentation/article/faq-troubleshooting/">'
    "Learn more about troubleshooting WordPress.</a></p>",
    "data": {"status": 500},
    "additional_errors": [],
}
HOST_THROTTLE_PAGE = (
    "<html><head><title>429 Too Many Requests</title></head><body><center><h1>429 Too Many Requests</h1>"
    "</center><hr><center>nginx</center></body></html>"
)
_ISO_DATE_TIME = re.compile(
    r"(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(\.\d+)?(Z|[+-]\d{2}:?\d{2})?", re.IGNORECASE
)


class BadRequest(Exception):
    """WordPress's 400 ``rest_invalid_param`` naming each bad parameter."""

    def __init__(self, params: dict[str, str]) -> None:
        super().__init__(", ".join(params))
        self.params = params

    def body(self) -> dict[str, Any]:
        return _error(
            "rest_invalid_param",
            f"Invalid parameter(s): {', '.join(self.params)}",
            400,
            params=self.params,
            details={
                name: {"code": "rest_invalid_param", "message": msg} for name, msg in self.params.items()
            },
        )


async def _json_body(request: Request) -> dict[str, Any] | None:
    """The request's JSON object ({} for an empty body); None when it is not a JSON object."""
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None
