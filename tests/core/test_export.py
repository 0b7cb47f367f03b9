"""`cairn export`: a project, a collection or a version copied into another repository,
with its numbers, aliases, metadata, lineage and access settings, sending only what the
target lacks. From a SQLite catalog and a local store to PostgreSQL and S3 (moto)."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone
from typing import Any

import pytest
import servers
from typer.testing import CliRunner

import cairn.engine.export as export_module
from cairn import Artifact, CairnError, Conflict, Repository, RepositoryMismatch
from cairn.cli import app
from cairn.engine.transfer import Uploader
from cairn.foundation.layout import OBJECTS, PROJECTS, digest_of_pack_key

from .conftest import stored_objects, write


@pytest.fixture
def source(tmp_path):
    repo = Repository.open(
        catalog=f"sqlite:///{tmp_path}/src/catalog.db",
        store=str(tmp_path / "src" / "store"),
        home=str(tmp_path / "src"),
    )
    yield repo
    repo.close()


@pytest.fixture
def target_urls(request, tmp_path, postgres_url, s3_endpoint, s3_bucket):
    """(catalog URL, store URL, storage options) of an empty PostgreSQL + S3 repository."""
    with servers.fresh_database(postgres_url) as catalog:
        yield catalog, f"s3://{s3_bucket}/team", s3_endpoint.storage_options


@pytest.fixture
def target(target_urls, tmp_path):
    catalog, store, options = target_urls
    repo = Repository.open(
        catalog=catalog, store=store, storage_options=options, home=str(tmp_path / "tgt")
    )
    yield repo
    repo.close()


class _Puts:
    """Counts the objects a store is sent."""

    def __init__(self, repo: Repository, monkeypatch):
        self.keys: list[str] = []
        store = repo.store
        real_many, real_one = store.put_many, store.put

        def put_many(items):
            self.keys += list(items)
            return real_many(items)

        def put(key, data):
            self.keys.append(key)
            return real_one(key, data)

        monkeypatch.setattr(store, "put_many", put_many)
        monkeypatch.setattr(store, "put", put)

    def objects(self) -> list[str]:
        return [
            k for k in self.keys if k.startswith((OBJECTS, PROJECTS)) and "/objects/" in f"/{k}"
        ]

    def packs(self) -> list[str]:
        return [k for k in self.keys if digest_of_pack_key(k) is not None]


def _fill(source: Repository, tmp_path) -> dict[str, Any]:
    """A private project with two collections, aliases, metadata, a deleted version and
    lineage: the run that logged each version, and one that used v0."""
    source.create_project("demo", visibility="private")
    source.grant("demo", "alice", "writer")
    data = tmp_path / "data"
    files = {f"f{i}.bin": bytes([i]) * (3000 + i) for i in range(6)}
    for name, content in files.items():
        write(data / name, content)
    with source.run(project="demo", name="prep", config={"lr": 0.1}) as run:
        v0 = run.log_artifact(
            Artifact("ds", type="dataset", description="first", metadata={"rows": 6}).add_dir(
                str(data)
            )
        )
        run.log_summary({"acc": 0.9})
    write(data / "f0.bin", b"changed")
    v1 = source.log_artifact(Artifact("ds", type="dataset").add_dir(str(data)), project="demo")
    write(data / "f1.bin", b"changed too")
    v2 = source.log_artifact(
        Artifact("ds", type="dataset").add_dir(str(data)), project="demo", aliases=["production"]
    )
    v1.delete()
    v2.metadata["checked"] = True
    v2.description = "the good one"
    v2.save()
    with source.run(project="demo", name="train") as train:
        train.use_artifact("demo/ds:v0")
        model = train.log_artifact(
            Artifact("net", type="model").add_file(write(tmp_path / "w.pt", b"weights"))
        )
    return {"v0": v0, "v2": v2, "model": model, "prep": run.id, "train": train.id}


def _utc(moment: datetime) -> datetime:
    """SQLite hands back naive UTC times, PostgreSQL aware ones."""
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _summary(repo: Repository, ref: str) -> dict[str, Any]:
    v = repo.artifact(ref)
    logged = v.logged_by()
    return {
        "digest": v.digest,
        "version": v.version,
        "aliases": sorted(v.aliases),
        "metadata": v.metadata,
        "description": v.description,
        "created_at": _utc(v.created_at),
        "namespace": v.namespace,
        "logged_by": logged.id if logged else None,
        "used_by": sorted(r.id for r in v.used_by()),
    }


def test_a_project_moves_to_postgres_and_s3_whole(source, target, tmp_path):
    made = _fill(source, tmp_path)
    role = f"exp_{uuid.uuid4().hex[:8]}"
    servers._admin_execute(target.catalog.url, f"CREATE ROLE {role} NOLOGIN")
    source.grant("demo", role, "reader")
    report = source.export("demo", to=target)
    assert sorted(report.versions_created) == ["demo/ds:v0", "demo/ds:v2", "demo/net:v0"]
    assert report.projects == ("demo",) and report.runs == 2
    assert report.members_skipped == ("alice (writer of demo)",)  # no such role there
    for ref in ("demo/ds:v0", "demo/ds:v2", "demo/ds:production", "demo/net:v0"):
        assert _summary(target, ref) == _summary(source, ref), ref
    assert [v.version for v in target.versions("demo/ds")] == ["v2", "v0"]
    info = target.project("demo")
    assert info.visibility == "private"
    assert (role, "reader") in {(m.principal, m.role) for m in info.members}
    train = target.get_run(made["train"])
    assert train.name == "train" and train.state == "finished"
    prep = target.get_run(made["prep"])
    assert prep.config == {"lr": 0.1} and prep.summary == {"acc": 0.9}
    # every byte arrived, in the project's own namespace, and reads back verified
    out = target.artifact("demo/ds:v2").download(root=tmp_path / "out")
    assert (out / "f1.bin").read_bytes() == b"changed too"
    assert target.verify().ok
    assert all(k.startswith("projects/demo/") for k in _object_keys(target))
    # a log in the target continues the numbering after the source's
    again = target.log_artifact(
        Artifact("ds", type="dataset").add_file(write(tmp_path / "n", b"new")), project="demo"
    )
    assert again.version == "v3"


def _object_keys(repo: Repository) -> list[str]:
    return [o.key for o in repo.store.list(PROJECTS) if "/objects/" in o.key] + [
        o.key for o in repo.store.list(OBJECTS)
    ]


def test_exports_send_only_what_the_target_lacks(source, target, tmp_path, monkeypatch):
    data = tmp_path / "data"
    for i in range(20):
        write(data / f"f{i:02d}.bin", bytes([i]) * 5000)
    source.log_artifact(Artifact("ds", type="dataset").add_dir(str(data)), project="p")
    puts = _Puts(target, monkeypatch)

    first = source.export("p/ds", to=target)
    assert (first.objects_sent, first.objects_present) == (20, 0)
    assert first.bytes_sent == 20 * 5000
    # small objects travel as a pack, as a log sends them, not one request each
    assert puts.objects() == [] and len(puts.packs()) == 1
    assert len(stored_objects(target)) == 20

    again = source.export("p/ds", to=target)
    assert (again.objects_sent, again.objects_present) == (0, 20)
    assert again.versions_present == ("p/ds:v0",) and again.versions_created == ()
    assert puts.objects() == [] and len(puts.packs()) == 1  # nothing sent the second time

    write(data / "f03.bin", b"new content")
    source.log_artifact(Artifact("ds", type="dataset").add_dir(str(data)), project="p")
    third = source.export("p/ds:v1", to=target)
    assert (third.objects_sent, third.objects_present) == (1, 19)
    assert len(puts.objects()) == 1 and len(puts.packs()) == 1  # too few to pack
    assert third.bytes_sent == len(b"new content")
    assert [v.version for v in target.versions("p/ds")] == ["v1", "v0"]
    assert target.verify().ok


def test_a_large_version_is_exported_a_batch_at_a_time_in_packs(
    source, target, tmp_path, monkeypatch
):
    """A version of many small files: its digests are leased and looked up a batch at a
    time (never all in memory), its objects arrive in a few packs, and it reads back."""
    monkeypatch.setattr(export_module, "_LEASE_BATCH", 50)
    held: list[int] = []
    real = Uploader.held

    def counted(self, digests):
        held.append(len(digests))
        return real(self, digests)

    monkeypatch.setattr(Uploader, "held", counted)
    data = tmp_path / "data"
    for i in range(600):
        write(data / f"d{i // 100}" / f"f{i:03d}.bin", f"file {i} ".encode() * 40)
    write(data / "same-a.bin", b"twin")
    write(data / "same-b.bin", b"twin")  # one object for two files
    source.log_artifact(Artifact("ds", type="dataset").add_dir(str(data)), project="p")
    puts = _Puts(target, monkeypatch)
    report = source.export("p/ds", to=target)
    assert report.objects_sent == 601 and report.objects_present == 0
    assert max(held) <= 50 and sum(held) >= 601
    assert puts.objects() == [] and 1 <= len(puts.packs()) <= 3
    out = target.artifact("p/ds:v0").download(root=tmp_path / "out")
    assert (out / "d5" / "f599.bin").read_bytes() == b"file 599 " * 40
    assert (out / "same-b.bin").read_bytes() == b"twin"
    assert target.verify().ok


def test_a_version_number_taken_by_other_content_refuses_the_whole_export(source, target, tmp_path):
    made = _fill(source, tmp_path)
    target.log_artifact(
        Artifact("ds", type="dataset").add_file(write(tmp_path / "x", b"other")), project="demo"
    )
    before = sorted(o.key for o in target.store.list())
    with pytest.raises(Conflict, match="demo/ds:v0 is taken there by other content"):
        source.export("demo", to=target)
    assert sorted(o.key for o in target.store.list()) == before  # nothing written
    assert [v.version for v in target.versions("demo/ds")] == ["v0"]
    with pytest.raises(Exception, match="not found"):
        target.artifact("demo/net:v0")
    assert made["v2"].version == "v2"


def test_one_version_keeps_its_number(source, target, tmp_path):
    made = _fill(source, tmp_path)
    report = source.export("demo/ds:production", to=target)
    assert report.versions_created == ("demo/ds:v2",)
    assert _summary(target, "demo/ds:v2")["digest"] == made["v2"].digest
    assert [v.version for v in target.versions("demo/ds")] == ["v2"]


def test_export_into_a_store_of_another_repository_is_refused(source, tmp_path):
    source.log_artifact(Artifact("ds").add_file(write(tmp_path / "a", b"a")), project="p")
    other = Repository.open(
        catalog=f"sqlite:///{tmp_path}/o/catalog.db",
        store=str(tmp_path / "o" / "store"),
        home=str(tmp_path / "o"),
    )
    other.log_artifact(Artifact("x").add_file(write(tmp_path / "b", b"b")), project="p")
    other.close()
    wrong = Repository.open(
        catalog=f"sqlite:///{tmp_path}/w/catalog.db",
        store=str(tmp_path / "o" / "store"),
        home=str(tmp_path / "w"),
    )
    with pytest.raises(RepositoryMismatch, match="cannot export into it"):
        source.export("p", to=wrong)
    wrong.close()


def test_export_into_its_own_repository_is_refused(source, tmp_path):
    source.log_artifact(Artifact("ds").add_file(write(tmp_path / "a", b"a")), project="p")
    same = Repository.open(
        catalog=source.catalog.url, store=source.store.url, home=str(tmp_path / "s")
    )
    with pytest.raises(CairnError, match="this repository's own store"):
        source.export("p", to=same)
    same.close()


def test_export_on_the_command_line(source, target_urls, tmp_path, monkeypatch):
    source.log_artifact(Artifact("ds").add_file(write(tmp_path / "a", b"abc")), project="p")
    source.close()
    catalog, store, options = target_urls
    for var in ("CAIRN_CATALOG", "CAIRN_STORE", "CAIRN_STORAGE_OPTIONS", "CAIRN_PROJECT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("CAIRN_HOME", str(tmp_path / "src"))
    monkeypatch.setenv("CAIRN_CATALOG", f"sqlite:///{tmp_path}/src/catalog.db")
    monkeypatch.setenv("CAIRN_STORE", str(tmp_path / "src" / "store"))
    args = ["export", "p", "--to", store, "--to-catalog", catalog]
    args += ["--to-storage-options", json.dumps(options)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[0] == f"exported 1 version to {store}"
    again = CliRunner().invoke(app, args)
    assert "sent 0 objects (0 bytes); 1 the target held already" in again.stdout
    bad = CliRunner().invoke(app, [*args[:-2], "--to-storage-options", "{nope"])
    assert bad.exit_code == 2 and bad.stderr.startswith("cairn: error: --to-storage-options")
    with Repository.open(
        catalog=catalog, store=store, storage_options=options, home=str(tmp_path / "t")
    ) as t:
        assert t.artifact("p/ds:v0").get_path("a")


def test_exporting_again_repairs_what_the_target_lost(source, target, tmp_path):
    data = tmp_path / "data"
    for i in range(20):
        write(data / f"f{i:02d}.bin", bytes([i]) * 5000)
    source.log_artifact(Artifact("ds", type="dataset").add_dir(str(data)), project="p")
    source.export("p/ds", to=target)
    (pack,) = [o.key for o in target.store.list("") if digest_of_pack_key(o.key) is not None]
    target.store.delete([pack])  # the target's copy of all 20 objects is gone
    assert not target.verify().ok
    again = source.export("p/ds", to=target)
    assert again.objects_sent == 20 and again.versions_present == ("p/ds:v0",)
    assert target.verify().ok
    out = target.artifact("p/ds:v0").download(root=tmp_path / "out")
    assert (out / "f07.bin").read_bytes() == bytes([7]) * 5000
