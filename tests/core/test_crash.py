"""Invariant 2: a writer killed with SIGKILL leaves no visible partial version, and a re-run
finishes the work sending only what had not arrived."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from cairn import Artifact, NotFound, Repository


def _objects(store: str) -> set[str]:
    """Objects of project p (private: its own namespace)."""
    out = set()
    for folder, _, files in os.walk(os.path.join(store, "projects", "p", "objects")):
        out.update(os.path.join(folder, f) for f in files if not f.startswith(".tmp-"))
    return out


@pytest.fixture
def crash_home(home, catalog_url, tmp_path):
    """A store cutting files into ~16 KiB chunks, so a put makes thousands of objects."""
    store = home / "store"
    store.mkdir(parents=True)
    (store / "config.json").write_text(
        json.dumps(
            {"format": 1, "chunking": {"threshold": 65536, "avg": 16384, "min": 4096, "max": 65536}}
        )
    )
    return home


def test_invariant_2_sigkill_mid_upload_leaves_no_version_and_rerun_resends_only_missing(
    crash_home, catalog_url, tmp_path
):
    data = tmp_path / "data"
    data.mkdir()
    (data / "big.bin").write_bytes(os.urandom(96 << 20))
    for i in range(200):
        (data / f"small-{i}.txt").write_text(f"small file {i}\n" * 20)
    store = str(crash_home / "store")
    env = {**os.environ, "CAIRN_HOME": str(crash_home), "CAIRN_CATALOG": catalog_url}
    cmd = [sys.executable, "-m", "cairn", "put", str(data), "-n", "p/ds", "-t", "dataset"]

    child = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while len(_objects(store)) < 300 and time.time() < deadline and child.poll() is None:
        time.sleep(0.005)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert child.returncode == -signal.SIGKILL, "put finished before it could be killed"
    arrived = _objects(store)
    assert arrived, "nothing had been uploaded at the kill"

    with Repository.open(catalog=catalog_url, home=str(crash_home)) as repo:
        with pytest.raises(NotFound):
            repo.artifact("p/ds:latest")
        assert [v for v in repo.versions("p/ds") if v.state == "COMMITTED"] == []
        assert repo.verify().ok  # no committed version, nothing inconsistent

        # the re-run (through the API, to read its statistics) sends only what is missing
        v = repo.log_artifact(Artifact("ds").add_dir(data), project="p")
        total = len(_objects(store))
        assert v.version == "v0"
        assert v.last_log.objects_sent == total - len(arrived)
        assert repo.verify(v.ref).ok
        out = v.download(root=tmp_path / "out")
        assert (out / "big.bin").read_bytes() == (data / "big.bin").read_bytes()

    # and the CLI re-run now finds the version already there
    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    assert rerun.stdout.strip() == "p/ds:v0"
