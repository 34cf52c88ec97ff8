"""Where reconciliation runs keep what they checked, found, repaired and left for a person."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from warehouse.catalog import channel_id_of
from warehouse.models import channels, reconciliation_findings, reconciliation_runs


@dataclass(frozen=True, slots=True)
class Finding:
    check_name: str  # orders | shipments | stock | ledger
    kind: str  # missing_order, stale_order, amount_mismatch, status_mismatch, lost_shipment, stock_drift, ...
    subject: str
    detail: str
    outcome: str  # repaired | left_for_person | repair_failed
    exception_id: int | None = None


def start_run(
    conn: Connection, channel: str, depth: str, window_start: datetime, window_end: datetime
) -> int:
    return conn.execute(
        insert(reconciliation_runs)
        .values(
            channel_id=channel_id_of(conn, channel),
            depth=depth,
            window_start=window_start,
            window_end=window_end,
        )
        .returning(reconciliation_runs.c.id)
    ).scalar_one()


def finish_run(
    conn: Connection, run_id: int, checked: dict[str, int], findings: list[Finding], summary: str
) -> None:
    if findings:
        conn.execute(
            insert(reconciliation_findings),
            [
                {
                    "run_id": run_id,
                    "check_name": f.check_name,
                    "kind": f.kind,
                    "subject": f.subject,
                    "detail": f.detail[:4000],
                    "outcome": f.outcome,
                    "exception_id": f.exception_id,
                }
                for f in findings
            ],
        )
    conn.execute(
        update(reconciliation_runs)
        .where(reconciliation_runs.c.id == run_id)
        .values(finished_at=func.now(), checked=json.loads(json.dumps(checked)), summary=summary)
    )


def latest_findings(conn: Connection, limit: int = 50) -> list[dict[str, Any]]:
    """The newest findings first: run_id, channel, depth, started_at, check_name, kind, subject, detail,
    outcome, exception_id."""
    query = (
        select(
            reconciliation_runs.c.id.label("run_id"),
            channels.c.code.label("channel"),
            reconciliation_runs.c.depth,
            reconciliation_runs.c.started_at,
            reconciliation_findings.c.check_name,
            reconciliation_findings.c.kind,
            reconciliation_findings.c.subject,
            reconciliation_findings.c.detail,
            reconciliation_findings.c.outcome,
            reconciliation_findings.c.exception_id,
        )
        .join(reconciliation_runs, reconciliation_runs.c.id == reconciliation_findings.c.run_id)
        .join(channels, channels.c.id == reconciliation_runs.c.channel_id)
        .order_by(reconciliation_findings.c.id.desc())
        .limit(limit)
    )
    return [dict(row._mapping) for row in conn.execute(query)]


def latest_runs(conn: Connection, limit: int = 20) -> list[dict[str, Any]]:
    """The newest runs first, with what they checked and their one-line summary."""
    query = (
        select(channels.c.code.label("channel"), reconciliation_runs)
        .join(channels, channels.c.id == reconciliation_runs.c.channel_id)
        .order_by(reconciliation_runs.c.id.desc())
        .limit(limit)
    )
    return [dict(row._mapping) for row in conn.execute(query)]
