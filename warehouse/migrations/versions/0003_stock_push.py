"""Stock out to channels: bundles (SKU components), what each listing was last pushed, the push log.

Revision ID: 0003_stock_push
Revises: 0002_store_imports
Create Date: 2026-11-24

Written by hand; ``warehouse/models.py`` declares the same schema (the schema test compares them).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_stock_push"
down_revision: str | Sequence[str] | None = "0002_store_imports"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("channel_listings", sa.Column("pushed_quantity", sa.Integer))
    op.add_column("channel_listings", sa.Column("pushed_at", TZ))

    op.create_table(
        "sku_components",
        sa.Column("bundle_sku_id", sa.BigInteger, nullable=False),
        sa.Column("component_sku_id", sa.BigInteger, nullable=False),
        sa.Column("quantity", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("bundle_sku_id", "component_sku_id", name="pk_sku_components"),
        sa.ForeignKeyConstraint(["bundle_sku_id"], ["skus.id"], name="fk_sku_components_bundle_sku_id_skus"),
        sa.ForeignKeyConstraint(
            ["component_sku_id"], ["skus.id"], name="fk_sku_components_component_sku_id_skus"
        ),
        sa.CheckConstraint("quantity > 0", name=op.f("ck_sku_components_positive_quantity")),
        sa.CheckConstraint("bundle_sku_id <> component_sku_id", name=op.f("ck_sku_components_not_itself")),
    )

    op.create_table(
        "stock_push_log",
        sa.Column("id", sa.BigInteger, sa.Identity(always=False), nullable=False),
        sa.Column("listing_id", sa.BigInteger, nullable=False),
        sa.Column("quantity", sa.Integer, nullable=False),
        sa.Column("previous_quantity", sa.Integer),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("detail", sa.Text, nullable=False, server_default=""),
        sa.Column("created_at", TZ, nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("id", name="pk_stock_push_log"),
        sa.ForeignKeyConstraint(
            ["listing_id"], ["channel_listings.id"], name="fk_stock_push_log_listing_id_channel_listings"
        ),
        sa.CheckConstraint(
            "status IN ('pushed', 'already_done', 'rejected', 'failed')",
            name=op.f("ck_stock_push_log_known_status"),
        ),
    )
    op.create_index("ix_stock_push_log_listing_id_created_at", "stock_push_log", ["listing_id", "created_at"])


def downgrade() -> None:
    op.drop_table("stock_push_log")
    op.drop_table("sku_components")
    op.drop_column("channel_listings", "pushed_at")
    op.drop_column("channel_listings", "pushed_quantity")
