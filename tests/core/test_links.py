"""Links and empty folders in versions (docs/FORMAT.md, manifest format 2).

`add_dir` stores a symbolic link that stays inside the folder as a link entry (target
relative), refuses one that points outside unless `follow_links=True` (then the bytes it
points to are logged), and keeps empty folders. A manifest without links or folders is
byte-for-byte what it was before links existed, so old versions keep their digests.
Every reader of entries knows the new kinds: checkout, cairn://, diff, show, distributed
parts, read_table, verify, gc; an unknown kind is refused.
"""

from __future__ import annotations

import json
import os
import zlib
from pathlib import Path

import fsspec
import pytest

from cairn import Artifact, CairnError, Entry, IntegrityError, InvalidName, Manifest, NotFound
from cairn.foundation.manifest import Chunk

from .conftest import write

# -- the manifest format ---------------------------------------------------------------------

_BEFORE_LINKS = (
    '{"entries":{"data/a.bin":{"digest":"' + "3f" * 32 + '","size":1204},'
    '"model.pt":{"chunks":[["' + "9a" * 32 + '",4],["' + "c4" * 32 + '",6]],'
    '"digest":"' + "77" * 32 + '","size":10},'
    '"raw/x.csv":{"digest":null,"pin":{"etag":"\\"abc\\""},"ref":"s3://bucket/raw/x.csv",'
    '"size":88}},"format":1}'
)


def test_a_manifest_without_links_or_folders_serialises_as_before():
    m = Manifest(
        [
            Entry("data/a.bin", 1204, "3f" * 32),
            Entry("model.pt", 10, "77" * 32, (Chunk("9a" * 32, 4), Chunk("c4" * 32, 6))),
            Entry("raw/x.csv", 88, None, ref="s3://bucket/raw/x.csv", pin={"etag": '"abc"'}),
        ]
    )
    assert m.to_bytes() == _BEFORE_LINKS.encode()
    assert m.digest == "97014ee891c96218b17d1149f75b21bd61ffa2d5fdd8ac40ece9d8c3db9bdf29"
    assert Manifest.from_bytes(m.compressed(), expect_digest=m.digest) == m


def test_links_and_folders_make_a_format_2_manifest():
    m = Manifest(
        [
            Entry("a.txt", 3, "aa" * 32),
            Entry.link("docs/readme", "../a.txt"),
            Entry.folder("empty/nested"),
        ]
    )
    doc = json.loads(m.to_bytes())
    assert doc["format"] == 2
    assert doc["entries"]["docs/readme"] == {"kind": "link", "target": "../a.txt"}
    assert doc["entries"]["empty/nested"] == {"kind": "dir"}
    back = Manifest.from_bytes(m.to_bytes())
    assert back["docs/readme"].kind == "link" and back["docs/readme"].target == "../a.txt"
    assert back["empty/nested"].kind == "dir"
    assert back.digest == m.digest
    assert m.file_count == 2  # the file and the link; an empty folder is no file
    assert m.objects() == {"aa" * 32}


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"format": 2, "entries": {"x": {"kind": "fifo"}}}, "kind 'fifo'"),
        ({"format": 4, "entries": {}}, "format 4"),
        ({"format": 3, "entries": {}}, "lists no shards"),  # a root names shards
        ({"format": 1, "entries": {"x": {"kind": "dir"}}}, "format 1"),
        ({"format": 2, "entries": {"x": {"kind": "link"}}}, "target"),
    ],
)
def test_readers_refuse_unknown_kinds_and_formats(doc, message):
    body = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    with pytest.raises(IntegrityError, match=message):
        Manifest.from_bytes(zlib.compress(body))


@pytest.mark.parametrize(
    ("path", "target"),
    [
        ("l", ".."),  # the folder above the version
        ("a/l", "../../etc"),
        ("l", "/etc/passwd"),
        ("a/l", "x/../../.."),  # '..' after a name: not canonical, refused
        ("a/l", "b/../c"),
        ("l", "."),
        ("l", ""),
        ("l", "a\\b"),
        ("l", "a\x00b"),
        ("l", "a//b"),
    ],
)
def test_invariant_10_link_targets_cannot_escape(path, target):
    with pytest.raises(InvalidName):
        Manifest([Entry.link(path, target)])
    body = json.dumps(
        {"format": 2, "entries": {path: {"kind": "link", "target": target}}},
        sort_keys=True,
        separators=(",", ":"),
    ).encode()
    with pytest.raises(InvalidName):
        Manifest.from_bytes(body)


@pytest.mark.parametrize(("path", "target"), [("a/l", ".."), ("a/b/l", "../../x"), ("l", "a/b")])
def test_link_targets_inside_the_version_are_accepted(path, target):
    assert Manifest([Entry.link(path, target)])[path].target == target


def test_a_folder_entry_with_something_in_it_is_dropped():
    m = Manifest([Entry.folder("d"), Entry("d/x", 1, "aa" * 32)])
    assert list(m) == ["d/x"]


def test_a_link_cannot_have_files_below_it():
    with pytest.raises(IntegrityError, match="both"):
        Manifest([Entry.link("d", "x"), Entry("d/y", 1, "aa" * 32)])


# -- logging folders with links -----------------------------------------------------------------


@pytest.fixture
def tree(tmp_path) -> Path:
    """A folder with links inside it, a dangling one, and empty folders."""
    root = tmp_path / "tree"
    write(root / "a.txt", "alpha")
    write(root / "sub" / "b.txt", "bravo")
    os.symlink("a.txt", root / "l1")
    os.symlink("../a.txt", root / "sub" / "l2")
    os.symlink(root / "sub" / "b.txt", root / "l3")  # absolute, but inside
    os.symlink("sub", root / "dirlink")
    os.symlink("nothing-here", root / "dangling")
    (root / "empty" / "nested").mkdir(parents=True)
    (root / "blank").mkdir()
    return root


EXPECTED = {
    "a.txt": ("file", None),
    "blank": ("dir", None),
    "dangling": ("link", "nothing-here"),
    "dirlink": ("link", "sub"),
    "empty/nested": ("dir", None),
    "l1": ("link", "a.txt"),
    "l3": ("link", "sub/b.txt"),
    "sub/b.txt": ("file", None),
    "sub/l2": ("link", "../a.txt"),
}


def _shape(root: Path) -> dict[str, tuple[str, str | None]]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root)
            if name == ".cairn-checkout.json":
                continue
            if os.path.islink(full):
                out[rel] = ("link", os.readlink(full))
            elif os.path.isdir(full):
                if not os.listdir(full):
                    out[rel] = ("dir", None)
            else:
                out[rel] = ("file", Path(full).read_text())
    return out


def test_links_inside_and_empty_folders_round_trip(repo, tree, tmp_path):
    v = repo.log_artifact(Artifact("ds").add_dir(tree), project="p")
    assert {e.path: (e.kind, e.target) for e in v.files()} == EXPECTED
    assert v.file_count == 7
    out = v.download(tmp_path / "out")
    assert _shape(out) == {
        **EXPECTED,
        "a.txt": ("file", "alpha"),
        "sub/b.txt": ("file", "bravo"),
    }
    # a checkout logged again is the same version (its marker is local state, not data)
    again = repo.log_artifact(Artifact("ds").add_dir(out), project="p")
    assert (again.id, again.created) == (v.id, False)
    # reading through links resolves within the version
    assert v.get_path("l1").read_text() == "alpha"
    assert v.get_path("dirlink/b.txt").read_text() == "bravo"
    with v.open("sub/l2") as f:
        assert f.read() == b"alpha"
    with pytest.raises(NotFound, match="dangling"):
        v.get_path("dangling")


def test_a_version_without_links_keeps_its_digest_when_logged_again(repo, tmp_path):
    write(tmp_path / "plain" / "x.txt", "x")
    v0 = repo.log_artifact(Artifact("ds").add_dir(tmp_path / "plain"), project="p")
    assert json.loads(v0.manifest.to_bytes())["format"] == 1
    v1 = repo.log_artifact(Artifact("ds").add_dir(tmp_path / "plain"), project="p")
    assert v1.id == v0.id


@pytest.mark.parametrize(
    ("name", "target"),
    [
        ("abs", "/etc"),
        ("up", "../outside.txt"),
        ("deep/up", "../../outside.txt"),
        ("parent", ".."),
        ("slash", "/"),
    ],
)
def test_add_dir_refuses_a_link_pointing_outside(tmp_path, name, target):
    root = tmp_path / "tree"
    write(root / "a.txt", "alpha")
    write(tmp_path / "outside.txt", "secret")
    os.makedirs((root / name).parent, exist_ok=True)
    os.symlink(target, root / name)
    with pytest.raises(CairnError, match="follow_links") as err:
        Artifact("ds").add_dir(root)
    assert name in str(err.value) and "outside" in str(err.value)


def test_add_dir_names_the_first_outside_links_and_counts_them(tmp_path):
    root = tmp_path / "tree"
    root.mkdir()
    for i in range(12):
        os.symlink("/etc/hostname", root / f"l{i:02}")
    with pytest.raises(CairnError) as err:
        Artifact("ds").add_dir(root)
    assert "l00" in str(err.value) and "l11" not in str(err.value) and "12 " in str(err.value)


def test_follow_links_logs_the_bytes_a_link_points_to(repo, tmp_path):
    root = tmp_path / "tree"
    write(root / "a.txt", "alpha")
    write(tmp_path / "ext" / "shared.txt", "shared")
    write(tmp_path / "ext" / "deeper" / "d.txt", "delta")
    os.symlink(tmp_path / "ext" / "deeper", tmp_path / "ext" / "loop-back")  # fine
    os.symlink(tmp_path / "ext", tmp_path / "ext" / "deeper" / "cycle")  # a cycle
    os.symlink(tmp_path / "ext" / "shared.txt", root / "file-out")
    os.symlink(tmp_path / "ext", root / "dir-out")
    os.symlink("a.txt", root / "inside")
    art = Artifact("ds").add_dir(root, follow_links=True)
    v = repo.log_artifact(art, project="p")
    got = {e.path: (e.kind, e.target) for e in v.files()}
    assert got["inside"] == ("link", "a.txt")
    assert got["file-out"] == ("file", None)
    assert got["dir-out/shared.txt"] == ("file", None)
    assert got["dir-out/deeper/d.txt"] == ("file", None)
    assert got["dir-out/loop-back/d.txt"] == ("file", None)
    assert not any("cycle/" in p and p.count("cycle") > 1 for p in got)
    assert v.get_path("file-out").read_text() == "shared"


def test_add_dir_skips_sockets(tmp_path):
    import socket

    root = tmp_path / "tree"
    write(root / "a.txt", "alpha")
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(root / "s.sock"))
        art = Artifact("ds").add_dir(root)
    finally:
        sock.close()
    assert list(art.local_files) == ["a.txt"] and not art.entries


# -- every reader of entries --------------------------------------------------------------------


def test_distributed_parts_carry_links_and_folders(repo, tmp_path):
    one = tmp_path / "one"
    write(one / "data" / "x.csv", "x")
    os.symlink("x.csv", one / "data" / "current.csv")
    two = tmp_path / "two"
    (two / "logs").mkdir(parents=True)
    for w, folder in enumerate([one, two]):
        repo.upsert_artifact(
            Artifact("preds").add_dir(folder), project="p", distributed_id="d", writer_id=str(w)
        )
    v = repo.finish_artifact(Artifact("preds"), project="p", distributed_id="d")
    assert {e.path: e.kind for e in v.files()} == {
        "data/current.csv": "link",
        "data/x.csv": "file",
        "logs": "dir",
    }
    out = v.download(tmp_path / "out")
    assert os.readlink(out / "data" / "current.csv") == "x.csv"
    assert (out / "logs").is_dir() and not os.listdir(out / "logs")


def test_cairn_fs_lists_folders_and_resolves_links(repo, tree):
    repo.log_artifact(Artifact("ds").add_dir(tree), project="p")
    fs = fsspec.filesystem("cairn", repository=repo, skip_instance_cache=True)
    top = {i["name"]: i for i in fs.ls("p/ds:v0")}
    assert top["p/ds:v0/blank"]["type"] == "directory"
    assert top["p/ds:v0/empty"]["type"] == "directory"
    assert top["p/ds:v0/l1"]["type"] == "file" and top["p/ds:v0/l1"]["islink"]
    assert top["p/ds:v0/l1"]["destination"] == "a.txt" and top["p/ds:v0/l1"]["size"] == 5
    assert top["p/ds:v0/dirlink"]["type"] == "directory"
    assert fs.ls("p/ds:v0/blank") == []
    assert fs.ls("p/ds:v0/empty", detail=False) == ["p/ds:v0/empty/nested"]
    assert fs.cat_file("p/ds:v0/sub/l2") == b"alpha"
    assert fs.cat_file("p/ds:v0/dirlink/b.txt") == b"bravo"
    assert fs.ls("p/ds:v0/dirlink", detail=False) == ["p/ds:v0/dirlink/b.txt", "p/ds:v0/dirlink/l2"]
    with pytest.raises(FileNotFoundError):
        fs.cat_file("p/ds:v0/dangling")
    with pytest.raises(IsADirectoryError):
        fs.cat_file("p/ds:v0/blank")


def test_diff_and_show_know_links_and_folders(repo, tree, tmp_path):
    v0 = repo.log_artifact(Artifact("ds").add_dir(tree), project="p")
    os.unlink(tree / "l1")
    os.symlink("sub/b.txt", tree / "l1")
    (tree / "blank").rmdir()
    (tree / "fresh").mkdir()
    v1 = repo.log_artifact(Artifact("ds").add_dir(tree), project="p")
    d = repo.diff(v0.ref, v1.ref)
    assert (d.added, d.removed, d.modified) == (("fresh",), ("blank",), ("l1",))

    from typer.testing import CliRunner

    from cairn.cli import app

    r = CliRunner().invoke(
        app,
        ["--catalog", str(repo.catalog.engine.url), "--home", repo.home, "show", v1.ref, "--json"],
    )
    assert r.exit_code == 0, r.output
    files = {f["path"]: f for f in json.loads(r.stdout)["files"]}
    assert files["l1"]["kind"] == "link" and files["l1"]["target"] == "sub/b.txt"
    assert files["fresh"]["kind"] == "dir" and files["a.txt"]["kind"] == "file"
    r = CliRunner().invoke(
        app, ["--catalog", str(repo.catalog.engine.url), "--home", repo.home, "show", v1.ref]
    )
    assert "-> sub/b.txt" in r.stdout and "folder" in r.stdout


def test_read_table_follows_links_and_skips_folders(repo, tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    root = tmp_path / "t"
    (root / "parts" / "empty").mkdir(parents=True)
    os.makedirs(root / "store", exist_ok=True)
    pq.write_table(pa.table({"x": [1, 2]}), root / "store" / "a.parquet")
    pq.write_table(pa.table({"x": [3]}), root / "parts" / "b.parquet")
    os.symlink("../store/a.parquet", root / "parts" / "a.parquet")
    v = repo.log_artifact(Artifact("t").add_dir(root), project="p")
    assert v.read_table("parts").column("x").to_pylist() == [1, 2, 3]


def test_verify_and_gc_handle_links_and_folders(repo, tree, tmp_path):
    v0 = repo.log_artifact(Artifact("ds").add_dir(tree), project="p")
    report = repo.verify(v0.ref)
    assert report.ok and report.objects_checked == 2
    (tree / "a.txt").write_text("changed")
    v1 = repo.log_artifact(Artifact("ds").add_dir(tree), project="p")
    v0.delete()
    repo.gc(grace=0)
    assert repo.verify().ok
    assert (v1.download(tmp_path / "out") / "l1").read_text() == "changed"
