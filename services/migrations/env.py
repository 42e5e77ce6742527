"""Alembic environment: runs the migrations on the connection `ledger migrate` opened."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from services.settings import get_settings

connection = context.config.attributes.get("connection")
if connection is not None:
    context.configure(connection=connection, transactional_ddl=True)
    with context.begin_transaction():
        context.run_migrations()
else:  # run by the alembic CLI
    engine = create_engine(get_settings().sqlalchemy_url)
    with engine.connect() as conn:
        context.configure(connection=conn, transactional_ddl=True)
        with context.begin_transaction():
            context.run_migrations()
