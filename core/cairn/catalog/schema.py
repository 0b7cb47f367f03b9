"""Catalog tables (SQLAlchemy Core). docs/FORMAT.md describes each one; Alembic
migrations under cairn/migrations create and upgrade them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Select,
    String,
    Table,
    Text,
    UniqueConstraint,
    select,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()

DIGEST = String(64)
#: a JSON object users search (docs/SEARCH.md): jsonb on PostgreSQL (revision 0005), for
#: its typed operators and GIN indexes; text checked by JSON1 on SQLite
DOCUMENT = JSON().with_variant(JSONB(), "postgresql")

projects = Table(
    "projects",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("visibility", String(16), nullable=False, server_default="private"),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # the database role that created it (PostgreSQL: current_user; None on SQLite)
    Column("created_by", String(128), nullable=True),
)

# who may do what in a project (docs/ACCESS.md); enforced on PostgreSQL by row-level
# security, recorded on SQLite so a repository moved to PostgreSQL keeps it
members = Table(
    "members",
    metadata,
    Column("project_id", Integer, ForeignKey("projects.id"), primary_key=True),
    Column("principal", String(128), primary_key=True),  # a database role: user or group
    Column("role", String(16), nullable=False),
    Column("granted_by", String(128), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    CheckConstraint("role IN ('reader', 'writer', 'admin')", name="ck_members_role"),
)

collections = Table(
    "collections",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("project_id", Integer, ForeignKey("projects.id"), nullable=False),
    Column("name", String(128), nullable=False),
    Column("type", String(128), nullable=False),
    # the next version index; bumped under a row lock so numbers stay gap-free
    Column("next_index", Integer, nullable=False, server_default="0"),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("project_id", "name", name="uq_collection_name"),
)

# one row per project that holds the manifest: the project is the access boundary, so
# identical manifests of two projects are two rows (docs/ACCESS.md)
manifests = Table(
    "manifests",
    metadata,
    Column("project_id", Integer, ForeignKey("projects.id"), primary_key=True),
    Column("digest", DIGEST, primary_key=True),
    Column("body", LargeBinary, nullable=False),  # zlib-compressed canonical JSON
    Column("size", BigInteger, nullable=False),
    Column("file_count", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

runs = Table(
    "runs",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("project_id", Integer, ForeignKey("projects.id"), nullable=False),
    Column("name", String(256), nullable=True),
    Column("job_type", String(128), nullable=True),
    Column("group_name", String(256), nullable=True),
    Column("kind", String(32), nullable=False, server_default="manual"),
    Column("attributes", DOCUMENT, nullable=False),
    Column("state", String(16), nullable=False, server_default="running"),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    # what the run was configured with, and the metrics it reported (`log_summary`)
    Column("config", DOCUMENT, nullable=False, server_default="{}"),
    Column("summary", DOCUMENT, nullable=False, server_default="{}"),
)
Index("ix_runs_created", runs.c.created_at, runs.c.id)
Index("ix_runs_group", runs.c.group_name)

versions = Table(
    "versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("collection_id", Integer, ForeignKey("collections.id"), nullable=False),
    Column("idx", Integer, nullable=True),  # None while PENDING
    Column("state", String(16), nullable=False),
    Column("digest", DIGEST, nullable=True),  # manifest digest; None while PENDING
    Column("description", Text, nullable=True),
    Column("metadata", DOCUMENT, nullable=False),
    Column("size", BigInteger, nullable=False, server_default="0"),
    Column("file_count", Integer, nullable=False, server_default="0"),
    Column("distributed_id", String(256), nullable=True),
    Column("run_id", String(64), ForeignKey("runs.id"), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("committed_at", DateTime(timezone=True), nullable=True),
    # the store namespace holding its bytes (docs/ACCESS.md): '' shared, else the private
    # project's name; fixed when the version is created (a distributed one: first upsert)
    Column("namespace", String(128), nullable=False, server_default=""),
    UniqueConstraint("collection_id", "idx", name="uq_version_index"),
    UniqueConstraint("collection_id", "distributed_id", name="uq_version_distributed"),
)
Index("ix_versions_digest", versions.c.collection_id, versions.c.digest)
Index("ix_versions_created", versions.c.created_at, versions.c.id)

aliases = Table(
    "aliases",
    metadata,
    Column("collection_id", Integer, ForeignKey("collections.id"), primary_key=True),
    Column("name", String(128), primary_key=True),
    Column("version_id", Integer, ForeignKey("versions.id"), nullable=False),
)

usages = Table(
    "usages",
    metadata,
    Column("run_id", String(64), ForeignKey("runs.id"), primary_key=True),
    Column("version_id", Integer, ForeignKey("versions.id"), primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
Index("ix_usages_version", usages.c.version_id)

parts = Table(
    "parts",
    metadata,
    Column("version_id", Integer, ForeignKey("versions.id"), primary_key=True),
    Column("writer_id", String(256), primary_key=True),
    Column("path", Text, primary_key=True),
    Column("entry", JSON, nullable=False),
    Column("digest", DIGEST, nullable=True),
    Column("run_id", String(64), ForeignKey("runs.id"), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
Index("ix_parts_path", parts.c.version_id, parts.c.path)

leases = Table(
    "leases",
    metadata,
    Column("id", String(64), primary_key=True),
    # a manifest whose objects the writer relies on (a draft's parent), if any
    Column("manifest_digest", DIGEST, nullable=True),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # the database role holding it (PostgreSQL: current_user); only it and gc see it
    Column("created_by", String(128), nullable=True),
    # the store namespace its objects (and manifest) are protected in
    Column("namespace", String(128), nullable=False, server_default=""),
)

# digests a lease protects in its namespace: objects, and the manifest about to be committed
lease_objects = Table(
    "lease_objects",
    metadata,
    Column("lease_id", String(64), ForeignKey("leases.id", ondelete="CASCADE"), primary_key=True),
    Column("digest", DIGEST, primary_key=True),
)

# where a packed object is (docs/FORMAT.md "Packs"): bytes [start, start + size) of the
# pack `pack` in store namespace `namespace`; one row per (namespace, object digest)
packed = Table(
    "packed",
    metadata,
    Column("namespace", String(128), primary_key=True),
    Column("digest", DIGEST, primary_key=True),
    Column("pack", DIGEST, nullable=False),
    Column("start", BigInteger, nullable=False),
    Column("size", BigInteger, nullable=False),
)
Index("ix_packed_pack", packed.c.namespace, packed.c.pack)

# PostgreSQL only: GIN indexes serving `metadata.k = v` style equality (`@>` containment)
for _table, _column in ((versions, "metadata"), (runs, "config"), (runs, "summary")):
    Index(
        f"ix_{_table.name}_{_column}",
        _table.c[_column],
        postgresql_using="gin",
        postgresql_ops={_column: "jsonb_path_ops"},
    ).ddl_if(dialect="postgresql")

# covers the question "which packs hold these digests" (revision 0006)
Index("ix_packed_digest_pack", packed.c.namespace, packed.c.digest, packed.c.pack)

# per store namespace, a counter bumped whenever an indexed object changes place (its
# `packed` row deleted or moved, by gc or a repair): a machine that remembers where a
# version's objects were trusts that memory only while the counter is unchanged
pack_epochs = Table(
    "pack_epochs",
    metadata,
    Column("namespace", String(128), primary_key=True),
    Column("epoch", BigInteger, nullable=False),
)

# objects `cairn verify` found bad in a store namespace: missing, corrupt, or in a pack that
# is gone or cut short. Writers treat them as absent and store a good copy over them; the
# row goes once a good copy is durable (docs/FORMAT.md "Damaged objects")
damaged = Table(
    "damaged",
    metadata,
    Column("namespace", String(128), primary_key=True),
    Column("digest", DIGEST, primary_key=True),
    Column("problem", String(16), nullable=False),  # 'missing' or 'corrupt'
    Column("found_at", DateTime(timezone=True), nullable=False),
    CheckConstraint("problem IN ('missing', 'corrupt')", name="ck_damaged_problem"),
)

# which repository this catalog belongs to (revision 0007): one row, `one` = 1. `id` is
# the repository id its store's config.json holds, NULL until the catalog is bound;
# `pending` while a binding has reached the catalog but not yet the store; `legacy` when
# the catalog already held versions when it was upgraded to 0007 (it may then adopt a
# store made before ids); `store_url` is where it was bound, for messages only
repository = Table(
    "repository",
    metadata,
    Column("one", Integer, primary_key=True),
    Column("id", String(36), nullable=True),
    Column("pending", Boolean, nullable=False),
    Column("legacy", Boolean, nullable=False),
    Column("store_url", Text, nullable=True),
    Column("bound_at", DateTime(timezone=True), nullable=True),
    CheckConstraint("one = 1", name="ck_repository_one"),
)

# retention policies (docs/RETENTION.md, revision 0008): one per project (collection_id
# NULL) and at most one per collection. NULL rules are off; durations in seconds;
# `keep_aliased` is null (off), true (any alias) or a list of alias names; `protect` is
# null (inherited: the project's, else 'production') or a list of alias names
retention_policies = Table(
    "retention_policies",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("project_id", Integer, ForeignKey("projects.id"), nullable=False),
    Column("collection_id", Integer, ForeignKey("collections.id"), nullable=True),
    Column("keep_last", Integer, nullable=True),
    Column("keep_younger", BigInteger, nullable=True),
    Column("keep_aliased", JSON, nullable=True),
    Column("keep_used", BigInteger, nullable=True),
    Column("protect", JSON, nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # the database role that declared it (PostgreSQL: current_user; None on SQLite)
    Column("updated_by", String(128), nullable=True),
    CheckConstraint("keep_last IS NULL OR keep_last >= 0", name="ck_retention_keep_last"),
    CheckConstraint(
        "(keep_younger IS NULL OR keep_younger >= 0) AND (keep_used IS NULL OR keep_used >= 0)",
        name="ck_retention_durations",
    ),
)
Index(
    "uq_retention_project",
    retention_policies.c.project_id,
    unique=True,
    sqlite_where=retention_policies.c.collection_id.is_(None),
    postgresql_where=retention_policies.c.collection_id.is_(None),
)
Index(
    "uq_retention_collection",
    retention_policies.c.collection_id,
    unique=True,
    sqlite_where=retention_policies.c.collection_id.is_not(None),
    postgresql_where=retention_policies.c.collection_id.is_not(None),
)


def version_query() -> Select[Any]:
    """Versions joined with their collection and project names."""
    return (
        select(
            versions,
            collections.c.name.label("collection"),
            collections.c.type,
            projects.c.name.label("project"),
        )
        .join(collections, collections.c.id == versions.c.collection_id)
        .join(projects, projects.c.id == collections.c.project_id)
    )
