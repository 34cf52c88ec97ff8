"""``docker compose --profile demo up``: the ``demo-setup`` service (``python -m channelhub.compose_demo``).

What ``make demo`` does between starting its sandboxes and serving the UI, for the compose stack: the
merchant's catalog, listings and opening stock seeded from each sandbox's own world, every DAG put in the
metadata database and unpaused, and a first sync of every channel from the start of its sandbox's history.
The sandboxes run in services of their own (``sandbox-<platform>``); each channel's Airflow connection
(``AIRFLOW_CONN_*`` from ``.env``) says where. The seed and the history start are asked of the sandbox
(``/_sandbox/state``), so the compose file's sandbox flags and this code cannot drift apart.
Only the connection's host is read here: its secret is never printed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC

import requests
from sqlalchemy import Engine

from channelhub.config import ChannelConfig, HubConfig, load_config
from channelhub.demo import seed_from_catalog, wait_until
from channelhub.sync import parse_instant, register_config
from sandbox.world import World


@dataclass(frozen=True, slots=True)
class SandboxChannel:
    channel: ChannelConfig
    base_url: str
    seed: int
    since: str  # the sandbox's first order time, as the first sync's {"since": ...}


def sandbox_url(channel: ChannelConfig, environ: Mapping[str, str]) -> str:
    """The base URL of ``channel``'s connection, from its ``AIRFLOW_CONN_<CONN_ID>`` (JSON form)."""
    name = f"AIRFLOW_CONN_{channel.conn_id.upper()}"
    if name not in environ:
        raise KeyError(f"{name} is not set: the demo's .env names every demo channel's sandbox")
    try:
        host = json.loads(environ[name])["host"]
    except (ValueError, KeyError, TypeError):
        # Not the value itself: it holds the channel's secret.
        raise KeyError(f"{name} is not a JSON connection with a host") from None
    return str(host).rstrip("/")


def sandbox_state(base_url: str, timeout: float = 120) -> dict:
    """The sandbox's ``/_sandbox/state`` (seed, history start), waiting for it to answer."""

    def probe() -> dict:
        answer = requests.get(f"{base_url}/_sandbox/state", timeout=5)
        answer.raise_for_status()
        return answer.json()

    return wait_until(f"sandbox {base_url}", probe, timeout)


def seed_channels(engine: Engine, config: HubConfig, environ: Mapping[str, str]) -> list[SandboxChannel]:
    """Register the config and seed every enabled channel's catalog, listings and opening stock from the
    world its sandbox serves (idempotent: a second run changes nothing)."""
    register_config(engine, config)
    seeded = []
    for channel in (c for c in config.channels if c.enabled):
        base_url = sandbox_url(channel, environ)
        state = sandbox_state(base_url)
        if state["platform"] != channel.platform:
            raise RuntimeError(
                f"{channel.code} is a {channel.platform} channel but {base_url} serves {state['platform']}"
            )
        seed_from_catalog(engine, channel, World(seed=int(state["seed"])).catalog)
        since = parse_instant(state["start"]).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        seeded.append(SandboxChannel(channel, base_url, int(state["seed"]), since))
    return seeded


def _airflow(*args: str) -> None:
    subprocess.run(["airflow", *args], check=True)


def main() -> int:
    from channelhub.db import get_engine

    seeded = seed_channels(get_engine(), load_config(), os.environ)
    for sb in seeded:
        print(
            f"- {sb.channel.code}: seeded from the {sb.channel.platform} sandbox at {sb.base_url}", flush=True
        )
    # The DAG processor may not have parsed the folder yet: put every DAG in the database first, so that the
    # unpause below finds them all (as make demo does). Workers only start once the API server is healthy
    # (depends_on), so unpausing now cannot fail a task's first try.
    _airflow("dags", "reserialize")
    _airflow("dags", "unpause", "--treat-dag-id-as-regex", "--yes", ".")
    for sb in seeded:
        _airflow("dags", "trigger", sb.channel.dag_id, "-c", json.dumps({"since": sb.since}))
        print(f"- {sb.channel.dag_id}: first sync triggered from {sb.since}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
