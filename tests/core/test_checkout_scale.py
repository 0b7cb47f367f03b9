"""What keeps a get of many files fast and its memory bounded: the manifest read once
however large it is, the files fetched and written a batch at a time, and the marker
written straight as canonical JSON (cairn.engine.checkout, cairn.engine.marker).

The rules every checkout keeps are tested in test_checkout.py and test_many_files_get.py;
these tests check the costs that those rules must not grow.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import cairn.engine.checkout as checkout
import cairn.engine.marker as markers
import cairn.foundation.manifest as manifest
from cairn import Artifact, CairnError
from cairn.engine.download import Downloader
from cairn.engine.marker import Marker, Written

from .conftest import write

MARKER = ".cairn-checkout.json"


def _files(n: int, folders: int) -> dict[str, str]:
    return {f"d{i % folders:02}/f{i:05}.txt": f"file {i}\n" for i in range(n)}


def _tree(root: Path) -> dict[str, str]:
    out = {}
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            rel = os.path.relpath(os.path.join(dirpath, name), root)
            if rel != MARKER:
                out[rel] = Path(dirpath, name).read_text()
    return out


def _log(repo, tmp_path, files: dict[str, str], src: str = "src"):
    src = tmp_path / src
    for path, text in files.items():
        write(src / path, text)
    return repo.log_artifact(Artifact("ds").add_dir(src), project="p")


def _canonical(m: Marker) -> bytes:
    """The marker as json.dumps writes the document (what to_bytes must equal)."""
    doc = {
        "format": 2,
        "ref": m.ref,
        "project": m.project,
        "collection": m.collection,
        "version": m.version,
        "digest": m.digest,
        "complete": m.complete,
        "entries": {p: w.to_json() for p, w in m.entries.items()},
    }
    if m.incoming:
        doc["incoming"] = {p: [w.to_json() for w in ws] for p, ws in m.incoming.items()}
    if m.incoming_versions:
        doc["incoming_versions"] = list(m.incoming_versions)
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


@pytest.mark.parametrize("complete", [True, False])
def test_the_marker_is_canonical_json_whatever_its_names(complete):
    ws = [
        Written("file", "ab" * 32, 512, mtime_ns=1_700_000_000_123_456_789, ino=4242),
        Written("link", target='up/"q\\uote"/é'),
        Written("dir"),
        Written("file", "cd" * 32, 0),  # an empty file: no size key, as before
    ]
    m = Marker(
        ref='p/c:"v1"',
        project="pröject",
        collection="c\u2028",
        version="v1",
        digest="d" * 64,
        complete=complete,
        entries={"z": ws[0], "ä/\n": ws[1], "m/n": ws[2], "e": ws[3]},
        incoming={} if complete else {"a/ü": ws[:2], "b": [ws[3]]},
        incoming_versions=() if complete else ("e" * 64, "f" * 64),
    )
    assert m.to_bytes() == _canonical(m)
    back = Marker.from_bytes(m.to_bytes(), written_ns=0)
    assert back is not None
    assert (back.entries, back.incoming, back.incoming_versions, back.complete) == (
        m.entries,
        m.incoming,
        m.incoming_versions,
        complete,
    )
    stored = _stored(m.to_bytes())  # read from its file, the entries left there
    assert stored.stored is not None and stored.entries == {}
    assert list(stored.records()) == sorted(m.entries.items())
    assert (stored.incoming, stored.incoming_versions, stored.ref) == (
        m.incoming,
        m.incoming_versions,
        m.ref,
    )
    assert stored.to_bytes() == m.to_bytes()  # its entries copied as they are


def test_a_large_marker_is_written_in_chunks_in_path_order_and_read_back():
    # more entries than one chunk, given out of order, one path named like a record key
    names = [f"d{i % 7}/f{i:05}" for i in range(9000)] + ["kind", "digest"]
    entries = {
        n: Written("file", f"{i:064x}", i + 1, mtime_ns=10**18 + i, ino=i + 2)
        for i, n in enumerate(reversed(names))
    }
    m = Marker("p/c:v1", "p", "c", "v1", "d" * 64, True, entries=entries)
    assert m.to_bytes() == _canonical(m)
    assert len(list(m.entry_blocks(size=4096))) == 3
    back = Marker.from_bytes(m.to_bytes(), written_ns=0)
    assert back is not None and back.entries == entries
    assert list(back.entries) == sorted(entries)  # read in path order: written as read
    assert back.to_bytes() == m.to_bytes()


@pytest.mark.parametrize("block", [64, 1000, 1 << 20])
def test_a_stored_markers_records_are_read_a_block_at_a_time_whatever_their_names(
    monkeypatch, block
):
    """Records are cut apart where one ends: a name or link target that ends like a
    record (`},`) never cuts one in two, wherever the blocks end."""
    monkeypatch.setattr(markers, "_BLOCK", block)
    entries = {
        f"d{i % 5}/{'},' if i % 3 else ''}f{i:04}": Written("link", target=f"x{i}}},")
        if i % 2
        else Written("file", f"{i:064x}", i + 1, mtime_ns=10**18 + i, ino=i + 2)
        for i in range(300)
    }
    m = Marker("p/c:v1", "p", "c", "v1", "d" * 64, True, entries=entries)
    stored = _stored(m.to_bytes())
    assert stored.stored is not None
    assert list(stored.records()) == sorted(entries.items())
    assert b"".join(stored.entry_blocks()) == b"".join(m.entry_blocks())


def test_a_marker_not_written_as_cairn_writes_it_is_read_whole():
    m = Marker("p/c:v1", "p", "c", "v1", "d" * 64, True, entries={"a": Written("dir")})
    loose = json.dumps(json.loads(m.to_bytes()), indent=2).encode()
    back = _stored(loose)
    assert back is not None and back.stored is None and back.entries == m.entries


@pytest.mark.parametrize(
    "record",
    ['{"kind":"file","size":"many"}', '{"digest":"ab"}', "[1]"],
    ids=["bad-size", "no-kind", "a-list"],
)
def test_a_stored_marker_whose_records_are_not_a_markers_is_unreadable(record):
    entries = {f"f{i:04}": Written("dir") for i in range(2000)}
    body = Marker("p/c:v1", "p", "c", "v1", "d" * 64, True, entries=entries).to_bytes()
    body = body.replace(b'"f1500":{"kind":"dir"}', b'"f1500":' + record.encode())
    stored = _stored(body)
    assert stored.stored is not None  # its outline reads: the records are read later
    with pytest.raises(markers.Unreadable):
        list(stored.records())
    assert Marker.from_bytes(body, written_ns=0) is None


def _stored(body: bytes) -> Marker:
    fd = os.memfd_create("marker")
    os.write(fd, body)
    marker = markers.read(fd, written_ns=0)
    assert marker is not None
    return marker


@pytest.mark.parametrize(
    "entry",
    [{"digest": "ab"}, {"kind": "file", "size": "many"}, [1], "file"],
    ids=["no-kind", "bad-size", "a-list", "a-string"],
)
def test_a_marker_with_a_malformed_record_is_not_read_as_cairns(entry):
    body = _canonical(Marker("p/c:v1", "p", "c", "v1", "d" * 64, True, entries={}))
    doc = json.loads(body)
    doc["entries"] = {"a.txt": entry}
    assert Marker.from_bytes(json.dumps(doc).encode(), written_ns=0) is None


def test_an_update_keeps_the_markers_records_of_unchanged_files_out_of_memory(local, tmp_path):
    """What an update of a large checkout plans for each unchanged file is the marker's
    record, and it holds none of them: the marker's entries stay in its file and the
    kept records go to a file of their own, both in path order."""
    from cairn.engine.checkout_plan import Found, Target
    from cairn.engine.confined import ConfinedDir

    files = _files(300, 3)
    v1 = _log(local, tmp_path, files)
    out = v1.download(tmp_path / "out")
    v2 = _log(local, tmp_path, {**files, "d00/f00000.txt": "changed\n"}, src="src2")
    folder = ConfinedDir(str(out))
    try:
        t = Target(v2.ref, "p", "ds", v2.version, v2.manifest.digest)
        found = Found(t, v2.manifest, folder, cache=local.cache, load=None, link=False)
        plan = found.plan()
        assert found.marker is not None and found.marker.stored is not None
        assert found.marker.entries == {} and not plan.problems
        marked = dict(found.marker.records())
        kept = list(plan.kept.records())
        found.close()
        plan.close()
    finally:
        folder.close()
    unchanged = sorted(files.keys() - {"d00/f00000.txt"})
    assert [p for p, _ in kept] == unchanged == sorted(marked.keys() - {"d00/f00000.txt"})
    assert len(plan.kept) == len(files) - 1
    assert all(w == marked[p] for p, w in kept)


def test_a_checkout_whose_marker_is_out_of_order_is_updated(local, tmp_path):
    """A marker whose entries are not in path order (not as cairn writes them) is read
    whole instead: its files are still cairn's."""
    files = _files(40, 3)
    v1 = _log(local, tmp_path, files)
    out = v1.download(tmp_path / "out")
    doc = json.loads((out / MARKER).read_text())
    entries = doc.pop("entries")
    head = json.dumps(doc, sort_keys=True, separators=(",", ":"))
    backwards = ",".join(
        f"{json.dumps(p)}:{json.dumps(w, separators=(',', ':'))}"
        for p, w in reversed(entries.items())
    )
    # where cairn puts the entries, so the marker is first read as a stream
    (out / MARKER).write_text(head.replace(',"format"', f',"entries":{{{backwards}}},"format"'))
    assert markers.read(os.open(out / MARKER, os.O_RDONLY), written_ns=0).stored is not None
    v2 = _log(local, tmp_path, {**files, "d01/f00001.txt": "changed\n"}, src="src2")
    v2.download(out)
    assert _tree(out) == {**files, "d01/f00001.txt": "changed\n"}


def test_a_checkout_whose_marker_has_a_broken_record_is_refused_and_unchanged(local, tmp_path):
    files = _files(40, 3)
    v1 = _log(local, tmp_path, files)
    out = v1.download(tmp_path / "out")
    body = (out / MARKER).read_bytes()
    broken = body.replace(b'"kind":"file"', b'"kind":["file"]', 1)
    (out / MARKER).write_bytes(broken)
    v2 = _log(local, tmp_path, {**files, "d01/f00001.txt": "changed\n"}, src="src2")
    with pytest.raises(CairnError, match="cannot read"):
        v2.download(out)
    assert _tree(out) == files and (out / MARKER).read_bytes() == broken


def test_a_folder_is_walked_in_the_order_manifests_sort_paths(tmp_path):
    from cairn.engine.confined import ConfinedDir

    names = ["a", "a.txt", "a/b", "a/b.c", "a/b/c", "a0", "a-b/x", "b", "a/a", "é/z", "a b"]
    for n in names:
        write(tmp_path / "t" / n / "f" if n in ("a", "a/b") else tmp_path / "t" / n, "x")
    folder = ConfinedDir(str(tmp_path / "t"))
    try:
        walked = [p for p, _ in folder.walk()]
    finally:
        folder.close()
    assert walked == sorted(walked)
    assert set(walked) >= set(names)


def test_a_format_1_marker_is_read_and_its_checkout_updated(local, tmp_path):
    """A checkout an older cairn made (marker format 1, `incoming` path by path) is still
    cairn's: its files are recognised, and the next get writes format 2."""
    v1 = _log(local, tmp_path, {"a.txt": "one\n", "gone.txt": "old\n"})
    out = v1.download(tmp_path / "out")
    doc = json.loads((out / MARKER).read_text())
    assert doc["format"] == 2 and doc["complete"] is True
    # as format 1 wrote an interrupted get: every path it was writing, listed
    doc.update(format=1, complete=False, incoming={"a.txt": [doc["entries"]["a.txt"]]})
    del doc["entries"]["a.txt"]
    (out / MARKER).write_text(json.dumps(doc, sort_keys=True, separators=(",", ":")))
    src = tmp_path / "src"
    (src / "gone.txt").unlink()
    write(src / "b.txt", "two\n")
    v2 = local.log_artifact(Artifact("ds").add_dir(src), project="p")
    v2.download(out)
    assert _tree(out) == {"a.txt": "one\n", "b.txt": "two\n"}
    after = json.loads((out / MARKER).read_text())
    assert (after["format"], after["complete"], after["version"]) == (2, True, "v1")
    assert "incoming" not in after and "incoming_versions" not in after


def test_a_sharded_manifest_is_read_once_by_a_get_beyond_the_shard_budget(
    local, tmp_path, monkeypatch
):
    files = _files(manifest.SHARD_THRESHOLD + 600, 10)
    v = _log(local, tmp_path, files)
    # fewer entries kept than the version has: each walk of the manifest would read
    # every shard again
    monkeypatch.setattr(manifest, "CACHED_ENTRIES", 500)
    reads: list[str] = []
    real = manifest.ShardedManifest.read

    def counted(self, ref):
        reads.append(ref.digest)
        return real(self, ref)

    monkeypatch.setattr(manifest.ShardedManifest, "read", counted)
    fresh = local.artifact(v.ref)
    out = fresh.download(tmp_path / "out")
    assert _tree(out) == files
    assert reads, "the version's manifest is sharded"
    assert len(reads) == len(set(reads)), "a shard was read twice"


def test_files_are_fetched_and_written_a_batch_at_a_time(local, tmp_path, monkeypatch):
    files = _files(1000, 7)
    v = _log(local, tmp_path, files)
    local.cache.cleanup(0)  # a cold get: every batch comes from the store
    monkeypatch.setattr(checkout, "BATCH", 300)
    asked: list[int] = []
    real = Downloader.ensure

    def counted(self, entries):
        entries = list(entries)
        asked.append(len(entries))
        return real(self, entries)

    monkeypatch.setattr(Downloader, "ensure", counted)
    out = v.download(tmp_path / "out")
    assert _tree(out) == files
    assert asked == [300, 300, 300, 100]


def _interrupted_get(repo, v, out: Path, monkeypatch, *, after: int) -> None:
    """A get of `v` into `out`, the cache emptied first, whose fetch fails after `after`
    batches of 200 files."""
    repo.cache.cleanup(0)
    monkeypatch.setattr(checkout, "BATCH", 200)
    real = Downloader.ensure
    calls: list[int] = []

    def failing(self, entries):
        calls.append(1)
        if len(calls) > after:
            raise OSError(5, "Input/output error")
        return real(self, entries)

    monkeypatch.setattr(Downloader, "ensure", failing)
    with pytest.raises((CairnError, OSError)):
        v.download(out)
    monkeypatch.setattr(Downloader, "ensure", real)


def test_a_fetch_failing_in_a_later_batch_leaves_whole_files_and_a_rerun_completes_it(
    local, tmp_path, monkeypatch
):
    files = _files(900, 5)
    v = _log(local, tmp_path, files)
    out = tmp_path / "out"
    _interrupted_get(local, v, out, monkeypatch, after=2)
    got = _tree(out)
    assert len(got) == 400  # the first two batches, whole
    assert all(files[p] == text for p, text in got.items())
    v.download(out)  # the re-run completes it, without force
    assert _tree(out) == files
    assert not list(out.rglob(".cairn-tmp-*"))


def test_the_marker_of_a_get_under_way_names_the_version_not_every_path(
    local, tmp_path, monkeypatch
):
    v = _log(local, tmp_path, _files(900, 5))
    out = tmp_path / "out"
    _interrupted_get(local, v, out, monkeypatch, after=2)
    body = (out / MARKER).read_bytes()
    doc = json.loads(body)
    assert (doc["complete"], doc["incoming_versions"], doc["entries"]) == (False, [v.digest], {})
    assert "incoming" not in doc and len(body) < 1000  # 900 files: none of them listed
    assert len(_tree(out)) == 400


def test_a_get_of_another_version_finishes_what_an_interrupted_one_began(
    local, tmp_path, monkeypatch
):
    """The files an interrupted get of v1 wrote are cairn's to a get of v2 (the marker
    names v1's manifest), so it needs no force and leaves nothing of v1 behind."""
    v1_files = _files(900, 5)
    v1 = _log(local, tmp_path, v1_files)
    v2_files = {p: text.upper() for p, text in list(v1_files.items())[::3]}
    v2 = _log(local, tmp_path, v2_files, src="src2")
    out = tmp_path / "out"
    _interrupted_get(local, v1, out, monkeypatch, after=2)
    assert len(_tree(out)) == 400
    v2.download(out)
    assert _tree(out) == v2_files
    doc = json.loads((out / MARKER).read_text())
    assert (doc["complete"], doc["version"], len(doc["entries"])) == (True, "v1", len(v2_files))
    assert "incoming_versions" not in doc


def test_files_of_an_interrupted_get_whose_version_is_gone_are_not_taken_for_cairns(
    local, tmp_path, monkeypatch
):
    """If the version an interrupted get was writing is deleted and collected before the
    next get, its files cannot be told from the user's: they are reported, not removed."""
    v0 = _log(local, tmp_path, {"keep.txt": "zero\n"})
    v1 = _log(local, tmp_path, _files(900, 5), src="src1")
    out = tmp_path / "out"
    _interrupted_get(local, v1, out, monkeypatch, after=2)
    v1.delete()
    local.gc(grace=0)
    with pytest.raises(CairnError, match="400 paths cairn did not write"):
        v0.download(out)
    assert len(_tree(out)) == 400  # nothing removed
    v0.download(out, force=True)
    assert _tree(out)["keep.txt"] == "zero\n"
