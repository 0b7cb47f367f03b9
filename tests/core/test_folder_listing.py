"""A folder added with `add_dir` is checked at once and its files are what the folder holds
when the artifact is logged. A small folder keeps the list its check made, and the log
takes it instead of walking the folder again, but only while none of its folders has
changed since (their modification and change times); a folder that changed, a large one,
one followed through links, or one changed just before the check is walked again.
"""

from __future__ import annotations

import os
import time

import pytest

import cairn.engine.artifact as artifact_module
import cairn.engine.walk as walk_module
from cairn import Artifact, Repository
from cairn.engine.walk import walk

from .conftest import write


@pytest.fixture
def settled(monkeypatch):
    """Folders count as settled 20 ms after their last change (2 s in use)."""
    monkeypatch.setattr(walk_module, "_RACY_NS", 20_000_000)

    def wait() -> None:
        time.sleep(0.1)

    return wait


@pytest.fixture
def repo(tmp_path):
    r = Repository.open(home=str(tmp_path / "home"))
    yield r
    r.close()


def _tree(root) -> str:
    for d in ("a", "b", "b/c"):
        for i in range(3):
            write(root / d / f"f{i}.txt", f"{d}/{i}")
    return str(root)


def _no_walk(monkeypatch) -> None:
    def refused(*args, **kwargs):
        raise AssertionError("the folder was walked again")

    monkeypatch.setattr(artifact_module, "found", refused)


def test_a_settled_small_folder_is_logged_from_the_list_its_check_made(
    repo, tmp_path, settled, monkeypatch
):
    data = _tree(tmp_path / "data")
    settled()
    art = Artifact("ds").add_dir(data, name="top")
    _no_walk(monkeypatch)
    v = repo.log_artifact(art)
    files = sorted(f"top/{d}/f{i}.txt" for d in ("a", "b", "b/c") for i in range(3))
    assert list(v.manifest) == files
    again = repo.log_artifact(Artifact("ds").add_dir(data, name="top"))
    assert again.id == v.id and again.created is False


@pytest.mark.parametrize("change", ["added", "removed", "renamed", "replaced by a folder"])
def test_a_file_added_removed_or_renamed_after_the_check_is_seen_by_the_log(
    repo, tmp_path, settled, change
):
    root = tmp_path / "data"
    data = _tree(root)
    settled()
    art = Artifact("ds").add_dir(data)
    assert art._folders[0].listing is not None  # kept: the change below must undo it
    if change == "added":
        write(root / "b" / "c" / "new.txt", "new")
    elif change == "removed":
        os.remove(root / "b" / "c" / "f1.txt")
    elif change == "renamed":
        os.rename(root / "b" / "c" / "f1.txt", root / "b" / "c" / "g1.txt")
    else:
        os.remove(root / "a" / "f2.txt")
        write(root / "a" / "f2.txt" / "inner.txt", "inner")
    paths = set(repo.log_artifact(art).manifest)
    expected = {f"{d}/f{i}.txt" for d in ("a", "b", "b/c") for i in range(3)}
    if change == "added":
        expected.add("b/c/new.txt")
    elif change == "removed":
        expected.discard("b/c/f1.txt")
    elif change == "renamed":
        expected = (expected - {"b/c/f1.txt"}) | {"b/c/g1.txt"}
    else:
        expected = (expected - {"a/f2.txt"}) | {"a/f2.txt/inner.txt"}
    assert paths == expected


def test_a_file_whose_bytes_changed_after_the_check_is_logged_with_its_new_bytes(
    repo, tmp_path, settled
):
    root = tmp_path / "data"
    data = _tree(root)
    settled()
    art = Artifact("ds").add_dir(data)
    assert art._folders[0].listing is not None
    write(root / "a" / "f0.txt", "rewritten, same folder entries")
    v = repo.log_artifact(art)
    with v.open("a/f0.txt") as f:
        assert f.read() == b"rewritten, same folder entries"


def test_a_folder_changed_just_before_its_check_is_walked_again_at_the_log(tmp_path):
    data = _tree(tmp_path / "data")  # just made: within the 2 s a clock tick may hide
    assert walk(data).listing is None
    assert walk(data).files == 9


def test_a_large_folder_and_one_followed_through_links_keep_no_list(tmp_path, settled, monkeypatch):
    data = _tree(tmp_path / "data")
    settled()
    assert walk(data).listing is not None
    assert walk(data, follow_links=True).listing is None
    monkeypatch.setattr(walk_module, "REMEMBERED", 8)
    large = walk(data)
    assert large.listing is None and large.files == 9


def test_a_log_nobody_watches_does_not_count_the_folders_bytes(repo, tmp_path, monkeypatch):
    data = _tree(tmp_path / "data")
    art = Artifact("ds").add_dir(data)
    monkeypatch.setattr(
        artifact_module._Folder, "size", lambda self: pytest.fail("bytes counted for nobody")
    )
    assert repo.log_artifact(art).file_count == 9


class _Recorder:
    def __init__(self) -> None:
        self.totals: list[int] = []

    def start(self, description: str, total: int) -> None:
        self.totals.append(total)

    def advance(self, nbytes: int) -> None:
        pass

    def finish(self) -> None:
        pass


def test_a_progress_bar_is_told_the_bytes_the_log_will_read(tmp_path):
    data = _tree(tmp_path / "data")
    single = write(tmp_path / "one.bin", b"x" * 1000)
    progress = _Recorder()
    with Repository.open(home=str(tmp_path / "home"), progress=progress) as repo:
        art = Artifact("ds").add_dir(data, name="tree").add_file(single)
        os.remove(tmp_path / "data" / "a" / "f0.txt")  # gone before the log: not counted
        repo.log_artifact(art)
    tree_bytes = sum(len(f"{d}/{i}") for d in ("a", "b", "b/c") for i in range(3)) - len("a/0")
    assert progress.totals[0] == tree_bytes + 1000
