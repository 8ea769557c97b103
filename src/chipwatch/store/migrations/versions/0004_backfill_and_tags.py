"""articles.backfill (first-poll history, never mailed) and sources.tags (OPML categories)

Revision ID: 0004
Revises: 0003_article_text
Create Date: 2026-12-01 21:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003_article_text"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "articles",
        sa.Column("backfill", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.add_column("sources", sa.Column("tags", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sources") as batch:
        batch.drop_column("tags")
    with op.batch_alter_table("articles") as batch:
        batch.drop_column("backfill")
