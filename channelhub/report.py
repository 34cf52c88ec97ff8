"""Human-readable tables of the warehouse's state (demo summary, ``channelhub summary``)."""

from __future__ import annotations

from sqlalchemy import Engine

from warehouse.reconciliation_log import latest_runs
from warehouse.summary import summary
from warehouse.webhook_inbox import inbox_counts


def render_summary(rows: list[dict]) -> str:
    headers = [
        "channel",
        "platform",
        "orders landed",
        "units reserved",
        "shipments pushed",
        "listings pushed",
        "exceptions (open, by reason)",
    ]
    table = [
        [
            row["channel"],
            row["platform"],
            str(row["orders"]),
            str(row["reserved_units"]),
            f"{row['shipments_pushed']}"
            + (f" ({row['shipments_pending']} pending)" if row["shipments_pending"] else ""),
            str(row["listings_pushed"]),
            ", ".join(f"{reason}={n}" for reason, n in sorted(row["exceptions"].items())) or "none",
        ]
        for row in rows
    ]
    widths = [max(len(h), *(len(r[i]) for r in table)) if table else len(h) for i, h in enumerate(headers)]
    lines = [" | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("-+-".join("-" * w for w in widths))
    lines += [" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in table]
    return "\n".join(lines)


def print_summary(engine: Engine) -> list[dict]:
    with engine.connect() as conn:
        rows = summary(conn)
        inbox = inbox_counts(conn)
    print(render_summary(rows))
    for channel, counts in inbox.items():  # only channels that received webhooks
        print(f"webhooks {channel}: " + " ".join(f"{status}={n}" for status, n in counts.items()))
    return rows


def print_reconciliation(engine: Engine) -> None:
    """The newest reconciliation run of each channel, one line each."""
    with engine.connect() as conn:
        runs = latest_runs(conn, limit=50)
    newest: dict[str, dict] = {}
    for run in runs:
        newest.setdefault(run["channel"], run)
    for channel, run in sorted(newest.items()):
        checked = ", ".join(
            f"{k} {v}" for k, v in run["checked"].items() if k in ("orders", "shipments", "stock")
        )
        when = f"{run['depth']}, {run['started_at']:%H:%M} UTC"
        print(f"reconcile {channel} ({when}): checked {checked}; {run['summary']}")
