"""The demo's real-time path: the webhook receiver as a process of its own (``channelhub webhooks serve``),
every sandbox whose platform pushes subscribed to it, and Airflow's API account for the stock asset events.

Subscribing is what an integrator does once per shop: ``channelhub webhooks register`` where the platform
has an API for it (Shopify, WooCommerce), and for a platform set up in its console (WeChat, Youzan, Douyin)
the demo plays the person at that console through the sandbox's ``/_sandbox/webhooks`` route, with the keys
the channel's connection holds (WeChat's Token and EncodingAESKey). The tests and the fault matrix subscribe
their sandboxes the same way (``subscribe_sandbox``). The scheduled syncs stay on: a lost
webhook is still landed by the next run.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import Engine

from channelhub.airflow_api import AIRFLOW_API_CONN_ID
from channelhub.config import ChannelConfig
from channelhub.credentials import ChannelCredentials
from channelhub.platforms import channel_connector, get_platform
from channelhub.webhook_cli import subscribe_by_api
from connectors.auth import Secret
from sandbox.server import sandbox_connection

DEFAULT_RECEIVER_PORT = 8790
CLI = (sys.executable, "-m", "channelhub.cli")
# What the console of each console-registered platform asks for, from the connection's extra (what the
# hub verifies with) to the console's field (what the platform signs or encrypts with).
CONSOLE_FIELDS = {"webhook_token": "token", "webhook_aes_key": "encoding_aes_key"}


def airflow_admin_password(airflow_home: Path) -> str:
    """The admin's password of ``airflow standalone`` (SimpleAuthManager's generated-passwords file), chosen
    here when the file does not exist yet, so the receiver can log in to Airflow's API from the start."""
    generated = airflow_home / "simple_auth_manager_passwords.json.generated"
    if generated.exists():
        known = json.loads(generated.read_text()).get("admin")
        if known:
            return str(known)
    password = secrets.token_urlsafe(12)
    airflow_home.mkdir(parents=True, exist_ok=True)
    generated.write_text(json.dumps({"admin": password}))
    generated.chmod(0o600)
    return password


def airflow_api_env(api_port: str, password: str) -> dict[str, str]:
    host = f"http://localhost:{api_port}"
    conn = {"conn_type": "http", "host": host, "login": "admin", "password": password}
    return {f"AIRFLOW_CONN_{AIRFLOW_API_CONN_ID.upper()}": json.dumps(conn)}


def start_receiver(
    stack: ExitStack, env: dict[str, str], log_dir: Path, port: int, wait: Any, terminate: Any
) -> str:
    """``channelhub webhooks serve`` on ``port`` (stopped with ``stack``); its base URL once it answers."""
    log = open(log_dir / "webhook-receiver.log", "ab")  # noqa: SIM115 - closed by the stack
    stack.callback(log.close)
    process = subprocess.Popen(
        [*CLI, "webhooks", "serve", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    stack.callback(terminate, process)
    base_url = f"http://127.0.0.1:{port}"
    wait(f"{base_url}/webhooks/-", timeout=60, process=process)
    return base_url


def sandbox_credentials(channel: ChannelConfig, base_url: str, secret: str) -> ChannelCredentials:
    """The credentials a sandbox's Airflow connection gives the channel (``sandbox_connection``)."""
    conn = sandbox_connection(channel.platform, base_url, secret)
    return ChannelCredentials(
        channel.conn_id,
        conn["host"],
        login=conn.get("login"),
        secret=Secret(conn["password"]),
        extra=dict(conn.get("extra", {})),
    )


def subscribe_sandbox(
    channel: ChannelConfig, credentials: ChannelCredentials, url: str, engine: Engine | None = None
) -> str:
    """Subscribe ``url`` to the channel's pushes from its sandbox, replacing earlier subscriptions: by the
    platform's API where it has one (``channelhub webhooks register``'s code), else at the sandbox's stand-in
    for the platform's console, with the keys the connection holds. Says how, in one line."""
    contract = get_platform(channel.platform).webhook_contract
    if contract is None:
        return f"no HTTP push ({channel.platform}): scheduled sync only"
    unsubscribe_sandbox(channel, credentials, engine)  # a console holds one URL; by API, start afresh
    if contract.registration == "api":
        connector = channel_connector(channel, credentials, engine=engine)
        subscribe_by_api(connector, url, list(contract.topics))
        return f"subscribed by API: {', '.join(contract.topics)}"
    console = {
        field: credentials.extra[key] for key, field in CONSOLE_FIELDS.items() if key in credentials.extra
    }
    answer = requests.post(
        f"{credentials.base_url}/_sandbox/webhooks", json={"address": url, **console}, timeout=30
    )
    answer.raise_for_status()
    return "set in the platform's console (the sandbox's)"


def unsubscribe_sandbox(
    channel: ChannelConfig, credentials: ChannelCredentials, engine: Engine | None = None
) -> None:
    """Remove every subscription ``subscribe_sandbox`` made (the sandbox then stops delivering)."""
    contract = get_platform(channel.platform).webhook_contract
    if contract is None:
        return
    if contract.registration == "api":
        connector = channel_connector(channel, credentials, engine=engine)
        for subscription in connector.list_webhooks():
            connector.delete_webhook(subscription.id)
        return
    requests.delete(f"{credentials.base_url}/_sandbox/webhooks", timeout=30).raise_for_status()


def subscribe(sandboxes: list[Any], receiver_url: str, engine: Engine) -> list[str]:
    """Every demo sandbox subscribed to ``<receiver_url>/webhooks/<channel>``; one line per channel."""
    return [
        f"{sb.channel.code}: "
        + subscribe_sandbox(
            sb.channel,
            sandbox_credentials(sb.channel, sb.base_url, sb.token),
            f"{receiver_url}/webhooks/{sb.channel.code}",
            engine,
        )
        for sb in sandboxes
    ]


def receiver_port() -> int:
    return int(os.environ.get("HUB_WEBHOOK_PORT", DEFAULT_RECEIVER_PORT))
