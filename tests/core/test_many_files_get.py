"""`cairn get` of many small files: written by several threads, each file whole under its
name or absent, the cache filled and read in batches, and an interrupted get completed by
a re-run (docs/FORMAT.md, "Checkouts").

The rules every checkout keeps (never outside the root, never through a link, never over
a file cairn did not make) are tested in test_checkout.py; these tests cover what the
parallel writer and the batched cache add: the version right in every folder, whatever
the way a file got its name (an unnamed file linked in, or a temporary name renamed),
corrupt cached bytes never handed out, and a get killed while its writers are busy.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cairn import Artifact, CairnError, IntegrityError
from cairn.engine import confined, smallfiles
from cairn.foundation.chunking import digest

from .conftest import write

MARKER = ".cairn-checkout.json"


def _files(n: int, folders: int, tag: str = "") -> dict[str, str]:
    return {f"d{i % folders:02}/f{i:05}.txt": f"{tag}file {i}\n" * 8 for i in range(n)}


def _log(repo, tmp_path, files: dict[str, str], name: str = "ds"):
    src = tmp_path / f"src-{name}-{time.monotonic_ns()}"
    for path, text in files.items():
        write(src / path, text)
    return repo.log_artifact(Artifact(name).add_dir(src), project="p")


def _tree(root: Path) -> dict[str, str]:
    out = {}
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            rel = os.path.relpath(os.path.join(dirpath, name), root)
            if rel != MARKER:
                out[rel] = Path(dirpath, name).read_text()
    return out


def test_many_files_in_few_and_many_folders_arrive_whole(local, tmp_path):
    # one folder of more files than one writer's part, and many folders of a few each
    files = {**_files(1500, 1, "one "), **{f"m/{k}": v for k, v in _files(700, 70).items()}}
    v = _log(local, tmp_path, files)
    cold = v.download(tmp_path / "cold")  # from the store, through the cache
    warm = v.download(tmp_path / "warm")  # from the cache
    for out in (cold, warm):
        assert _tree(out) == files
        assert not list(out.rglob(".cairn-tmp-*"))
        assert all(os.stat(p).st_nlink == 1 for p in out.rglob("*.txt"))  # copies, not links
    # the marker's stamps are right: the same version again reads no file
    assert v.download(warm) == warm and _tree(warm) == files


@pytest.mark.parametrize("tmpfile", [True, False], ids=["unnamed-file", "temporary-name"])
def test_an_update_replaces_files_by_either_way_of_naming_them(
    local, tmp_path, monkeypatch, tmpfile
):
    if not tmpfile:
        monkeypatch.setattr(confined, "_TMPFILE", 0)
    elif not confined._TMPFILE:
        pytest.skip("this system has no O_TMPFILE or no /proc")
    v0 = _log(local, tmp_path, _files(300, 3))
    v1 = _log(local, tmp_path, _files(300, 3, "new "))
    out = v0.download(tmp_path / "out")
    (out / "d00" / "f00000.txt").unlink()
    v1.download(out)
    assert _tree(out) == _files(300, 3, "new ")
    assert not list(out.rglob(".cairn-tmp-*"))


def test_link_true_hardlinks_many_files_from_the_cache(local, tmp_path):
    files = _files(400, 4)
    v = _log(local, tmp_path, files)
    out = v.download(tmp_path / "out", link=True)
    assert _tree(out) == files
    some = out / "d01" / "f00001.txt"
    assert os.stat(some).st_nlink >= 2
    assert os.path.samefile(some, local.cache.path(v.entry("d01/f00001.txt").digest))


def test_a_cached_file_changed_behind_the_index_is_fetched_again(local, tmp_path):
    files = _files(200, 2)
    v = _log(local, tmp_path, files)
    v.download(tmp_path / "first")
    bad = Path(local.cache.path(v.entry("d00/f00000.txt").digest))
    os.chmod(bad, 0o644)
    bad.write_text("not what was logged\n")  # same path, new stamp: re-verified, dropped
    out = v.download(tmp_path / "again")
    assert _tree(out) == files
    assert bad.read_text() == files["d00/f00000.txt"]


def test_bytes_that_do_not_match_their_digest_are_never_cached(local):
    good, bad = b"good bytes", b"bad bytes"
    with pytest.raises(IntegrityError, match="f/bad.txt"):
        local.cache.add_many([(digest(good), good, "f/good.txt"), (digest(good), bad, "f/bad.txt")])
    assert local.cache.present({digest(good): len(good)}) <= {digest(good)}
    assert not os.path.exists(local.cache.path(digest(bad)))


def test_a_failing_writer_stops_the_get_and_a_rerun_completes_it(local, tmp_path, monkeypatch):
    files = _files(1200, 6)
    v = _log(local, tmp_path, files)
    v.download(tmp_path / "warm")  # the cache holds the version
    real = smallfiles.Copier.copy
    calls = []

    def failing(self: smallfiles.Copier, src: int, dst: int, size: int) -> None:
        calls.append(1)
        if len(calls) == 500:
            raise OSError(28, "No space left on device")
        real(self, src, dst, size)

    monkeypatch.setattr(smallfiles.Copier, "copy", failing)
    out = tmp_path / "out"
    with pytest.raises(CairnError, match="No space left"):
        v.download(out)
    got = _tree(out)
    assert 0 < len(got) < len(files)
    assert all(files[p] == text for p, text in got.items())  # each whole or absent
    monkeypatch.setattr(smallfiles.Copier, "copy", real)
    v.download(out)
    assert _tree(out) == files
    assert not list(out.rglob(".cairn-tmp-*"))


_GET = """
import sys
from cairn import Repository
repo = Repository.open(catalog=sys.argv[1], home=sys.argv[2])
v = repo.artifact(sys.argv[3])
v.files()
v.download(sys.argv[4])
print("done", flush=True)
"""


def test_a_get_killed_while_writing_leaves_whole_files_and_a_rerun_completes_it(
    local, tmp_path, home
):
    files = _files(4000, 20)
    v = _log(local, tmp_path, files)
    out = tmp_path / "out"
    args = [sys.executable, "-c", _GET, f"sqlite:///{home}/catalog.db", str(home), v.ref]
    # a cold get (store -> cache -> folder), then a warm one: killed once files appear
    for attempt in range(2):
        target = out if attempt == 0 else tmp_path / "out2"
        proc = subprocess.Popen([*args, str(target)], stdout=subprocess.PIPE)
        while proc.poll() is None and len(list(target.glob("d*/*.txt"))) < 50:
            time.sleep(0.002)
        proc.send_signal(signal.SIGKILL)
        stdout, _ = proc.communicate()
        assert b"done" not in stdout, "the get finished before it was killed"
        got = _tree(target)
        assert got and all(files[p] == text for p, text in got.items())
        v.download(target)  # the re-run completes it, without --force
        assert _tree(target) == files
        assert not list(target.rglob(".cairn-tmp-*"))
