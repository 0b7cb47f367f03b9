"""Search: run config and summary, jsonb documents, and the indexes searches use.

Revision ID: 0005
Revises: 0004

Every catalog: `runs.config` and `runs.summary` (JSON objects, empty for existing runs),
and indexes on `(created_at, id)` of versions and runs (the default newest-first order of
a search, paged) and on `runs.group_name` (the runs of a sweep).

PostgreSQL: the searched documents (`versions.metadata`, `runs.attributes`, `config`,
`summary`) become `jsonb`, whose operators compare typed values without re-parsing
text on every row, and `metadata`, `config` and `summary` get GIN indexes
(`jsonb_path_ops`) that serve equality as containment (`metadata @> '{"k": v}'`).
The new columns fall under the `runs` table's grants and row-level security policies,
which decide per row and name none of these columns; nothing about access changes.
Downgrading drops the new columns (their values are lost) and turns jsonb back to json.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0005"
down_revision = "0004"

_DOCUMENTS = (("versions", "metadata"), ("runs", "attributes"))
_GIN = (("versions", "metadata"), ("runs", "config"), ("runs", "summary"))


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    kind = JSONB() if postgres else sa.JSON()
    empty = sa.text("'{}'::jsonb") if postgres else sa.text("'{}'")
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("config", kind, nullable=False, server_default=empty))
        batch.add_column(sa.Column("summary", kind, nullable=False, server_default=empty))
    op.create_index("ix_versions_created", "versions", ["created_at", "id"])
    op.create_index("ix_runs_created", "runs", ["created_at", "id"])
    op.create_index("ix_runs_group", "runs", ["group_name"])
    if postgres:
        for table, column in _DOCUMENTS:
            op.execute(
                f"ALTER TABLE {table} ALTER COLUMN {column} TYPE jsonb USING {column}::jsonb"
            )
        for table, column in _GIN:
            op.create_index(
                f"ix_{table}_{column}",
                table,
                [column],
                postgresql_using="gin",
                postgresql_ops={column: "jsonb_path_ops"},
            )


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        for table, column in _GIN:
            op.drop_index(f"ix_{table}_{column}", table)
        for table, column in _DOCUMENTS:
            op.execute(f"ALTER TABLE {table} ALTER COLUMN {column} TYPE json USING {column}::json")
    op.drop_index("ix_runs_group", "runs")
    op.drop_index("ix_runs_created", "runs")
    op.drop_index("ix_versions_created", "versions")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("summary")
        batch.drop_column("config")
