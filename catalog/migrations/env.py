"""Alembic environment: reelvault always hands over an open connection.

Migrations are run by :func:`catalog.db.upgrade`, never from an ini file, so the
catalog URL (and any password in it) is not written anywhere.
"""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

import catalog.models  # noqa: F401  (registers the tables on the metadata)
from catalog.search_schema import outside_the_models

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=SQLModel.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
    include_name=outside_the_models,  # the search index is made by hand, per database
)
with context.begin_transaction():
    context.run_migrations()
