"""Store namespaces (docs/ACCESS.md): a private project's bytes live under projects/<name>/,
public and open projects share objects/ and manifests/. Writers, readers, leases and gc
keep to the namespace each version recorded when it was created."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text, update
from sqlalchemy.pool import NullPool
from typer.testing import CliRunner

from cairn import Artifact, InvalidName, Manifest, PermissionDenied, Repository
from cairn.catalog import Catalog
from cairn.catalog.engine import SCHEMA_HEAD as HEAD
from cairn.catalog.schema import versions
from cairn.cli import app
from cairn.engine.staging import stage, write_manifest
from cairn.foundation.chunking import digest
from cairn.foundation.layout import (
    digest_of_manifest_key,
    digest_of_object_key,
    manifest_key,
    namespace_prefix,
    object_key,
)
from cairn.foundation.manifest import Entry
from cairn.fs import CairnFileSystem
from cairn.storage import Batch, LocalStore, ObjectInfo, Store

from .conftest import migrate_to, write


def _art(tmp: Path, name: str, files: Mapping[str, bytes | str]) -> Artifact:
    folder = tmp / "src" / uuid.uuid4().hex
    for rel, data in files.items():
        write(folder / rel, data)
    return Artifact(name).add_dir(folder)


def _keys(repo: Repository, prefix: str) -> list[str]:
    """Stored bytes under `prefix`, leaving out the store log's records (docs/FORMAT.md)."""
    return [i.key for i in repo.store.list(prefix) if "log/" not in i.key]


def _object_keys(v: Any) -> list[str]:
    return sorted(object_key(d, namespace=v.namespace) for d in v.manifest.objects())


def _read_all(v: Any, root: Path) -> dict[str, bytes]:
    out = v.download(root)
    return {e.path: (out / e.path).read_bytes() for e in v.files()}


# -- where bytes go ---------------------------------------------------------------------------


def test_a_private_projects_objects_and_manifest_live_under_its_prefix(repo, tmp_path):
    v = repo.log_artifact(
        _art(tmp_path, "ds", {"a.txt": "alpha", "b.txt": "bravo"}), project="vision"
    )
    assert v.namespace == "vision"
    assert _keys(repo, "objects/") == [] and _keys(repo, "manifests/") == []
    expected = [*_object_keys(v), manifest_key(v.digest, namespace="vision")]
    assert sorted(_keys(repo, "projects/")) == sorted(expected)
    assert all(k.startswith("projects/vision/") for k in expected)


@pytest.mark.parametrize("visibility", ["public", "open"])
def test_public_and_open_projects_share_objects_and_manifests(repo, tmp_path, visibility):
    repo.create_project("pub", visibility=visibility)
    v = repo.log_artifact(_art(tmp_path, "ds", {"a.txt": "alpha"}), project="pub")
    assert v.namespace == ""
    assert _keys(repo, "objects/") == _object_keys(v)
    assert _keys(repo, "manifests/") == [manifest_key(v.digest, namespace="")]
    assert _keys(repo, "projects/") == []


def test_identical_content_is_stored_once_per_namespace(repo, tmp_path):
    """Twice in two private projects, once in two public ones (invariant 5 per namespace)."""
    blob = os.urandom(5000)
    d = digest(blob)
    repo.create_project("pub1", visibility="public")
    repo.create_project("pub2", visibility="open")
    sent = {}
    for project in ("priv1", "priv2", "pub1", "pub2"):
        v = repo.log_artifact(_art(tmp_path, "ds", {"x.bin": blob}), project=project)
        sent[project] = v.last_log.objects_sent
    assert sent == {"priv1": 1, "priv2": 1, "pub1": 1, "pub2": 0}
    copies = [k for k in [*_keys(repo, "objects/"), *_keys(repo, "projects/")] if d[2:] in k]
    assert sorted(copies) == sorted(object_key(d, namespace=ns) for ns in ("priv1", "priv2", ""))


class _Spy(Store):
    """A store that notes every key (or listed prefix) it is asked about."""

    def __init__(self, inner: Store):
        self.inner = inner
        self.url = inner.url
        self.concurrency = inner.concurrency
        self.asked: list[str] = []

    def exists_many(self, keys: Iterable[str]) -> set[str]:
        keys = list(keys)
        self.asked += keys
        return self.inner.exists_many(keys)

    def put(self, key: str, data: bytes | memoryview) -> None:
        self.asked.append(key)
        self.inner.put(key, data)

    def put_many(self, items: Mapping[str, bytes | memoryview]) -> Batch[None]:
        self.asked += list(items)
        return self.inner.put_many(items)

    def get_range(self, key: str, start: int = 0, end: int | None = None) -> bytes:
        self.asked.append(key)
        return self.inner.get_range(key, start, end)

    def get_many(self, keys: Iterable[str]) -> Batch[bytes]:
        keys = list(keys)
        self.asked += keys
        return self.inner.get_many(keys)

    def stat(self, key: str) -> ObjectInfo | None:
        self.asked.append(key)
        return self.inner.stat(key)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        self.asked.append(prefix)
        return self.inner.list(prefix)

    def delete(self, keys: Iterable[str]) -> None:
        keys = list(keys)
        self.asked += keys
        self.inner.delete(keys)

    def sync(self) -> None:
        self.inner.sync()


def test_a_private_writer_uploads_even_if_shared_holds_the_content_and_asks_only_its_own(
    repo, tmp_path
):
    """No existence check crosses the boundary: a private writer learns nothing of objects/
    (the same folder twice: the stat cache vouches for the files, the namespace does not)."""
    folder = tmp_path / "data"
    write(folder / "a.txt", "alpha")
    write(folder / "b.txt", "bravo")
    repo.create_project("pub", visibility="public")
    repo.log_artifact(Artifact("ds").add_dir(folder), project="pub")
    spy = _Spy(repo.store)
    # the same catalog and store, every store call seen (this machine's caches too); the
    # store's own bookkeeping (its config, the log's list of namespaces) is no content
    with Repository(Catalog(repo.catalog.url), spy, home=repo.home) as spied:
        mine = spied.log_artifact(Artifact("ds").add_dir(folder), project="vision")
        assert mine.last_log.objects_sent == 2
        asked = [k for k in spy.asked if not k.startswith(("config.json", "log/"))]
        assert asked and all(k.startswith("projects/vision/") for k in asked), spy.asked
        spy.asked.clear()
        assert _read_all(mine, tmp_path / "out") == {"a.txt": b"alpha", "b.txt": b"bravo"}
        assert spy.asked and all(k.startswith("projects/vision/") for k in spy.asked), spy.asked


# -- reading private versions -------------------------------------------------------------------


def test_every_reader_finds_a_private_versions_bytes(repo, tmp_path):
    files = {"rows/a.csv": "k,v\n1,2\n", "rows/b.csv": "k,v\n3,4\n", "big.bin": os.urandom(9000)}
    v = repo.log_artifact(_art(tmp_path, "ds", files), project="vision")
    assert v.namespace == "vision" and _keys(repo, "objects/") == []
    # streamed from the store (no cache), then fetched into the cache
    with v.open("big.bin") as f:
        f.seek(100)
        assert f.read(10) == files["big.bin"][100:110]
    fs = CairnFileSystem(repository=repo, skip_instance_cache=True)
    assert fs.cat_file("vision/ds:v0/rows/a.csv") == b"k,v\n1,2\n"
    with fs.open("cairn://vision/ds:latest/big.bin") as f:
        assert f.read() == files["big.bin"]
    assert v.read_table("rows").to_pydict() == {"k": [1, 3], "v": [2, 4]}
    assert v.get_path("big.bin").read_bytes() == files["big.bin"]
    out = v.download(tmp_path / "out")
    assert (out / "rows" / "b.csv").read_text() == files["rows/b.csv"]
    report = repo.verify(v.ref)
    assert report.ok and report.objects_checked == 3


def test_verify_reports_a_missing_object_of_a_private_namespace(repo, tmp_path):
    """The shared copy of the same content does not stand in for the private one."""
    repo.create_project("pub", visibility="public")
    repo.log_artifact(_art(tmp_path, "ds", {"a.txt": "alpha"}), project="pub")
    v = repo.log_artifact(_art(tmp_path, "ds", {"a.txt": "alpha"}), project="vision")
    d = v.files()[0].digest
    repo.store.delete([object_key(d, namespace="vision")])
    report = repo.verify()
    assert report.missing == [f"vision/ds:v0 a.txt (object {d} in projects/vision/)"]
    assert report.objects_checked == 2 and not report.corrupt
    assert repo.verify("pub/ds").ok


# -- visibility changes -------------------------------------------------------------------------


def test_a_visibility_change_moves_new_versions_and_leaves_old_ones_where_they_are(repo, tmp_path):
    repo.create_project("vision", visibility="public")
    v0 = repo.log_artifact(_art(tmp_path, "ds", {"a.txt": "zero"}), project="vision")
    info = repo.set_visibility("vision", "private")
    assert info.visibility == "private"
    assert info.note == (
        "new versions of vision go to projects/vision/; those logged while it was public "
        "keep their bytes in the shared objects/, readable by every cairn user"
    )
    v1 = repo.log_artifact(_art(tmp_path, "ds", {"a.txt": "one"}), project="vision")
    info = repo.set_visibility("vision", "public")
    assert info.note == (
        "new versions of vision go to the shared objects/; those logged while it was "
        "private keep their bytes under projects/vision/, so give its new readers read "
        "access there too"
    )
    v2 = repo.log_artifact(_art(tmp_path, "ds", {"a.txt": "two"}), project="vision")
    assert repo.set_visibility("vision", "open").note is None  # shared either way
    assert repo.set_visibility("vision", "open").note is None  # no change at all

    assert [v.namespace for v in (v0, v1, v2)] == ["", "vision", ""]
    assert _keys(repo, "projects/vision/objects/") == _object_keys(v1)
    assert sorted(_keys(repo, "objects/")) == sorted([*_object_keys(v0), *_object_keys(v2)])
    for i, content in enumerate((b"zero", b"one", b"two")):
        again = repo.artifact(f"vision/ds:v{i}")
        assert again.namespace == ("vision" if i == 1 else "")
        assert _read_all(again, tmp_path / f"out{i}") == {"a.txt": content}
    assert repo.verify().ok and repo.gc(grace=0).objects_deleted == 0


def test_the_cli_says_in_one_line_where_versions_bytes_go(home, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def cairn(*args: str) -> Any:
        result = runner.invoke(app, list(args))
        assert result.exit_code == 0, (result.stdout, result.stderr)
        return result

    cairn("project", "create", "vision", "--visibility", "public")
    assert (
        "stored in    objects/ (shared), for new versions"
        in cairn("project", "show", "vision").stdout
    )
    out = cairn("project", "visibility", "vision", "private").stdout
    assert out == (
        "project vision is private\n"
        "note: new versions of vision go to projects/vision/; those logged while it was "
        "public keep their bytes in the shared objects/, readable by every cairn user\n"
    )
    assert (
        "stored in    projects/vision/, for new versions"
        in cairn("project", "show", "vision").stdout
    )
    out = cairn("project", "visibility", "vision", "public").stdout
    assert out.splitlines()[1].startswith("note: new versions of vision go to the shared")
    assert cairn("project", "visibility", "vision", "open").stdout == "project vision is open\n"


def test_a_draft_logged_into_another_namespace_copies_the_objects_it_keeps(repo, tmp_path):
    repo.create_project("vision", visibility="public")
    v0 = repo.log_artifact(
        _art(tmp_path, "ds", {"keep.txt": "kept", "drop.txt": "gone"}), project="vision"
    )
    repo.set_visibility("vision", "private")
    draft = v0.new_draft()
    draft.remove("drop.txt")
    draft.add_file(write(tmp_path / "new.txt", "new"))
    v1 = repo.log_artifact(draft, project="vision")
    assert v1.namespace == "vision"
    assert v1.last_log.files_hashed == 1  # only new.txt is read ...
    assert v1.last_log.objects_sent == 2  # ... but keep.txt is copied in too
    assert _keys(repo, "projects/vision/objects/") == _object_keys(v1)
    v0.delete()
    assert repo.gc(grace=0).objects_deleted == 2  # the shared copies of keep.txt and drop.txt
    assert _keys(repo, "objects/") == []
    assert _read_all(v1, tmp_path / "out") == {"keep.txt": b"kept", "new.txt": b"new"}
    assert repo.verify().ok


def test_an_added_entry_must_be_stored_in_the_versions_namespace(repo, tmp_path):
    repo.create_project("pub", visibility="public")
    shared = repo.log_artifact(_art(tmp_path, "ds", {"a.txt": "alpha"}), project="pub")
    entry = shared.entry("a.txt")
    again = repo.log_artifact(Artifact("copy").add_entry(entry), project="pub")
    assert again.last_log.objects_sent == 0 and repo.verify(again.ref).ok
    with pytest.raises(Exception, match="a.txt: its content is not stored in projects/vision/"):
        repo.log_artifact(Artifact("copy").add_entry(entry), project="vision")


def test_a_distributed_version_keeps_the_namespace_of_its_first_upsert(repo, tmp_path):
    repo.create_project("vision", visibility="public")
    for w, visibility in (("0", "private"), ("1", None)):
        part = _art(tmp_path, "ds", {f"part-{w}.txt": f"part {w}"})
        repo.upsert_artifact(part, project="vision", distributed_id="d", writer_id=w)
        if visibility:
            repo.set_visibility("vision", visibility)
    [pending] = repo.versions("vision/ds")
    assert pending.state == "PENDING" and pending.namespace == ""
    v = repo.finish_artifact(
        _art(tmp_path, "ds", {"summary.txt": "done"}), project="vision", distributed_id="d"
    )
    assert v.namespace == "" and len(v.files()) == 3
    assert _keys(repo, "projects/") == []
    assert _read_all(v, tmp_path / "out")["summary.txt"] == b"done"
    # the next distributed version starts private
    part = _art(tmp_path, "ds", {"part-0.txt": "next"})
    repo.upsert_artifact(part, project="vision", distributed_id="e", writer_id="0")
    v = repo.finish_artifact(Artifact("ds"), project="vision", distributed_id="e")
    assert v.namespace == "vision" and _keys(repo, "projects/vision/objects/") == _object_keys(v)


# -- gc -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("dead", ["pub", "vision"])
def test_gc_deletes_only_the_dead_copy_of_a_digest_live_in_another_namespace(repo, tmp_path, dead):
    repo.create_project("pub", visibility="public")
    blob = os.urandom(3000)
    logged = {
        p: repo.log_artifact(_art(tmp_path, "ds", {"x.bin": blob}), project=p)
        for p in ("pub", "vision")
    }
    assert logged["pub"].digest == logged["vision"].digest  # one manifest, two namespaces
    logged[dead].delete()
    report = repo.gc(grace=0)
    assert (report.objects_deleted, report.bytes_freed, report.manifests_deleted) == (1, 3000, 1)
    live = logged["vision" if dead == "pub" else "pub"]
    gone = logged[dead]
    d = digest(blob)
    assert repo.store.exists_many([object_key(d, namespace=gone.namespace)]) == set()
    assert repo.store.exists_many([manifest_key(gone.digest, namespace=gone.namespace)]) == set()
    assert repo.store.exists_many(
        [
            object_key(d, namespace=live.namespace),
            manifest_key(live.digest, namespace=live.namespace),
        ]
    ) == {
        object_key(d, namespace=live.namespace),
        manifest_key(live.digest, namespace=live.namespace),
    }
    assert repo.verify().ok
    assert _read_all(repo.artifact(live.ref), tmp_path / "out") == {"x.bin": blob}


def test_gc_keeps_a_private_pending_versions_parts_and_a_private_writers_lease(repo, tmp_path):
    """Leases protect in the namespace they were taken in: the same digest dead in
    objects/ goes while a writer of projects/vision/ holds it there."""
    repo.create_project("pub", visibility="public")
    repo.upsert_artifact(
        _art(tmp_path, "parts", {"p.txt": "pending part"}),
        project="vision",
        distributed_id="d",
        writer_id="w",
    )
    folder = tmp_path / "data"
    write(folder / "f.bin", b"payload" * 100)
    for p in ("pub", "vision"):
        repo.log_artifact(Artifact("ds").add_dir(folder), project=p).delete()
    art = Artifact("ds").add_dir(folder)
    with stage(repo, art, namespace="vision") as staged:
        assert staged.stats.objects_sent == 0  # found in projects/vision/, and leased
        manifest = Manifest(staged.entries)
        write_manifest(repo, staged, manifest)
        report = repo.gc(grace=0)
        assert report.objects_deleted == 1  # the shared copy only
        assert report.manifests_deleted == 1  # the shared manifest; the private one is leased
        held = [
            object_key(manifest.objects().pop(), namespace="vision"),
            manifest_key(manifest.digest, namespace="vision"),
        ]
        assert repo.store.exists_many(held) == set(held)
    assert _keys(repo, "objects/") == [] and _keys(repo, "manifests/") == []
    v = repo.finish_artifact(Artifact("parts"), project="vision", distributed_id="d")
    assert _read_all(v, tmp_path / "out") == {"p.txt": b"pending part"}
    assert repo.gc(grace=0).objects_deleted == 1  # the lease has gone: f.bin's private copy too
    assert repo.verify().ok


# -- the catalog --------------------------------------------------------------------------------


def test_invariant_10_a_namespace_cannot_lead_out_of_the_store_prefix(repo, tmp_path):
    v = repo.log_artifact(_art(tmp_path, "ds", {"a.txt": "alpha"}), project="vision")
    planted = update(versions).where(versions.c.id == v.id).values(namespace="../../etc")
    if repo.catalog.dialect == "postgresql":
        # a version's namespace never changes, like its collection (migration 0003)
        with pytest.raises(PermissionDenied), repo.catalog.write() as conn:
            conn.execute(planted)
        return
    with repo.catalog.write() as conn:
        conn.execute(planted)
    with pytest.raises(InvalidName, match="invalid namespace '../../etc'"):
        repo.artifact(v.ref).download(tmp_path / "out")


def test_keys_of_every_namespace_parse_back(tmp_path):
    d = digest(b"x")
    for ns in ("", "vision", "a.b_c-1"):
        assert digest_of_object_key(object_key(d, namespace=ns)) == (ns, d)
        assert digest_of_manifest_key(manifest_key(d, namespace=ns)) == (ns, d)
        assert digest_of_object_key(manifest_key(d, namespace=ns)) is None
    for junk in (
        f"projects/../objects/{d[:2]}/{d[2:]}",
        f"projects/objects/{d[:2]}/{d[2:]}",
        f"projects//objects/{d[:2]}/{d[2:]}",
        f"objects/{d[:2]}/{d[2:]}.tmp",
        f"objects/{d[:3]}/{d[3:]}",
        "config.json",
    ):
        assert digest_of_object_key(junk) is None, junk
    assert namespace_prefix("") == "" and namespace_prefix("vision") == "projects/vision/"
    for bad in ("..", "a/b", "/abs", "a\\b", "-x"):
        with pytest.raises(InvalidName):
            object_key(d, namespace=bad)


def test_migration_0003_keeps_existing_versions_shared(catalog_url, home, tmp_path):
    """A catalog at 0002 whose private project's bytes are at the store root, as every
    cairn before namespaces stored them: they stay readable where they are."""
    home.mkdir(parents=True)
    migrate_to(catalog_url, "0002")
    data = b"old bytes"
    d = digest(data)
    manifest = Manifest([Entry("a.txt", len(data), d)])
    store = LocalStore(str(home / "store"))
    store.put(object_key(d, namespace=""), data)
    store.put(manifest_key(manifest.digest, namespace=""), manifest.to_bytes())
    engine = create_engine(catalog_url, poolclass=NullPool)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO projects (id, name, visibility, created_at) "
                "VALUES (1, 'old', 'private', CURRENT_TIMESTAMP)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO collections (id, project_id, name, type, next_index, created_at) "
                "VALUES (1, 1, 'x', 'dataset', 1, CURRENT_TIMESTAMP)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO manifests (project_id, digest, body, size, file_count, created_at) "
                "VALUES (1, :d, :b, 9, 1, CURRENT_TIMESTAMP)"
            ),
            {"d": manifest.digest, "b": manifest.compressed()},
        )
        conn.execute(
            text(
                "INSERT INTO versions (id, collection_id, idx, state, digest, metadata, size, "
                "file_count, created_at) VALUES (1, 1, 0, 'COMMITTED', :d, '{}', 9, 1, "
                "CURRENT_TIMESTAMP)"
            ),
            {"d": manifest.digest},
        )
        conn.execute(text("INSERT INTO aliases VALUES (1, 'latest', 1)"))
        if conn.dialect.name == "postgresql":
            for table in ("projects", "collections", "versions"):
                conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), 10)"))
    engine.dispose()

    with Repository.open(catalog=catalog_url, home=str(home)) as repo:
        old = repo.artifact("old/x")
        assert old.namespace == ""
        assert (old.download(tmp_path / "out") / "a.txt").read_bytes() == data
        new = repo.log_artifact(_art(tmp_path, "x", {"a.txt": "new bytes"}), project="old")
        assert new.namespace == "old"
        assert repo.gc(grace=0).objects_deleted == 0
        assert repo.verify().ok and repo.verify().versions_checked == 2
        with repo.catalog.read() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == HEAD
