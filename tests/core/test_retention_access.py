"""Retention policies and access: who may read, declare and apply them (PostgreSQL row-level
security, revision 0008), and the migration that adds them on both catalogs."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.pool import NullPool

from cairn import Artifact, PermissionDenied, Repository

from .conftest import migrate_to
from .test_access import roles, setup_project, world  # noqa: F401  (fixtures)


def test_project_admins_declare_members_read_and_only_maintainers_retain(world):  # noqa: F811
    p = setup_project(world, "private")
    owner = world.repo("owner")
    owner.set_retention(p, keep_last=1)

    for who in ("writer", "reader"):
        assert world.repo(who).retention(p).keep_last == 1  # members read it
        with pytest.raises(PermissionDenied, match="may not administer project"):
            world.repo(who).set_retention(p, keep_last=0)
        with pytest.raises(PermissionDenied, match="may not administer project"):
            world.repo(who).remove_retention(p)
        with pytest.raises(PermissionDenied, match="may not run retain"):
            world.repo(who).retain(dry_run=True)
        assert world.cli(who, "retain", code=1).stderr.startswith("cairn: error: role")
    with pytest.raises(PermissionDenied):
        world.repo("outsider").retention(p)
    assert world.repo("outsider").retention_policies() == []  # rows it may not see

    owner.grant(p, world.roles["writer"], "admin")
    world.repo("writer").set_retention(f"{p}/data", keep_last=2, protect=["gold"])
    assert [x.scope for x in owner.retention_policies()] == [p, f"{p}/data"]
    # the owner applies it; BYPASSRLS maintainers may too
    report = world.repo("maint").retain(dry_run=True)
    # keep the newest two; `prod` is no protected alias here (gold is)
    assert [d.ref for d in report.deleted] == [f"{p}/data:v0"]
    assert owner.retain().deleted == report.deleted


def test_raw_sql_cannot_put_a_policy_on_another_projects_collection(world):  # noqa: F811
    mine = setup_project(world, "private", "mine")
    theirs = setup_project(world, "private", "theirs")
    owner = world.repo("owner")
    owner.grant(mine, world.roles["writer"], "admin")
    with owner.catalog.read() as conn:
        pid = conn.scalar(text("SELECT id FROM projects WHERE name = :n"), {"n": mine})
        cid = conn.scalar(
            text(
                "SELECT c.id FROM collections c JOIN projects p ON p.id = c.project_id "
                "WHERE p.name = :n"
            ),
            {"n": theirs},
        )
    with world.sql("writer").connect() as conn, pytest.raises(Exception, match="row-level"):
        conn.execute(
            text(
                "INSERT INTO retention_policies (project_id, collection_id, keep_last, "
                "updated_at) VALUES (:p, :c, 0, now())"
            ),
            {"p": pid, "c": cid},
        )


def test_the_migration_adds_and_drops_the_table(catalog_url, home):
    def tables() -> set[str]:
        engine = create_engine(catalog_url, poolclass=NullPool)
        try:
            return set(inspect(engine).get_table_names())
        finally:
            engine.dispose()

    home.mkdir(parents=True, exist_ok=True)
    migrate_to(catalog_url, "0006")
    assert "retention_policies" not in tables()
    migrate_to(catalog_url, "0008")
    assert "retention_policies" in tables()
    migrate_to(catalog_url, "0006", down=True)
    assert "retention_policies" not in tables()
    with Repository.open(catalog=catalog_url, home=str(home)) as repo:  # upgrades again
        art = Artifact("ds")
        with art.new_file("a.txt") as f:
            f.write("x")
        repo.log_artifact(art, project="p", aliases=["production"])
        repo.set_retention("p/ds", keep_last=0)
        assert repo.retention("p/ds").keep_last == 0
