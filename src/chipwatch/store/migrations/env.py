"""Alembic environment: run migrations on the connection chipwatch hands over."""

from alembic import context

from chipwatch.store.models import Base
from chipwatch.store.search import include_name

connection = context.config.attributes.get("connection")
if connection is None:  # run from the alembic command line
    from sqlalchemy import create_engine

    connection = create_engine(context.config.get_main_option("sqlalchemy.url") or "").connect()

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=True,
    include_name=include_name,
)
with context.begin_transaction():
    context.run_migrations()
