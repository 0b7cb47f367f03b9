"""gc deletes only what its catalog owns, only what is older than a grace period, and
records what it deletes in the store before deleting it (docs/FORMAT.md "gc")."""

from __future__ import annotations

import os
import time
from datetime import timedelta

import pytest
from sqlalchemy import update

import cairn.engine.log as log_module
from cairn import Artifact, Repository
from cairn.catalog.schema import leases
from cairn.catalog.sql import now
from cairn.engine.gcrecord import read_record, record_keys
from cairn.foundation.layout import manifest_key, object_key

from .conftest import stored_objects, write


def _age(repo: Repository, seconds: float) -> None:
    """Make every object of a local store look `seconds` older than it is."""
    for info in repo.store.list():
        path = repo.store.local_path(info.key)  # type: ignore[attr-defined]
        st = os.stat(path)
        os.utime(path, (st.st_atime - seconds, st.st_mtime - seconds))


def test_gc_keeps_unneeded_objects_younger_than_the_grace_period(repo, tmp_path):
    v0 = repo.log_artifact(Artifact("ds").add_file(write(tmp_path / "a", b"a" * 1000)))
    v0.delete()

    report = repo.gc()  # default grace: one hour
    assert report.grace == 3600
    assert (report.objects_deleted, report.manifests_deleted) == (0, 0)
    assert report.objects_recent == 2 and report.bytes_recent > 1000  # the object, the manifest
    assert "only because of the grace period" in str(report) and "younger than 1h" in str(report)
    assert len(stored_objects(repo)) == 1
    # the catalog's row of the deleted version's manifest went, and the record says so
    record = read_record(repo.store, report.record)
    assert (record["delete"], record["manifest_rows"]) == ([], [v0.digest])

    _age(repo, 2 * 3600)
    report = repo.gc(grace=timedelta(hours=1))
    assert (report.objects_deleted, report.manifests_deleted, report.objects_recent) == (1, 1, 0)
    assert stored_objects(repo) == {}


def test_a_writers_uploads_survive_gc_from_another_view_until_it_commits(
    repo, tmp_path, monkeypatch
):
    """A writer has uploaded its objects and its manifest; another process runs gc
    before the writer's commit, seeing none of the writer's leases (expired: a stalled
    or clock-skewed writer). The grace period keeps the writer's bytes; its version
    commits whole."""
    real = log_module.write_manifest
    reports = []

    def write_then_gc(repo_, staged, manifest):
        real(repo_, staged, manifest)
        with repo.catalog.write() as conn:  # the writer's lease, as another process sees it
            conn.execute(update(leases).values(expires_at=now() - timedelta(hours=7)))
        other = Repository.open(
            catalog=repo.catalog.url, store=repo.store.url, home=str(tmp_path / "other")
        )
        reports.append(other.gc())
        other.close()

    monkeypatch.setattr(log_module, "write_manifest", write_then_gc)
    files = {f"f{i}.bin": os.urandom(3000) for i in range(5)}
    art = Artifact("ds")
    for name, data in files.items():
        art.add_file(write(tmp_path / "src" / name, data))
    v = repo.log_artifact(art, project="p")
    [report] = reports
    assert report.objects_deleted == 0 and report.objects_recent == 6  # 5 objects, 1 manifest
    assert repo.verify(v.ref).ok
    out = v.download(root=tmp_path / "out")
    assert {n: (out / n).read_bytes() for n in files} == files


def test_without_a_grace_period_that_writer_would_lose_its_bytes(repo, tmp_path, monkeypatch):
    """The same race with `grace=0`: what the grace period is there for."""
    real = log_module.write_manifest

    def write_then_gc(repo_, staged, manifest):
        real(repo_, staged, manifest)
        with repo.catalog.write() as conn:
            conn.execute(update(leases).values(expires_at=now() - timedelta(hours=7)))
        other = Repository.open(
            catalog=repo.catalog.url, store=repo.store.url, home=str(tmp_path / "other")
        )
        other.gc(grace=0)
        other.close()

    monkeypatch.setattr(log_module, "write_manifest", write_then_gc)
    v = repo.log_artifact(Artifact("ds").add_file(write(tmp_path / "a", os.urandom(3000))))
    assert not repo.verify(v.ref).ok


def test_gc_records_what_it_deletes_before_deleting_it(repo, tmp_path, monkeypatch):
    keep = repo.log_artifact(Artifact("ds").add_file(write(tmp_path / "k", b"keep" * 100)))
    gone = repo.log_artifact(Artifact("ds").add_file(write(tmp_path / "k", b"gone" * 100)))
    gone.delete()
    doomed_object = object_key(gone.files()[0].digest, namespace=gone.namespace)

    def crash(keys):
        raise OSError("the machine died while deleting")

    monkeypatch.setattr(repo.store, "delete", crash)
    with pytest.raises(OSError):
        repo.gc(grace=0)
    [key] = record_keys(repo.store)
    assert key.startswith("gc/") and key.endswith(".json.gz")
    record = read_record(repo.store, key)
    assert record["kind"] == "gc" and record["repository"] == repo.identity.require()
    assert record["grace_seconds"] == 0
    assert {d["key"] for d in record["delete"]} == {
        doomed_object,
        manifest_key(gone.digest, namespace=gone.namespace),
    }
    assert record["manifest_rows"] == [gone.digest]
    assert doomed_object in {i.key for i in repo.store.list()}  # nothing deleted yet

    monkeypatch.undo()
    report = repo.gc(grace=0)  # the next run finishes the job, and records it too
    assert report.objects_deleted == 1 and report.record in record_keys(repo.store)
    assert len(record_keys(repo.store)) == 2
    assert repo.verify(keep.ref).ok
    assert repo.gc(grace=0).record is None  # nothing to delete: no record


def test_gc_leaves_namespaces_its_catalog_does_not_know(repo, tmp_path):
    v = repo.log_artifact(Artifact("ds").add_file(write(tmp_path / "a", b"mine")))
    stranger = "projects/someone-else/objects/ab/" + "c" * 62
    repo.store.put(stranger, b"not this catalog's")
    time.sleep(0.01)
    report = repo.gc(grace=0)
    assert report.objects_deleted == 0 and report.objects_foreign == 1
    assert "namespaces this catalog does not know" in str(report)
    assert repo.store.get(stranger) == b"not this catalog's"
    assert repo.verify(v.ref).ok


def test_gc_grace_on_the_command_line(repo, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from cairn.cli import app

    repo.close()
    monkeypatch.setenv("CAIRN_CATALOG", repo.catalog.url)
    runner = CliRunner()
    bad = runner.invoke(app, ["gc", "--grace", "soon"])
    assert bad.exit_code == 2  # bad input, as for every option value
    assert bad.stderr.startswith("cairn: error: invalid duration 'soon'")
    ok = runner.invoke(app, ["gc", "--grace", "90m", "--dry-run"])
    assert ok.exit_code == 0, ok.stderr
    assert ok.stdout.startswith("would free 0 bytes")
