"""Writers killed with SIGKILL at each stage leave the repository consistent, and running
the same writers again completes the version (issue: crash matrix, invariant 2).

Each writer runs in a real child process; the test arranges for it to SIGKILL itself at
one precise point (while hashing, mid-upload, after upload before commit, inside the
commit or finish transaction), because polling from outside cannot hit those windows
reliably. Everything else is real: the store, the catalog, the kill.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from cairn import Artifact, NotFound

# (stage, module attribute to wrap, on which call to die)
STAGES = {
    "while-hashing": ("cairn.foundation.chunking", "digest", 5),
    "mid-upload": ("cairn.storage.local", "LocalStore.put", 20),
    "after-upload-before-commit": ("cairn.catalog.records", "commit", 1),
    "inside-commit-transaction": ("cairn.catalog.records", "move_latest", 1),
}

CHILD = textwrap.dedent(
    """
    import importlib, os, signal, sys, json
    cfg = json.loads(sys.argv[1])
    module = importlib.import_module(cfg["module"])
    owner, _, attr = cfg["attr"].rpartition(".")
    target = getattr(module, owner) if owner else module
    original = getattr(target, attr)
    calls = [0]
    def dying(*args, **kwargs):
        calls[0] += 1
        if calls[0] >= cfg["on_call"]:
            os.kill(os.getpid(), signal.SIGKILL)
        return original(*args, **kwargs)
    setattr(target, attr, dying)
    # modules that imported the name directly see the wrapper too
    for name in ("cairn.engine.transfer", "cairn.repository", "cairn.engine.distributed"):
        mod = importlib.import_module(name)
        if not owner and getattr(mod, attr, None) is original:
            setattr(mod, attr, dying)
    from cairn import Artifact, Repository
    repo = Repository.open(catalog=cfg["catalog"], home=cfg["home"])
    art = Artifact(cfg["name"]).add_dir(cfg["data"])
    if cfg["mode"] == "log":
        repo.log_artifact(art, project="p")
    elif cfg["mode"] == "upsert":
        repo.upsert_artifact(art, project="p", distributed_id="d", writer_id=cfg["writer"])
    else:
        repo.finish_artifact(Artifact(cfg["name"]), project="p", distributed_id="d")
    print("survived")
    """
)


def _die_at(stage: str, **cfg) -> None:
    module, attr, on_call = STAGES[stage]
    cfg.update(module=module, attr=attr, on_call=on_call)
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(cfg)], capture_output=True, text=True
    )
    assert proc.returncode == -signal.SIGKILL, (stage, proc.stdout, proc.stderr[-2000:])


@pytest.fixture
def crash_repo(small_chunks, tmp_path):
    """A repository with small chunks and a data folder holding chunked and small files."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "big.bin").write_bytes(os.urandom(2 << 20))
    for i in range(30):
        (data / f"s{i}.txt").write_text(f"small {i}\n" * 50)
    return small_chunks, str(data)


@pytest.mark.parametrize("stage", list(STAGES))
def test_killed_log_leaves_no_version_and_rerun_completes(crash_repo, catalog_url, home, stage):
    repo, data = crash_repo
    _die_at(stage, mode="log", catalog=catalog_url, home=str(home), data=data, name="ds")
    with pytest.raises(NotFound):
        repo.artifact("p/ds:latest")
    assert repo.verify().ok
    v = repo.log_artifact(Artifact("ds").add_dir(data), project="p")
    assert v.version == "v0" and len(v.files()) == 31
    assert repo.verify().ok
    repo.gc(grace=0)
    assert repo.verify().ok


@pytest.mark.parametrize("stage", ["while-hashing", "mid-upload"])
def test_killed_upsert_adds_nothing_and_rerun_completes(crash_repo, catalog_url, home, stage):
    repo, data = crash_repo
    _die_at(
        stage,
        mode="upsert",
        writer="w1",
        catalog=catalog_url,
        home=str(home),
        data=data,
        name="ds",
    )
    pending = repo.versions("p/ds")
    assert [v.state for v in pending] == ["PENDING"]
    with pytest.raises(NotFound):
        pending[0].files()
    repo.upsert_artifact(
        Artifact("ds").add_dir(data), project="p", distributed_id="d", writer_id="w1"
    )
    v = repo.finish_artifact(Artifact("ds"), project="p", distributed_id="d")
    assert len(v.files()) == 31 and repo.verify().ok


@pytest.mark.parametrize("stage", ["after-upload-before-commit", "inside-commit-transaction"])
def test_killed_finish_leaves_the_version_pending_and_rerun_commits_it(
    crash_repo, catalog_url, home, stage
):
    repo, data = crash_repo
    for w in ("0", "1"):
        part = Artifact("ds").add_dir(data, name=f"w{w}")
        repo.upsert_artifact(part, project="p", distributed_id="d", writer_id=w)
    _die_at(stage, mode="finish", catalog=catalog_url, home=str(home), data=data, name="ds")
    assert [v.state for v in repo.versions("p/ds")] == ["PENDING"]
    assert repo.gc(grace=0).objects_deleted == 0  # the parts are still live
    v = repo.finish_artifact(Artifact("ds"), project="p", distributed_id="d")
    assert v.version == "v0" and len(v.files()) == 62
    assert repo.verify().ok
