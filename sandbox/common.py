"""What several platform sandboxes do exactly the same way (each platform's own quirks stay in its package).

Only code that was the same, byte for byte in what it answers, in more than one simulator lives here: the
truncated-body fault every gateway injects, money as two decimals, and the unpadded base64url of the signed
paging cursors (Shopify's ``page_info``, WeChat's ``next_key``).
"""

from __future__ import annotations

import base64
from decimal import Decimal

from starlette.responses import Response

from sandbox.faults import Faults


async def maybe_truncated(response: Response, faults: Faults) -> Response:
    """A 200 answer cut to half its body (and without its Content-Length) when the fault profile rolls
    ``truncated_body_rate``, as a connection dropped mid-body would leave it; any other answer as it is."""
    if response.status_code == 200 and faults.roll(faults.truncated_body_rate):
        body = b"".join([chunk async for chunk in response.body_iterator])  # type: ignore[attr-defined]
        kept = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
        return Response(body[: max(1, len(body) // 2)], 200, headers=kept)
    return response


def two_decimals(value: Decimal) -> str:
    """A money amount as the platforms write it in JSON strings: "12.30"."""
    return f"{value:.2f}"


def b64url_encode(raw: bytes) -> str:
    """base64url without the "=" padding (cursors travel in query strings and JSON)."""
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def b64url_decode(text: str) -> bytes:
    """``b64url_encode``'s inverse; raises ``binascii.Error`` (a ``ValueError``) on text not base64."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
