"""Every registered platform's sandbox app keeps its renderer as ``app.state.renderer``: ``render(state)``
gives one order's payload as a dict, the order's id where the platform's declaration (``id_field``) says.
Tools that need one order's payload without walking a listing rely on it; a new platform's sandbox package
keeps it too."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from platforms.registry import DECLARATIONS, PLATFORM_NAMES
from sandbox.clock import Clock
from sandbox.faults import Faults
from sandbox.server import create_platform_app
from sandbox.world import World

START = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
SECRET = "sandbox-renderer-contract-0123456789"


def _at(payload: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        assert isinstance(payload, dict) and part in payload, f"no {dotted!r} in the payload"
        payload = payload[part]
    return payload


@pytest.mark.parametrize("platform", PLATFORM_NAMES)
def test_app_state_renderer_renders_one_order_as_a_dict(platform: str) -> None:
    world = World(5, start=START, interval=300.0, clock=Clock.frozen(START))
    app = create_platform_app(
        platform,
        world,
        access_token=SECRET,
        faults=Faults(seed=5),
        bucket_size=40,
        leak_per_second=2.0,
        shop_timezone="America/New_York",
    )
    renderer = app.state.renderer
    now_ts = START.timestamp() + 86400
    states = [s for s in (world.state(index, now_ts) for index in range(40)) if s is not None]
    assert states, "the world made no order in its first 40 slots"
    ids = set()
    for state in states:
        payload = renderer.render(state)
        assert isinstance(payload, dict)
        ids.add(str(_at(payload, DECLARATIONS[platform].id_field)))
    assert len(ids) == len(states)  # one id per order: the payload is that order's
