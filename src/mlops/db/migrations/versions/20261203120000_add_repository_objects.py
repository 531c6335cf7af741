"""Add ml_repository_objects: what `mlops apply` last applied of the feature repository's views,
schedule tasks and models (their definition and its fingerprint), so `mlops plan` can say what
a change of the repository adds, changes or retires. Removed objects are retired, not deleted.

Revision ID: 20261203120000
Revises: 20261127130000
Create Date: 2026-12-03 12:00:00
"""

import sqlalchemy as sa
from alembic import op

from mlops.db.types import Timestamp

revision = "20261203120000"
down_revision = "20261127130000"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ml_repository_objects",
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("job", sa.String(32)),
        sa.Column("definition", sa.Text, nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("applied_at", Timestamp, nullable=False),
        # When apply last changed the definition (None: as first applied). Models trained
        # before it were trained from an older definition: retrain them.
        sa.Column("changed_at", Timestamp),
        sa.Column("retired_at", Timestamp),
    )


def downgrade() -> None:
    op.drop_table("ml_repository_objects")
