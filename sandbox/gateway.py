"""What the Chinese marketplace gateways (Taobao TOP, JD JOS, Pinduoduo, Douyin; Youzan for its page) do
exactly alike: Beijing wall-clock time as their ``yyyy-MM-dd HH:mm:ss`` strings, the TOP-style signature
(sorted ``k1v1k2v2`` wrapped in the secret) and the checks of a call's timestamp against the gateway's clock.

Each platform's codes, messages and envelopes stay in its own package: only the arithmetic lives here.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone

from starlette.responses import Response

CHINA = timezone(timedelta(hours=8))  # Beijing time, no daylight saving
TIME_PATTERN = "%Y-%m-%d %H:%M:%S"
TIME_TEXT = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")  # strptime alone takes "2024-1-5 9:3:7"
TIMESTAMP_TOLERANCE_SECONDS = 600  # the gateways' "within 10 minutes" rule


def china_time(ts: float | None) -> str:
    """An epoch moment as the marketplaces write it: Beijing ``yyyy-MM-dd HH:mm:ss``; None as ""."""
    return "" if ts is None else datetime.fromtimestamp(ts, CHINA).strftime(TIME_PATTERN)


def china_seconds(text: str) -> float:
    """``china_time``'s inverse; raises ``ValueError`` on text not in that pattern."""
    return datetime.strptime(text, TIME_PATTERN).replace(tzinfo=CHINA).timestamp()


def china_seconds_or_none(value: object) -> float | None:
    """``china_seconds`` of a value that is text in exactly that pattern (digits where digits go) and a real
    moment; None for anything else."""
    if not isinstance(value, str) or not TIME_TEXT.fullmatch(value):
        return None
    try:
        return china_seconds(value)
    except ValueError:
        return None


def stamp_too_far(sent: float, skew_seconds: float = 0.0) -> bool:
    """Whether a call's timestamp is further than the tolerance from the gateway's own clock: real time
    (plus the fault profile's skew where the platform's clock follows it), never the world's simulated one."""
    return abs(time.time() + skew_seconds - sent) > TIMESTAMP_TOLERANCE_SECONDS


def top_sign(params: Mapping[str, str], secret: str, method: str = "md5") -> str:
    """TOP's signature, which JD and Pinduoduo copied: sorted ``k1v1k2v2`` (``sign`` and empty values left
    out), MD5 wrapped in the secret or (Taobao's ``hmac`` / ``hmac-sha256``) an HMAC keyed by it, upper hex.
    (The sandbox keeps its own copy: it imports no hub code.)"""
    text = "".join(f"{k}{v}" for k, v in sorted(params.items()) if k != "sign" and v != "")
    if method == "md5":
        return hashlib.md5(f"{secret}{text}{secret}".encode()).hexdigest().upper()
    digest = hashlib.md5 if method == "hmac" else hashlib.sha256
    return hmac.new(secret.encode(), text.encode(), digest).hexdigest().upper()


def tengine_page(status: int) -> Response:
    """What a Tengine load balancer (Youzan's, Taobao's) answers when the backend fails: HTML, not JSON."""
    title = "502 Bad Gateway" if status == 502 else "503 Service Temporarily Unavailable"
    page = f"<html><head><title>{title}</title></head><body><center><h1>{title}</h1></center>"
    return Response(page + "<hr><center>Tengine</center></body></html>", status, media_type="text/html")
