"""Alembic environment: runs on the connection tunesmith hands over, or on a URL."""

from alembic import context
from sqlalchemy import create_engine

from tunesmith.store.tables import Base

config = context.config
target_metadata = Base.metadata

connection = config.attributes.get("connection")
if connection is not None:
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    url = config.get_main_option("sqlalchemy.url")
    assert url is not None, "alembic.ini or the caller sets sqlalchemy.url"
    with create_engine(url).connect() as conn:
        context.configure(connection=conn, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
