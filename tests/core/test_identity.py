"""Repository identity: a store and its catalog belong together, or nothing is written.

The scenario that lost data before identities: a second, fresh catalog pointed at a team's
store saw every object as garbage and `cairn gc` deleted them all. Each test runs on the
SQLite and PostgreSQL catalogs and on a local and an S3 (moto) store.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import servers
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool
from typer.testing import CliRunner

from cairn import Artifact, Repository, RepositoryMismatch
from cairn.catalog.identity import CatalogIdentity
from cairn.cli import app
from cairn.engine.identity import decide
from cairn.engine.storeconfig import StoreConfig, read_config
from cairn.foundation.layout import CONFIG_KEY

from .conftest import migrate_to, write

runner = CliRunner()


@dataclass(frozen=True)
class Setup:
    """Two catalogs (the team's and a laptop's) and one store, as URLs."""

    team: str
    laptop: str
    store: str
    options: dict[str, Any] | None

    def open(self, catalog: str, home: Any, store: str | None = None) -> Repository:
        return Repository.open(
            catalog=catalog,
            store=store or self.store,
            storage_options=self.options,
            home=str(home),
        )


@pytest.fixture(params=["local", "s3"])
def store_url(request, tmp_path):
    if request.param == "local":
        return str(tmp_path / "shared-store"), None
    s3 = request.getfixturevalue("s3_endpoint")
    return f"s3://{request.getfixturevalue('s3_bucket')}/shared", s3.storage_options


@pytest.fixture
def setup(catalog_url, store_url, tmp_path) -> Iterator[Setup]:
    with contextlib.ExitStack() as stack:
        if catalog_url.startswith("sqlite"):
            laptop = f"sqlite:///{tmp_path}/laptop/catalog.db"
        else:
            laptop = stack.enter_context(servers.fresh_database(catalog_url))
        yield Setup(catalog_url, laptop, *store_url)


def _listing(repo: Repository) -> dict[str, int]:
    return {o.key: o.size for o in repo.store.list()}


def _log(repo: Repository, tmp_path, name: str = "data", content: str = "team data") -> Any:
    folder = tmp_path / f"src-{name}-{abs(hash(content))}"
    write(folder / "a.txt", content)
    art = Artifact(name, type="dataset")
    art.add_dir(str(folder))
    return repo.log_artifact(art, project="team", aliases=["production"])


def test_a_second_catalog_can_neither_write_nor_delete(setup, tmp_path):
    team = setup.open(setup.team, tmp_path / "team")
    v = _log(team, tmp_path)
    repo_id = read_config(team.store).id
    assert repo_id is not None and team.identity.require() == repo_id

    laptop = setup.open(setup.laptop, tmp_path / "laptop")
    before = _listing(laptop)
    part = Artifact("p", type="dataset")
    part.add_file(write(tmp_path / "part.txt", "a part"))
    refusals = {
        "gc": lambda: laptop.gc(grace=0),
        "gc --dry-run": lambda: laptop.gc(dry_run=True, grace=0),
        "log": lambda: _log(laptop, tmp_path, content="laptop data"),
        "run": lambda: laptop.run(project="team"),
        "create project": lambda: laptop.create_project("other"),
        "verify --repair": lambda: laptop.verify(repair=True),
        "upsert": lambda: laptop.upsert_artifact(
            part, project="team", distributed_id="g", writer_id="w"
        ),
    }
    for what, attempt in refusals.items():
        with pytest.raises(RepositoryMismatch) as err:
            attempt()
        message = str(err.value)
        assert "\n" not in message, what
        assert f"belongs to repository {repo_id}" in message, what
        assert "CAIRN_CATALOG" in message and "cairn recover" in message, what
    assert _listing(laptop) == before  # not a byte written or deleted
    assert laptop.projects() == []  # nor a row in the laptop's catalog
    laptop.close()

    # the team's version is intact and the team can still write and collect
    got = team.artifact("team/data:v0")
    assert Path(got.get_path("a.txt")).read_text() == "team data"
    assert team.gc(grace=0).objects_deleted == 0
    assert _log(team, tmp_path, content="more").version == "v1"
    assert v.version == "v0"
    team.close()


def test_a_catalog_of_another_repository_refuses_every_write_but_reads(setup, tmp_path):
    """Catalog B bound to its own store, pointed at store A: every write and deletion
    is refused, reading a version whose bytes the store holds still works."""
    a = setup.open(setup.team, tmp_path / "a")
    _log(a, tmp_path, content="shared bytes")
    b_store = str(tmp_path / "b-store")
    b = setup.open(setup.laptop, tmp_path / "b", store=b_store)
    vb = _log(b, tmp_path, content="shared bytes")  # same content: same object digests
    b.close()

    wrong = setup.open(setup.laptop, tmp_path / "b", store=setup.store)
    before = _listing(wrong)
    v = wrong.artifact("team/data:v0")
    assert Path(v.get_path("a.txt")).read_text() == "shared bytes"  # read and verified
    assert [x.version for x in wrong.versions("team/data")] == ["v0"]

    def edit_metadata() -> None:
        v.metadata["k"] = 1
        v.save()

    def move_alias() -> None:
        v.aliases = ["best"]
        v.save()

    attempts = [
        edit_metadata,
        move_alias,
        lambda: v.delete(delete_aliases=True),
        lambda: wrong.prune("team/data", keep=0),
        lambda: wrong.gc(grace=0),
        lambda: wrong.verify(),
        lambda: wrong.set_visibility("team", "public"),
        lambda: wrong.grant("team", "alice", "reader"),
        lambda: _log(wrong, tmp_path, content="new"),
    ]
    for attempt in attempts:
        with pytest.raises(RepositoryMismatch, match="but this catalog belongs to repository"):
            attempt()
    assert _listing(wrong) == before
    fresh = wrong.artifact("team/data:v0")
    assert fresh.metadata == {} and fresh.aliases == vb.aliases
    wrong.close()


def test_the_scenario_on_the_command_line(tmp_path, monkeypatch, store_url):
    url, options = store_url
    monkeypatch.setenv("CAIRN_STORE", url)
    if options:
        monkeypatch.setenv("CAIRN_STORAGE_OPTIONS", json.dumps(options))
    for var in ("CAIRN_CATALOG", "CAIRN_PROJECT", "CAIRN_CACHE_DIR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "s"
    write(data, b"\x01" * 2_000_000)

    def cairn(home: str, *args: str) -> Any:
        monkeypatch.setenv("CAIRN_HOME", str(tmp_path / home))
        return runner.invoke(app, list(args))

    assert cairn("team", "put", str(data), "-n", "team/data").exit_code == 0
    gc = cairn("laptop", "gc")
    assert gc.exit_code == 1
    assert gc.stdout == ""
    [line] = gc.stderr.splitlines()
    assert line.startswith(f"cairn: error: cannot run gc: store {url} belongs to repository ")
    assert "cairn recover" in line
    assert cairn("laptop", "put", str(data), "-n", "team/data").exit_code == 1
    got = cairn("team", "get", "team/data:v0", "--root", str(tmp_path / "out"))
    assert got.exit_code == 0, got.stderr
    assert (tmp_path / "out" / "s").read_bytes() == b"\x01" * 2_000_000


def _make_legacy(setup: Setup, tmp_path) -> None:
    """A repository as a cairn before ids left it: a store without an id (format 1) and
    a catalog at revision 0006 with versions, then upgraded to 0007."""
    old = setup.open(setup.team, tmp_path / "team")
    _log(old, tmp_path, content="old bytes")
    config = read_config(old.store)
    assert config is not None
    old.store.put(CONFIG_KEY, StoreConfig(config.chunking).to_bytes())
    old.close()
    migrate_to(setup.team, "0006", down=True)
    migrate_to(setup.team, "0007")


def test_a_repository_made_before_ids_adopts_one_on_its_first_write(setup, tmp_path):
    _make_legacy(setup, tmp_path)
    repo = setup.open(setup.team, tmp_path / "team")
    assert json.loads(repo.store.get(CONFIG_KEY))["format"] == 1
    v = repo.artifact("team/data:v0")  # reading changes nothing
    assert Path(v.get_path("a.txt")).read_text() == "old bytes"
    assert read_config(repo.store).id is None
    _log(repo, tmp_path, content="new bytes")  # the first write adopts an id
    config = json.loads(repo.store.get(CONFIG_KEY))
    assert config["format"] == 2 and config["id"] == repo.identity.require()
    repo.close()
    # from now on the pair is bound: a fresh catalog is refused
    laptop = setup.open(setup.laptop, tmp_path / "laptop")
    with pytest.raises(RepositoryMismatch, match=f"belongs to repository {config['id']}"):
        laptop.gc(grace=0)
    laptop.close()


def test_an_empty_catalog_never_adopts_a_store_made_before_ids_that_holds_data(setup, tmp_path):
    _make_legacy(setup, tmp_path)
    laptop = setup.open(setup.laptop, tmp_path / "laptop")
    before = _listing(laptop)
    with pytest.raises(RepositoryMismatch, match="made before repository ids"):
        laptop.gc(grace=0)
    with pytest.raises(RepositoryMismatch):
        _log(laptop, tmp_path, content="x")
    assert _listing(laptop) == before
    laptop.close()
    # the store's own catalog still adopts it
    team = setup.open(setup.team, tmp_path / "team")
    assert team.gc(grace=0).objects_deleted == 0
    assert read_config(team.store).id == team.identity.require()
    team.close()


def test_a_catalog_with_versions_refuses_an_empty_store(setup, tmp_path):
    _make_legacy(setup, tmp_path)
    elsewhere = setup.open(setup.team, tmp_path / "team", store=str(tmp_path / "elsewhere"))
    with pytest.raises(RepositoryMismatch, match="is empty"):
        _log(elsewhere, tmp_path, content="x")
    assert list(elsewhere.store.list()) == []
    elsewhere.close()


def test_concurrent_first_writers_of_one_catalog_agree_on_one_id(setup, tmp_path):
    handles = [setup.open(setup.team, tmp_path / f"w{i}") for i in range(4)]
    ids: list[str] = []
    errors: list[BaseException] = []
    start = threading.Barrier(len(handles))

    def first_write(repo: Repository) -> None:
        start.wait()
        try:
            ids.append(repo.identity.require())
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=first_write, args=(h,)) for h in handles]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(set(ids)) == 1 and read_config(handles[0].store).id == ids[0]
    for h in handles:
        h.close()


def test_an_interrupted_binding_is_finished_by_the_next_write(setup, tmp_path):
    repo = setup.open(setup.team, tmp_path / "team")
    engine = create_engine(setup.team, poolclass=NullPool)
    with engine.begin() as conn:  # bound in the catalog, then the process died
        conn.execute(text("UPDATE repository SET id = :i, pending = :p"), {"i": _ID, "p": True})
    assert read_config(repo.store) is None
    _log(repo, tmp_path)
    assert read_config(repo.store).id == _ID
    with engine.begin() as conn:
        assert conn.execute(text("SELECT pending FROM repository")).scalar() in (False, 0)
    engine.dispose()
    repo.close()


def test_postgres_never_lets_a_bound_catalog_change_its_id(fresh_postgres_url, tmp_path):
    repo = Repository.open(catalog=fresh_postgres_url, home=str(tmp_path / "h"))
    repo_id = repo.identity.require()
    repo.close()
    engine = create_engine(fresh_postgres_url, poolclass=NullPool)
    with pytest.raises(Exception, match="never changes"), engine.begin() as conn:
        conn.execute(text("UPDATE repository SET id = :i"), {"i": _ID})
    with engine.begin() as conn:
        assert conn.execute(text("SELECT id FROM repository")).scalar() == repo_id
    engine.dispose()


_ID = "0b7f3a62-3a52-4f8e-9d55-8f3c1b2a9e10"
_S, _C = "11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222"


@pytest.mark.parametrize(
    ("catalog", "config", "empty", "action"),
    [
        ((_S, False, False), _S, None, "ok"),
        ((_S, True, False), _S, None, "settle"),
        ((_C, False, False), _S, None, "refuse"),
        ((None, False, False), _S, None, "refuse"),
        ((None, False, True), _S, None, "refuse"),  # a legacy catalog never takes an id
        ((None, False, True), "", False, "bind"),  # legacy pair: adopt
        ((None, False, False), "", True, "bind"),  # empty old store: adopt
        ((None, False, False), "", False, "refuse"),  # empty catalog, old store with data
        ((_C, True, False), "", None, "stamp"),
        ((_C, False, False), "", None, "refuse"),
        ((None, False, False), None, None, "bind"),  # new store, new catalog
        ((None, False, True), None, True, "refuse"),  # the legacy catalog's store is elsewhere
        ((None, False, True), None, False, "bind"),  # ... or here, without config.json
        ((_C, True, False), None, None, "stamp"),
        ((_C, False, False), None, None, "refuse"),
    ],
)
def test_the_rules(catalog, config, empty, action):
    c, pending, legacy = catalog
    cfg = None if config is None else StoreConfig(id=config or None)

    def store_empty() -> bool:
        assert empty is not None, "the store's contents are asked only when they matter"
        return bool(empty)

    decision = decide(CatalogIdentity(c, pending, legacy, None), cfg, store_empty)
    assert decision.action == action
    assert bool(decision.problem) == (action == "refuse")
