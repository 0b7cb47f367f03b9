"""Initial catalog schema.

Revision ID: 0001
Revises:

The tables exactly as revision 0001 created them, spelled out: later revisions change
schema.py, and a database created at 0001 must look the same whichever cairn made it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None

DIGEST = sa.String(64)
WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "projects",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(128), nullable=False, unique=True),
        sa.Column("visibility", sa.String(16), nullable=False, server_default="private"),
        sa.Column("created_at", WHEN, nullable=False),
    )
    op.create_table(
        "collections",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("type", sa.String(128), nullable=False),
        sa.Column("next_index", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", WHEN, nullable=False),
        sa.UniqueConstraint("project_id", "name", name="uq_collection_name"),
    )
    op.create_table(
        "manifests",
        sa.Column("digest", DIGEST, primary_key=True),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("file_count", sa.Integer, nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
    )
    op.create_table(
        "runs",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), nullable=False),
        sa.Column("name", sa.String(256), nullable=True),
        sa.Column("job_type", sa.String(128), nullable=True),
        sa.Column("group_name", sa.String(256), nullable=True),
        sa.Column("kind", sa.String(32), nullable=False, server_default="manual"),
        sa.Column("attributes", sa.JSON, nullable=False),
        sa.Column("state", sa.String(16), nullable=False, server_default="running"),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("finished_at", WHEN, nullable=True),
    )
    op.create_table(
        "versions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("collection_id", sa.Integer, sa.ForeignKey("collections.id"), nullable=False),
        sa.Column("idx", sa.Integer, nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("digest", DIGEST, nullable=True),
        sa.Column("description", sa.Text, nullable=True),
        sa.Column("metadata", sa.JSON, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("file_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("distributed_id", sa.String(256), nullable=True),
        sa.Column("run_id", sa.String(64), sa.ForeignKey("runs.id"), nullable=True),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("committed_at", WHEN, nullable=True),
        sa.UniqueConstraint("collection_id", "idx", name="uq_version_index"),
        sa.UniqueConstraint("collection_id", "distributed_id", name="uq_version_distributed"),
    )
    op.create_index("ix_versions_digest", "versions", ["collection_id", "digest"])
    op.create_table(
        "aliases",
        sa.Column("collection_id", sa.Integer, sa.ForeignKey("collections.id"), primary_key=True),
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("version_id", sa.Integer, sa.ForeignKey("versions.id"), nullable=False),
    )
    op.create_table(
        "usages",
        sa.Column("run_id", sa.String(64), sa.ForeignKey("runs.id"), primary_key=True),
        sa.Column("version_id", sa.Integer, sa.ForeignKey("versions.id"), primary_key=True),
        sa.Column("created_at", WHEN, nullable=False),
    )
    op.create_index("ix_usages_version", "usages", ["version_id"])
    op.create_table(
        "parts",
        sa.Column("version_id", sa.Integer, sa.ForeignKey("versions.id"), primary_key=True),
        sa.Column("writer_id", sa.String(256), primary_key=True),
        sa.Column("path", sa.Text, primary_key=True),
        sa.Column("entry", sa.JSON, nullable=False),
        sa.Column("digest", DIGEST, nullable=True),
        sa.Column("run_id", sa.String(64), sa.ForeignKey("runs.id"), nullable=True),
        sa.Column("created_at", WHEN, nullable=False),
    )
    op.create_index("ix_parts_path", "parts", ["version_id", "path"])
    op.create_table(
        "leases",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("manifest_digest", DIGEST, nullable=True),
        sa.Column("expires_at", WHEN, nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
    )
    op.create_table(
        "lease_objects",
        sa.Column(
            "lease_id",
            sa.String(64),
            sa.ForeignKey("leases.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("digest", DIGEST, primary_key=True),
    )


def downgrade() -> None:
    for table in (
        "lease_objects",
        "leases",
        "parts",
        "usages",
        "aliases",
        "versions",
        "runs",
        "manifests",
        "collections",
        "projects",
    ):
        op.drop_table(table)
