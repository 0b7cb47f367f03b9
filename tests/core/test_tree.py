"""FileTree: a version's folders listed a page at a time, and looking up runs by id."""

from __future__ import annotations

import zlib
from dataclasses import replace

import pytest

from cairn import Artifact, FileTree, InvalidName, NotFound
from cairn.engine.tree import QUICK_CHILDREN


def _version(repo, files: dict[str, bytes]):
    art = Artifact("ds", type="dataset")
    for path, data in files.items():
        with art.new_file(path, mode="wb") as f:
            f.write(data)
    return repo.log_artifact(art, project="demo")


FILES = {
    "a.txt": b"1",
    "a-b/x.bin": b"22",
    "a/x.txt": b"333",
    "a/y/z.txt": b"4444",
    "a/y/w.txt": b"55555",
    "b/c/d/e.txt": b"666666",
    "README.md": b"7777777",
}


def test_root_lists_folders_first_with_their_sizes_and_file_counts(repo):
    tree = _version(repo, FILES).file_tree()
    page = tree.listdir()
    assert [(i.name, i.is_folder, i.size, i.files) for i in page.items] == [
        ("a", True, 3 + 4 + 5, 3),
        ("a-b", True, 2, 1),
        ("b", True, 6, 1),
        ("README.md", False, 7, 1),
        ("a.txt", False, 1, 1),
    ]
    assert (page.folder, page.total, page.size, page.files) == ("", 5, 28, 7)
    assert not page.has_more


def test_a_folder_lists_its_children_and_nothing_of_its_siblings(repo):
    tree = _version(repo, FILES).file_tree()
    page = tree.listdir("a")
    assert [(i.path, i.is_folder, i.size) for i in page.items] == [
        ("a/y", True, 9),
        ("a/x.txt", False, 3),
    ]
    assert (page.size, page.files) == (12, 3)
    assert [i.path for i in tree.listdir("b/c").items] == ["b/c/d"]
    assert tree.listdir("a/").folder == "a"


def test_pages_cover_every_child_once():
    entries = {f"d/f{i:04d}": {"size": i, "digest": "x"} for i in range(250)}
    entries.update({f"d/sub{i}/x": {"size": 1, "digest": "x"} for i in range(3)})
    tree = FileTree(entries)
    seen = []
    offset = 0
    while True:
        page = tree.listdir("d", offset=offset, limit=100)
        seen += [i.name for i in page.items]
        if not page.has_more:
            break
        offset += page.limit
    assert seen[:3] == ["sub0", "sub1", "sub2"]
    assert seen[3:] == [f"f{i:04d}" for i in range(250)]
    assert tree.listdir("d", offset=1000).items == ()


def test_files_and_folders_are_told_apart_and_entries_match_the_manifest(repo):
    v = _version(repo, FILES)
    tree = v.file_tree()
    assert len(tree) == len(FILES)
    assert tree.is_file("a/y/z.txt") and not tree.is_folder("a/y/z.txt")
    assert tree.is_folder("a/y") and not tree.is_file("a/y")
    assert tree.is_folder("") and not tree.is_folder("a/q")
    assert tree.entry("a/y/z.txt") == v.entry("a/y/z.txt")


def test_missing_and_escaping_paths_are_errors(repo):
    tree = _version(repo, FILES).file_tree()
    with pytest.raises(NotFound):
        tree.listdir("nope")
    with pytest.raises(NotFound):
        tree.listdir("a.txt")  # a file, not a folder
    with pytest.raises(NotFound):
        tree.entry("a/y")
    for bad in ("../a", "a/../b", "/etc", "a\\b"):
        with pytest.raises(InvalidName):
            tree.listdir(bad)
        with pytest.raises(InvalidName):
            tree.entry(bad)


def test_a_corrupt_manifest_is_refused(repo):
    from cairn import IntegrityError

    v = _version(repo, FILES)
    body = v.manifest.to_bytes()
    assert len(FileTree.from_bytes(body, expect_digest=v.digest)) == len(FILES)
    with pytest.raises(IntegrityError):
        FileTree.from_bytes(body.replace(b'"size":1', b'"size":9'), expect_digest=v.digest)


def test_pending_versions_have_no_tree_yet(repo):
    part = Artifact("shards", type="dataset")
    with part.new_file("p.txt") as f:
        f.write("p")
    pending = repo.upsert_artifact(part, project="demo", distributed_id="g", writer_id="w")
    with pytest.raises(NotFound):
        pending.file_tree()


def test_get_run_finds_a_recorded_run_and_nothing_else(repo):
    with repo.run(project="demo", name="train", job_type="train", group="g") as run:
        pass
    found = repo.get_run(run.id)
    assert (found.name, found.job_type, found.group, found.state) == (
        "train",
        "train",
        "g",
        "finished",
    )
    assert found.finished_at is not None
    with pytest.raises(NotFound):
        repo.get_run("no-such-run")


def _one_document(manifest):
    """The manifest as one format 1/2 document, however many entries it has: what a
    store written before format 3 holds (a larger one is written as format 3 now)."""
    from cairn.foundation.manifest_shards import canonical

    plain = all(e.kind == "file" for e in manifest.values())
    doc = {"entries": {p: e.to_json() for p, e in manifest.items()}, "format": 1 if plain else 2}
    return canonical(doc)


def _both(manifest):
    """The tree read from the manifest's text, and the one from its parsed document."""
    import blake3

    from cairn.foundation.manifest import parse_document

    text = _one_document(manifest)
    body = zlib.compress(text)
    fast = FileTree.from_bytes(body, expect_digest=blake3.blake3(text).hexdigest())
    slow = FileTree(parse_document(body)["entries"])
    return fast, slow


def _walk(tree: FileTree, folder: str = "", *, sizes: bool = True) -> list:
    """Every folder's listing, depth first."""
    page = tree.listdir(folder, limit=10_000, sizes=sizes)
    out = [(folder, page.size, page.files, page.items)]
    for item in page.items:
        if item.is_folder:
            out += _walk(tree, item.path, sizes=sizes)
    return out


def _without_folder_sizes(walk: list) -> list:
    return [
        (folder, None, files, tuple(replace(i, size=None) if i.is_folder else i for i in items))
        for folder, _, files, items in walk
    ]


ODD_PATHS = [
    'quote"in/name.txt',  # an escaped quote
    "ends-with},/x",  # the marker between entries, at a folder's end
    "x},",  # ... and at a file's end
    "y9},",  # ... after a digit
    'brace":{inside/y',  # an escaped quote followed by :{
    'has "size":1}/z',  # the size marker, quoted
    "ünïcödé/名前.csv",  # \\u escapes
    "plain/a.bin",
    "plain/b/c.txt",
    "plain/b/d.parquet",
]


def _odd_manifest(many: int = 500):
    from cairn import Chunk, Entry, Manifest

    entries = [Entry(p, 10 + i, f"{i:064x}") for i, p in enumerate(ODD_PATHS)]
    entries.append(Entry("chunked/big.bin", 300, "f" * 64, chunks=(Chunk("a" * 64, 100),) * 3))
    entries += [Entry(f"many/f{i:05d}", i, f"{i:064x}") for i in range(many)]
    return Manifest(entries), entries


def test_the_text_reading_agrees_with_the_parsed_document():
    manifest, entries = _odd_manifest()
    fast, slow = _both(manifest)
    assert fast._text is not None  # read in place, not parsed
    # quick listings (no folder sizes) first, before the index exists
    assert _walk(fast, sizes=False) == _without_folder_sizes(_walk(slow))
    for e in entries[:11]:
        assert fast.entry(e.path) == slow.entry(e.path) == e
    assert fast.is_file('quote"in/name.txt') and not fast.is_file("plain")
    assert fast.is_folder("plain/b") and not fast.is_folder("plain/b/c.txt")
    assert fast.first_path_ending([".parquet", ".csv"]) == "plain/b/d.parquet"
    assert fast.first_path_ending([".csv"]) == "ünïcödé/名前.csv"
    assert fast.first_path_ending([".nope"]) is None
    assert len(fast) == len(slow) == len(entries)
    assert not fast.indexed
    # then with sizes, from the index
    assert _walk(fast) == _walk(slow)
    assert fast.indexed
    assert list(fast.paths()) == list(slow.paths()) == sorted(e.path for e in entries)
    assert fast.entry("x},") == slow.entry("x},")


def test_a_quick_listing_of_a_crowded_folder_builds_the_index():
    manifest, _ = _odd_manifest(many=QUICK_CHILDREN + 5)
    fast, slow = _both(manifest)
    page = fast.listdir("many", limit=10, sizes=False)
    assert fast.indexed and page.size == slow.listdir("many").size
    assert [i.name for i in page.items] == [f"f{i:05d}" for i in range(10)]


def test_manifests_with_references_and_empty_ones_are_read_too():
    from cairn import Entry, Manifest

    ref = Entry("linked.csv", 5, None, ref="s3://bucket/k", pin={"etag": "x", "size": 5})
    fast, slow = _both(Manifest([ref, Entry("a.txt", 1, "0" * 64)]))
    assert fast._text is None  # a pin: parsed
    assert _walk(fast) == _walk(slow) == _walk(fast, sizes=False)
    assert fast.entry("linked.csv") == ref
    empty, _ = _both(Manifest([]))
    assert (len(empty), empty.listdir().total, empty.listdir(sizes=False).total) == (0, 0, 0)
    assert empty.paths() == () and empty.first_path_ending([".csv"]) is None


def test_bisecting_the_text_finds_what_bisecting_the_paths_finds():
    """Random paths made of the characters that could confuse a reader of the text."""
    import random
    from bisect import bisect_left

    from cairn import Entry, Manifest
    from cairn.foundation.manifest_text import ManifestText

    rng = random.Random(7)
    alphabet = ["a", "b", "}", ",", '"', ":", "{", "9", "é", " ", "/"]
    paths = set()
    while len(paths) < 400:
        parts = ["".join(rng.choice(alphabet[:-1]) for _ in range(rng.randint(1, 6)))]
        parts += [
            "".join(rng.choice(alphabet[:-1]) for _ in range(rng.randint(1, 4)))
        ] * rng.randint(0, 1)
        path = "/".join(parts) + ".f"  # no file named like a folder
        if path.strip() and not any(p in ("", ".", "..") for p in path.split("/")):
            paths.add(path)
    manifest = Manifest(Entry(p, i, f"{i:064x}") for i, p in enumerate(sorted(paths)))
    text = ManifestText.of(_one_document(manifest))
    assert text is not None and len(text) == len(paths)
    ordered = sorted(paths)
    starts, sizes = text.index()
    assert [text.path(s) for s in starts[:-1]] == ordered
    assert sizes == [manifest[p].size for p in ordered]
    for key in [*ordered, *("".join(rng.choice(alphabet) for _ in range(3)) for _ in range(300))]:
        i = bisect_left(ordered, key)
        assert text.lower_bound(key) == starts[i], key
