"""The helper processes a get of many small files writes with (cairn.engine.helpers):
the same files, stamps and errors as the get's own loop (cairn.engine.smallfiles), a
helper that dies is a clear error a re-run recovers from, and helpers die with the get.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from cairn import Artifact, CairnError
from cairn.engine import checkout, helpers, smallfiles
from cairn.engine.confined import TMP_PREFIX
from cairn.engine.smallfiles import InTheWay

from .conftest import write

pytestmark = pytest.mark.skipif(not helpers.available(), reason="helpers need Linux")


@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "into"
    d.mkdir()
    fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    yield d, fd
    os.close(fd)


def _sources(tmp_path: Path, n: int) -> list[tuple[str, str, int]]:
    out = []
    for i in range(n):
        src = tmp_path / "src" / f"s{i}"
        write(src, f"content {i}\n" * (i % 7 + 1))
        out.append((f"f{i}.txt", str(src), src.stat().st_size))
    return out


def _logged(repo, tmp_path: Path, n: int, *, folders: int) -> tuple[dict[str, str], Any]:
    """A version of `n` small files in `folders` folders: (path -> text, the version)."""
    files = {f"d{i % folders}/f{i:05}.txt": f"file {i}\n" * 9 for i in range(n)}
    src = tmp_path / "src"
    for path, text in files.items():
        write(src / path, text)
    return files, repo.log_artifact(Artifact("ds").add_dir(src), project="p")


def test_a_helper_writes_whole_files_with_their_stamps(tmp_path, folder):
    into, fd = folder
    files = _sources(tmp_path, 300)
    write(into / "f3.txt", "an older file, replaced")
    with helpers.Helpers(2) as pool:
        assert len(pool) == 2
        stamps = pool.place(fd, "into", files)
        again = pool.place(fd, "into", files[:5])  # each helper answers many requests
    assert len(stamps) == len(files)
    stamps[:5] = again  # the first five written twice: the second time's stamps stand
    for (name, source, size), (got_size, mtime_ns, ino) in zip(files, stamps, strict=True):
        st = os.stat(into / name)
        assert (st.st_size, st.st_mtime_ns, st.st_ino) == (got_size, mtime_ns, ino)
        assert got_size == size and st.st_nlink == 1
        assert (into / name).read_bytes() == Path(source).read_bytes()
    assert not [p for p in into.iterdir() if p.name.startswith(TMP_PREFIX)]


def test_a_helper_reports_errors_as_the_get_would_raise_them(tmp_path, folder):
    into, fd = folder
    files = _sources(tmp_path, 3)
    (into / "f1.txt").mkdir()  # a folder where a file goes
    with helpers.Helpers(1) as pool:
        with pytest.raises(InTheWay, match="f1.txt"):
            pool.place(fd, "into", files)
        missing = [("gone.txt", str(tmp_path / "no-such-source"), 4)]
        with pytest.raises(FileNotFoundError) as caught:
            pool.place(fd, "into", missing)
        assert caught.value.errno == errno.ENOENT
        assert caught.value.filename == str(tmp_path / "no-such-source")
        # the helper is still good after an error
        assert len(pool.place(fd, "into", files[:1])) == 1
    assert (into / "f0.txt").read_bytes() == Path(files[0][1]).read_bytes()
    assert not (into / "gone.txt").exists()


def test_a_get_of_many_files_is_written_by_helpers(local, tmp_path, monkeypatch):
    files, v = _logged(local, tmp_path, checkout.HELPED + 500, folders=9)
    parts = []
    real = helpers.Helpers.place

    def counted(self, dfd, rel, part):
        parts.append(len(part))
        return real(self, dfd, rel, part)

    monkeypatch.setattr(helpers.Helpers, "place", counted)
    for into in (tmp_path / "cold", tmp_path / "warm"):
        out = v.download(into)
        assert {str(p.relative_to(out)): p.read_text() for p in out.rglob("*.txt")} == files
    assert sum(parts) == 2 * len(files)  # every file by a helper
    # the marker's stamps are the files': the same version again reads no file
    monkeypatch.setattr(smallfiles.Copier, "copy", None)
    assert v.download(tmp_path / "warm") == tmp_path / "warm"


def test_where_helpers_do_not_start_the_get_writes_the_files_itself(local, tmp_path, monkeypatch):
    files, v = _logged(local, tmp_path, checkout.HELPED + 100, folders=9)
    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-such-python"))
    monkeypatch.setattr(helpers.Helpers, "place", None)  # never reached
    out = v.download(tmp_path / "out")
    assert {str(p.relative_to(out)): p.read_text() for p in out.rglob("*.txt")} == files


def test_a_helper_that_dies_stops_the_get_and_a_rerun_completes_it(local, tmp_path, monkeypatch):
    files, v = _logged(local, tmp_path, 6000, folders=20)
    v.download(tmp_path / "warm")
    real = helpers.Helpers.place
    calls = []

    def killing(self, dfd, rel, part):
        calls.append(1)
        if len(calls) == 6:
            for proc, _ in self._all:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
        return real(self, dfd, rel, part)

    monkeypatch.setattr(helpers.Helpers, "place", killing)
    out = tmp_path / "out"
    with pytest.raises(CairnError, match="helper process"):
        v.download(out)
    got = {str(p.relative_to(out)): p.read_text() for p in out.rglob("*.txt")}
    assert 0 < len(got) < len(files)
    assert all(files[p] == text for p, text in got.items())  # each whole or absent
    monkeypatch.setattr(helpers.Helpers, "place", real)
    v.download(out)
    assert {str(p.relative_to(out)): p.read_text() for p in out.rglob("*.txt")} == files
    assert not list(out.rglob(f"{TMP_PREFIX}*"))


_HOLD = """
from cairn.engine import helpers
pool = helpers.Helpers(2)
print(" ".join(str(proc.pid) for proc, _ in pool._all), flush=True)
import time
time.sleep(60)
"""


def test_helpers_die_with_the_process_that_started_them():
    proc = subprocess.Popen([sys.executable, "-c", _HOLD], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    pids = [int(p) for p in proc.stdout.readline().split()]
    assert len(pids) == 2
    for pid in pids:
        os.kill(pid, 0)  # alive
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 10
    alive = set(pids)
    while alive and time.monotonic() < deadline:
        for pid in list(alive):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                alive.discard(pid)
        time.sleep(0.05)
    assert not alive, "a helper outlived the get that started it"


def test_the_helper_keeps_the_temporary_names_of_the_rest_of_cairn():
    from cairn.engine import confined

    assert confined.TMP_PREFIX == smallfiles.TMP_PREFIX


def test_ctrl_c_stops_a_get_with_one_message_and_a_rerun_completes_it(local, tmp_path, home):
    files, v = _logged(local, tmp_path, 15000, folders=10)
    v.download(tmp_path / "warm")
    out = tmp_path / "out"
    env = {**os.environ, "CAIRN_HOME": str(home), "CAIRN_CATALOG": f"sqlite:///{home}/catalog.db"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "cairn", "get", v.ref, "--root", str(out)],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )
    while proc.poll() is None and len(list(out.glob("d*/*.txt"))) < 50:
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the whole group, helpers included
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0, "the get finished before Ctrl-C"
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    got = {str(p.relative_to(out)): p.read_text() for p in out.rglob("*.txt")}
    assert all(files[p] == text for p, text in got.items())  # each whole or absent
    v.download(out)
    assert {str(p.relative_to(out)): p.read_text() for p in out.rglob("*.txt")} == files
