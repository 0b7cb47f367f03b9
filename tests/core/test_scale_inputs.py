"""Bad input and faults at scale (docs/LIMITS.md): a huge folder, names at the length limits,
names that differ only by case, names that are not UTF-8, a get killed half-way, a corrupt
manifest in the catalog. Each goes through the public API or the `cairn` command line, in
real child processes where the process itself (its exit, its memory) is what is checked.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cairn import Artifact, Repository
from cairn.engine.confined import ConfinedDir
from cairn.engine.marker import MARKER
from cairn.foundation.errors import Conflict, InvalidName
from cairn.foundation.names import case_collisions

from .conftest import write

#: records the child's peak RSS (VmHWM: its own, not inherited from this big process)
_CLI = """
import atexit, sys
out = sys.argv.pop(1)
def _peak():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            open(out, "w").write(line.split()[1])
atexit.register(_peak)
from cairn.cli import main
sys.argv[0] = "cairn"
main()
"""


@pytest.fixture(autouse=True)
def _env(home, monkeypatch):
    monkeypatch.setenv("CAIRN_EVENT_PLUGINS", "none")
    for var in ("CAIRN_CACHE_DIR", "CAIRN_DEBUG"):
        monkeypatch.delenv(var, raising=False)


def cli(
    tmp_path: Path, *args: str, timeout: float = 600
) -> tuple[subprocess.CompletedProcess, int]:
    """Run `cairn ARGS` in a child; (the finished process, its peak RSS in bytes)."""
    peak = tmp_path / f"peak-{time.monotonic_ns()}"
    proc = subprocess.run(
        [sys.executable, "-c", _CLI, str(peak), *args],
        capture_output=True,
        timeout=timeout,
    )
    return proc, int(peak.read_text()) * 1024 if peak.exists() else 0


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    """The single `cairn: error: ...` line of a failed command (no traceback)."""
    assert proc.returncode != 0, proc.stdout
    err = proc.stderr.decode()
    assert err.startswith("cairn: error: ") and err.count("\n") == 1, err
    assert "unexpected" not in err and "Traceback" not in err, err
    return err.strip()


def versions(home: Path) -> list:
    with Repository.open(home=str(home)) as repo:
        return [v for c in repo.collections() for v in repo.versions(f"{c['project']}/{c['name']}")]


def tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and p.name != MARKER
    }


# -- a folder with very many entries ----------------------------------------------------------

#: files in one folder: a million takes most of an hour here, and 100k a quarter of one on
#: a loaded machine; benchmarks/bench_scale.py --flat measures put and get of one folder
#: of 100k and 1M files
MANY = 20_000


def test_a_folder_of_very_many_files_logs_and_checks_out_in_bounded_memory(home, tmp_path):
    """Every file of one folder of MANY, put and got back; the children's peak memory
    grows by a few KiB a file at most (the manifest, the per-file lists), never by what
    the files hold."""
    peaks = {}
    for n in (1000, MANY):
        data = tmp_path / f"flat{n}"
        data.mkdir()
        for i in range(n):
            (data / f"f{i:06d}").write_bytes(b"%d\n" % i + bytes(500))
        put, peaks[("put", n)] = cli(tmp_path, "put", str(data), "-n", f"demo/flat{n}")
        assert put.returncode == 0, put.stderr
        out = tmp_path / f"out{n}"
        get, peaks[("get", n)] = cli(tmp_path, "get", f"demo/flat{n}", "--root", str(out))
        assert get.returncode == 0, get.stderr
        names = sorted(os.listdir(out))
        assert names == sorted([*os.listdir(data), MARKER])
        for i in (0, n // 2, n - 1):
            assert (out / f"f{i:06d}").read_bytes() == b"%d\n" % i + bytes(500)
    for step in ("put", "get"):
        small, big = peaks[(step, 1000)], peaks[(step, MANY)]
        assert big < small + 8 * 1024 * MANY, (step, small, big)
        assert big < 400 << 20, (step, big)


# -- names at the length limits ---------------------------------------------------------------


def test_a_name_of_255_bytes_round_trips_and_256_is_refused(home, tmp_path):
    name = "é" * 127 + "a"  # 255 bytes in UTF-8, 128 characters
    assert len(name.encode()) == 255
    data = tmp_path / "data"
    write(data / "sub" / name, "longest")
    put, _ = cli(tmp_path, "put", str(data), "-n", "demo/long")
    assert put.returncode == 0, put.stderr
    get, _ = cli(tmp_path, "get", "demo/long", "--root", str(tmp_path / "out"))
    assert get.returncode == 0, get.stderr
    assert (tmp_path / "out" / "sub" / name).read_text() == "longest"

    # no file system here holds a 256-byte name: it can only come as a logical name
    too_long = "é" * 128
    art = Artifact("long2")
    with pytest.raises(InvalidName, match="longer than 255 bytes") as err:
        art.add_file(data / "sub" / name, name=f"sub/{too_long}")
    assert too_long in str(err.value)
    assert art.local_files == {}


def _deep(root: Path, segments: int, length: int = 250) -> str:
    """Make `segments` nested folders of `length`-byte names below root, each made from its
    parent's descriptor (the whole path may be longer than the system opens at once), a
    file `f` in the deepest; return the file's path relative to root."""
    names = [chr(ord("a") + i % 26) * length for i in range(segments)]
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    for name in names:
        os.mkdir(name, dir_fd=fd)
        inner = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = inner
    out = os.open("f", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
    os.write(out, b"deep")
    os.close(out)
    os.close(fd)
    return "/".join([*names, "f"])


def _read_deep(root: Path, rel: str) -> bytes:
    with ConfinedDir(str(root)) as folder:
        chunks: list[bytes] = []
        folder.read(rel, lambda fd: chunks.append(os.read(fd, 100)))
    return b"".join(chunks)


def test_paths_near_path_max_round_trip_and_longer_ones_are_refused_at_put(home, tmp_path):
    ok = tmp_path / "ok"
    ok.mkdir()
    rel = _deep(ok, 3900 // 251 - 1)  # the whole local path stays under 4096 bytes
    assert len(os.fsencode(str(ok / rel))) < 4096
    put, _ = cli(tmp_path, "put", str(ok), "-n", "demo/deep")
    assert put.returncode == 0, put.stderr
    get, _ = cli(tmp_path, "get", "demo/deep", "--root", str(tmp_path / "out"))
    assert get.returncode == 0, get.stderr
    assert _read_deep(tmp_path / "out", rel) == b"deep"

    far = tmp_path / "far"
    far.mkdir()
    _deep(far, 17)  # 17 x 251 bytes: longer than PATH_MAX
    put, _ = cli(tmp_path, "put", str(far), "-n", "demo/far")
    err = one_error_line(put)
    assert "longer than the 4096 bytes this system can open" in err
    assert [v.version for v in versions(home)] == ["v0"]  # demo/deep only


def test_a_version_whose_paths_exceed_path_max_checks_out(home, tmp_path):
    """A logical path may be longer than PATH_MAX (each segment at most 255 bytes): the
    checkout reaches every folder from its parent's descriptor, so it is written."""
    src = write(tmp_path / "f.txt", "far down")
    path = "/".join(["x" * 250] * 20) + "/f.txt"  # 5,031 bytes
    with Repository.open(home=str(home)) as repo:
        v = repo.log_artifact(Artifact("far").add_file(src, name=path), project="demo")
        v.download(tmp_path / "out")
    assert _read_deep(tmp_path / "out", path) == b"far down"


# -- names that differ only by case ---------------------------------------------------------


def test_case_collisions_finds_paths_and_folders_that_differ_only_by_case():
    assert case_collisions(["A.txt", "a.txt", "b.txt"]) == [("A.txt", "a.txt")]
    # folders count: on a case-insensitive disk both files land in one folder
    assert case_collisions(["Data/x", "data/y"]) == [("Data", "data")]
    # a file and a folder of the same name but for case
    assert case_collisions(["readme", "README/x"]) == [("readme", "README")]
    # Unicode: composed and decomposed é are one name on macOS too
    assert case_collisions(["caf\u00e9", "cafe\u0301"]) == [("caf\u00e9", "cafe\u0301")]
    assert case_collisions(["a/x", "a/y", "b"]) == []
    many = [f"F{i}" for i in range(20)] + [f"f{i}" for i in range(20)]
    assert len(case_collisions(many)) == 5  # the first few, for an error message


def test_case_probe_on_this_case_sensitive_disk_leaves_nothing(tmp_path):
    with ConfinedDir(str(tmp_path)) as folder:
        assert folder.case_insensitive() is False
    assert list(tmp_path.iterdir()) == []


def test_get_on_a_case_insensitive_disk_refuses_names_that_collide(home, tmp_path, monkeypatch):
    """This disk is case-sensitive: the probe's answer is the one fault faked here."""
    data = tmp_path / "data"
    write(data / "A.txt", "upper")
    write(data / "a.txt", "lower")
    write(data / "b.txt", "other")
    with Repository.open(home=str(home)) as repo:
        v = repo.log_artifact(Artifact("cases").add_dir(data), project="demo")
        # the store is safe on any disk: its content keys are lower-case hex digests
        keys = [o.key for o in repo.store.list()]
        content = [k for k in keys if {"objects", "packs", "manifests"} & set(k.split("/"))]
        assert content and all(k == k.lower() for k in content)
        assert len({k.lower() for k in keys}) == len(keys)
        plain = repo.log_artifact(Artifact("plain").add_file(data / "b.txt"), project="demo")

        monkeypatch.setattr(ConfinedDir, "case_insensitive", lambda self: True)
        out = tmp_path / "out"
        with pytest.raises(Conflict, match="differ only by case") as err:
            v.download(out)
        assert "'A.txt' and 'a.txt'" in str(err.value)
        assert list(out.iterdir()) == []  # nothing written
        assert (plain.download(tmp_path / "plain") / "b.txt").read_text() == "other"


# -- names that are not UTF-8 ---------------------------------------------------------------


def test_a_name_that_is_not_utf8_is_one_clear_error_and_nothing_is_logged(home, tmp_path):
    data = tmp_path / "data"
    write(data / "good.txt", "fine")
    bad = os.path.join(os.fsencode(data), b"sub", b"caf\xe9.txt")  # Latin-1, not UTF-8
    os.makedirs(os.path.dirname(bad))
    with open(bad, "wb") as f:
        f.write(b"latin")
    put, _ = cli(tmp_path, "put", str(data), "-n", "demo/enc")
    err = one_error_line(put)
    assert put.returncode == 2
    assert "invalid path 'sub/caf\\xe9.txt': it is not valid UTF-8" in err
    assert versions(home) == []
    # the API says the same
    with pytest.raises(InvalidName, match=r"caf\\xe9.txt"):
        Artifact("enc").add_dir(data)


# -- a get killed half-way ------------------------------------------------------------------


def _files_below(root: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(root))


def test_a_get_killed_half_way_leaves_no_wrong_file_and_a_rerun_completes(home, tmp_path):
    data = tmp_path / "data"
    expected = {}
    for i in range(6000):
        rel = f"d{i % 30:02d}/f{i:05d}.bin"
        expected[rel] = os.urandom(2048)
        write(data / rel, expected[rel])
    put, _ = cli(tmp_path, "put", str(data), "-n", "demo/big")
    assert put.returncode == 0, put.stderr

    out = tmp_path / "out"
    env = {**os.environ, "CAIRN_CACHE_DIR": str(tmp_path / "cache")}  # cold: fetched as well
    child = subprocess.Popen(
        [sys.executable, "-m", "cairn", "get", "demo/big", "--root", str(out)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and child.poll() is None:
        if out.exists() and _files_below(out) > 200:  # the marker and some files
            break
        time.sleep(0.005)
    child.send_signal(signal.SIGKILL)
    assert child.wait() == -signal.SIGKILL, "the get finished before it could be killed"
    written = tree(out)
    assert 0 < len([p for p in written if p in expected]) < len(expected)
    for rel, body in written.items():
        if rel in expected:
            assert body == expected[rel], rel
        else:
            assert os.path.basename(rel).startswith(".cairn-tmp-"), rel  # unfinished copies

    rerun = subprocess.run(
        [sys.executable, "-m", "cairn", "get", "demo/big", "--root", str(out)],
        env=env,
        capture_output=True,
        timeout=600,
    )
    assert rerun.returncode == 0, rerun.stderr
    assert tree(out) == expected


# -- a corrupt or truncated manifest ----------------------------------------------------------


def _corrupt(home: Path, change) -> None:
    with sqlite3.connect(home / "catalog.db") as db:
        ((digest, body),) = db.execute("SELECT digest, body FROM manifests").fetchall()
        db.execute("UPDATE manifests SET body = ? WHERE digest = ?", (change(body), digest))


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda b: b[: len(b) // 2], id="truncated"),
        pytest.param(
            lambda b: b[:100] + bytes(x ^ 0x5A for x in b[100:140]) + b[140:], id="flipped"
        ),
        pytest.param(lambda b: os.urandom(len(b)), id="garbage"),
        pytest.param(lambda b: b'{"entries": {"a": ', id="truncated-json"),
        pytest.param(lambda b: b"", id="empty"),
    ],
)
def test_a_corrupt_manifest_is_one_clear_integrity_error(home, tmp_path, change):
    data = tmp_path / "data"
    for i in range(3000):
        write(data / f"d{i % 10}" / f"f{i:04d}", b"%d" % i)
    put, _ = cli(tmp_path, "put", str(data), "-n", "demo/m")
    assert put.returncode == 0, put.stderr
    _, good_peak = cli(tmp_path, "show", "demo/m:v0")
    _corrupt(home, change)
    for args in (["show", "demo/m:v0"], ["get", "demo/m:v0", "--root", str(tmp_path / "out")]):
        proc, peak = cli(tmp_path, *args)
        err = one_error_line(proc)
        assert "manifest" in err and "corrupt" in err, err
        assert peak < good_peak + (32 << 20), (args, peak, good_peak)
    assert not (tmp_path / "out").exists() or _files_below(tmp_path / "out") == 0
