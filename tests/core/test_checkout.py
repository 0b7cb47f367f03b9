"""`download` / `cairn get`: a checkout never writes outside its root, never through a link,
never over a file cairn did not make, and is never a writable alias of the cache.

Rules under test (docs/FORMAT.md, "Checkouts"): an empty or new folder gets the version; a
previous checkout of the same collection is updated in place, removing what the version no
longer has only if unmodified; local edits and unrelated files stop it (one error naming
them) unless `force=True`; nothing changes before that check passes; an interrupted get
leaves no file with wrong content and a re-run completes it.

Most of it is local-filesystem logic: those tests run on the SQLite catalog alone; the ones
that log links and folders run on both catalogs (`repo`).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from cairn import Artifact, CairnError, Conflict, Repository

from .conftest import write

MARKER = ".cairn-checkout.json"


def _version(repo, tmp_path, files: dict[str, str], name: str = "ds", project: str = "p"):
    """Log `files` (path -> text) as the next version of project/name."""
    src = tmp_path / f"src-{name}-{len(repo.collections())}-{time.monotonic_ns()}"
    for path, text in files.items():
        write(src / path, text)
    return repo.log_artifact(Artifact(name).add_dir(src), project=project)


def _tree(root: Path) -> dict[str, str]:
    """Relative path -> content (or '-> target' for a link) of everything under root,
    the marker left out."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root)
            if rel == MARKER:
                continue
            out[rel] = f"-> {os.readlink(full)}" if os.path.islink(full) else Path(full).read_text()
    return out


V0 = {"a.txt": "alpha", "sub/b.txt": "bravo", "sub/deep/c.txt": "charlie"}
V1 = {"a.txt": "ALPHA", "sub/b.txt": "bravo", "new.txt": "november"}


# -- where a get writes ------------------------------------------------------------------------


def test_download_into_a_new_folder_returns_its_absolute_path(local, tmp_path, monkeypatch):
    v = _version(local, tmp_path, V0)
    monkeypatch.chdir(tmp_path)
    out = v.download("rel/out")
    assert out.is_absolute() and out == tmp_path / "rel" / "out"
    assert _tree(out) == V0
    marker = json.loads((out / MARKER).read_text())
    assert (marker["project"], marker["collection"], marker["version"]) == ("p", "ds", "v0")
    assert set(marker["entries"]) >= set(V0)


def test_default_root_includes_the_project(local, tmp_path, monkeypatch):
    a = _version(local, tmp_path, {"x.txt": "from a"}, name="data", project="a")
    b = _version(local, tmp_path, {"x.txt": "from b"}, name="data", project="b")
    monkeypatch.chdir(tmp_path)
    out_a, out_b = a.download(), b.download()
    assert out_a == tmp_path / "artifacts" / "a" / "data" / "v0"
    assert out_b == tmp_path / "artifacts" / "b" / "data" / "v0"
    assert (out_a / "x.txt").read_text() == "from a"
    assert (out_b / "x.txt").read_text() == "from b"


def test_an_empty_existing_folder_is_filled(local, tmp_path):
    v = _version(local, tmp_path, V0)
    (tmp_path / "out").mkdir()
    assert _tree(v.download(tmp_path / "out")) == V0


# -- checkout rules ----------------------------------------------------------------------------


def test_a_previous_checkout_of_the_collection_is_updated_in_place(local, tmp_path):
    v0 = _version(local, tmp_path, V0)
    v1 = _version(local, tmp_path, V1)
    out = tmp_path / "out"
    v0.download(out)
    v1.download(out)
    assert _tree(out) == V1  # sub/deep/c.txt removed, and its emptied folder with it
    assert not (out / "sub" / "deep").exists()
    assert json.loads((out / MARKER).read_text())["version"] == "v1"
    v0.download(out)  # and back
    assert _tree(out) == V0


def test_getting_the_same_version_again_changes_nothing(local, tmp_path):
    v0 = _version(local, tmp_path, V0)
    out = v0.download(tmp_path / "out")
    before = {p: os.stat(out / p).st_ino for p in V0}
    v0.download(out)
    assert {p: os.stat(out / p).st_ino for p in V0} == before


def test_a_non_empty_folder_that_is_no_checkout_stops_the_get(local, tmp_path):
    v0 = _version(local, tmp_path, V0)
    out = tmp_path / "out"
    write(out / "mine.txt", "my notes")
    write(out / "a.txt", "my own a")
    with pytest.raises(Conflict) as err:
        v0.download(out)
    message = str(err.value)
    assert "\n" not in message
    assert "a.txt" in message and "mine.txt" in message and "force" in message
    # nothing changed
    assert _tree(out) == {"mine.txt": "my notes", "a.txt": "my own a"}
    assert not (out / MARKER).exists()
    # force: the version's files win, unrelated files stay
    v0.download(out, force=True)
    assert _tree(out) == {**V0, "mine.txt": "my notes"}


def test_local_edits_stop_an_update_and_nothing_changes(local, tmp_path):
    v0 = _version(local, tmp_path, V0)
    v1 = _version(local, tmp_path, V1)
    out = v0.download(tmp_path / "out")
    (out / "a.txt").write_text("edited by hand")
    (out / "sub" / "deep" / "c.txt").write_text("edited too")  # v1 removes this one
    with pytest.raises(Conflict, match="a.txt") as err:
        v1.download(out)
    assert "sub/deep/c.txt" in str(err.value) and "2 " in str(err.value)
    assert _tree(out) == {**V0, "a.txt": "edited by hand", "sub/deep/c.txt": "edited too"}
    assert json.loads((out / MARKER).read_text())["version"] == "v0"
    v1.download(out, force=True)
    assert _tree(out) == V1


def test_files_added_to_a_checkout_stop_an_update_and_survive_force(local, tmp_path):
    v0 = _version(local, tmp_path, V0)
    v1 = _version(local, tmp_path, V1)
    out = v0.download(tmp_path / "out")
    write(out / "sub" / "deep" / "results.csv", "mine")
    with pytest.raises(Conflict, match="results.csv"):
        v1.download(out)
    assert _tree(out)["sub/deep/c.txt"] == "charlie"  # nothing removed
    v1.download(out, force=True)
    assert _tree(out) == {**V1, "sub/deep/results.csv": "mine"}


def test_the_error_names_the_first_few_and_counts_the_rest(local, tmp_path):
    v0 = _version(local, tmp_path, V0)
    out = tmp_path / "out"
    for i in range(30):
        write(out / f"junk{i:02}.txt", "x")
    with pytest.raises(Conflict) as err:
        v0.download(out)
    message = str(err.value)
    assert "junk00.txt" in message and "junk29.txt" not in message
    assert "30 " in message and len(message) < 360 + len(str(out))


def test_an_unmodified_file_whose_mtime_moved_is_not_an_edit(local, tmp_path):
    v0 = _version(local, tmp_path, V0)
    v1 = _version(local, tmp_path, V1)
    out = v0.download(tmp_path / "out")
    os.utime(out / "a.txt", (1, 1))
    os.utime(out / "sub" / "deep" / "c.txt", (1, 1))
    v1.download(out)
    assert _tree(out) == V1


def test_a_checkout_of_another_collection_is_not_updated(local, tmp_path):
    other = _version(local, tmp_path, {"a.txt": "other"}, name="other")
    v0 = _version(local, tmp_path, V0)
    out = other.download(tmp_path / "out")
    with pytest.raises(Conflict, match=r"p/other"):
        v0.download(out)
    assert _tree(out) == {"a.txt": "other"}


def test_a_folder_already_holding_the_version_is_adopted(local, tmp_path):
    """A checkout made before markers existed (or by hand) with the same bytes is no
    conflict: nothing would be lost."""
    v0 = _version(local, tmp_path, V0)
    out = tmp_path / "out"
    for p, text in V0.items():
        write(out / p, text)
    v0.download(out)
    assert _tree(out) == V0 and (out / MARKER).exists()


def test_a_version_holding_the_marker_name_is_refused(local, tmp_path):
    f = write(tmp_path / "m.json", "{}")
    v = local.log_artifact(Artifact("ds").add_file(f, name=MARKER), project="p")
    with pytest.raises(CairnError, match=MARKER):
        v.download(tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert v.get_path(MARKER).read_text() == "{}"


# -- interrupted gets ---------------------------------------------------------------------------

_GET = """
import sys
from cairn import Repository
repo = Repository.open(catalog=sys.argv[1], home=sys.argv[2])
v = repo.artifact(sys.argv[3])
v.files()
print("ready", flush=True)
v.download(sys.argv[4])
print("done", flush=True)
"""


def test_an_interrupted_get_leaves_no_wrong_file_and_a_rerun_completes_it(local, tmp_path, home):
    many0 = {f"d{i % 20}/f{i}.txt": f"zero {i}" * 50 for i in range(2000)}
    many1 = {f"d{i % 20}/f{i}.txt": f"one {i}" * 50 for i in range(200, 2200)}
    v0 = _version(local, tmp_path, many0)
    v1 = _version(local, tmp_path, many1)
    out = v0.download(tmp_path / "out")
    v1.download(tmp_path / "warm")  # v1 in the cache: the get below only writes files
    args = [sys.executable, "-c", _GET, f"sqlite:///{home}/catalog.db", str(home), v1.ref]
    states: set[str] = set()
    first = out / "d0" / "f1000.txt"  # the first file the get rewrites (path order)
    for wait_for_writes in (False, True):
        before = os.stat(out / MARKER).st_ino
        proc = subprocess.Popen([*args, str(out)], stdout=subprocess.PIPE)
        # SIGKILL once the get has started changing the folder (its new marker says so),
        # or once it has started writing files
        while proc.poll() is None and (
            os.stat(out / MARKER).st_ino == before
            or wait_for_writes
            and not (first.exists() and first.read_text().startswith("one"))
        ):
            time.sleep(0.001)
        proc.send_signal(signal.SIGKILL)
        stdout, _ = proc.communicate()
        assert b"done" not in stdout, "the get finished before it was killed"
        # every file there is one version's or the other's, never a mixture or a stub
        for rel, text in _tree(out).items():
            if os.path.basename(rel).startswith(".cairn-tmp-"):
                continue
            assert text in (many0.get(rel), many1.get(rel)), rel
            states.add("new" if text == many1.get(rel) else "old")
    assert states == {"old", "new"}  # killed half way through at least once
    v1.download(out)  # a re-run finishes the job, without --force
    assert _tree(out) == many1
    assert not [p for p in out.rglob(".cairn-tmp-*")]


# -- links and other things in the way ---------------------------------------------------------


@pytest.fixture
def outside(tmp_path) -> Path:
    d = tmp_path / "outside"
    d.mkdir()
    write(d / "victim.txt", "precious")
    return d


def _outside_unchanged(outside: Path) -> None:
    assert {p.name for p in outside.rglob("*")} == {"victim.txt"}
    assert (outside / "victim.txt").read_text() == "precious"


@pytest.mark.parametrize("how", ["absolute", "relative", "dotdot"])
def test_a_link_in_the_root_is_never_followed(local, tmp_path, outside, how):
    v0 = _version(local, tmp_path, V0)
    out = tmp_path / "out"
    out.mkdir()
    target = {"absolute": str(outside), "relative": "../outside", "dotdot": ".."}[how]
    os.symlink(target, out / "sub")
    with pytest.raises(Conflict, match="sub"):
        v0.download(out)
    _outside_unchanged(outside)
    assert not (tmp_path / "b.txt").exists() and not (tmp_path / "deep").exists()
    v0.download(out, force=True)  # the link goes, never what it points to
    assert not (out / "sub").is_symlink() and _tree(out) == V0
    _outside_unchanged(outside)
    assert not (tmp_path / "b.txt").exists()


def test_a_link_where_a_file_goes_is_replaced_not_written_through(local, tmp_path, outside):
    v0 = _version(local, tmp_path, V0)
    out = v0.download(tmp_path / "out")
    (out / "a.txt").unlink()
    os.symlink(outside / "victim.txt", out / "a.txt")
    v1 = _version(local, tmp_path, V1)
    with pytest.raises(Conflict, match="a.txt"):
        v1.download(out)
    v1.download(out, force=True)
    _outside_unchanged(outside)
    assert not (out / "a.txt").is_symlink() and (out / "a.txt").read_text() == "ALPHA"


def test_a_link_swapped_in_for_a_checked_out_folder_stops_the_update(local, tmp_path, outside):
    v0 = _version(local, tmp_path, V0)
    v1 = _version(local, tmp_path, {**V1, "sub/more.txt": "more"})
    out = v0.download(tmp_path / "out")
    os.rename(out / "sub", tmp_path / "moved-away")
    os.symlink(outside, out / "sub")
    with pytest.raises(Conflict, match="sub"):
        v1.download(out)
    _outside_unchanged(outside)


def test_a_file_where_a_folder_should_be_stops_the_get(local, tmp_path):
    v0 = _version(local, tmp_path, V0)
    out = tmp_path / "out"
    write(out / "sub", "a file named like the folder")
    with pytest.raises(Conflict, match="sub"):
        v0.download(out)
    assert (out / "sub").read_text() == "a file named like the folder"
    v0.download(out, force=True)
    assert _tree(out) == V0


def test_a_folder_where_a_file_should_be_stops_the_get(local, tmp_path):
    v0 = _version(local, tmp_path, V0)
    out = tmp_path / "out"
    write(out / "a.txt" / "inner.txt", "mine")
    with pytest.raises(Conflict, match="a.txt"):
        v0.download(out)
    assert (out / "a.txt" / "inner.txt").read_text() == "mine"


def test_the_root_under_a_file_is_a_clear_error(local, tmp_path):
    v0 = _version(local, tmp_path, V0)
    write(tmp_path / "afile", "x")
    with pytest.raises(CairnError, match="afile"):
        v0.download(tmp_path / "afile" / "out")


def test_a_race_swapping_a_folder_for_a_link_never_writes_outside(local, tmp_path, outside):
    """Another thread keeps replacing `sub` with a link to outside while gets run: a get
    may fail (clearly) but never writes a byte outside its root."""
    files = {f"sub/f{i}.txt": f"{i}" for i in range(300)}
    v0 = _version(local, tmp_path, files)
    v1 = _version(local, tmp_path, {p: t + "!" for p, t in files.items()})
    v0.download(tmp_path / "warm")
    v1.download(tmp_path / "warm")
    out = tmp_path / "out"
    stop = threading.Event()

    def swap() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            try:
                os.rename(out / "sub", tmp_path / f"parked{n}")
                os.symlink(outside, out / "sub")
                time.sleep(0.0005)
                os.unlink(out / "sub")
                os.rename(tmp_path / f"parked{n}", out / "sub")
            except OSError:
                time.sleep(0.0002)

    v0.download(out)
    thread = threading.Thread(target=swap)
    thread.start()
    outcomes = []
    try:
        for i in range(20):
            try:
                (v1 if i % 2 else v0).download(out, force=True)
                outcomes.append("ok")
            except CairnError as exc:
                outcomes.append(type(exc).__name__)
    finally:
        stop.set()
        thread.join()
    _outside_unchanged(outside)
    assert outcomes  # each get either finished or stopped with a CairnError


# -- the cache is never aliased -----------------------------------------------------------------


def _cache_file(repo, v, path: str) -> Path:
    return Path(repo.cache.path(v.entry(path).digest))


def test_a_checkout_is_a_writable_copy_never_an_alias_of_the_cache(local, tmp_path):
    v0 = _version(local, tmp_path, V0)
    out = v0.download(tmp_path / "out")
    got, cached = out / "a.txt", _cache_file(local, v0, "a.txt")
    assert os.stat(got).st_ino != os.stat(cached).st_ino
    assert os.access(got, os.W_OK) and os.stat(got).st_mode & 0o200
    got.write_text("edited")
    assert cached.read_text() == "alpha"
    assert (v0.download(tmp_path / "again") / "a.txt").read_text() == "alpha"


def test_link_true_hardlinks_read_only_files(local, tmp_path):
    v0 = _version(local, tmp_path, V0)
    out = v0.download(tmp_path / "out", link=True)
    assert os.stat(out / "a.txt").st_ino == os.stat(_cache_file(local, v0, "a.txt")).st_ino
    assert os.stat(out / "a.txt").st_mode & 0o222 == 0
    # a later get without link turns the aliases into copies
    v0.download(out)
    assert os.stat(out / "a.txt").st_ino != os.stat(_cache_file(local, v0, "a.txt")).st_ino
    assert _tree(out) == V0


def test_an_old_hardlinked_checkout_is_turned_into_copies(local, tmp_path):
    v0 = _version(local, tmp_path, V0)
    v0.download(tmp_path / "warm")
    out = tmp_path / "out"
    for p in V0:
        os.makedirs((out / p).parent, exist_ok=True)
        os.link(_cache_file(local, v0, p), out / p)
    v0.download(out)
    for p in V0:
        assert os.stat(out / p).st_ino != os.stat(_cache_file(local, v0, p)).st_ino


def test_a_marker_cairn_did_not_write_is_no_licence(local, tmp_path, outside):
    v0 = _version(local, tmp_path, V0)
    out = tmp_path / "out"
    out.mkdir()
    os.symlink(outside / "victim.txt", out / MARKER)
    with pytest.raises(Conflict, match="not cairn's marker"):
        v0.download(out)
    v0.download(out, force=True)  # the link is replaced, its target untouched
    _outside_unchanged(outside)
    assert not (out / MARKER).is_symlink() and _tree(out) == V0
    (out / MARKER).write_text("not json")
    write(out / "a.txt", "edited")
    with pytest.raises(Conflict, match="cannot read"):
        v0.download(out)


def test_concurrent_gets_into_one_folder_take_turns(local, tmp_path, home):
    """Mapped tasks on one worker using one version share its default folder."""
    files = {f"d{i % 5}/f{i}.txt": str(i) * 100 for i in range(2000)}
    v0 = _version(local, tmp_path, files)
    v0.download(tmp_path / "warm")
    out = tmp_path / "out"
    args = [sys.executable, "-c", _GET, f"sqlite:///{home}/catalog.db", str(home), v0.ref]
    procs = []
    for _ in range(4):  # staggered: each starts while another is writing
        procs.append(
            subprocess.Popen([*args, str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        )
        time.sleep(0.4)
    results = [p.communicate() for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, [err.decode()[-500:] for _, err in results]
    assert _tree(out) == files


@pytest.mark.skipif(not os.path.isdir("/dev/shm"), reason="needs a second file system")
def test_link_across_file_systems_falls_back_to_copies(home, tmp_path):
    """A cache on another file system cannot be hardlinked: the get copies instead."""
    import tempfile

    with tempfile.TemporaryDirectory(dir="/dev/shm") as shm:
        repo = Repository.open(
            catalog=f"sqlite:///{home}/catalog.db", home=str(home), cache_dir=shm
        )
        try:
            v0 = _version(repo, tmp_path, V0)
            out = v0.download(tmp_path / "out", link=True)
            assert _tree(out) == V0
            cached = _cache_file(repo, v0, "a.txt")
            assert os.stat(out / "a.txt").st_dev != os.stat(cached).st_dev
        finally:
            repo.close()


def test_copies_work_without_clones_and_across_file_systems(tmp_path):
    from cairn.engine import smallfiles
    from cairn.engine.smallfiles import Copier

    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(3 << 20))
    for folder in [tmp_path, Path("/dev/shm")] if os.path.isdir("/dev/shm") else [tmp_path]:
        dst = Path(folder) / f"cairn-copy-test-{os.getpid()}"
        copier = Copier()
        try:
            for _ in range(2):  # the second copy goes the way the first one found
                with open(src, "rb") as s, open(dst, "wb") as d:
                    copier.copy(s.fileno(), d.fileno(), src.stat().st_size)
                assert dst.read_bytes() == src.read_bytes()
        finally:
            dst.unlink(missing_ok=True)
        if folder != tmp_path:  # across file systems: no clone, no copy_file_range
            assert not copier.clone and smallfiles._copy_file_range not in copier.ways


@pytest.mark.parametrize("missing", [["copy_file_range"], ["copy_file_range", "sendfile"]])
def test_copies_fall_back_when_the_kernel_cannot_copy(tmp_path, monkeypatch, missing):
    """Kernels or file systems without copy_file_range (or sendfile) are a fault this
    machine cannot cause: their errors are simulated."""
    import errno

    from cairn.engine.smallfiles import Copier

    calls: list[str] = []

    def unsupported(name):
        def refuse(*args, **kwargs):
            calls.append(name)
            raise OSError(errno.ENOSYS, "not here")

        return refuse

    for name in missing:
        monkeypatch.setattr(os, name, unsupported(name))
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom((9 << 20) + 7))
    copier = Copier()
    for i in range(2):
        dst = tmp_path / f"dst{i}.bin"
        with open(src, "rb") as s, open(dst, "wb") as d:
            copier.copy(s.fileno(), d.fileno(), src.stat().st_size)
        assert dst.read_bytes() == src.read_bytes()
    assert sorted(calls) == sorted(missing)  # each refusal asked once, then remembered


def test_a_get_of_an_unchanged_checkout_reads_no_file(local, tmp_path, monkeypatch):
    """Stamps in the marker decide; files are read only when a stamp moved."""
    v0 = _version(local, tmp_path, V0)
    out = v0.download(tmp_path / "out")
    reads = _counted_reads(monkeypatch)
    v0.download(out)
    assert reads == []
    os.utime(out / "a.txt", (1, 1))
    v0.download(out)
    assert len(reads) == 1  # the one whose stamp moved, read to tell an edit from a touch


def test_the_marker_is_stamped_after_the_files_even_when_the_file_clock_lags(
    local, tmp_path, monkeypatch
):
    """File stamps come from a coarse clock that can lag `time.time_ns()` on a busy
    machine; a get that waited by `time.time_ns()` alone could stamp its marker too close
    to its files, and the next get would read them all again. Here the clock the get
    waits by runs 60 ms ahead of the files' (longer than the racy window)."""
    from cairn.engine import checkout as checkout_module

    class Ahead:
        sleep = staticmethod(time.sleep)

        @staticmethod
        def time_ns() -> int:
            return time.time_ns() + 60_000_000

    monkeypatch.setattr(checkout_module, "time", Ahead)
    v0 = _version(local, tmp_path, V0)
    out = v0.download(tmp_path / "out")
    reads = _counted_reads(monkeypatch)
    v0.download(out)
    assert reads == []


def _counted_reads(monkeypatch) -> list[int]:
    """The files a get reads to check their content, from now on."""
    from cairn.engine import checkout_plan

    reads: list[int] = []
    real = checkout_plan.hash_into
    monkeypatch.setattr(checkout_plan, "hash_into", lambda h, fd: reads.append(fd) or real(h, fd))
    return reads
