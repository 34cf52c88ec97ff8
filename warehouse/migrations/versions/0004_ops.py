"""Ops: the exception queue's audit trail, reconciliation runs and findings, open alerts.

Revision ID: 0004_ops
Revises: 0003_stock_push
Create Date: 2026-11-24

Written by hand; ``warehouse/models.py`` declares the same schema (the schema test compares them).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0004_ops"
down_revision: str | Sequence[str] | None = "0003_stock_push"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)


def _id() -> sa.Column:
    return sa.Column("id", sa.BigInteger, sa.Identity(always=False), nullable=False)


def _now(name: str) -> sa.Column:
    return sa.Column(name, TZ, nullable=False, server_default=sa.func.now())


def upgrade() -> None:
    op.create_table(
        "exception_actions",
        _id(),
        sa.Column("exception_id", sa.BigInteger, nullable=False),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("note", sa.Text),
        sa.Column("outcome", sa.Text, nullable=False, server_default=""),
        _now("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_exception_actions"),
        sa.ForeignKeyConstraint(
            ["exception_id"], ["exceptions.id"], name="fk_exception_actions_exception_id_exceptions"
        ),
        sa.CheckConstraint(
            "action IN ('retry', 'resolve', 'ignore', 'note', 'auto_resolve')",
            name=op.f("ck_exception_actions_action"),
        ),
    )
    op.create_index("ix_exception_actions_exception_id", "exception_actions", ["exception_id"])

    op.create_table(
        "reconciliation_runs",
        _id(),
        sa.Column("channel_id", sa.BigInteger, nullable=False),
        sa.Column("depth", sa.Text, nullable=False),
        sa.Column("window_start", TZ, nullable=False),
        sa.Column("window_end", TZ, nullable=False),
        _now("started_at"),
        sa.Column("finished_at", TZ),
        sa.Column("checked", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("summary", sa.Text, nullable=False, server_default=""),
        sa.PrimaryKeyConstraint("id", name="pk_reconciliation_runs"),
        sa.ForeignKeyConstraint(
            ["channel_id"], ["channels.id"], name="fk_reconciliation_runs_channel_id_channels"
        ),
        sa.CheckConstraint("depth IN ('light', 'deep')", name=op.f("ck_reconciliation_runs_depth")),
    )
    op.create_index(
        "ix_reconciliation_runs_channel_id_started_at", "reconciliation_runs", ["channel_id", "started_at"]
    )

    op.create_table(
        "reconciliation_findings",
        _id(),
        sa.Column("run_id", sa.BigInteger, nullable=False),
        sa.Column("check_name", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("outcome", sa.Text, nullable=False),
        sa.Column("exception_id", sa.BigInteger),
        _now("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_reconciliation_findings"),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["reconciliation_runs.id"],
            name="fk_reconciliation_findings_run_id_reconciliation_runs",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["exception_id"], ["exceptions.id"], name="fk_reconciliation_findings_exception_id_exceptions"
        ),
        sa.CheckConstraint(
            "outcome IN ('repaired', 'left_for_person', 'repair_failed')",
            name=op.f("ck_reconciliation_findings_outcome"),
        ),
    )
    op.create_index("ix_reconciliation_findings_run_id", "reconciliation_findings", ["run_id"])

    op.create_table(
        "open_alerts",
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        _now("opened_at"),
        sa.PrimaryKeyConstraint("key", name="pk_open_alerts"),
    )


def downgrade() -> None:
    op.drop_table("open_alerts")
    op.drop_table("reconciliation_findings")
    op.drop_table("reconciliation_runs")
    op.drop_table("exception_actions")
