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
which name none of these columns.

PostgreSQL also gets cheaper read policies on the tables a search scans (`collections`,
`versions`, `aliases`, `runs`), with the same meaning. Revision 0002 called a SECURITY
DEFINER function per row (`cairn_collection_right(collection_id, current_user) >= 1`),
about 100 µs a row for a role other than the owner: 10 s to search 100,000 versions.
Now the readable projects (`cairn_right(id, current_user) >= 1`, one call per project)
are computed once per statement and each row is a hash lookup of its project (or of its
collection, through the readable projects). Writes keep their per-row checks.

Downgrading drops the new columns (their values are lost), turns jsonb back to json and
restores the 0002 read policies.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0005"
down_revision = "0004"

_DOCUMENTS = (("versions", "metadata"), ("runs", "attributes"))
# read policies: (table, the column tying a row to its project or collection, 0002's check)
_READ = (
    ("collections", "project_id", "{s}.cairn_right(project_id, current_user) >= 1"),
    ("runs", "project_id", "{s}.cairn_right(project_id, current_user) >= 1"),
    ("versions", "collection_id", "{s}.cairn_collection_right(collection_id, current_user) >= 1"),
    ("aliases", "collection_id", "{s}.cairn_collection_right(collection_id, current_user) >= 1"),
)
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
        s = _schema()
        for table, key, _ in _READ:
            _read_policy(s, table, _readable(s, key))


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        s = _schema()
        for table, _, check in _READ:
            _read_policy(s, table, check.replace("{s}", s))
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


def _schema() -> str:
    name = op.get_bind().exec_driver_sql("SELECT current_schema()").scalar_one()
    return '"' + str(name).replace('"', '""') + '"'


def _readable(s: str, key: str) -> str:
    """Rows whose project (`project_id`) or collection (`collection_id`) the role may read:
    uncorrelated subqueries, which PostgreSQL runs once per statement and hashes."""
    projects = f"SELECT p.id FROM {s}.projects p WHERE {s}.cairn_right(p.id, current_user) >= 1"
    if key == "project_id":
        return f"project_id IN ({projects})"
    return (
        f"collection_id IN (SELECT c.id FROM {s}.collections c WHERE c.project_id IN ({projects}))"
    )


def _read_policy(s: str, table: str, check: str) -> None:
    """Replace `table`'s SELECT policy; the catalog's administrators pass first, as in 0002."""
    op.execute(f"DROP POLICY cairn_read ON {s}.{table}")
    op.execute(
        f"CREATE POLICY cairn_read ON {s}.{table} FOR SELECT USING "
        f"(CASE WHEN {s}.cairn_is_admin(current_user) THEN true ELSE ({check}) END)"
    )
