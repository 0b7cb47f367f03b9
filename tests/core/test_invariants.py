"""One test per DESIGN.md invariant this engine owns, named after it."""

from __future__ import annotations

import os
import random

import pytest
from sqlalchemy import update

from cairn import (
    Artifact,
    Conflict,
    IntegrityError,
    InvalidName,
    Manifest,
    NotFound,
    ReferenceChanged,
)
from cairn.catalog.schema import manifests
from cairn.foundation.layout import object_key

from .conftest import stored_objects, write


def _files(root, n: int, size: int = 100, seed: int = 0) -> str:
    rnd = random.Random(seed)
    for i in range(n):
        write(root / f"d{i % 3}" / f"f{i}.bin", rnd.randbytes(size))
    return str(root)


def test_invariant_1_committed_manifest_never_changes(repo, tmp_path):
    data = _files(tmp_path / "data", 5)
    v0 = repo.log_artifact(Artifact("ds").add_dir(data), project="p")
    before = [(e.path, e.digest) for e in v0.files()]

    # mutable fields change, the manifest does not
    v0.description = "edited"
    v0.metadata["k"] = 1
    v0.aliases = ["best"]
    v0.save()
    draft = v0.new_draft()
    draft.remove("d0")
    repo.log_artifact(draft, project="p")
    again = repo.artifact("p/ds:v0")
    assert again.digest == v0.digest
    assert [(e.path, e.digest) for e in again.files()] == before
    assert again.description == "edited" and again.metadata == {"k": 1}

    # a manifest tampered with in the catalog is refused, not served
    with repo.catalog.write() as conn:
        body = Manifest([]).compressed()
        conn.execute(update(manifests).where(manifests.c.digest == v0.digest).values(body=body))
    with pytest.raises(IntegrityError, match="corrupt"):
        repo.artifact("p/ds:v0").files()


def test_invariant_3_version_numbers_gap_free_on_sqlite(repo, tmp_path):
    """Concurrent writers on SQLite: covered with real processes in test_concurrency;
    here the sequential contract: indices are 0..n-1 and never reused after delete."""
    vs = []
    for i in range(4):
        f = write(tmp_path / f"f{i}", f"content {i}")
        vs.append(repo.log_artifact(Artifact("ds").add_file(f, name="f"), project="p"))
    assert [v.index for v in vs] == [0, 1, 2, 3]
    vs[3].delete()
    v4 = repo.log_artifact(
        Artifact("ds").add_file(write(tmp_path / "g", "new"), name="f"), project="p"
    )
    assert v4.version == "v4"
    assert repo.artifact("p/ds:latest").version == "v4"


def test_invariant_4_identical_content_returns_existing_version(repo, tmp_path):
    data = _files(tmp_path / "data", 4)
    v0 = repo.log_artifact(Artifact("ds").add_dir(data), project="p")
    again = repo.log_artifact(Artifact("ds").add_dir(data), project="p", aliases=["prod"])
    assert again.id == v0.id and again.version == "v0"
    assert "prod" in again.aliases
    assert [v.version for v in repo.versions("p/ds")] == ["v0"]
    # the same bytes under other names are other content
    other = repo.log_artifact(Artifact("ds").add_dir(data, name="sub"), project="p")
    assert other.version == "v1"


def test_invariant_5_identical_content_stored_once(repo, tmp_path):
    """Once per store namespace: across the collections of public projects here (a
    private project's copy is its own, test_namespaces.py)."""
    blob = random.Random(1).randbytes(50_000)
    a = write(tmp_path / "a.bin", blob)
    b = write(tmp_path / "copy" / "b.bin", blob)
    repo.create_project("p", visibility="public")
    repo.create_project("q", visibility="open")
    repo.log_artifact(Artifact("one").add_file(a), project="p")
    repo.log_artifact(Artifact("two", type="model").add_file(b), project="q")
    repo.log_artifact(Artifact("one").add_file(a).add_file(b, name="again.bin"), project="p")
    objects = stored_objects(repo)
    assert list(objects.values()).count(len(blob)) == 1


def test_invariant_5_small_change_in_large_file_stores_only_changed_chunks(small_chunks, tmp_path):
    repo = small_chunks
    size = 4 << 20
    data = bytearray(random.Random(2).randbytes(size))
    path = write(tmp_path / "big.bin", bytes(data))
    v0 = repo.log_artifact(Artifact("big").add_file(path), project="p")
    assert len(v0.files()[0].chunks) > 100
    stored = sum(stored_objects(repo).values())

    # change 1% of the file in place
    start = size // 2
    data[start : start + size // 100] = random.Random(3).randbytes(size // 100)
    write(path, bytes(data))
    v1 = repo.log_artifact(Artifact("big").add_file(path), project="p")
    assert v1.version == "v1"
    grown = sum(stored_objects(repo).values()) - stored
    # the changed region plus at most a couple of max-size chunks at its edges
    assert 0 < grown <= size // 100 + 2 * 65536
    assert v1.last_log.bytes_sent == grown
    assert v1.get_path("big.bin").read_bytes() == bytes(data)


def test_invariant_6_draft_hashes_and_uploads_only_what_changed(repo, tmp_path):
    data = _files(tmp_path / "data", 300, size=2000)
    v0 = repo.log_artifact(Artifact("ds").add_dir(data), project="p")
    draft = v0.new_draft()
    changed = write(tmp_path / "changed.bin", b"new content")
    draft.add_file(changed, name="d0/f0.bin")
    draft.remove("d1/f1.bin")
    with draft.new_file("extra.txt") as f:
        f.write("hello")
    v1 = repo.log_artifact(draft, project="p")
    assert v1.last_log.files_hashed == 2
    assert v1.last_log.bytes_hashed == len(b"new content") + len("hello")
    assert v1.last_log.objects_sent == 2
    diff = repo.diff("p/ds:v0", "p/ds:v1")
    assert diff.added == ("extra.txt",)
    assert diff.removed == ("d1/f1.bin",)
    assert diff.modified == ("d0/f0.bin",)
    assert len(v1.files()) == 300


def test_invariant_6_unchanged_files_are_not_rehashed(repo, tmp_path):
    data = _files(tmp_path / "data", 50)
    repo.log_artifact(Artifact("ds").add_dir(data), project="p")
    write(os.path.join(data, "d0", "f0.bin"), b"edited")
    v1 = repo.log_artifact(Artifact("ds").add_dir(data), project="p")
    assert v1.version == "v1"
    assert v1.last_log.files_hashed == 1  # the stat cache vouched for the other 49


def test_unchanged_relog_reads_nothing_and_asks_the_store_once(repo, tmp_path, monkeypatch):
    data = _files(tmp_path / "data", 50)
    v0 = repo.log_artifact(Artifact("ds").add_dir(data), project="p")
    calls = []
    for name in ("exists_many", "put_many", "put", "get_range"):
        real = getattr(repo.store, name)
        monkeypatch.setattr(
            repo.store, name, lambda *a, _n=name, _r=real, **k: calls.append(_n) or _r(*a, **k)
        )

    again = repo.log_artifact(Artifact("ds").add_dir(data), project="p", aliases=["gold"])

    assert (again.version, again.created) == ("v0", False)
    assert set(again.aliases) == {"gold", "latest"}
    assert again.last_log.files == 50 and again.last_log.files_hashed == 0
    assert calls == ["exists_many"]  # one batched check that its objects are still there
    assert v0.digest == again.digest


def test_unchanged_relog_of_a_deleted_version_stores_its_objects_again(repo, tmp_path):
    data = _files(tmp_path / "data", 20)
    v0 = repo.log_artifact(Artifact("ds").add_dir(data), project="p")
    v0.delete()
    repo.gc(grace=0)
    assert stored_objects(repo) == {}

    v1 = repo.log_artifact(Artifact("ds").add_dir(data), project="p")

    assert (v1.version, v1.created) == ("v1", True)
    assert v1.last_log.objects_sent == 20  # the stat cache knew the files, the store did not
    assert repo.verify().ok
    assert v1.download(root=tmp_path / "out").joinpath("d0", "f0.bin").exists()


def test_invariant_8_gc_frees_only_what_no_live_version_needs(repo, tmp_path):
    shared = write(tmp_path / "shared.bin", b"shared" * 1000)
    only0 = write(tmp_path / "only0.bin", b"zero" * 1000)
    only1 = write(tmp_path / "only1.bin", b"one" * 1000)
    v0 = repo.log_artifact(Artifact("ds").add_file(shared).add_file(only0), project="p")
    v1 = repo.log_artifact(
        Artifact("ds").add_file(shared).add_file(only1, name="only0.bin"), project="p"
    )
    dry = repo.gc(dry_run=True, grace=0)
    assert dry.objects_deleted == 0
    v0.delete()
    dry = repo.gc(dry_run=True, grace=0)
    assert (dry.objects_deleted, dry.bytes_freed) == (1, 4000)
    assert len(stored_objects(repo)) == 3  # dry run deleted nothing
    report = repo.gc(grace=0)
    assert (report.objects_deleted, report.bytes_freed) == (1, 4000)
    assert repo.verify().ok
    assert v1.download(root=tmp_path / "out").joinpath("only0.bin").read_bytes() == b"one" * 1000


def test_invariant_8_gc_keeps_objects_a_writer_has_leased(repo, tmp_path):
    """A writer that found an object present (so skips sending it) has leased it first:
    gc between the writer's check and its commit must keep the object."""
    from cairn.engine.staging import stage

    f = write(tmp_path / "f.bin", b"payload" * 100)
    v0 = repo.log_artifact(Artifact("ds").add_file(f), project="p")
    v0.delete()
    art = Artifact("ds").add_file(f)
    with stage(repo, art, namespace=v0.namespace) as staged:
        assert staged.stats.objects_sent == 0  # deduplicated against v0's object
        assert repo.gc(grace=0).objects_deleted == 0  # ... which the lease now protects
    v1 = repo.log_artifact(Artifact("ds").add_file(f), project="p")
    assert repo.verify(v1.ref).ok


def test_invariant_9_corrupt_object_is_an_error_naming_the_entry(repo, tmp_path):
    f = write(tmp_path / "a.bin", b"good bytes" * 100)
    v = repo.log_artifact(Artifact("ds").add_file(f, name="data/a.bin"), project="p")
    digest = v.files()[0].digest
    obj = os.path.join(repo.store.root, *object_key(digest, namespace=v.namespace).split("/"))
    os.chmod(obj, 0o644)
    with open(obj, "r+b") as fh:
        fh.write(b"BAD")
    with pytest.raises(IntegrityError, match="data/a.bin"):
        v.download(root=tmp_path / "out")
    with pytest.raises(IntegrityError, match="data/a.bin"):
        v.open("data/a.bin").read()
    report = repo.verify()
    assert not report.ok and "data/a.bin" in report.corrupt[0]
    os.unlink(obj)
    assert "data/a.bin" in repo.verify().missing[0]


def test_invariant_9_cache_file_tampered_with_is_refetched(repo, tmp_path):
    f = write(tmp_path / "a.bin", b"original" * 100)
    v = repo.log_artifact(Artifact("ds").add_file(f), project="p")
    cached = v.get_path("a.bin")
    os.chmod(cached, 0o644)
    cached.write_bytes(b"tampered" * 100)
    assert v.get_path("a.bin").read_bytes() == b"original" * 100


@pytest.mark.parametrize(
    "bad", ["../x", "/etc/passwd", "a/../../b", "a\\b", "a\x00b", "", "a//b", "./a", "C:/x"]
)
def test_invariant_10_paths_cannot_escape(repo, tmp_path, bad):
    f = write(tmp_path / "f", b"x")
    with pytest.raises(InvalidName):
        Artifact("ds").add_file(f, name=bad)
    with pytest.raises(InvalidName):
        Artifact("ds").new_file(bad).__enter__()


@pytest.mark.parametrize("bad", ["../x", "a/b", "", ".", "..", "x\x00", "a b", "v3"])
def test_invariant_10_names_and_aliases_are_checked(repo, tmp_path, bad):
    f = write(tmp_path / "f", b"x")
    with pytest.raises(InvalidName):
        repo.log_artifact(Artifact("ds").add_file(f), project="p", aliases=[bad])
    if bad != "v3":
        with pytest.raises(InvalidName):
            Artifact(bad)
        with pytest.raises(InvalidName):
            repo.log_artifact(Artifact("ds").add_file(f), project=bad)


def test_invariant_10_stored_manifest_with_escaping_path_is_refused():
    body = b'{"entries":{"../evil":{"digest":"00","size":1}},"format":1}'
    with pytest.raises(InvalidName):
        Manifest.from_bytes(body)


def test_file_and_folder_with_one_name_is_refused(repo, tmp_path):
    art = Artifact("ds").add_file(write(tmp_path / "a", b"1"), name="x")
    art.add_file(write(tmp_path / "b", b"2"), name="x/y")
    with pytest.raises(IntegrityError, match="both a file and a folder"):
        repo.log_artifact(art, project="p")


def test_adding_one_path_twice_from_different_files_is_a_conflict(tmp_path):
    art = Artifact("ds").add_file(write(tmp_path / "a", b"1"), name="x")
    with pytest.raises(Conflict):
        art.add_file(write(tmp_path / "b", b"2"), name="x")


def test_missing_inputs_are_clear_errors(repo, tmp_path):
    with pytest.raises(NotFound, match="no such file"):
        Artifact("ds").add_file(tmp_path / "nope")
    with pytest.raises(NotFound, match="no such folder"):
        Artifact("ds").add_dir(tmp_path / "nope")
    with pytest.raises(NotFound):
        repo.artifact("p/none:latest")
    with pytest.raises(InvalidName):
        repo.artifact("bad ref/x")


def test_invariant_9_reference_changed_at_its_source_is_an_error_that_says_so(repo, tmp_path):
    src = write(tmp_path / "source" / "table.csv", "a,b\n1,2\n")
    art = Artifact("refs").add_reference(f"file://{src}", name="table.csv")
    v = repo.log_artifact(art, project="p")
    assert v.files()[0].is_reference
    assert repo.verify(v.ref).ok
    assert v.get_path("table.csv").read_text() == "a,b\n1,2\n"
    write(src, "a,b\n9,9\n")
    with pytest.raises(ReferenceChanged, match="table.csv"):
        v.download(root=tmp_path / "out")
    report = repo.verify(v.ref)
    assert not report.ok and "table.csv" in report.references[0]
