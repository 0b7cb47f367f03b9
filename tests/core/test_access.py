"""Project access on PostgreSQL: private, public and open projects, enforced by the catalog.

Every test gets a fresh database owned by the `owner` login role, which runs the
migrations and so administers the catalog. `writer` and `reader` are members of the
project under test; `outsider` is nobody there. Each role connects as itself
(postgresql+psycopg://ROLE@host/db; the test server trusts loopback logins) and tries
every API operation and CLI command, and raw SQL, against what docs/ACCESS.md promises.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import servers
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool
from typer.testing import CliRunner

from cairn import Artifact, CairnError, NotFound, PermissionDenied, Repository
from cairn import lineage as graphs
from cairn.catalog import damaged, leases, packs
from cairn.catalog.schema import metadata
from cairn.cli import app
from cairn.engine.storeconfig import StoreConfig
from cairn.foundation.layout import pack_key

from .conftest import migrate_to, write

WHO = ("owner", "writer", "reader", "outsider")
VISIBILITIES = ("private", "public", "open")


def rights(visibility: str, who: str) -> set[str]:
    """What docs/ACCESS.md promises `who` on a project of `visibility`."""
    if who == "owner":
        return {"read", "write", "admin"}
    everyone = {"private": set(), "public": {"read"}, "open": {"read", "write"}}[visibility]
    granted = {"writer": {"read", "write"}, "reader": {"read"}, "outsider": set()}[who]
    return everyone | granted


# -- roles, databases and repositories -------------------------------------------------------


@pytest.fixture(scope="module")
def roles(postgres_url: str) -> Iterator[dict[str, str]]:
    """Login roles for this module (roles are server-wide: names carry a random suffix)."""
    suffix = uuid.uuid4().hex[:6]
    names = {who: f"{who}_{suffix}" for who in (*WHO, "maint")}
    names["team"] = f"team_{suffix}"
    for who, name in names.items():
        if who == "team":
            servers._admin_execute(postgres_url, f"CREATE ROLE {name} NOLOGIN")
        elif who == "maint":
            servers._admin_execute(postgres_url, f"CREATE ROLE {name} LOGIN BYPASSRLS")
        else:
            servers._admin_execute(postgres_url, f"CREATE ROLE {name} LOGIN")
    yield names
    for name in names.values():
        # a role still referenced somewhere stays: harmless on a throwaway server
        with contextlib.suppress(DBAPIError):
            servers._admin_execute(postgres_url, f"DROP ROLE IF EXISTS {name}")


@dataclass
class World:
    """One fresh catalog database and store, and a repository per role."""

    db_url: str
    roles: dict[str, str]
    tmp: Path
    repos: dict[str, Repository] = field(default_factory=dict)
    engines: list[Engine] = field(default_factory=list)

    @property
    def store(self) -> str:
        return str(self.tmp / "store")

    def url(self, who: str) -> str:
        role = self.roles[who]
        return make_url(self.db_url).set(username=role).render_as_string(hide_password=False)

    def repo(self, who: str) -> Repository:
        if who not in self.repos:
            self.repos[who] = Repository.open(
                catalog=self.url(who), store=self.store, home=str(self.tmp / who)
            )
        return self.repos[who]

    def sql(self, who: str) -> Engine:
        """A plain SQLAlchemy engine connected as `who`: raw SQL, no cairn in between."""
        engine = create_engine(self.url(who), poolclass=NullPool)
        self.engines.append(engine)
        return engine

    def cli(self, who: str, *args: str, code: int | None = None) -> Any:
        argv = ["--catalog", self.url(who), "--store", self.store, "--home", str(self.tmp / who)]
        result = CliRunner().invoke(app, [*argv, *args])
        if code is not None:
            assert result.exit_code == code, (args, result.stdout, result.stderr)
        return result

    def close(self) -> None:
        for r in self.repos.values():
            r.close()
        for e in self.engines:
            e.dispose()


@pytest.fixture
def world(fresh_postgres_url, roles, tmp_path, monkeypatch) -> Iterator[World]:
    for var in ("CAIRN_CATALOG", "CAIRN_STORE", "CAIRN_HOME", "CAIRN_PROJECT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    db = make_url(fresh_postgres_url).database
    servers._admin_execute(fresh_postgres_url, f'ALTER DATABASE "{db}" OWNER TO {roles["owner"]}')
    w = World(fresh_postgres_url, roles, tmp_path)
    w.repo("owner")  # the owner connects first: it runs the migrations and owns the schema
    yield w
    w.close()


def art(tmp: Path, name: str, content: str, path: str = "a.txt") -> Artifact:
    a = Artifact(name, "dataset")
    a.add_file(write(tmp / "src" / uuid.uuid4().hex / path, content), name=path)
    return a


def setup_project(w: World, visibility: str, name: str = "acme") -> str:
    """The owner's project with members writer and reader, and data:v0 (prod), v1, v2."""
    owner = w.repo("owner")
    info = owner.create_project(name, visibility=visibility)
    assert info.visibility == visibility
    owner.grant(name, w.roles["writer"], "writer")
    owner.grant(name, w.roles["reader"], "reader")
    with owner.run(project=name, name="prep") as run:
        run.log_artifact(art(w.tmp, "data", "zero"), aliases=["prod"])
        run.log_artifact(art(w.tmp, "data", "one"))
        run.log_artifact(art(w.tmp, "data", "two"))
    return name


class Expect:
    """Runs an operation that needs a right: it works if `who` holds it, else it raises
    PermissionDenied naming the role, the project and the missing right."""

    def __init__(self, w: World, who: str, project: str, held: set[str]):
        self.role, self.project, self.held = w.roles[who], project, held

    def __call__(self, right: str, fn: Callable[[], Any], *, reads_first: bool = False) -> Any:
        if right in self.held:
            return fn()
        if reads_first and "read" not in self.held:
            right = "read"  # refused at the read that comes first
        verb = {"read": "read", "write": "write to", "admin": "administer"}[right]
        needed = {"read": "reader", "write": "writer", "admin": "admin"}[right]
        with pytest.raises(PermissionDenied) as info:
            fn()
        message = f"role {self.role} may not {verb} project {self.project}: {needed} role needed"
        assert message in str(info.value)
        return None


def snapshot(w: World, project: str) -> dict[str, Any]:
    """What the owner sees of a project: versions, aliases, metadata, runs, members."""
    owner = w.repo("owner")
    versions = {
        c["name"]: [
            (v.version, v.state, sorted(v.aliases), v.metadata)
            for v in owner.versions(f"{project}/{c['name']}", include_deleted=True)
        ]
        for c in owner.collections(project)
    }
    with owner.catalog.read() as conn:
        runs = conn.execute(text("SELECT count(*) FROM runs")).scalar()
    info = owner.project(project)
    return {"versions": versions, "runs": runs, "info": (info.visibility, info.members)}


# -- the API on every kind of project, as every role -------------------------------------------


@pytest.mark.parametrize("who", WHO)
@pytest.mark.parametrize("visibility", VISIBILITIES)
def test_api_gives_exactly_the_access_of_the_project(world, visibility, who, tmp_path):
    p = setup_project(world, visibility)
    held = rights(visibility, who)
    expect = Expect(world, who, p, held)
    r = world.repo(who)

    # reading: names, lists, versions, files, lineage
    v = expect("read", lambda: r.artifact(f"{p}/data:prod"))
    expect("read", lambda: r.artifact(f"{p}/data:v1"))
    expect("read", lambda: r.artifact(f"{p}/data"))
    listed = expect("read", lambda: r.versions(f"{p}/data"))
    expect("read", lambda: r.diff(f"{p}/data:v0", f"{p}/data:v1"))
    info = expect("read", lambda: r.project(p))
    expect("read", lambda: r.collections(p))
    assert (p in r.projects()) == ("read" in held)
    assert any(c["project"] == p for c in r.collections()) == ("read" in held)
    if "read" in held:
        assert [x.version for x in listed] == ["v2", "v1", "v0"]
        assert (v.download(tmp_path / "out") / "a.txt").read_text() == "zero"
        assert v.logged_by() is not None and v.logged_by().name == "prep"
        graph = graphs.build(v)
        assert any(n.label == "prep" for n in graph.nodes.values())
        assert info.visibility == visibility
        assert info.access == max(held, key=["read", "write", "admin"].index)
        assert {m.principal: m.role for m in info.members} == {
            world.roles["owner"]: "admin",
            world.roles["writer"]: "writer",
            world.roles["reader"]: "reader",
        }
    # a run of one's own project may use the version only with read access
    with r.run(project=f"own-{who}", name="consumer") as run:
        expect("read", lambda: run.use_artifact(f"{p}/data:prod"))

    before = snapshot(world, p)
    # writing: log, edit, alias, delete, prune, runs, distributed versions
    logged = expect("write", lambda: r.log_artifact(art(tmp_path, "data", "new"), project=p))
    expect("write", lambda: r.log_artifact(art(tmp_path, "data", "zero"), project=p))
    expect("write", lambda: r.log_artifact(art(tmp_path, "fresh", "x"), project=p))
    expect("write", lambda: r.run(project=p, name="job").finish())
    expect(
        "write",
        lambda: r.upsert_artifact(
            art(tmp_path, "dist", "part"), project=p, distributed_id="g", writer_id="w"
        ),
    )
    expect(
        "write",
        lambda: r.finish_artifact(Artifact("dist", "dataset"), project=p, distributed_id="g"),
    )
    if v is not None:  # a version object in hand: edit it
        v.metadata["by"] = who
        v.aliases.append("best")
        expect("write", v.save)
        v.aliases.remove("best")
        expect("write", v.save)
        expect("write", lambda: r.artifact(f"{p}/data:v2").delete())
    expect("write", lambda: r.prune(f"{p}/data", keep=0), reads_first=True)
    if "write" in held:
        assert logged.version == "v3"
        after = {x.version for x in world.repo("owner").versions(f"{p}/data")}
        assert after == {"v0"}  # v2 deleted, v3 and v1 pruned; prod keeps v0
        assert world.repo("owner").artifact(f"{p}/dist").files()[0].path == "a.txt"
        assert world.repo("owner").artifact(f"{p}/data:v0").metadata == {"by": who}
    else:
        assert snapshot(world, p) == before  # nothing of theirs landed anywhere

    # administering: visibility and members
    expect("admin", lambda: r.grant(p, world.roles["outsider"], "reader"))
    expect("admin", lambda: r.revoke(p, world.roles["outsider"]))
    expect("admin", lambda: r.set_visibility(p, visibility))
    if "admin" not in held:
        assert snapshot(world, p)["info"] == before["info"]


# -- the CLI, as every role ---------------------------------------------------------------------


@pytest.mark.parametrize("who", WHO)
@pytest.mark.parametrize("visibility", VISIBILITIES)
def test_cli_gives_exactly_the_access_of_the_project(world, visibility, who, tmp_path):
    p = setup_project(world, visibility)
    held = rights(visibility, who)
    role = world.roles[who]
    data = tmp_path / "put"
    write(data / "f.txt", f"from {who}")

    def run(right: str, *args: str) -> Any:
        result = world.cli(who, *args)
        if right in held:
            assert result.exit_code == 0, (args, result.stdout, result.stderr)
        else:
            if right == "write" and "read" not in held:
                right = "read"  # every write command reads the project first
            verb = {"read": "read", "write": "write to", "admin": "administer"}[right]
            assert result.exit_code == 1, (args, result.stdout, result.stderr)
            assert result.stderr.startswith(f"cairn: error: role {role} may not {verb} project {p}")
            assert "Traceback" not in result.stderr
        return result

    run("read", "get", f"{p}/data:prod", "--root", str(tmp_path / "got"))
    run("read", "show", f"{p}/data:v1")
    run("read", "show", f"{p}/data", "--json")
    run("read", "ls", p)
    run("read", "ls", f"{p}/data")
    run("read", "lineage", f"{p}/data:prod")
    run("read", "diff", f"{p}/data:v0", f"{p}/data:v1")
    run("read", "verify", f"{p}/data:v0")
    shown = run("read", "project", "show", p)
    listing = world.cli(who, "ls", code=0).stdout
    assert (p in listing) == ("read" in held)
    if "read" in held:
        assert f"visibility   {visibility}" in shown.stdout
        assert f"{world.roles['writer']} (writer)" in shown.stdout
        assert (tmp_path / "got" / "a.txt").read_text() == "zero"

    run("write", "put", str(data), "-n", f"{p}/data")
    run("write", "alias", "add", f"{p}/data:v1", "best")
    run("write", "alias", "rm", f"{p}/data:prod", "prod")
    run("write", "rm", f"{p}/data:v2")
    run("write", "prune", f"{p}/data", "--keep", "0")
    run("admin", "project", "grant", p, world.roles["outsider"], "--role", "reader")
    run("admin", "project", "revoke", p, world.roles["outsider"])
    run("admin", "project", "visibility", p, visibility)
    remaining = [v.version for v in world.repo("owner").versions(f"{p}/data")]
    # put made v3, then v2 was removed and prune took all but the aliased v1 (best)
    assert remaining == (["v1"] if "write" in held else ["v2", "v1", "v0"])


def test_cli_project_commands_create_grant_revoke_show(world):
    w = world
    writer, reader = w.roles["writer"], w.roles["reader"]
    out = w.cli("writer", "project", "create", "mine", "--visibility", "public", code=0)
    assert out.stdout == "created project mine (public)\n"
    assert out.stderr == ""  # PostgreSQL enforces: no single-user note
    w.cli("writer", "project", "grant", "mine", reader, "--role", "writer", code=0)
    shown = w.cli("reader", "project", "show", "mine", code=0).stdout
    assert f"members      {writer} (admin), {reader} (writer)" in shown
    assert "your access  write" in shown
    assert "created" in shown and f"by {writer}" in shown
    out = w.cli("writer", "project", "revoke", "mine", reader, code=0)
    assert out.stdout == f"{reader} has no role in project mine now\n"
    assert "your access  read" in w.cli("reader", "project", "show", "mine", code=0).stdout
    # errors: one line, the right exit code
    err = w.cli("writer", "project", "create", "mine", code=1).stderr
    assert err == (
        "cairn: error: project 'mine' exists already; `cairn project show mine` shows its "
        "settings\n"
    )
    err = w.cli("writer", "project", "grant", "mine", "nobody_here", code=1).stderr
    assert "no database role 'nobody_here'" in err
    assert w.cli("writer", "project", "create", "x", "--visibility", "secret", code=2)
    assert w.cli("writer", "project", "grant", "mine", "a b", code=2)
    err = w.cli("writer", "project", "revoke", "mine", writer, code=1).stderr
    assert f"{writer} is the last admin of project mine" in err


# -- what a role sees with its own SQL ------------------------------------------------------------


def _private_project_in_every_table(w: World) -> dict[str, int]:
    """A private project with rows in every catalog table; returns the owner's counts."""
    p = setup_project(w, "private", "secret")
    member = w.repo("writer")
    with member.run(project=p, name="consumer") as run:
        run.use_artifact("data:prod")
    member.upsert_artifact(art(w.tmp, "dist", "part"), project=p, distributed_id="g", writer_id="w")
    w.repo("owner").set_retention(p, keep_last=5)  # its project's retention policy (admin)
    with member.catalog.write() as conn:  # a writer caught between upload and commit
        v0 = member.artifact(f"{p}/data:v0")
        lease = leases.create(conn, namespace=v0.namespace, manifest_digest=v0.digest)
        leases.add_objects(conn, lease, ["ab" * 32])
        # the index of a pack in the project's namespace, an object verify found bad there,
        # and the namespace's pack index epoch
        packs.record(conn, v0.namespace, [packs.Member("cd" * 32, "ef" * 32, 0, 1)])
        damaged.record(conn, v0.namespace, {"cd" * 32: damaged.CORRUPT})
        packs.moved(conn, v0.namespace)
    with w.sql("owner").connect() as conn:
        return {
            t.name: conn.execute(text(f"SELECT count(*) FROM {t.name}")).scalar_one()
            for t in metadata.sorted_tables
        }


def test_raw_sql_of_an_outsider_sees_no_row_of_a_private_project(world):
    owner_counts = _private_project_in_every_table(world)
    assert all(owner_counts.values()), owner_counts  # every table holds some of it
    with world.sql("outsider").connect() as conn:
        for table in metadata.sorted_tables:
            if table.name == "repository":  # which repository this is: everyone's to read
                continue
            seen = conn.execute(text(f"SELECT count(*) FROM {table.name}")).scalar_one()
            assert seen == 0, f"outsider sees {seen} rows of {table.name}"
        assert conn.execute(text("SELECT cairn_access('secret', current_user)")).scalar() == 0


def test_raw_sql_of_an_outsider_cannot_change_a_private_project(world):
    _private_project_in_every_table(world)
    with world.sql("owner").connect() as conn:
        pid = conn.execute(text("SELECT id FROM projects WHERE name = 'secret'")).scalar_one()
        coll = conn.execute(text("SELECT id FROM collections LIMIT 1")).scalar_one()
        pending = conn.execute(text("SELECT id FROM versions WHERE state = 'PENDING'")).scalar()
    outsider = world.roles["outsider"]
    sneaky = {
        "UPDATE projects SET visibility = 'open'": 0,
        "DELETE FROM members": 0,
        "UPDATE versions SET description = 'x'": 0,
        "DELETE FROM aliases": 0,
        "DELETE FROM parts": 0,
        "DELETE FROM leases": 0,
        "DELETE FROM manifests": 0,
        "DELETE FROM packed": 0,
        "UPDATE packed SET start = 0": 0,
        "DELETE FROM damaged": 0,
        "UPDATE pack_epochs SET epoch = 0": 0,
    }
    engine = world.sql("outsider")
    for statement, rows in sneaky.items():
        with engine.begin() as conn:
            assert conn.execute(text(statement)).rowcount == rows, statement
    refused = [
        f"INSERT INTO members VALUES ({pid}, '{outsider}', 'admin', '{outsider}', now())",
        f"INSERT INTO collections (project_id, name, type, created_at) "
        f"VALUES ({pid}, 'mine', 'dataset', now())",
        f"INSERT INTO versions (collection_id, state, metadata, created_at) "
        f"VALUES ({coll}, 'PENDING', '{{}}', now())",
        f"INSERT INTO parts VALUES ({pending}, 'evil', 'evil.txt', '{{}}', NULL, NULL, now())",
        f"INSERT INTO runs (id, project_id, kind, attributes, state, created_at) "
        f"VALUES ('r', {pid}, 'manual', '{{}}', 'running', now())",
        f"INSERT INTO manifests VALUES ({pid}, '{'00' * 32}', 'x', 1, 1, now())",
        f"INSERT INTO packed VALUES ('secret', '{'00' * 32}', '{'11' * 32}', 0, 1)",
        f"INSERT INTO damaged VALUES ('secret', '{'00' * 32}', 'missing', now())",
        "INSERT INTO pack_epochs VALUES ('secret', 7)",
        f"INSERT INTO projects (name, visibility, created_at, created_by) "
        f"VALUES ('spoof', 'private', now(), '{world.roles['owner']}')",
    ]
    for statement in refused:
        with pytest.raises(DBAPIError, match="row-level security") as info, engine.begin() as conn:
            conn.execute(text(statement))
        assert info.value.orig.sqlstate == "42501"
    # nor can it switch row-level security off, or ask about other roles' rights
    for statement in (
        "ALTER TABLE projects DISABLE ROW LEVEL SECURITY",
        "ALTER TABLE projects NO FORCE ROW LEVEL SECURITY",
        "DROP POLICY cairn_read ON projects",
    ):
        with pytest.raises(DBAPIError, match="must be owner"), engine.begin() as conn:
            conn.execute(text(statement))
    with engine.begin() as conn:
        conn.execute(text("SET row_security = off"))
        with pytest.raises(DBAPIError, match="row-level security"):
            conn.execute(text("SELECT * FROM projects"))
    with world.sql("owner").connect() as conn:
        run_id = conn.execute(text("SELECT id FROM runs LIMIT 1")).scalar_one()
    with engine.connect() as conn:
        # about another role, the membership functions answer nothing, not even whether
        # an id exists (the owner's rights would say so)
        for other in (world.roles["writer"], world.roles["owner"]):
            for call in (
                f"cairn_right({pid}, '{other}')",
                f"cairn_collection_right({coll}, '{other}')",
                f"cairn_version_right({pending}, '{other}')",
                f"cairn_run_right('{run_id}', '{other}')",
                f"cairn_access('secret', '{other}')",
            ):
                assert conn.execute(text(f"SELECT {call}")).scalar() == 0, call
    assert (
        world.repo("writer").project("secret").members
        == world.repo("owner").project("secret").members
    )


def test_raw_sql_on_a_public_project_reads_but_does_not_write(world):
    p = setup_project(world, "public")
    engine = world.sql("outsider")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM versions")).scalar_one() == 3
        assert conn.execute(text("SELECT count(*) FROM manifests")).scalar_one() == 3
        assert conn.execute(text("SELECT count(*) FROM leases")).scalar_one() == 0
    with engine.begin() as conn:
        assert conn.execute(text("UPDATE versions SET description = 'x'")).rowcount == 0
        assert conn.execute(text("DELETE FROM aliases")).rowcount == 0
    with pytest.raises(DBAPIError, match="row-level security"), engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO collections (project_id, name, type, created_at) "
                "SELECT id, 'mine', 'dataset', now() FROM projects"
            )
        )
    assert world.repo("owner").artifact(f"{p}/data:prod").description is None


def test_a_writer_cannot_move_rows_into_another_project(world):
    p = setup_project(world, "open")  # the outsider writes here
    outsider = world.repo("outsider")
    outsider.log_artifact(art(world.tmp, "mine", "x"), project="theirs")
    with world.sql("owner").connect() as conn:
        ids = dict(conn.execute(text("SELECT name, id FROM projects")).all())
        colls = dict(conn.execute(text("SELECT name, id FROM collections")).all())
        theirs_v = conn.execute(
            text("SELECT id FROM versions WHERE collection_id = :c"), {"c": colls["mine"]}
        ).scalar_one()
    engine = world.sql("outsider")
    for statement in (
        f"UPDATE collections SET project_id = {ids['theirs']} WHERE id = {colls['data']}",
        f"UPDATE runs SET project_id = {ids['theirs']} WHERE project_id = {ids[p]}",
        f"UPDATE versions SET collection_id = {colls['mine']} WHERE id > 0",
        f"INSERT INTO aliases VALUES ({colls['data']}, 'stolen', {theirs_v})",
        f"UPDATE aliases SET version_id = {theirs_v} WHERE collection_id = {colls['data']}",
    ):
        with pytest.raises(DBAPIError) as info, engine.begin() as conn:
            conn.execute(text(statement))
        assert info.value.orig.sqlstate == "42501", statement
    assert [v.version for v in world.repo("owner").versions(f"{p}/data")] == ["v2", "v1", "v0"]


# -- distributed versions ----------------------------------------------------------------------


@pytest.mark.parametrize("visibility", ["private", "public"])
def test_distributed_upserts_from_non_writers_are_refused_and_leave_nothing(world, visibility):
    p = setup_project(world, visibility)
    member = world.repo("writer")
    member.upsert_artifact(
        art(world.tmp, "shards", "good", "good.txt"), project=p, distributed_id="g", writer_id="w1"
    )
    for who in ("outsider", "reader"):
        with pytest.raises(PermissionDenied, match=f"may not write to project {p}"):
            world.repo(who).upsert_artifact(
                art(world.tmp, "shards", "evil", "evil.txt"),
                project=p,
                distributed_id="g",
                writer_id="w1",  # even claiming the member's writer id
            )
        with pytest.raises(PermissionDenied), world.repo(who).run(project=p, group="g") as run:
            run.upsert_artifact(art(world.tmp, "shards", "evil", "evil.txt"))
        with pytest.raises(PermissionDenied, match=f"may not write to project {p}"):
            world.repo(who).finish_artifact(
                Artifact("shards", "dataset"), project=p, distributed_id="g"
            )
    # raw SQL straight into the pending version fails the same way
    with world.sql("owner").connect() as conn:
        pending = conn.execute(text("SELECT id FROM versions WHERE state = 'PENDING'")).scalar()
    with pytest.raises(DBAPIError, match="row-level security"), world.sql("outsider").begin() as c:
        c.execute(
            text("INSERT INTO parts VALUES (:v, 'w9', 'evil.txt', '{}', NULL, NULL, now())"),
            {"v": pending},
        )
    v = member.finish_artifact(Artifact("shards", "dataset"), project=p, distributed_id="g")
    assert [e.path for e in v.files()] == ["good.txt"]
    assert (v.download(world.tmp / "check") / "good.txt").read_text() == "good"
    with world.sql("owner").connect() as conn:
        writers = conn.execute(text("SELECT DISTINCT writer_id FROM parts")).scalars().all()
    assert writers == ["w1"]


# -- membership, groups, implicit projects, visibility changes ---------------------------------


def test_a_project_created_by_a_first_log_belongs_to_its_creator(world):
    member = world.repo("writer")
    member.log_artifact(art(world.tmp, "data", "mine"), project="mine")
    info = member.project("mine")
    assert info.visibility == "private" and info.access == "admin"
    assert info.created_by == world.roles["writer"]
    assert [(m.principal, m.role) for m in info.members] == [(world.roles["writer"], "admin")]
    assert "mine" in world.repo("owner").projects()  # the owner administers everything
    outsider = world.repo("outsider")
    assert "mine" not in outsider.projects()
    with pytest.raises(PermissionDenied, match="may not read project mine: reader role needed"):
        outsider.artifact("mine/data")
    member.grant("mine", world.roles["outsider"], "reader")
    assert outsider.artifact("mine/data").files()[0].path == "a.txt"
    member.revoke("mine", world.roles["outsider"])
    with pytest.raises(PermissionDenied):
        outsider.artifact("mine/data")


def test_a_group_role_grants_its_members(world):
    p = setup_project(world, "private")
    team, outsider = world.roles["team"], world.roles["outsider"]
    servers._admin_execute(world.db_url, f"GRANT {team} TO {outsider}")
    world.repo("owner").grant(p, team, "writer")
    v = world.repo("outsider").log_artifact(art(world.tmp, "data", "team"), project=p)
    assert v.version == "v3" and world.repo("outsider").project(p).access == "write"
    world.repo("owner").revoke(p, team)
    with pytest.raises(PermissionDenied):
        world.repo("outsider").artifact(f"{p}/data")


def test_changing_visibility_takes_effect_at_once(world):
    p = setup_project(world, "public")
    outsider = world.repo("outsider")
    v = outsider.artifact(f"{p}/data:prod")
    world.repo("owner").set_visibility(p, "private")
    with pytest.raises(PermissionDenied, match="may not read"):
        outsider.artifact(f"{p}/data:prod")
    v.metadata["x"] = 1
    with pytest.raises(PermissionDenied, match="may not write to"):
        v.save()
    world.repo("owner").set_visibility(p, "open")
    v.save()
    assert world.repo("owner").artifact(f"{p}/data:prod").metadata == {"x": 1}


def test_unknown_projects_are_not_found_for_everyone(world):
    for who in WHO:
        with pytest.raises(NotFound, match="project 'nope' not found"):
            world.repo(who).project("nope")
        with pytest.raises(NotFound):
            world.repo(who).artifact("nope/x")


# -- maintenance -------------------------------------------------------------------------------


def test_gc_needs_a_role_that_sees_everything(world):
    p = setup_project(world, "private")
    world.repo("writer").log_artifact(art(world.tmp, "other", "kept"), project="mine")
    for who in ("writer", "reader", "outsider"):
        with pytest.raises(PermissionDenied, match="may not run gc") as info:
            world.repo(who).gc(grace=0)
        assert world.roles["owner"] in str(info.value) and "BYPASSRLS" in str(info.value)
        assert world.cli(who, "gc", code=1).stderr.startswith("cairn: error: role")
    world.repo("owner").artifact(f"{p}/data:v1").delete()
    report = world.repo("owner").gc(grace=0)
    assert report.objects_deleted == 1  # only the deleted version's bytes
    maint = world.repo("maint")  # BYPASSRLS: sees every row without being the owner
    assert maint.gc(dry_run=True, grace=0).objects_deleted == 0
    for ref in (f"{p}/data:v0", f"{p}/data:v2", "mine/other"):
        who = "writer"
        got = world.repo(who).artifact(ref).download(world.tmp / "after" / ref.replace("/", "_"))
        assert got.exists()


def test_every_catalog_table_has_row_level_security_forced(world):
    with world.sql("owner").connect() as conn:
        tables = set(inspect(conn).get_table_names()) - {"alembic_version"}
        assert tables == {t.name for t in metadata.sorted_tables}
        rows = conn.execute(
            text(
                "SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class "
                "WHERE relname = ANY(:t) AND relnamespace = current_schema()::regnamespace"
            ),
            {"t": sorted(tables)},
        ).all()
        assert {r.relname for r in rows if r.relrowsecurity and r.relforcerowsecurity} == tables
        policies = conn.execute(
            text("SELECT tablename, count(*) FROM pg_policies GROUP BY tablename")
        ).all()
        # and the pack index's fifth: a writer moves the row of an object it repaired
        assert dict(policies) == {t: 4 for t in tables} | {"packed": 5}


# -- migrations --------------------------------------------------------------------------------


def _db_at_0001(url: str, tmp: Path) -> None:
    """A catalog at revision 0001 holding two projects that share one manifest."""
    from cairn.foundation.manifest import Entry, Manifest

    migrate_to(url, "0001")
    manifest = Manifest([Entry("a.txt", 5, "cd" * 32)])
    other = Manifest([Entry("b.txt", 5, "ef" * 32)])
    engine = create_engine(url, poolclass=NullPool)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO projects (id, name, visibility, created_at) VALUES "
                "(1, 'one', 'private', CURRENT_TIMESTAMP), (2, 'two', 'public', CURRENT_TIMESTAMP)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO collections (id, project_id, name, type, next_index, created_at) "
                "VALUES (1, 1, 'x', 'dataset', 1, CURRENT_TIMESTAMP), "
                "(2, 2, 'y', 'dataset', 1, CURRENT_TIMESTAMP)"
            )
        )
        for m in (manifest, other):
            conn.execute(
                text(
                    "INSERT INTO manifests (digest, body, size, file_count, created_at) "
                    "VALUES (:d, :b, 5, 1, CURRENT_TIMESTAMP)"
                ),
                {"d": m.digest, "b": m.compressed()},
            )
        for vid, coll in ((1, 1), (2, 2)):
            conn.execute(
                text(
                    "INSERT INTO versions (id, collection_id, idx, state, digest, metadata, "
                    "size, file_count, created_at) VALUES "
                    "(:v, :c, 0, 'COMMITTED', :d, '{}', 5, 1, CURRENT_TIMESTAMP)"
                ),
                {"v": vid, "c": coll, "d": manifest.digest},
            )
            conn.execute(
                text("INSERT INTO aliases VALUES (:c, 'latest', :v)"), {"c": coll, "v": vid}
            )
        if conn.dialect.name == "postgresql":  # serial columns continue after the ids above
            for table in ("projects", "collections", "versions"):
                conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), 10)"))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def old_catalog(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/catalog.db"
    roles = request.getfixturevalue("roles")
    url = request.getfixturevalue("fresh_postgres_url")
    db = make_url(url).database
    servers._admin_execute(url, f'ALTER DATABASE "{db}" OWNER TO {roles["owner"]}')
    return make_url(url).set(username=roles["owner"]).render_as_string(hide_password=False)


def test_a_0001_catalog_upgrades_to_head_keeping_its_data(old_catalog, tmp_path):
    _db_at_0001(old_catalog, tmp_path)
    # its store, as the cairn of 0001 left it: config.json of store format 1 (no id)
    write(tmp_path / "home" / "store" / "config.json", StoreConfig().to_bytes())
    with Repository.open(catalog=old_catalog, home=str(tmp_path / "home")) as repo:
        for ref, path in (("one/x", "a.txt"), ("two/y", "a.txt")):
            v = repo.artifact(ref)
            assert [e.path for e in v.files()] == [path] and v.version == "v0"
        assert repo.project("two").visibility == "public"
        with repo.catalog.read() as conn:
            rows = conn.execute(text("SELECT project_id FROM manifests ORDER BY 1")).all()
            # the shared manifest is one row per project now; the unreferenced one is gone
            assert [r[0] for r in rows] == [1, 2]
            assert conn.execute(text("SELECT count(*) FROM members")).scalar() == 0
        repo.log_artifact(art(tmp_path, "x", "next"), project="one")
        assert repo.artifact("one/x").version == "v1"
    # and back down to 0001 and up again
    migrate_to(old_catalog, "0001", down=True)
    engine = create_engine(old_catalog, poolclass=NullPool)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM manifests")).scalar() == 2
        assert "members" not in inspect(conn).get_table_names()
    engine.dispose()
    with Repository.open(catalog=old_catalog, home=str(tmp_path / "home")) as repo:
        assert repo.artifact("one/x:v1").files()[0].path == "a.txt"
        assert repo.artifact("two/y").files()[0].path == "a.txt"


def test_only_the_owner_upgrades_the_schema(fresh_postgres_url, roles, tmp_path):
    db = make_url(fresh_postgres_url).database
    servers._admin_execute(fresh_postgres_url, f'ALTER DATABASE "{db}" OWNER TO {roles["owner"]}')

    def url(who: str) -> str:
        return make_url(fresh_postgres_url).set(username=roles[who]).render_as_string(False)

    _db_at_0001(url("owner"), tmp_path)
    with pytest.raises(CairnError, match=f"role {roles['writer']} may not read or upgrade"):
        Repository.open(catalog=url("writer"), home=str(tmp_path / "w"))
    Repository.open(catalog=url("owner"), home=str(tmp_path / "o")).close()
    with Repository.open(catalog=url("writer"), home=str(tmp_path / "w")) as repo:
        assert repo.projects() == ["two"]  # at head now: public 'two', not private 'one'


# -- SQLite: single-user, settings kept ------------------------------------------------------


def test_sqlite_records_access_settings_and_allows_everything(home, tmp_path):
    with Repository.open(home=str(home)) as repo:
        info = repo.create_project("demo", visibility="public")
        assert (info.visibility, info.enforced, info.access) == ("public", False, "admin")
        repo.grant("demo", "alice", "writer")
        repo.grant("demo", "bob", "admin")
        info = repo.set_visibility("demo", "open")
        assert info.visibility == "open"
        assert [(m.principal, m.role) for m in info.members] == [
            ("bob", "admin"),
            ("alice", "writer"),
        ]
        assert repo.revoke("demo", "alice").members[0].principal == "bob"
        with pytest.raises(NotFound, match="alice has no role in project demo"):
            repo.revoke("demo", "alice")
        repo.gc(grace=0)  # anyone may: there is only one user
        with repo.catalog.read() as conn:
            stored = conn.execute(text("SELECT principal, role FROM members")).all()
        assert [tuple(r) for r in stored] == [("bob", "admin")]


def test_a_reader_of_a_private_project_reads_its_packed_objects_and_an_outsider_cannot(world):
    p = setup_project(world, "private", "packs")
    files = {f"f/{i:02d}.txt": f"small {i}" for i in range(20)}  # one pack
    a = Artifact("many")
    for name, content in files.items():
        a.add_file(write(world.tmp / "many" / name, content), name=name)
    logged = world.repo("writer").log_artifact(a, project=p)
    assert logged.namespace == p and logged.last_log.objects_sent == 20
    v = world.repo("reader").artifact(f"{p}/many:v0")
    out = v.download(world.tmp / "reader-out")
    assert {n: (out / n).read_text() for n in files} == files
    with v.open("f/07.txt") as f:
        assert f.read() == b"small 7"
    with world.sql("outsider").connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM packed")).scalar_one() == 0
    with world.sql("reader").connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM packed")).scalar_one() == 20


# -- search -------------------------------------------------------------------------------------


def test_search_returns_only_what_each_role_may_read(world, tmp_path):
    """A search over every project: row-level security decides, whatever the query says."""
    setup_project(world, "private", "acme")
    owner = world.repo("owner")
    owner.create_project("pub", visibility="public")
    owner.create_project("secret", visibility="private")
    for project, key in (("acme", "team_key"), ("pub", "public_key"), ("secret", "secret_key")):
        a = art(tmp_path, "model", project)
        a.metadata.update({"acc": 0.9, key: 1})
        with owner.run(project=project, name=f"train-{project}", group="g") as run:
            run.log_artifact(a, aliases=["production"])
            run.log_summary({"val_acc": 0.9, key: 1})
    readable = {
        "owner": {"acme", "pub", "secret"},
        "writer": {"acme", "pub"},
        "reader": {"acme", "pub"},
        "outsider": {"pub"},
    }
    for who, projects in readable.items():
        r = world.repo(who)
        found = r.search_versions("metadata.acc > 0.5 AND alias = 'production'")
        assert {v.project for v in found} == projects, who
        assert r.count_versions("metadata.acc > 0.5") == len(projects)
        # what a role cannot read leaves no trace: not in keys, counts or orderings
        keys = {k for k in r.version_keys() if k.endswith("_key")}
        assert keys == {k for p, k in _KEYS.items() if p in projects}, who
        runs = r.search_runs("group = 'g'", order_by="-summary.val_acc")
        assert {x.project for x in runs} == projects, who
        summary = {k for k in r.run_keys().summary if k.endswith("_key")}
        assert summary == {k for p, k in _KEYS.items() if p in projects}, who
        assert r.count_runs("summary.secret_key = 1") == (1 if "secret" in projects else 0)
        # a named project: its readers search it, others are refused before any row
        expect = Expect(world, who, "acme", rights("private", who))
        hits = expect("read", lambda r=r: r.search_versions("metadata.acc > 0", project="acme"))
        expect("read", lambda r=r: r.search_runs(project="acme"))
        expect("read", lambda r=r: r.count_versions(project="acme"))
        if hits is not None:
            assert [v.ref for v in hits] == ["acme/model:v0"]
        listing = world.cli(who, "ls", "--where", "metadata.acc > 0", "--json", code=0)
        assert {v["project"] for v in json.loads(listing.stdout)} == projects
        listing = world.cli(who, "runs", "--where", "group = 'g'", "--json", code=0)
        assert {v["project"] for v in json.loads(listing.stdout)} == projects


_KEYS = {"acme": "team_key", "pub": "public_key", "secret": "secret_key"}


def test_only_writers_log_a_summary(world):
    p = setup_project(world, "public")
    run = world.repo("owner").search_runs("name = 'prep'", project=p)[0]
    for who in ("reader", "outsider"):
        [theirs] = world.repo(who).search_runs("name = 'prep'", project=p)
        with pytest.raises(PermissionDenied):
            theirs.log_summary({"hacked": 1})
    [mine] = world.repo("writer").search_runs("name = 'prep'", project=p)
    mine.log_summary({"checked": True})
    assert run.refresh().summary == {"checked": True}


def _many(w: World, name: str, n: int = 20) -> tuple[Artifact, dict[str, str]]:
    files = {f"f/{i:02d}.txt": f"small {i}" for i in range(n)}
    a = Artifact(name)
    for path, content in files.items():
        a.add_file(write(w.tmp / name / path, content), name=path)
    return a, files


def test_a_reader_reports_a_damaged_object_and_a_writer_repairs_it(world):
    """verify needs no special role: a reader records what is bad; only a writer's log
    (or repair) clears it, moving the pack index row off the bad pack."""
    p = setup_project(world, "private", "heal")
    a, files = _many(world, "many")
    v = world.repo("writer").log_artifact(a, project=p)
    victim = v.entry("f/07.txt").digest
    (member,) = world.repo("owner").objects.locate(p, [victim]).values()
    key = pack_key(member.pack, namespace=p)
    path = world.repo("owner").store.local_path(key)
    os.chmod(path, 0o644)
    with open(path, "r+b") as f:
        f.seek(member.start)
        f.write(b"X")

    report = world.repo("reader").verify(v.ref)
    assert [b.digest for b in report.bad] == [victim]
    with world.sql("reader").connect() as conn:
        assert conn.execute(text("SELECT digest FROM damaged")).scalars().all() == [victim]
    with world.sql("outsider").connect() as conn:  # a private namespace's rows stay hidden
        assert conn.execute(text("SELECT count(*) FROM damaged")).scalar_one() == 0
    assert not world.repo("reader").verify(v.ref).ok  # a reader cannot clear it, or repair
    assert not world.repo("reader").verify(v.ref, repair=True).ok

    again = world.repo("writer").log_artifact(_many(world, "many")[0], project=p)
    assert again.last_log.objects_sent == 1
    assert world.repo("reader").verify(v.ref).ok
    out = world.repo("reader").artifact(v.ref).download(world.tmp / "out")
    assert {n: (out / n).read_text() for n in files} == files
    with world.sql("owner").connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM damaged")).scalar_one() == 0


def test_only_a_damaged_object_of_ones_own_namespace_can_lose_its_pack_index_row(world):
    p = setup_project(world, "private", "rows")
    v = world.repo("writer").log_artifact(_many(world, "many")[0], project=p)
    digest = v.entry("f/00.txt").digest

    def delete_row(who: str) -> int:
        with world.sql(who).begin() as conn:
            return conn.execute(
                text("DELETE FROM packed WHERE namespace = :n AND digest = :d"),
                {"n": p, "d": digest},
            ).rowcount

    assert delete_row("writer") == 0  # not reported damaged: the row stays
    with world.sql("outsider").begin() as conn, pytest.raises(DBAPIError):
        conn.execute(
            text("INSERT INTO damaged VALUES (:n, :d, 'corrupt', now())"), {"n": p, "d": digest}
        )
    with world.sql("reader").begin() as conn:
        conn.execute(
            text("INSERT INTO damaged VALUES (:n, :d, 'corrupt', now())"), {"n": p, "d": digest}
        )
    assert delete_row("outsider") == 0 and delete_row("reader") == 0
    assert delete_row("writer") == 1


def test_cairn_fs_maps_access_to_permission_errors(world):
    """cairn:// speaks what engines expect: a reader may read and gets PermissionError on
    a write; an outsider of a private project gets PermissionError on a read; nothing is
    committed by a refused write."""
    from cairn.fs import CairnFileSystem

    project = setup_project(world, "private")
    reader = CairnFileSystem(repository=world.repo("reader"), skip_instance_cache=True)
    assert reader.cat(f"{project}/data/a.txt") == b"two"
    with pytest.raises(PermissionError, match="write"):
        reader.pipe(f"{project}/data/b.txt", b"b")
    outsider = CairnFileSystem(repository=world.repo("outsider"), skip_instance_cache=True)
    with pytest.raises(PermissionError):
        outsider.cat(f"{project}/data/a.txt")
    assert [v.version for v in world.repo("owner").versions(f"{project}/data")][0] == "v2"
    writer = CairnFileSystem(repository=world.repo("writer"), skip_instance_cache=True)
    writer.pipe(f"{project}/data/b.txt", b"b")
    assert world.repo("owner").artifact(f"{project}/data").version == "v3"
