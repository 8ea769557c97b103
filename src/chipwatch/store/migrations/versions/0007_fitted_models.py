"""fitted_models: the fitted classifier by fit key; host_slots: when each host may be
fetched next (per-host delay across workers)

Revision ID: 0007_fitted_models
Revises: 0006_stories
Create Date: 2026-12-02 01:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_fitted_models"
down_revision = "0006_stories"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "fitted_models",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("model", sa.LargeBinary(), nullable=False),
        sa.Column("fitted_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_table(
        "host_slots",
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("next_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("host"),
    )


def downgrade() -> None:
    op.drop_table("host_slots")
    op.drop_table("fitted_models")
