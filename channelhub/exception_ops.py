"""Working the exception queue: list, show, retry, resolve, ignore (the CLI, the Airflow page and the
re-test DAG all call these). Every action is logged with who, when and why (``exception_actions``).

What a retry does depends on the reason:

- ``unknown_sku`` / ``insufficient_stock``: re-evaluate the order (after a listing was mapped or stock came);
- ``schema_invalid`` / ``mapping_failed`` / ``apply_failed``: run the kept raw payload through the schema
  check, mapping and ingest again (after a fix);
- ``amount_mismatch`` / ``status_mismatch``: fetch the order from the channel again; a person's retry applies
  the channel's version (the channel is the source of its orders), the periodic re-test only compares;
- ``push_failed``: push the order's refused shipments (or the SKU's stock) again;
- ``bad_import_row``: import the kept row again (say, once its order has synced);
- ``ledger_drift``: check the SKU's levels against the ledger again.

An exception resolves when its retry makes the problem go away (ingest and imports close what they find
fixed); otherwise it stays open with the new attempt's words.
"""

from __future__ import annotations

import csv
import io
import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, select, update

from canonical.store_files import KINDS
from channelhub.config import HubConfig
from channelhub.credentials import CredentialsError
from channelhub.outbound import PushIncomplete
from channelhub.platforms import Skipped, channel_connector, get_platform
from connectors.errors import ConnectorError
from warehouse import exceptions as queue
from warehouse.exceptions import ExceptionFilter
from warehouse.ingest import (
    ATTENTION_REASONS,
    LANDING_REASONS,
    Landed,
    forget_versions,
    ingest_orders,
    reevaluate_orders,
)
from warehouse.models import channels, orders, shipments
from warehouse.stock import ledger_drift

log = logging.getLogger("channelhub.exception_ops")

MISMATCH_REASONS = ("amount_mismatch", "status_mismatch")
# What the periodic re-test retries: push refusals wait for a person (or clear when a later push succeeds).
RETESTED_REASONS = (*ATTENTION_REASONS, *LANDING_REASONS, *MISMATCH_REASONS, "bad_import_row", "ledger_drift")
RETRY_ERRORS = (ConnectorError, CredentialsError, PushIncomplete, KeyError, ValueError)


@dataclass(frozen=True, slots=True)
class RetryOutcome:
    exception_id: int
    status: str  # resolved | still_open | not_open (it was already resolved or ignored)
    detail: str


OPEN = ExceptionFilter()


def list_exceptions(engine: Engine, filters: ExceptionFilter = OPEN) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return queue.search(conn, filters)


def show_exception(engine: Engine, exception_id: int) -> dict[str, Any] | None:
    """One exception with its raw payload (``payload``) and its audit trail (``actions``)."""
    with engine.connect() as conn:
        found = queue.get(conn, exception_id)
        if found is not None:
            found["actions"] = queue.actions_of(conn, exception_id)
        return found


def close_exceptions(
    engine: Engine, ids: Sequence[int], status: str, actor: str, note: str | None = None
) -> int:
    """Resolve or ignore these exceptions on a person's word; returns how many were open and closed."""
    with engine.begin() as conn:
        return len(queue.close_many(conn, ids, status=status, actor=actor, note=note))


def retest_open(engine: Engine, config: HubConfig, actor: str) -> list[RetryOutcome]:
    """The periodic re-test: retry every open exception whose reason can be re-tested unattended."""
    ids = [
        row["id"]
        for reason in RETESTED_REASONS
        for row in list_exceptions(engine, ExceptionFilter(reason=reason))
    ]
    return retry_exceptions(
        engine, config, ids, actor, note="periodic re-test", apply_channel_version=False, log_still_open=False
    )


def retry_exceptions(
    engine: Engine,
    config: HubConfig,
    ids: Sequence[int],
    actor: str,
    note: str | None = None,
    *,
    apply_channel_version: bool = True,
    log_still_open: bool = True,
) -> list[RetryOutcome]:
    """Retry these exceptions (see the module docstring); each gets a logged ``retry`` and an outcome
    (the periodic re-test logs only what changed, not every unchanged half hour)."""
    rows = list_exceptions(engine, ExceptionFilter(status=None, ids=tuple(sorted(set(ids)))))
    problems: dict[int, str] = {}  # why a retry could not even be attempted, by exception id
    by_handler: dict[tuple[str, str | None], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        if row["status"] == "open":
            by_handler[(_handler_of(row["reason"]), row["channel"])].append(row)
    for (handler, channel), group in sorted(
        by_handler.items(), key=lambda item: (item[0][0], item[0][1] or "")
    ):
        try:
            problems.update(HANDLERS[handler](engine, config, channel, group, apply_channel_version) or {})
        except RETRY_ERRORS as err:  # the channel is unreachable, not configured, ...: still open, and why
            problems.update({row["id"]: f"retry failed: {type(err).__name__}: {err}" for row in group})
    after = {row["id"]: row for row in list_exceptions(engine, ExceptionFilter(status=None, ids=tuple(ids)))}
    outcomes = []
    with engine.begin() as conn:
        for row in rows:
            now = after[row["id"]]
            if row["status"] != "open":
                outcome = RetryOutcome(row["id"], "not_open", f"already {row['status']}")
            elif now["status"] != "open":
                outcome = RetryOutcome(row["id"], "resolved", now["note"] or "resolved")
            else:
                outcome = RetryOutcome(row["id"], "still_open", problems.get(row["id"]) or now["detail"])
            if log_still_open or outcome.status != "still_open":
                queue.log_action(conn, row["id"], "retry", actor, note, f"{outcome.status}: {outcome.detail}")
            outcomes.append(outcome)
    log.info("retry by %s: %s", actor, ", ".join(f"#{o.exception_id} {o.status}" for o in outcomes) or "none")
    return outcomes


def _payload(engine: Engine, exception_id: int) -> Any:
    """The raw payload kept with an exception (None when none was)."""
    with engine.connect() as conn:
        found = queue.get(conn, exception_id)
    return None if found is None else found["payload"]


Handler = Callable[[Engine, HubConfig, str | None, list[dict[str, Any]], bool], dict[int, str] | None]


def _handler_of(reason: str) -> str:
    for name, reasons in (
        ("attention", ATTENTION_REASONS),
        ("landing", LANDING_REASONS),
        ("mismatch", MISMATCH_REASONS),
    ):
        if reason in reasons:
            return name
    return reason if reason in HANDLERS else "manual"


def _retry_attention(engine: Engine, config: HubConfig, channel: str | None, group, _apply: bool) -> None:
    external_ids = sorted({row["external_id"] for row in group if row["external_id"]})
    with engine.begin() as conn:
        order_ids = list(
            conn.execute(
                select(orders.c.id)
                .join(channels, channels.c.id == orders.c.channel_id)
                .where(channels.c.code == channel, orders.c.external_id.in_(external_ids))
                .order_by(orders.c.id)
                .with_for_update()
            ).scalars()
        )
        reevaluate_orders(conn, channel, order_ids)


def _retry_landing(
    engine: Engine, config: HubConfig, channel: str | None, group, _apply: bool
) -> dict[int, str]:
    channel_config = config.channel(channel)
    platform = get_platform(channel_config.platform)
    problems, landed, rejected = {}, [], []
    for row in group:
        found = _payload(engine, row["id"])
        if found is None:
            problems[row["id"]] = "no raw payload was kept for this exception: nothing to retry"
            continue
        prepared = platform.prepare(found, channel_config)
        if isinstance(prepared, Skipped):  # queued before the mapping knew it (a checkout draft)
            with engine.begin() as conn:
                note = f"not an order, nothing to land: {prepared.detail}"
                queue.close(conn, row["id"], status="resolved", actor=queue.AUTO_ACTOR, note=note)
            continue
        (landed if isinstance(prepared, Landed) else rejected).append(prepared)
    if landed or rejected:
        ingest_orders(engine, channel, landed, rejected)
    return problems


def _retry_mismatch(
    engine: Engine, config: HubConfig, channel: str | None, group, apply: bool
) -> dict[int, str]:
    """Fetch each order from the channel again: re-applied over the warehouse's row when a person asked
    (``apply``), compared otherwise; the exception closes once money and status agree."""
    from channelhub.reconcile import order_differences

    channel_config = config.channel(channel)
    platform = get_platform(channel_config.platform)
    connector = channel_connector(channel_config, engine=engine)
    problems = {}
    for row in group:
        prepared = platform.prepare(connector.get_order(row["external_id"]), channel_config)
        if isinstance(prepared, Skipped):
            problems[row["id"]] = f"the channel holds no order under this id now: {prepared.detail}"
            continue
        if not isinstance(prepared, Landed):
            problems[row["id"]] = f"the channel's order does not map: {prepared.reason}: {prepared.detail}"
            continue
        if apply:
            with engine.begin() as conn:
                forget_versions(conn, channel, [row["external_id"]])
            ingest_orders(engine, channel, [prepared])
        with engine.begin() as conn:
            differences = order_differences(conn, channel, prepared.canonical)
            if differences:
                problems[row["id"]] = f"the warehouse still differs from the channel: {differences}"
            else:
                how = "re-applied the channel's version" if apply else "the channel's version has landed"
                queue.close(
                    conn, row["id"], status="resolved", actor=queue.AUTO_ACTOR, note=f"{how}: they agree"
                )
    return problems


def _retry_push(
    engine: Engine, config: HubConfig, channel: str | None, group, _apply: bool
) -> dict[int, str]:
    from channelhub.shipment_push import push_shipments
    from channelhub.stock_push import push_stock

    channel_config = config.channel(channel)
    order_ids = sorted({row["external_id"] for row in group if row["external_id"]})
    if order_ids:
        with engine.begin() as conn:
            failed = (
                select(shipments.c.id)
                .join(orders, orders.c.id == shipments.c.order_id)
                .join(channels, channels.c.id == orders.c.channel_id)
                .where(
                    channels.c.code == channel,
                    orders.c.external_id.in_(order_ids),
                    shipments.c.push_status == "failed",
                )
            )
            conn.execute(update(shipments).where(shipments.c.id.in_(failed)).values(push_status="pending"))
        push_shipments(engine, channel_config)
        with engine.begin() as conn:
            for row in group:
                if row["external_id"] and not _unpushed(conn, channel, row["external_id"]):
                    queue.close(
                        conn,
                        row["id"],
                        status="resolved",
                        actor=queue.AUTO_ACTOR,
                        note="pushed again: accepted",
                    )
    if any(row["sku"] and not row["external_id"] for row in group):
        push_stock(engine, channel_config)  # a listing whose push was refused is still due: pushed again
    return {}


def _unpushed(conn, channel: str, external_id: str) -> int:
    return (
        conn.execute(
            select(shipments.c.id)
            .join(orders, orders.c.id == shipments.c.order_id)
            .join(channels, channels.c.id == orders.c.channel_id)
            .where(
                channels.c.code == channel,
                orders.c.external_id == external_id,
                shipments.c.push_status != "pushed",
            )
            .limit(1)
        ).scalar()
        is not None
    )


def _retry_import_rows(
    engine: Engine, config: HubConfig, channel: str | None, group, _apply: bool
) -> dict[int, str]:
    from canonical.store_files import TIMEZONE_KEY
    from warehouse.store_imports import import_text

    problems = {}
    for row in group:
        raw = _payload(engine, row["id"])
        if not isinstance(raw, dict) or raw.get("kind") not in KINDS:
            problems[row["id"]] = "the kept row does not say which kind of file it came from"
            continue
        fields = {k: v for k, v in raw.items() if k != "kind"}
        timezone = fields.pop(TIMEZONE_KEY, None)  # the zone its file was read in (a drop folder's)
        text_ = io.StringIO()
        writer = csv.DictWriter(text_, fieldnames=list(fields))
        writer.writeheader()
        writer.writerow(fields)
        source = (row["detail"] or "").split(":", 1)[0] or "retry"
        report = import_text(
            engine,
            raw["kind"],
            text_.getvalue(),
            file=f"exception #{row['id']}",
            source=source,
            timezone=timezone,
        )
        if report.rejected:
            problems[row["id"]] = f"still refused: {report.rejected[0].reason}"
    return problems


def _retry_ledger(
    engine: Engine, config: HubConfig, channel: str | None, group, _apply: bool
) -> dict[int, str]:
    with engine.begin() as conn:
        drifting = {drift.sku for drift in ledger_drift(conn)}
        for row in group:
            if row["sku"] not in drifting:
                queue.close(
                    conn,
                    row["id"],
                    status="resolved",
                    actor=queue.AUTO_ACTOR,
                    note="levels equal the ledger now",
                )
    return {}


def _manual(engine: Engine, config: HubConfig, channel: str | None, group, _apply: bool) -> dict[int, str]:
    return {
        row["id"]: f"no automatic retry for {row['reason']}: fix the cause, then resolve or ignore it"
        for row in group
    }


HANDLERS: dict[str, Handler] = {
    "attention": _retry_attention,
    "landing": _retry_landing,
    "mismatch": _retry_mismatch,
    "push_failed": _retry_push,
    "bad_import_row": _retry_import_rows,
    "ledger_drift": _retry_ledger,
    "manual": _manual,
}
