"""Store namespaces: where each version's bytes live, and where each lease protects them.

Revision ID: 0003
Revises: 0002

`versions.namespace` and `leases.namespace`: '' for the shared namespace (`objects/`,
`manifests/`), else the private project whose `projects/<name>/` holds the bytes
(docs/ACCESS.md). Every version and lease that exists already is shared: that is where
cairn stored everything before this revision.

On PostgreSQL the new columns fall under the tables' existing grants (table privileges
cover every column) and row-level security policies (which decide per row); the only
change there is that a version's namespace, like its collection, never changes.
Downgrading forgets which versions live in a private namespace: a cairn that old looks
for their bytes in `objects/`.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    for table in ("versions", "leases"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(
                sa.Column("namespace", sa.String(128), nullable=False, server_default="")
            )
    if op.get_bind().dialect.name == "postgresql":
        _keep_keys_of_versions("'collection_id', 'namespace'")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _keep_keys_of_versions("'collection_id'")
    for table in ("leases", "versions"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("namespace")


def _keep_keys_of_versions(columns: str) -> None:
    """Re-create the 0002 trigger refusing UPDATEs of `columns` of a version row."""
    name = op.get_bind().exec_driver_sql("SELECT current_schema()").scalar_one()
    s = '"' + str(name).replace('"', '""') + '"'
    op.execute(f"DROP TRIGGER IF EXISTS cairn_keep_keys ON {s}.versions")
    op.execute(
        f"CREATE TRIGGER cairn_keep_keys BEFORE UPDATE ON {s}.versions "
        f"FOR EACH ROW EXECUTE FUNCTION {s}.cairn_keep_keys({columns})"
    )
