"""``sandbox.server``: a client gone mid-request (the crash harness SIGKILLs the hub) is one INFO line;
an exception from a handler is still logged by uvicorn with its traceback."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
import requests
from starlette.requests import ClientDisconnect

from sandbox import shopify
from sandbox.faults import Faults
from sandbox.server import RunningSandbox, _client_disconnects_only, run_sandbox

TOKEN = "shpat_sandbox_test_0123456789abcdef"
SET_LEVEL = f"{shopify.API_PREFIX}/inventory_levels/set.json"
BODY = b'{"location_id": 1, "inventory_item_id": 2, "available": 3}'


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def uvicorn_errors() -> Iterator[Records]:
    """What uvicorn logs ("uvicorn.error" does not propagate to the root logger, so caplog misses it). Attach
    once the sandbox runs: uvicorn's logging setup replaces the logger's handlers."""
    records = Records()
    logger = logging.getLogger("uvicorn.error")
    logger.addHandler(records)
    try:
        yield records
    finally:
        logger.removeHandler(records)


def wait_for(condition: Callable[[], bool], seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def post_and_vanish(sb: RunningSandbox, declared_length: int) -> None:
    """POST ``BODY`` with ``declared_length`` as its Content-Length, then close the socket unanswered."""
    with socket.create_connection(("127.0.0.1", sb.port), timeout=5) as client:
        head = (
            f"POST {SET_LEVEL} HTTP/1.1\r\nHost: sandbox\r\nX-Shopify-Access-Token: {TOKEN}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {declared_length}\r\n\r\n"
        )
        client.sendall(head.encode() + BODY)
        time.sleep(0.1)


@pytest.mark.parametrize(
    ("declared_length", "latency"),
    [
        (len(BODY) + 100, 0.0),  # killed while sending the body
        (len(BODY), 0.4),  # killed waiting for the answer: uvicorn drops the body it had received
    ],
    ids=["mid-body", "mid-answer"],
)
def test_a_client_gone_mid_request_is_one_info_line_not_a_traceback(
    declared_length: int, latency: float, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="sandbox.server")
    with (
        run_sandbox("shopify", access_token=TOKEN, faults=Faults(latency_seconds=latency)) as sb,
        uvicorn_errors() as errors,
    ):
        post_and_vanish(sb, declared_length)
        assert wait_for(
            lambda: bool(errors.records) or any(r.name == "sandbox.server" for r in caplog.records)
        )
        time.sleep(0.1)  # anything else logged for that request is logged by now
    assert [r.getMessage() for r in errors.records] == []  # was "Exception in ASGI application" + traceback
    lines = [r for r in caplog.records if r.name == "sandbox.server"]
    assert [(r.levelno, r.getMessage()) for r in lines] == [
        (logging.INFO, f"POST {SET_LEVEL}: the client went away mid-request")
    ]
    assert lines[0].exc_info is None


def test_an_exception_from_a_handler_is_still_logged_with_its_traceback() -> None:
    with run_sandbox("shopify", access_token=TOKEN) as sb, uvicorn_errors() as errors:

        def broken() -> None:
            raise RuntimeError("a real bug")

        sb.app.add_api_route("/broken", broken)
        assert requests.get(f"{sb.base_url}/broken", timeout=5).status_code == 500
        assert wait_for(lambda: bool(errors.records))
    [record] = errors.records
    assert record.levelno == logging.ERROR and record.exc_info is not None
    assert isinstance(record.exc_info[1], RuntimeError)


def test_only_client_disconnects_count_as_a_client_gone() -> None:
    assert _client_disconnects_only(ClientDisconnect())
    assert _client_disconnects_only(ExceptionGroup("task group", [ClientDisconnect(), ClientDisconnect()]))
    assert not _client_disconnects_only(ExceptionGroup("task group", [ClientDisconnect(), ValueError()]))
    assert not _client_disconnects_only(RuntimeError("No response returned."))
