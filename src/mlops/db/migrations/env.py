"""Alembic environment: always driven from mlops.db.migrate with a live connection."""

from alembic import context

from mlops.db.migrate import VERSION_TABLE
from mlops.db.schema import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table=VERSION_TABLE,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
