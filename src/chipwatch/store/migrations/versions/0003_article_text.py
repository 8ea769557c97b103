"""sources.full_text -> sources.article_text; articles.text_kind; fetched_pages

Revision ID: 0003_article_text
Revises: 0002
Create Date: 2026-12-01 21:30:00

`full_text = true` becomes `article_text = 'fetch'`; false becomes NULL (the default of
the source's kind: "fetch" for news-search feeds, "feed" otherwise). Portable: plain
ALTER TABLE on PostgreSQL, a table copy (batch mode) on SQLite.
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_article_text"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sources", schema=None) as batch_op:
        batch_op.add_column(sa.Column("article_text", sa.String(length=8), nullable=True))
    sources = sa.table("sources", sa.column("full_text", sa.Boolean()), sa.column("article_text"))
    op.execute(
        sources.update().where(sources.c.full_text == sa.true()).values(article_text="fetch")
    )
    with op.batch_alter_table("sources", schema=None) as batch_op:
        batch_op.drop_column("full_text")

    with op.batch_alter_table("articles", schema=None) as batch_op:
        batch_op.add_column(sa.Column("text_kind", sa.String(length=16), nullable=True))

    op.create_table(
        "fetched_pages",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("target_url", sa.String(length=2048), nullable=True),
        sa.Column("verdict", sa.String(length=16), nullable=False),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("fetched_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    with op.batch_alter_table("fetched_pages", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_fetched_pages_fetched_at"), ["fetched_at"], unique=False
        )


def downgrade() -> None:
    op.drop_table("fetched_pages")
    with op.batch_alter_table("articles", schema=None) as batch_op:
        batch_op.drop_column("text_kind")
    with op.batch_alter_table("sources", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("full_text", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    sources = sa.table("sources", sa.column("full_text", sa.Boolean()), sa.column("article_text"))
    op.execute(sources.update().where(sources.c.article_text == "fetch").values(full_text=True))
    with op.batch_alter_table("sources", schema=None) as batch_op:
        batch_op.drop_column("article_text")
