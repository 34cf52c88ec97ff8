"""What the per-channel DAG tasks do: resolve the run's window and call the hub's functions.

Each function takes the channel code and the Airflow task context and returns the run's counts (the task's
XCom, also printed to its log).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine

from channelhub.config import HubConfig, load_config

# Days a channel has to refund units a store received back before a person is asked to look.
RETURN_REFUND_DAYS = 14


def _setup() -> tuple[HubConfig, Engine]:
    from channelhub.db import get_engine
    from channelhub.sync import register_config

    config = load_config()
    engine = get_engine()
    register_config(engine, config)
    return config, engine


def sync_orders(channel_code: str, context: dict[str, Any]) -> dict:
    from channelhub.sync import parse_instant
    from channelhub.sync import sync_orders as pull

    config, engine = _setup()
    channel = config.channel(channel_code)
    # Airflow 3 gives a manual run without a logical date no data interval: it covers the schedule interval
    # up to the moment it was triggered (or from its "since" param).
    window_end = context.get("data_interval_end") or context["dag_run"].run_after
    since = (context.get("params") or {}).get("since")
    if since:
        window_start = parse_instant(since)
    else:
        window_start = context.get("data_interval_start") or window_end - channel.schedule
    result = pull(engine, channel, window_start, window_end)
    print(result.summary_line())
    return result.as_dict()


def push_stock(channel_code: str, context: dict[str, Any]) -> dict:
    from channelhub.stock_push import push_stock as push

    config, engine = _setup()
    report = push(engine, config.channel(channel_code))
    print(report.summary_line())
    return {"listings": report.listings, "changed": report.changed, **report.outcomes}


def push_shipments(channel_code: str, context: dict[str, Any]) -> dict:
    from channelhub.shipment_push import push_shipments as push

    config, engine = _setup()
    report = push(engine, config.channel(channel_code))
    print(report.summary_line())
    return {"pending": report.pending, **report.outcomes}


def reconcile_light(channel_code: str, context: dict[str, Any]) -> dict:
    return _reconcile(channel_code, "light", context)


def reconcile_deep(channel_code: str, context: dict[str, Any]) -> dict:
    return _reconcile(channel_code, "deep", context)


def _reconcile(channel_code: str, depth: str, context: dict[str, Any]) -> dict:
    from channelhub.reconcile import reconcile_channel, window_for

    config, engine = _setup()
    window_end = context.get("data_interval_end") or context["dag_run"].run_after
    window_start = window_for(depth, window_end, context.get("data_interval_start"))
    report = reconcile_channel(engine, config.channel(channel_code), window_start, window_end, depth)
    print("\n".join(report.summary_lines()))
    return report.as_dict()


def retest_exceptions(context: dict[str, Any]) -> dict:
    """The periodic re-test; or, for a run triggered with ``{"ids": [...], "actor": ..., "note": ...}`` (the
    ChannelHub page's bulk Retry), a retry of exactly those exceptions on that person's behalf."""
    from channelhub.exception_ops import retest_open, retry_exceptions

    config, engine = _setup()
    asked = dict(getattr(context.get("dag_run"), "conf", None) or {})
    if "ids" in asked:
        ids, actor = asked["ids"], asked.get("actor")
        if not (
            isinstance(ids, list) and all(type(i) is int for i in ids) and isinstance(actor, str) and actor
        ):
            raise ValueError("a retry run's conf holds ids (a list of integers) and actor (who asked)")
        note = asked.get("note") if isinstance(asked.get("note"), str) else None
        outcomes = retry_exceptions(engine, config, ids, actor=actor, note=note)
    else:
        outcomes = retest_open(engine, config, actor=f"airflow:{context['dag'].dag_id}")
    for outcome in outcomes:
        print(f"#{outcome.exception_id}: {outcome.status}: {outcome.detail}")
    resolved = sum(o.status == "resolved" for o in outcomes)
    print(f"re-tested {len(outcomes)} open exceptions: {resolved} now pass and are resolved")
    return {"retested": len(outcomes), "resolved": resolved}


def erase_personal_data(context: dict[str, Any]) -> dict:
    """The daily retention run: blank the personal data of orders closed for the configured days."""
    from channelhub.retention import run_retention

    config, engine = _setup()
    report = run_retention(engine, config)
    print(report.summary_line())
    return report.as_dict()


def check_channel_health(context: dict[str, Any]) -> dict:
    from channelhub.alerts import check_stale_syncs

    config, engine = _setup()
    alerts = check_stale_syncs(engine, config)
    for alert in alerts:
        print(f"{alert.severity}: {alert.title}: {alert.message}")
    return {"alerts": [alert.key for alert in alerts]}


def sweep_webhook_inbox(context: dict[str, Any]) -> dict:
    """Apply the webhook inbox rows a receiver left pending (killed, or inbox only) and retries whose backoff
    is over; the rows a live receiver just stored are its own (``SWEEP_OLDER_THAN``)."""
    from channelhub.webhook_apply import sweep_inbox
    from channelhub.webhooks import airflow_stock_changed

    config, engine = _setup()
    report = sweep_inbox(engine, config, stock_changed=airflow_stock_changed())
    print(report.summary_line())
    return {**report.counts.as_dict(), "claimed": report.claimed, "applied": report.applied,
            "retrying": report.retrying, "failed": report.failed}  # fmt: skip


def check_returns(context: dict[str, Any]) -> dict:
    """The daily returns check: returned units the channel has not refunded after
    ``RETURN_REFUND_DAYS`` are queued for a person (``return_not_refunded``; cleared once refunded), and
    exchanges waiting for their replacement's stock are reserved again (they belong to no configured
    channel, so the sync and the exception re-test never evaluate them)."""
    from warehouse.catalog import CatalogError
    from warehouse.ingest import retry_attention
    from warehouse.return_refunds import queue_unrefunded_returns
    from warehouse.returns import EXCHANGE_CHANNEL

    _, engine = _setup()
    with engine.begin() as conn:
        queued = queue_unrefunded_returns(conn, RETURN_REFUND_DAYS)
    try:
        exchanges = retry_attention(engine, EXCHANGE_CHANNEL).reserved_units
    except CatalogError:  # no exchange yet: the hub creates its channel with the first one
        exchanges = 0
    print(
        f"{queued} return(s) not refunded in {RETURN_REFUND_DAYS} days; {exchanges} exchange unit(s) reserved"
    )
    return {"not_refunded": queued, "exchange_units_reserved": exchanges}
