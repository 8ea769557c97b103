"""stories: story_members (article -> story, with its grouping vector and anchors)

Revision ID: 0006_stories
Revises: 0005_review
Create Date: 2026-12-01 21:50:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_stories"
down_revision = "0005_review"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain types only (Integer, LargeBinary, JSON, DateTime): the same on SQLite and PostgreSQL.
    op.create_table(
        "story_members",
        sa.Column("article_id", sa.Integer(), nullable=False),
        sa.Column("story_id", sa.Integer(), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
        sa.Column("anchors", sa.JSON(), nullable=False),
        sa.Column("grouped_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["article_id"], ["articles.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("article_id"),
    )
    with op.batch_alter_table("story_members", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_story_members_story_id"), ["story_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("story_members", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_story_members_story_id"))
    op.drop_table("story_members")
