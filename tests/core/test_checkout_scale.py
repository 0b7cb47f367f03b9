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


def _log(repo, tmp_path, files: dict[str, str]):
    src = tmp_path / "src"
    for path, text in files.items():
        write(src / path, text)
    return repo.log_artifact(Artifact("ds").add_dir(src), project="p")


def _canonical(m: Marker) -> bytes:
    """The marker as json.dumps writes the document (what to_bytes must equal)."""
    doc = {
        "format": 1,
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
    )
    assert m.to_bytes() == _canonical(m)
    back = Marker.from_bytes(m.to_bytes(), written_ns=0)
    assert back is not None
    assert (back.entries, back.incoming, back.complete) == (m.entries, m.incoming, complete)


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


def test_a_fetch_failing_in_a_later_batch_leaves_whole_files_and_a_rerun_completes_it(
    local, tmp_path, monkeypatch
):
    files = _files(900, 5)
    v = _log(local, tmp_path, files)
    local.cache.cleanup(0)
    monkeypatch.setattr(checkout, "BATCH", 200)
    real = Downloader.ensure
    calls: list[int] = []

    def failing(self, entries):
        calls.append(1)
        if len(calls) == 3:
            raise OSError(5, "Input/output error")
        return real(self, entries)

    monkeypatch.setattr(Downloader, "ensure", failing)
    out = tmp_path / "out"
    with pytest.raises((CairnError, OSError)):
        v.download(out)
    got = _tree(out)
    assert len(got) == 400  # the first two batches, whole
    assert all(files[p] == text for p, text in got.items())
    monkeypatch.setattr(Downloader, "ensure", real)
    v.download(out)  # the re-run completes it, without force
    assert _tree(out) == files
    assert not list(out.rglob(".cairn-tmp-*"))
