"""``channelhub webhooks serve|register|list|remove|sweep``: the webhook receiver and its subscriptions.

- ``serve [--host 127.0.0.1] [--port 8790] [--no-apply]``: the receiver (uvicorn); ``--no-apply`` only stores
  verified events in the inbox (the sweeper, the ``webhook_inbox_sweep`` DAG or another process applies);
- ``register --channel C --url URL [--topic T ...]``: subscribe ``URL`` to the contract's topics (those
  already subscribed to that URL are skipped); a platform whose subscriptions are set in its console gets
  the steps printed and exit 2;
- ``list --channel C``, ``remove --channel C (--id ID | --all)``;
- ``sweep [--older-than SECONDS]``: apply the pending inbox rows now.

Errors are one line on stderr, exit 2; nothing printed holds a credential.
"""

from __future__ import annotations

import argparse
import sys
from datetime import timedelta
from typing import Any

from channelhub.config import ChannelConfig, HubConfig
from connectors.errors import ConnectorError


class WebhookCliError(Exception):
    """Reported in one line, exit 2."""


def _channel(args: argparse.Namespace) -> tuple[HubConfig, ChannelConfig, Any]:
    from channelhub.config import load_config
    from channelhub.platforms import get_platform

    config = load_config()
    try:
        channel = config.channel(args.channel)
    except KeyError:
        raise WebhookCliError(f"no channel {args.channel!r} in {config.source}") from None
    contract = get_platform(channel.platform).webhook_contract
    if contract is None:
        raise WebhookCliError(
            f"{channel.platform} pushes no HTTP events the hub takes: the scheduled sync is its only path"
        )
    return config, channel, contract


def _registering_connector(channel: ChannelConfig) -> Any:
    from channelhub.db import get_engine
    from channelhub.platforms import channel_connector

    connector = channel_connector(channel, engine=get_engine())
    if not hasattr(connector, "create_webhook"):
        raise WebhookCliError(f"the {channel.platform} connector cannot manage webhook subscriptions")
    return connector


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from channelhub.config import load_config
    from channelhub.db import get_engine
    from channelhub.webhooks import airflow_stock_changed, create_receiver

    apply = not args.no_apply
    app = create_receiver(
        get_engine(),
        load_config(),
        stock_changed=airflow_stock_changed() if apply else None,
        apply=apply,
    )
    mode = "inbox and apply" if apply else "inbox only (--no-apply)"
    print(f"webhook receiver on http://{args.host}:{args.port}/webhooks/<channel> ({mode})", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)
    return 0


def subscribe_by_api(connector: Any, url: str, topics: list[str]) -> list[str]:
    """Subscribe ``url`` to each of ``topics`` not already subscribed to it; one line per topic."""
    existing = {(s.topic, s.address) for s in connector.list_webhooks()}
    lines = []
    for topic in topics:
        if (topic, url) in existing:
            lines.append(f"{topic} -> {url}: already subscribed")
            continue
        made = connector.create_webhook(topic, url)
        lines.append(f"{made.topic} -> {made.address}: subscribed (id {made.id})")
    return lines


def cmd_register(args: argparse.Namespace) -> int:
    _, channel, contract = _channel(args)
    if contract.registration == "console":
        print(contract.console_steps(args.url))
        return 2
    connector = _registering_connector(channel)
    for line in subscribe_by_api(connector, args.url, args.topic or list(contract.topics)):
        print(f"{channel.code}: {line}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    _, channel, contract = _channel(args)
    if contract.registration == "console":
        raise WebhookCliError(f"{channel.platform}'s subscriptions are set in its console, not listed by API")
    subscriptions = _registering_connector(channel).list_webhooks()
    for s in subscriptions:
        print(f"{s.id}\t{s.topic}\t{s.address}")
    print(f"{channel.code}: {len(subscriptions)} subscription(s)", file=sys.stderr)
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    _, channel, contract = _channel(args)
    if contract.registration == "console":
        raise WebhookCliError(f"{channel.platform}'s subscriptions are removed in its console")
    connector = _registering_connector(channel)
    ids = [s.id for s in connector.list_webhooks()] if args.all else [args.id]
    for subscription_id in ids:
        connector.delete_webhook(subscription_id)
        print(f"{channel.code}: subscription {subscription_id} removed")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from channelhub.config import load_config
    from channelhub.db import get_engine
    from channelhub.webhook_apply import sweep_inbox
    from channelhub.webhooks import airflow_stock_changed

    report = sweep_inbox(
        get_engine(),
        load_config(),
        older_than=timedelta(seconds=args.older_than),
        stock_changed=airflow_stock_changed(),
    )
    print(report.summary_line())
    return 0


def _run(func: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except WebhookCliError as err:
            print(f"channelhub: {err}", file=sys.stderr)
            return 2
        except ConnectorError as err:  # typed, without secrets (connectors.errors)
            print(f"channelhub: {type(err).__name__}: {err}", file=sys.stderr)
            return 2

    return run


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    """Declare ``webhooks ...`` on the ``channelhub`` command line."""
    parser = subparsers.add_parser("webhooks", help="the webhook receiver, its inbox and subscriptions")
    sub = parser.add_subparsers(dest="webhooks_command", required=True)

    p = sub.add_parser("serve", help="run the webhook receiver (uvicorn)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8790)
    p.add_argument(
        "--no-apply", action="store_true", help="inbox only: store verified events, apply none of them"
    )
    p.set_defaults(func=_run(cmd_serve))

    p = sub.add_parser("register", help="subscribe URL to the channel's webhook topics")
    p.add_argument("--channel", required=True)
    p.add_argument("--url", required=True, help="the receiver's public URL for the channel")
    p.add_argument("--topic", action="append", help="a topic (repeat); default: the contract's topics")
    p.set_defaults(func=_run(cmd_register))

    p = sub.add_parser("list", help="list the channel's webhook subscriptions")
    p.add_argument("--channel", required=True)
    p.set_defaults(func=_run(cmd_list))

    p = sub.add_parser("remove", help="remove webhook subscriptions of the channel")
    p.add_argument("--channel", required=True)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--id", help="the subscription's id (see list)")
    which.add_argument("--all", action="store_true")
    p.set_defaults(func=_run(cmd_remove))

    p = sub.add_parser("sweep", help="apply the pending webhook inbox rows now")
    p.add_argument(
        "--older-than", type=float, default=0.0, help="only rows received this many seconds ago (default 0)"
    )
    p.set_defaults(func=_run(cmd_sweep))
