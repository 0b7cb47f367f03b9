"""Manifest format 3: shards of sorted entries under a root (docs/FORMAT.md "Manifest").

The threshold and the shard size are lowered here so a few dozen files make a sharded
manifest; the rules are the same at a million.
"""

from __future__ import annotations

import json
import random
import zlib

import pytest

import cairn
import cairn.foundation.manifest as manifest_module
import cairn.foundation.manifest_shards as shards_module
from cairn import Artifact, IntegrityError, Repository
from cairn.engine.contents import Contents
from cairn.engine.manifest_overlay import overlay
from cairn.foundation.layout import MANIFESTS, manifest_key, namespace_prefix
from cairn.foundation.manifest import (
    Diff,
    Entry,
    Manifest,
    ShardedManifest,
    build,
    read_document,
    stored_document,
)
from cairn.foundation.manifest_shards import canonical, decode

from .conftest import write
from .storelog_helpers import delete_catalog, open_repo


@pytest.fixture
def small_shards(monkeypatch):
    """Format 3 above 8 entries, a shard boundary every 4 entries on average."""
    monkeypatch.setattr(manifest_module, "SHARD_THRESHOLD", 8)
    monkeypatch.setattr(shards_module, "SHARD_BITS", 2)
    monkeypatch.setattr(shards_module, "SHARD_MAX", 16)


def _entry(path: str, fill: str = "a", size: int = 1) -> Entry:
    return Entry(path, size, fill * 64)


def _stored(m: Manifest) -> dict[str, bytes]:
    return {d.digest: d.packed for d in m.documents()}


PATHS = sorted(f"d{i % 5}/f{i:04d}.bin" for i in range(300))


# -- the format ----------------------------------------------------------------------------


def test_small_manifests_stay_format_1_byte_for_byte(small_shards):
    m = build(_entry(p) for p in PATHS[:8])
    expected = {"entries": {p: {"digest": "a" * 64, "size": 1} for p in PATHS[:8]}, "format": 1}
    assert m.to_bytes() == canonical(expected) and not isinstance(m, ShardedManifest)
    assert m.shard_digests() == ()


def test_a_large_manifest_is_a_root_naming_sorted_shards(small_shards):
    m = build(_entry(p) for p in PATHS)
    assert isinstance(m, ShardedManifest) and len(m.shards) > 10
    root = json.loads(m.to_bytes())
    assert root["format"] == 3 and [s["digest"] for s in root["shards"]] == list(m.shard_digests())
    assert sum(s["count"] for s in root["shards"]) == len(PATHS) == len(m)
    store = _stored(m)
    loaded = Manifest.from_bytes(store[m.digest], expect_digest=m.digest, load=store.__getitem__)
    assert list(loaded) == PATHS and loaded.digest == m.digest
    assert loaded[PATHS[77]].size == 1 and "nope" not in loaded and "d0/f00005" not in loaded
    assert list(loaded.under("d3"))[:2] == [p for p in PATHS if p.startswith("d3/")][:2]
    assert loaded.size == 300 and loaded.file_count == 300
    # the same entries given in memory (`Manifest(...)`) store the same documents
    assert Manifest([_entry(p) for p in reversed(PATHS)]).digest == m.digest


def test_shards_made_past_the_memory_budget_wait_in_a_temporary_file(small_shards, monkeypatch):
    monkeypatch.setattr(shards_module, "SPOOL_MEMORY", 200)
    m = build(_entry(p) for p in PATHS)
    assert isinstance(m, ShardedManifest) and m._spool._file is not None
    store = _stored(m)
    assert set(store) == {*m.shard_digests(), m.digest}
    loaded = Manifest.from_bytes(store[m.digest], expect_digest=m.digest, load=store.__getitem__)
    assert list(loaded.items()) == list(m.items())


def test_a_lookup_reads_one_shard(small_shards):
    m = build(_entry(p) for p in PATHS)
    store = _stored(m)
    read: list[str] = []

    def load(d: str) -> bytes:
        read.append(d)
        return store[d]

    loaded = Manifest.from_bytes(store[m.digest], load=load)
    assert loaded["d2/f0102.bin"].path == "d2/f0102.bin"
    assert loaded.get("d2/f0102.bin-not") is None
    assert len(set(read)) <= 2


def test_old_readers_refuse_format_3(small_shards):
    """A cairn that knows formats 1 and 2 reads `format` first and stops there."""
    m = build(_entry(p) for p in PATHS)
    with pytest.raises(IntegrityError, match="format 3 is not supported|format 3"):
        read_document(m.to_bytes())
    doc = json.loads(m.to_bytes())
    assert doc["format"] not in (1, 2) and "entries" not in doc


@pytest.mark.parametrize("seed", range(8))
def test_a_draft_merge_equals_a_fresh_build(small_shards, seed):
    """Shard boundaries depend only on the entries since the last one: merging a few
    changes into the parent's shards gives the digest a fresh log of the result gives
    (DESIGN invariant 4), and keeps most shards."""
    rng = random.Random(seed)
    parent = build(_entry(p) for p in PATHS)
    store = _stored(parent)
    base = Manifest.from_bytes(store[parent.digest], load=store.__getitem__)
    removed = set(rng.sample(PATHS, 4))
    puts = [_entry(f"d{rng.randrange(7)}/new{rng.randrange(999)}", "b") for _ in range(4)]
    puts.append(_entry(rng.choice(PATHS), "c", 9))
    merged = overlay(base, puts, removed)
    want = {p: _entry(p) for p in PATHS if p not in removed}
    want.update((e.path, e) for e in puts)
    assert merged.digest == build(want[p] for p in sorted(want)).digest
    assert len(merged.inherited()) >= len(parent.shards) - 12
    diff = Diff.between(base, merged)
    assert set(diff.removed) <= removed and len(diff.added) + len(diff.modified) >= 1


@pytest.mark.parametrize("seed", range(6))
def test_a_draft_that_only_replaces_entries_edits_their_shards_bytes(small_shards, seed):
    """Replacing entries keeps a shard's paths, so its cut: the shard's bytes are edited,
    not cut again, and the result is the fresh build's byte for byte (a file that becomes
    a link or a folder changes the shard's file count and size too)."""
    rng = random.Random(seed)
    parent = build(_entry(p) for p in PATHS)
    store = _stored(parent)
    base = Manifest.from_bytes(store[parent.digest], load=store.__getitem__)
    puts = [_entry(p, "c", rng.randrange(1, 99)) for p in rng.sample(PATHS, 5)]
    puts.append(Entry.link(rng.choice(PATHS), PATHS[0]))
    cut: list[str] = []
    add_json = shards_module.Cutter.add_json

    def counted(self, path, data):
        cut.append(path)
        add_json(self, path, data)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(shards_module.Cutter, "add_json", counted)
        merged = overlay(base, puts)
    assert cut == []  # no entry cut again
    want = {p: _entry(p) for p in PATHS}
    want.update((e.path, e) for e in puts)
    fresh = build(want[p] for p in sorted(want))
    assert merged.digest == fresh.digest and merged.to_bytes() == fresh.to_bytes()
    assert _stored(merged) == _stored(fresh)
    assert merged.file_count == fresh.file_count and merged.size == fresh.size


def test_a_shard_not_in_canonical_form_is_cut_again_not_edited():
    """`spliced` edits only bytes it can find exactly once as an entry: a shard written
    with other spacing, or an entry's bytes found twice, is left to the cutter."""
    raw = {"a": {"digest": "a" * 64, "size": 1}, "b": {"digest": "b" * 64, "size": 2}}
    ref = shards_module.ShardRef("a", "b", 2, 2, 3, 0, "0" * 64)
    new = {"digest": "c" * 64, "size": 5}
    text = canonical({"entries": raw, "format": 3})
    edited = shards_module.spliced(text, ref, [("b", new)])
    assert edited is not None
    assert edited[1] == canonical({"entries": {**raw, "b": new}, "format": 3})
    assert (edited[0].files, edited[0].size, edited[0].bytes) == (2, 6, len(edited[1]))
    spaced = json.dumps({"entries": raw, "format": 3}, sort_keys=True).encode()
    assert shards_module.spliced(spaced, ref, [("b", new)]) is None
    member = b'"b":' + canonical(raw["b"])
    twice = text.replace(b'"format":3', b'"format":3,"x":{' + member + b"}")
    assert shards_module.spliced(twice, ref, [("b", new)]) is None
    # a key found inside a string, or with a value that is not an entry, is not one
    assert shards_module.entry_at('{"entries":{"a":{"t":"x,\\"b\\":{"}},"format":3}', "b") is None
    assert shards_module.entry_at('{"entries":{"a":{"size":1}},"format":3}', "c") is None


def test_a_draft_refuses_a_path_both_file_and_folder_across_shards(small_shards):
    base = build(_entry(p) for p in PATHS)
    with pytest.raises(IntegrityError, match="both a file and a folder"):
        overlay(base, [_entry("d1")])
    with pytest.raises(IntegrityError, match="both a file and a folder"):
        overlay(base, [_entry("d1/f0001.bin/x")])
    # an empty folder that gets a file is dropped: the folder exists anyway
    with_dir = overlay(base, [Entry.folder("e")])
    assert with_dir["e"].kind == "dir"
    filled = overlay(with_dir, [_entry("e/x")])
    assert "e" not in filled and "e/x" in filled
    assert filled.digest == build([*(_entry(p) for p in PATHS), _entry("e/x")]).digest


def test_shrinking_below_the_threshold_writes_format_1_again(small_shards):
    base = build(_entry(p) for p in PATHS[:12])
    assert isinstance(base, ShardedManifest)
    smaller = overlay(base, [], set(PATHS[:6]))
    assert (
        not isinstance(smaller, ShardedManifest) and json.loads(smaller.to_bytes())["format"] == 1
    )


def test_a_sharded_tree_lists_every_folder_as_the_file_tree_does(small_shards):
    """Listings read only the shards they need and agree with FileTree (the reference)."""
    from cairn.engine.shardtree import ShardedTree
    from cairn.engine.tree import FileTree

    rng = random.Random(3)
    entries = [_entry(p, size=rng.randrange(1, 99)) for p in PATHS]
    entries += [_entry(f"deep/a/b{i % 3}/c{i}.x", size=i) for i in range(40)]
    entries += [Entry.link("links/to-first", "../d0/f0000.bin"), Entry.folder("void/empty")]
    entries += [_entry(f"top{i}.txt", size=3) for i in range(5)]
    m = build(sorted(entries, key=lambda e: e.path))
    store = _stored(m)
    read: list[str] = []
    loaded = Manifest.from_bytes(store[m.digest], load=lambda d: read.append(d) or store[d])
    fast = ShardedTree(loaded)
    slow = FileTree({e.path: e.to_json() for e in m.values()})
    folders = ["", "d0", "d3", "deep", "deep/a", "deep/a/b1", "links", "void", "void/empty"]
    for folder in folders:
        a, b = fast.listdir(folder, limit=1000), slow.listdir(folder, limit=1000)
        assert (a.items, a.total, a.size, a.files) == (b.items, b.total, b.size, b.files), folder
    assert fast.is_folder("deep/a") and not fast.is_folder("deep/a/b1/c1.x")
    assert fast.is_file("deep/a/b1/c1.x") and not fast.is_file("void/empty")
    assert fast.entry("top2.txt").size == 3
    with pytest.raises(cairn.NotFound):
        fast.listdir("nope")
    # a folder's listing reads the shards its span meets, not the manifest
    read.clear()
    again = Manifest.from_bytes(store[m.digest], load=lambda d: read.append(d) or store[d])
    assert isinstance(again, ShardedManifest)
    ShardedTree(again).listdir("deep/a/b1")
    assert 0 < len(set(read)) <= 6 < len(m.shards)


def test_a_sharded_tree_lists_from_the_shards_json_without_an_entry_per_path(
    small_shards, monkeypatch
):
    """The root's page of a version reads every shard whose span meets two folders: from
    its JSON, with no Entry made per path (a 20,000-file version's first page)."""
    from cairn.engine.shardtree import ShardedTree

    m = build(_entry(p, size=2) for p in PATHS)
    store = _stored(m)
    made: list[str] = []
    real = Entry.from_json.__func__  # type: ignore[attr-defined]

    def counted(cls, path, data):  # type: ignore[no-untyped-def]
        made.append(path)
        return real(cls, path, data)

    monkeypatch.setattr(Entry, "from_json", classmethod(counted))
    page = ShardedTree(Manifest.from_bytes(store[m.digest], load=store.__getitem__)).listdir("")
    assert [(i.name, i.size, i.files) for i in page.items] == [
        (f"d{i}", 2 * 60, 60) for i in range(5)
    ]
    assert made == []


# -- bad input -------------------------------------------------------------------------------


def test_a_corrupt_or_truncated_shard_is_a_clear_error(small_shards):
    m = build(_entry(p) for p in PATHS)
    store = _stored(m)
    first = m.shard_digests()[0]
    for bad in (store[first][:-7], store[first][:10] + b"x" + store[first][11:]):
        broken = {**store, first: bad}
        loaded = Manifest.from_bytes(store[m.digest], load=broken.__getitem__)
        with pytest.raises(IntegrityError, match=f"manifest {first} is corrupt"):
            list(loaded)
    with pytest.raises(IntegrityError, match="corrupt"):
        Manifest.from_bytes(store[m.digest][:-5], expect_digest=m.digest)


def test_a_shard_never_inflates_past_what_its_root_says(small_shards):
    """A zlib bomb in place of a shard stops at the shard's recorded length."""
    m = build(_entry(p) for p in PATHS)
    store = _stored(m)
    first = m.shards[0]
    bomb = zlib.compress(b"{" + b" " * (256 << 20), 9)  # 256 MiB of spaces in ~250 KiB
    loaded = Manifest.from_bytes(store[m.digest], load={**store, first.digest: bomb}.__getitem__)
    with pytest.raises(IntegrityError, match=f"larger than the {first.bytes} bytes"):
        loaded[first.first]
    with pytest.raises(IntegrityError, match="larger than"):
        decode(bomb, expect_digest=None, limit=1 << 20)


def test_a_root_with_overlapping_shards_is_refused(small_shards):
    m = build(_entry(p) for p in PATHS)
    doc = json.loads(m.to_bytes())
    doc["shards"][1]["first"] = doc["shards"][0]["first"]
    with pytest.raises(IntegrityError, match="overlap"):
        Manifest.from_bytes(canonical(doc))


# -- in a repository -------------------------------------------------------------------------


def _manifest_keys(repo: Repository, namespace: str) -> set[str]:
    """Digests of the manifest documents a namespace holds in the store."""
    listed = repo.store.list(namespace_prefix(namespace) + MANIFESTS)
    return {info.key.rsplit("/", 1)[1].removesuffix(".json") for info in listed}


def _files(folder, n: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    for i in range(n):
        write(folder / f"d{i % 4}" / f"f{i:04d}.bin", rng.randbytes(40))


def test_drafts_share_shards_and_gc_keeps_those_a_live_version_needs(small_shards, repo, tmp_path):
    """Two versions share most shards; deleting one and collecting with no grace period
    leaves the other whole: download and verify still pass."""
    data = tmp_path / "data"
    _files(data, 120)
    v1 = repo.log_artifact(Artifact("big", type="dataset").add_dir(str(data)))
    ns = v1.namespace
    before = _manifest_keys(repo, ns)
    assert isinstance(v1.manifest, ShardedManifest)
    assert set(v1.manifest.shard_digests()) <= before

    draft = repo.artifact(v1.ref).new_draft()
    write(tmp_path / "x.bin", b"changed")
    draft.add_file(str(tmp_path / "x.bin"), "d1/f0005.bin").remove("d2/f0010.bin")
    v2 = repo.log_artifact(draft)
    assert v2.index == v1.index + 1 and v2.digest != v1.digest
    shared = set(v1.manifest.shard_digests()) & set(v2.manifest.shard_digests())
    assert len(shared) >= len(v1.manifest.shards) - 6
    new_keys = _manifest_keys(repo, ns) - before
    assert len(new_keys) <= 7  # the changed shards and the root, no more
    assert repo.diff(v1.ref, v2.ref) == Diff(
        added=(), removed=("d2/f0010.bin",), modified=("d1/f0005.bin",)
    )

    repo.artifact(v1.ref).delete()
    report = repo.gc(grace=0)
    assert report.manifests_deleted >= 1
    left = _manifest_keys(repo, ns)
    assert shared <= left and v2.digest in left
    assert v1.digest not in left
    fresh = repo.artifact(v2.ref)
    out = fresh.download(str(tmp_path / "out"))
    assert (out / "d1" / "f0005.bin").read_bytes() == b"changed"
    assert not (out / "d2" / "f0010.bin").exists()
    assert len(list(out.rglob("*.bin"))) == 119
    assert repo.verify().ok
    assert fresh.entry("d3/f0007.bin").size == 40
    assert [i.name for i in fresh.file_tree().listdir("d0").items][:1] == ["f0000.bin"]


def test_verify_reads_a_shard_versions_share_once_and_reports_its_references_for_each(
    small_shards, repo, tmp_path, monkeypatch
):
    """A draft shares its parent's shards: a verify of both reads each shard once, and a
    reference gone bad in a shared shard is reported for both versions."""
    data = tmp_path / "data"
    _files(data, 120)
    src = write(tmp_path / "source" / "table.csv", "a,b\n1,2\n")
    art = Artifact("big", type="dataset").add_dir(str(data))
    v1 = repo.log_artifact(art.add_reference(f"file://{src}", name="aaa/table.csv"))
    draft = repo.artifact(v1.ref).new_draft()
    write(tmp_path / "x.bin", b"changed")
    v2 = repo.log_artifact(draft.add_file(str(tmp_path / "x.bin"), "d3/f0005.bin"))
    shared = set(v1.manifest.shard_digests()) & set(v2.manifest.shard_digests())
    assert shared and v1.manifest.shard_digests()[0] in shared  # where the reference is
    write(src, "a,b\n9,9\n")
    reads: list[str] = []
    real = ShardedManifest.read

    def counted(self, ref):  # type: ignore[no-untyped-def]
        reads.append(ref.digest)
        return real(self, ref)

    monkeypatch.setattr(ShardedManifest, "read", counted)

    report = repo.verify()

    assert sorted(reads) == sorted(set(reads))  # no shard read twice
    assert set(reads) >= set(v1.manifest.shard_digests()) | set(v2.manifest.shard_digests())
    assert report.objects_checked == 121 and not report.bad
    assert [line.split(" ", 1)[0] for line in report.references] == [v2.ref, v1.ref]
    assert all("aaa/table.csv" in line for line in report.references)


def test_a_draft_reads_only_the_shards_its_changes_fall_in(
    small_shards, repo, tmp_path, monkeypatch
):
    """Logging a draft never walks its parent: the cost is that of the changes, and the
    shards they fall in are read in one request."""
    data = tmp_path / "data"
    _files(data, 200)
    v1 = repo.log_artifact(Artifact("big", type="dataset").add_dir(str(data)))
    total = len(v1.manifest.shards)
    fetched: list[str] = []
    batches: list[list[str]] = []
    body, bodies = Contents.manifest_body, Contents.manifest_bodies
    monkeypatch.setattr(
        Contents, "manifest_body", lambda self, d: fetched.append(d) or body(self, d)
    )
    monkeypatch.setattr(
        Contents, "manifest_bodies", lambda self, ds: batches.append(ds) or bodies(self, ds)
    )
    draft = repo.artifact(v1.ref).new_draft()
    write(tmp_path / "x.bin", b"x")
    draft.add_file(str(tmp_path / "x.bin"), "d1/f0101.bin").remove("d0/f0100.bin")
    read_before = set(fetched)  # remove() looked for what is under its path
    v2 = repo.log_artifact(draft)
    shard_reads = set(fetched) - {v1.digest}
    assert len(batches) == 1 and len(batches[0]) == 2, batches  # the two changed shards
    assert not (set(fetched) - read_before) & set(batches[0])  # none read one by one
    assert total > 30 and len(shard_reads | set(batches[0])) <= 6, (total, shard_reads)
    assert len(repo.artifact(v2.ref).manifest) == 199


def test_a_draft_of_a_format_1_version_reads_and_grows_into_format_3(home, catalog_url, tmp_path):
    """A store written before format 3 (formats 1 and 2) stays readable; a draft of one
    of its versions that grows past the threshold is written as format 3."""
    data = tmp_path / "data"
    _files(data, 40)
    repo = Repository.open(catalog=catalog_url, home=str(home))
    old = repo.log_artifact(Artifact("legacy", type="dataset").add_dir(str(data)))
    assert json.loads(zlib.decompress(repo.contents.manifest_body(old.digest)))["format"] == 1
    repo.close()

    patch = pytest.MonkeyPatch()
    try:
        patch.setattr(manifest_module, "SHARD_THRESHOLD", 8)
        patch.setattr(shards_module, "SHARD_BITS", 2)
        repo = Repository.open(catalog=catalog_url, home=str(home))
        again = repo.artifact(old.ref)
        assert again.manifest.digest == old.digest  # read as it was written
        draft = again.new_draft()
        write(tmp_path / "y.bin", b"y")
        v2 = repo.log_artifact(draft.add_file(str(tmp_path / "y.bin"), "new/y.bin"))
        assert isinstance(repo.artifact(v2.ref).manifest, ShardedManifest)
        out = repo.artifact(v2.ref).download(str(tmp_path / "out"))
        assert len(list(out.rglob("*.bin"))) == 41
        assert repo.verify().ok
        repo.close()
    finally:
        patch.undo()


def test_verify_reports_a_missing_or_corrupt_shard_in_the_store(small_shards, repo, tmp_path):
    data = tmp_path / "data"
    _files(data, 60)
    v = repo.log_artifact(Artifact("big", type="dataset").add_dir(str(data)))
    assert repo.verify().ok
    first, second = v.manifest.shard_digests()[:2]
    repo.store.delete([manifest_key(first, namespace=v.namespace)])
    repo.store.put(manifest_key(second, namespace=v.namespace), b'{"entries":{},"format":3}')
    report = repo.verify()
    assert not report.ok and len(report.manifests) == 2
    assert any(line.startswith("missing: ") and first in line for line in report.manifests)
    assert any(line.startswith("corrupt: ") and second in line for line in report.manifests)
    assert v.ref in str(report)


def test_recover_restores_shards_from_the_store(small_shards, home, catalog_url, store, tmp_path):
    url, options = store
    repo = open_repo(home, catalog_url, url, options)
    data = tmp_path / "data"
    _files(data, 60)
    v1 = repo.log_artifact(Artifact("big", type="dataset").add_dir(str(data)))
    draft = repo.artifact(v1.ref).new_draft().remove("d0")
    v2 = repo.log_artifact(draft)
    digests, ref = {v1.digest, v2.digest}, v2.ref
    repo.close()

    delete_catalog(catalog_url)
    report = cairn.recover(store=url, catalog=catalog_url, storage_options=options)
    assert report.versions == 2, str(report)
    repo = open_repo(home, catalog_url, url, options)
    back = repo.artifact(ref)
    assert back.digest in digests and len(back.manifest) == 45
    out = back.download(str(tmp_path / "out"))
    assert len(list(out.rglob("*.bin"))) == 45
    assert repo.verify().ok
    repo.close()


def test_export_copies_every_shard(small_shards, tmp_path):
    src = Repository.open(
        catalog=f"sqlite:///{tmp_path}/src.db",
        store=str(tmp_path / "s1"),
        home=str(tmp_path / "h1"),
    )
    dst = Repository.open(
        catalog=f"sqlite:///{tmp_path}/dst.db",
        store=str(tmp_path / "s2"),
        home=str(tmp_path / "h2"),
    )
    data = tmp_path / "data"
    _files(data, 50)
    v = src.log_artifact(Artifact("big", type="dataset").add_dir(str(data)))
    src.export(v.ref, to=dst)
    copy = dst.artifact(v.ref)
    assert copy.digest == v.digest and isinstance(copy.manifest, ShardedManifest)
    assert set(v.manifest.shard_digests()) <= _manifest_keys(dst, copy.namespace)
    out = copy.download(str(tmp_path / "out"))
    assert len(list(out.rglob("*.bin"))) == 50
    src.close()
    dst.close()


def test_cli_show_pages_a_sharded_version_and_diff_names_the_changes(
    small_shards, home, tmp_path, monkeypatch
):
    from typer.testing import CliRunner

    import cairn.cli.browse as cli

    monkeypatch.setattr(cli, "_SHOW_PAGE", 7)
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "data"
    _files(data, 30)
    repo = Repository.open(home=str(home))
    v1 = repo.log_artifact(Artifact("big", type="dataset").add_dir(str(data)))
    draft = repo.artifact(v1.ref).new_draft().remove("d3/f0003.bin")
    v2 = repo.log_artifact(draft)
    repo.close()
    runner = CliRunner()
    shown = runner.invoke(cli.app, ["show", v1.ref])
    assert shown.exit_code == 0, shown.stderr
    rows = [line for line in shown.stdout.splitlines() if ".bin" in line]
    assert len(rows) == 30 and shown.stdout.count("digest / reference") == 1
    assert [r.split()[0] for r in rows] == sorted(r.split()[0] for r in rows)
    listed = runner.invoke(cli.app, ["show", v2.ref, "--json"])
    assert len(json.loads(listed.stdout)["files"]) == 29
    diff = runner.invoke(cli.app, ["diff", v1.ref, v2.ref])
    assert diff.stdout.splitlines() == ["D  d3/f0003.bin"]


def test_a_stored_manifest_is_restored_without_an_entry_per_path(small_shards, monkeypatch):
    """What recover keeps of a manifest: its compressed body as stored (compressed once
    if stored plain), a format-3 root's shards, its digest checked; no Entry made."""
    made: list[str] = []
    real = Entry.from_json.__func__  # type: ignore[attr-defined]
    small = Manifest([_entry(p) for p in PATHS[:3]])
    large = build(_entry(p) for p in PATHS)
    monkeypatch.setattr(
        Entry, "from_json", classmethod(lambda cls, p, d: made.append(p) or real(cls, p, d))
    )
    packed = small.compressed()
    assert stored_document(packed, expect_digest=small.digest) == (packed, ())
    body, shards = stored_document(small.to_bytes(), expect_digest=small.digest)
    assert zlib.decompress(body) == small.to_bytes() and shards == ()
    body, shards = stored_document(large.compressed(), expect_digest=large.digest)
    assert [s.digest for s in shards] == list(large.shard_digests()) and len(shards) > 1
    assert made == []
    with pytest.raises(IntegrityError, match="digest does not match"):
        stored_document(packed, expect_digest=large.digest)
