"""The `cairn` command line: each command's real effect, exit codes, one-line errors.

Most tests drive the Typer app in-process; the `python -m cairn` tests run real
subprocesses to prove the entry point, the exit codes and the absence of tracebacks.
"""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cairn import Artifact, Repository
from cairn.cli import app, parse_size
from cairn.console import RichProgress
from cairn.fs import CairnFileSystem

from .conftest import write

runner = CliRunner()


@pytest.fixture(autouse=True)
def _quiet_env(home, tmp_path, monkeypatch):
    """A fresh CAIRN_HOME (conftest's `home`), no stray settings, and a scratch cwd."""
    for var in ("CAIRN_CACHE_DIR", "CAIRN_DEBUG"):
        monkeypatch.delenv(var, raising=False)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)


def cairn(*args: str, code: int = 0):
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, (result.stdout, result.stderr, result.exception)
    return result


def show(ref: str) -> dict:
    return json.loads(cairn("show", ref, "--json").stdout)


@pytest.fixture
def data(tmp_path) -> Path:
    folder = tmp_path / "data"
    write(folder / "a.txt", "alpha")
    write(folder / "sub" / "b.txt", "bravo")
    return folder


def _repo(home) -> Repository:
    return Repository.open(home=str(home))


# -- put / get / ls / show / diff ---------------------------------------------------------


def test_put_prints_the_ref_and_a_summary_on_stderr(data):
    r = cairn("put", str(data), "-n", "demo/mnist", "-t", "dataset")
    assert r.stdout == "demo/mnist:v0\n"
    assert r.stderr == "logged demo/mnist:v0: 2 files, 10 bytes, 10 bytes newly stored\n"


def test_put_same_folder_twice_prints_the_same_ref(data):
    first = cairn("put", str(data), "-n", "demo/mnist")
    again = cairn("put", str(data), "-n", "demo/mnist")
    assert first.stdout == again.stdout == "demo/mnist:v0\n"
    assert "unchanged" in again.stderr and "0 bytes newly stored" in again.stderr
    write(data / "c.txt", "charlie")
    third = cairn("put", str(data), "-n", "demo/mnist")
    assert third.stdout == "demo/mnist:v1\n"
    assert "7 bytes newly stored" in third.stderr  # only the new file was sent


def test_put_a_file_with_description_metadata_and_aliases(data):
    cairn(
        "put",
        str(data / "a.txt"),
        "-n",
        "demo/model",
        "-t",
        "model",
        "-d",
        "first try",
        "-m",
        '{"lr": 0.1, "tags": ["x"]}',
        "-a",
        "best",
        "-a",
        "production",
    )
    doc = show("demo/model:best")
    assert doc["ref"] == "demo/model:v0" and doc["type"] == "model"
    assert doc["description"] == "first try"
    assert doc["metadata"] == {"lr": 0.1, "tags": ["x"]}
    assert doc["aliases"] == ["best", "latest", "production"]
    assert [f["path"] for f in doc["files"]] == ["a.txt"]


def test_put_without_type_keeps_the_collection_type(data):
    cairn("put", str(data), "-n", "demo/m", "-t", "model")
    write(data / "c.txt", "charlie")
    cairn("put", str(data), "-n", "demo/m")
    assert show("demo/m")["type"] == "model"
    cairn("put", str(data), "-n", "demo/fresh")
    assert show("demo/fresh")["type"] == "dataset"


def test_put_uses_the_default_project(data):
    cairn("--project", "team", "put", str(data), "-n", "mnist")
    assert show("team/mnist")["ref"] == "team/mnist:v0"
    assert cairn("--project", "team", "show", "mnist", "--json").stdout


def test_get_downloads_the_files_and_prints_the_folder(data, tmp_path):
    cairn("put", str(data), "-n", "demo/mnist")
    out = tmp_path / "out"
    r = cairn("get", "demo/mnist:v0", "--root", str(out))
    assert r.stdout == f"{out}\n"
    assert (out / "a.txt").read_text() == "alpha"
    assert (out / "sub" / "b.txt").read_text() == "bravo"
    # default root: ./artifacts/PROJECT/NAME/vN
    r = cairn("get", "demo/mnist")
    assert r.stdout == f"{Path.cwd() / 'artifacts' / 'demo' / 'mnist' / 'v0'}\n"
    assert (Path(r.stdout.strip()) / "sub" / "b.txt").read_text() == "bravo"


def test_get_stops_on_local_edits_unless_forced_and_links_only_when_asked(data, tmp_path, home):
    cairn("put", str(data), "-n", "demo/mnist")
    out = tmp_path / "out"
    cairn("get", "demo/mnist", "--root", str(out))
    (out / "a.txt").write_text("edited")
    write(data / "a.txt", "new alpha")
    cairn("put", str(data), "-n", "demo/mnist")
    r = cairn("get", "demo/mnist", "--root", str(out), code=1)
    assert r.stdout == ""
    assert r.stderr.count("\n") == 1 and "a.txt" in r.stderr and "--force" in r.stderr
    assert (out / "a.txt").read_text() == "edited"
    cairn("get", "demo/mnist", "--root", str(out), "--force")
    assert (out / "a.txt").read_text() == "new alpha"
    assert os.stat(out / "a.txt").st_nlink == 1  # a copy, not the cache's file
    linked = Path(
        cairn("get", "demo/mnist", "--root", str(tmp_path / "l"), "--link").stdout.strip()
    )
    assert os.stat(linked / "a.txt").st_nlink > 1


def test_put_refuses_links_to_outside_unless_following_them(data, tmp_path):
    write(tmp_path / "secret.txt", "secret")
    os.symlink(tmp_path / "secret.txt", data / "leak")
    os.symlink("a.txt", data / "inside")
    (data / "empty").mkdir()
    r = cairn("put", str(data), "-n", "demo/mnist", code=1)
    assert r.stderr.count("\n") == 1 and "leak" in r.stderr and "--follow-links" in r.stderr
    cairn("put", str(data), "-n", "demo/mnist", "--follow-links")
    kinds = {f["path"]: f["kind"] for f in show("demo/mnist")["files"]}
    assert kinds == {
        "a.txt": "file",
        "empty": "dir",
        "inside": "link",
        "leak": "file",
        "sub/b.txt": "file",
    }


def test_get_into_a_folder_that_cannot_be_made_is_one_line(data, tmp_path):
    assert run("put", str(data), "-n", "demo/mnist").returncode == 0
    gone = tmp_path / "gone"
    gone.mkdir()
    script = f"cd {gone} && rmdir {gone} && exec {sys.executable} -m cairn get demo/mnist"
    r = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and "current folder" in r.stderr, r.stderr
    assert "unexpected" not in r.stderr


def test_ls_lists_projects_collections_and_versions(data, home):
    cairn("put", str(data), "-n", "demo/mnist", "-a", "best")
    write(data / "c.txt", "charlie")
    cairn("put", str(data), "-n", "demo/mnist")
    cairn("put", str(data), "-n", "demo/model", "-t", "model")
    cairn("put", str(data), "-n", "other/x")
    with _repo(home) as repo, repo.run(project="empty", name="nothing"):
        pass

    lines = cairn("ls").stdout.splitlines()
    assert lines[0].split() == ["project", "collection", "type", "versions"]
    assert [ln.split() for ln in lines[1:]] == [
        ["demo", "mnist", "dataset", "2"],
        ["demo", "model", "model", "1"],
        ["empty", "-", "-", "0"],
        ["other", "x", "dataset", "1"],
    ]
    lines = cairn("ls", "demo").stdout.splitlines()
    assert [ln.split() for ln in lines[1:]] == [["mnist", "dataset", "2"], ["model", "model", "1"]]

    lines = cairn("ls", "demo/mnist").stdout.splitlines()
    assert lines[0].split() == ["version", "state", "size", "files", "aliases", "created"]
    assert [ln.split()[:6] for ln in lines[1:]] == [
        ["v1", "COMMITTED", "17", "bytes", "3", "latest"],
        ["v0", "COMMITTED", "10", "bytes", "2", "best"],
    ]


def test_ls_shows_pending_versions(data, home):
    with _repo(home) as repo:
        repo.upsert_artifact(
            Artifact("preds").add_file(str(data / "a.txt")),
            project="demo",
            distributed_id="dag-run-1",
            writer_id="0",
        )
    lines = cairn("ls", "demo/preds").stdout.splitlines()
    assert lines[1].split()[:2] == ["pending", "PENDING"]
    # not visible through `latest` until it is finished
    assert "not found" in cairn("show", "demo/preds", code=1).stderr


def test_ls_unknown_project_or_collection_fails(data):
    cairn("put", str(data), "-n", "demo/mnist")
    assert "project 'nope' not found" in cairn("ls", "nope", code=1).stderr
    assert "demo/nope not found" in cairn("ls", "demo/nope", code=1).stderr


def test_show_prints_details_and_files(data):
    cairn("put", str(data), "-n", "demo/mnist", "-d", "digits", "-m", '{"k": 1}')
    text = cairn("show", "demo/mnist").stdout
    doc = show("demo/mnist")
    assert "demo/mnist:v0 (dataset)" in text
    assert doc["digest"] in text
    assert "digits" in text and '{"k": 1}' in text
    assert "a.txt" in text and "sub/b.txt" in text
    assert "stored in    projects/demo/" in text and doc["namespace"] == "demo"  # private


def test_show_json_is_machine_readable(data, home):
    with _repo(home) as repo, repo.run(project="demo", name="prep") as run:
        run.log_artifact(Artifact("mnist").add_dir(str(data)))
    doc = show("demo/mnist:latest")
    for key in (
        "ref",
        "version",
        "digest",
        "size",
        "state",
        "aliases",
        "metadata",
        "description",
        "created_at",
        "files",
    ):
        assert key in doc
    assert (doc["ref"], doc["version"], doc["state"], doc["size"]) == (
        "demo/mnist:v0",
        "v0",
        "COMMITTED",
        10,
    )
    assert doc["created_at"].endswith("+00:00")
    assert doc["logged_by"]["name"] == "prep"
    assert doc["files"][0] == {
        "path": "a.txt",
        "kind": "file",
        "size": 5,
        "digest": doc["files"][0]["digest"],
        "ref": None,
    }
    assert len(doc["files"][0]["digest"]) == 64


def test_diff_lists_added_removed_and_modified_paths(data):
    cairn("put", str(data), "-n", "demo/mnist")
    write(data / "c.txt", "charlie")
    write(data / "a.txt", "ALPHA!")
    os.remove(data / "sub" / "b.txt")
    cairn("put", str(data), "-n", "demo/mnist")
    r = cairn("diff", "demo/mnist:v0", "demo/mnist:v1")
    # the folder emptied stays, as an empty folder
    assert r.stdout.splitlines() == ["A  c.txt", "A  sub", "D  sub/b.txt", "M  a.txt"]
    assert r.stderr.strip() == "2 added, 1 removed, 1 modified"
    same = cairn("diff", "demo/mnist:v1", "demo/mnist:latest")
    assert same.stdout == "" and same.stderr.strip() == "no differences"


# -- lineage ----------------------------------------------------------------------------------


@pytest.fixture
def runs(data, home):
    with _repo(home) as repo:
        with repo.run(project="demo", name="prep", job_type="prep") as run:
            run.log_artifact(Artifact("mnist").add_dir(str(data)))
        with repo.run(project="demo", name="train", job_type="train") as run:
            run.use_artifact("mnist")
            run.log_artifact(Artifact("model", type="model").add_file(str(data / "a.txt")))


def test_lineage_tree_is_the_default(runs):
    text = cairn("lineage", "demo/mnist").stdout
    assert text.splitlines()[0] == "demo/mnist:v0 (dataset · latest)"
    assert "logged by run prep" in text
    assert "used by run train" in text and "logged demo/model:v0" in text


def test_lineage_dot_and_mermaid_have_run_and_version_nodes_and_edges(runs):
    dot = cairn("lineage", "demo/mnist", "--format", "dot").stdout
    assert dot.startswith("digraph lineage {")
    assert 'n0 [label="demo/mnist:v0\\ndataset · latest"' in dot
    assert 'n1 [label="prep\\nprep · manual · finished"' in dot
    assert 'n2 [label="train\\ntrain · manual · finished"' in dot
    assert 'n3 [label="demo/model:v0\\nmodel · latest"' in dot
    for edge in (
        'n1 -> n0 [label="logged"]',
        'n0 -> n2 [label="used"]',
        'n2 -> n3 [label="logged"]',
    ):
        assert edge in dot

    mermaid = cairn("lineage", "demo/mnist", "-f", "mermaid").stdout
    assert mermaid.startswith("flowchart LR\n")
    assert 'n0["demo/mnist:v0<br/>dataset · latest"]' in mermaid
    assert 'n2(["train<br/>train · manual · finished"])' in mermaid
    for edge in ("n1 -->|logged| n0", "n0 -->|used| n2", "n2 -->|logged| n3"):
        assert edge in mermaid


def test_lineage_depth_and_json(runs):
    doc = json.loads(cairn("lineage", "demo/mnist", "-f", "json", "--depth", "1").stdout)
    assert {n["label"] for n in doc["nodes"]} == {"demo/mnist:v0", "prep", "train"}
    assert cairn("lineage", "demo/mnist", "--depth", "-1", code=2)
    assert cairn("lineage", "demo/mnist", "--format", "png", code=2)


# -- aliases, deletion, pruning ----------------------------------------------------------------


def test_alias_add_and_rm(data):
    cairn("put", str(data), "-n", "demo/mnist")
    write(data / "c.txt", "charlie")
    cairn("put", str(data), "-n", "demo/mnist")
    r = cairn("alias", "add", "demo/mnist:v0", "production")
    assert r.stdout == "demo/mnist:v0: production\n"
    assert show("demo/mnist:production")["ref"] == "demo/mnist:v0"
    # adding it to another version moves it
    r = cairn("alias", "add", "demo/mnist:v1", "production")
    assert "moved production from demo/mnist:v0 to demo/mnist:v1" in r.stderr
    assert show("demo/mnist:v0")["aliases"] == []
    assert show("demo/mnist:v1")["aliases"] == ["latest", "production"]
    cairn("alias", "rm", "demo/mnist:v1", "production")
    assert show("demo/mnist:v1")["aliases"] == ["latest"]
    assert (
        "has no alias 'production'"
        in cairn("alias", "rm", "demo/mnist:v1", "production", code=1).stderr
    )


def test_alias_latest_and_version_like_names_are_refused(data):
    cairn("put", str(data), "-n", "demo/mnist")
    for bad in ("latest", "v3", "../up", "a/b"):
        r = cairn("alias", "add", "demo/mnist:v0", bad, code=2)
        assert r.stderr.startswith("cairn: error: ") and len(r.stderr.splitlines()) == 1
    cairn("alias", "rm", "demo/mnist:v0", "latest", code=2)
    assert show("demo/mnist:v0")["aliases"] == ["latest"]


def test_rm_refuses_a_version_with_aliases_unless_asked(data):
    cairn("put", str(data), "-n", "demo/mnist", "-a", "best")
    r = cairn("rm", "demo/mnist:v0", code=1)
    assert "best" in r.stderr and "--delete-aliases" in r.stderr
    assert show("demo/mnist:v0")["state"] == "COMMITTED"
    assert cairn("rm", "demo/mnist:v0", "--delete-aliases").stdout == "deleted demo/mnist:v0\n"
    assert "not found" in cairn("show", "demo/mnist:v0", code=1).stderr


def test_rm_of_a_protected_version_needs_force(data):
    cairn("put", str(data), "-n", "demo/mnist", "-a", "production")
    r = cairn("rm", "demo/mnist:v0", "--delete-aliases", code=1)
    assert "protected alias production" in r.stderr and "--force" in r.stderr
    assert show("demo/mnist:v0")["state"] == "COMMITTED"
    assert cairn("rm", "demo/mnist:v0", "--force").stdout == "deleted demo/mnist:v0\n"


def test_rm_without_user_aliases_needs_no_flag(data):
    cairn("put", str(data), "-n", "demo/mnist")
    write(data / "c.txt", "charlie")
    cairn("put", str(data), "-n", "demo/mnist")
    cairn("rm", "demo/mnist:v0")
    assert [ln.split()[0] for ln in cairn("ls", "demo/mnist").stdout.splitlines()[1:]] == ["v1"]


def test_prune_keeps_the_newest_and_aliased_versions(data):
    for i in range(4):
        write(data / f"n{i}.txt", str(i))
        cairn("put", str(data), "-n", "demo/mnist", *(["-a", "best"] if i == 0 else []))
    dry = cairn("prune", "demo/mnist", "--keep", "1", "--dry-run")
    assert dry.stdout.splitlines() == ["would delete demo/mnist:v2", "would delete demo/mnist:v1"]
    assert len(cairn("ls", "demo/mnist").stdout.splitlines()) == 5  # header + 4

    r = cairn("prune", "demo/mnist", "--keep", "1")
    assert r.stdout.splitlines() == ["deleted demo/mnist:v2", "deleted demo/mnist:v1"]
    left = [ln.split()[0] for ln in cairn("ls", "demo/mnist").stdout.splitlines()[1:]]
    assert left == ["v3", "v0"]  # the newest, and v0 which has an alias
    cairn("prune", "demo/mnist:v1", "--keep", "1", code=2)
    cairn("prune", "demo/mnist", code=2)  # --keep is required


# -- maintenance ----------------------------------------------------------------------------


def _objects(home: Path) -> list[Path]:
    """The objects of project demo (private: its own namespace)."""
    folder = home / "store" / "projects" / "demo" / "objects"
    return sorted(p for p in folder.rglob("*") if p.is_file())


def test_gc_dry_run_frees_nothing_then_gc_does(data, home):
    cairn("put", str(data), "-n", "demo/mnist")
    write(data / "a.txt", "changed")
    cairn("put", str(data), "-n", "demo/mnist")
    before = _objects(home)
    assert len(before) == 3  # alpha, bravo, changed
    cairn("rm", "demo/mnist:v0")

    dry = cairn("gc", "--dry-run", "--grace", "0")
    assert dry.stdout.splitlines() == [
        "would free 5 bytes: would delete 1 object and 1 manifest that no version needs",
        "would keep 12 bytes: 2 objects that versions, unfinished uploads or running writers "
        "still need",
    ]
    assert _objects(home) == before

    real = cairn("gc", "--grace", "0")
    freed, kept, recorded = real.stdout.splitlines()
    assert freed == "freed 5 bytes: deleted 1 object and 1 manifest that no version needs"
    assert kept == (
        "kept 12 bytes: 2 objects that versions, unfinished uploads or running writers still need"
    )
    record = recorded.removeprefix("recorded what it deleted in the store at ")
    assert (home / "store" / record).is_file()
    assert len(_objects(home)) == 2
    assert cairn("gc", "--grace", "0").stdout.startswith("freed 0 bytes: deleted 0 objects that")
    out = Path(cairn("get", "demo/mnist").stdout.strip())
    assert (out / "a.txt").read_text() == "changed"


def _cached(home: Path) -> list[Path]:
    return [p for p in (home / "cache" / "files").rglob("*") if p.is_file()]


def test_cache_cleanup_zero_empties_the_cache(data, home, tmp_path):
    cairn("put", str(data), "-n", "demo/mnist")
    cairn("get", "demo/mnist", "--root", str(tmp_path / "out"))
    assert len(_cached(home)) == 2
    r = cairn("cache", "cleanup", "1GB")
    assert r.stdout.startswith("removed 0 files") and len(_cached(home)) == 2
    r = cairn("cache", "cleanup", "0")
    assert r.stdout.startswith("removed 2 files (10 bytes)")
    assert cairn("cache", "cleanup", "0").stdout.startswith("removed 0 files (0 bytes)")
    assert _cached(home) == []
    # the downloaded copy is unaffected, and a new get refills the cache
    assert (tmp_path / "out" / "a.txt").read_text() == "alpha"
    cairn("get", "demo/mnist", "--root", str(tmp_path / "again"))
    assert len(_cached(home)) == 2


def test_cache_cleanup_removes_the_block_indexes_of_cairn_reads(tmp_path, home):
    write(tmp_path / "big" / "big.bin", "x" * 100 + "".join(map(str, range(80_000))))
    cairn("put", str(tmp_path / "big"), "-n", "demo/big")
    with Repository.open(home=str(home)) as repo:
        fs = CairnFileSystem(repository=repo, skip_instance_cache=True)
        assert fs.cat_file("demo/big/big.bin", 0, 5) == b"xxxxx"
    blocks = home / "cache" / "blocks"
    assert len([p for p in blocks.rglob("*") if p.is_file()]) == 1
    assert cairn("cache", "cleanup", "1GB").stdout.startswith("removed 0 files (0 bytes)")
    r = cairn("cache", "cleanup", "0")
    assert r.stdout.startswith("removed 0 files and 1 block index (")
    assert [p for p in blocks.rglob("*") if p.is_file()] == []


def test_cache_cleanup_rejects_a_bad_size():
    r = cairn("cache", "cleanup", "lots", code=2)
    assert (
        r.stderr
        == "cairn: error: invalid size 'lots': use bytes or a unit, e.g. 500MB, 1GB or 10GiB\n"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", 0),
        ("1024", 1024),
        ("100B", 100),
        ("1kb", 1000),
        ("1KiB", 1024),
        ("500MB", 500 * 10**6),
        ("1GB", 10**9),
        ("1 GB", 10**9),
        ("1.5G", 1_500_000_000),
        ("10GiB", 10 * 2**30),
        ("2TiB", 2 * 2**40),
    ],
)
def test_parse_size(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "-1", "1XB", "GB", "1iB", "one"])
def test_parse_size_rejects(text):
    from cairn.cli import BadInput

    with pytest.raises(BadInput):
        parse_size(text)


def test_verify_exits_1_after_an_object_is_corrupted(data, home):
    cairn("put", str(data), "-n", "demo/mnist")
    ok = cairn("verify")
    assert ok.stdout.strip() == "checked 1 version, 2 objects (10 bytes): all good"
    assert cairn("verify", "demo/mnist:v0").stdout.endswith("all good\n")

    victim = _objects(home)[0]
    victim.chmod(0o644)  # store objects are read-only
    victim.write_bytes(b"rotten")
    bad = cairn("verify", code=1)
    assert "(11 bytes): 1 corrupt\n" in bad.stdout  # "rotten" read back: 6 bytes
    assert f"corrupt: object {victim.parent.name}{victim.name} in projects/demo/" in bad.stdout
    assert "needed by 1 version:\n  demo/mnist:v0 " in bad.stdout
    cairn("verify", "demo/mnist:v0", code=1)
    victim.unlink()
    assert "versions that need a bad object: demo/mnist:v0" in cairn("verify", code=1).stdout


# -- projects --------------------------------------------------------------------------------


def test_project_show_lists_visibility_and_collections(data):
    cairn("put", str(data), "-n", "demo/mnist")
    cairn("put", str(data), "-n", "demo/model", "-t", "model")
    text = cairn("project", "show", "demo").stdout
    assert "visibility   private" in text
    assert "mnist" in text and "model" in text
    assert "project 'nope' not found" in cairn("project", "show", "nope", code=1).stderr


def test_project_access_settings_are_recorded_on_the_single_user_sqlite_catalog(data):
    note = (
        "note: the SQLite catalog is single-user: access settings are recorded, and enforced "
        "once the repository moves to PostgreSQL (docs/ACCESS.md)\n"
    )
    r = cairn("project", "create", "demo", "--visibility", "public")
    assert (r.stdout, r.stderr) == ("created project demo (public)\n", note)
    r = cairn("project", "grant", "demo", "alice", "--role", "writer")
    assert (r.stdout, r.stderr) == ("alice is writer of project demo\n", note)
    assert cairn("project", "visibility", "demo", "open").stdout == "project demo is open\n"
    text = cairn("project", "show", "demo").stdout
    assert "visibility   open" in text and "members      alice (writer)" in text
    assert "your access  admin (single-user SQLite catalog)" in text
    assert cairn("project", "revoke", "demo", "alice").stdout == (
        "alice has no role in project demo now\n"
    )
    assert "members      -" in cairn("project", "show", "demo").stdout
    cairn("put", str(data), "-n", "demo/mnist")  # the project exists: logging just works
    assert "project 'demo' exists already" in cairn("project", "create", "demo", code=1).stderr
    cairn("project", "grant", "demo", "bob", "--role", "x", code=2)
    assert "alice has no role" in cairn("project", "revoke", "demo", "alice", code=1).stderr
    assert "project 'nope' not found" in cairn("project", "grant", "nope", "bob", code=1).stderr


# -- configuration -----------------------------------------------------------------------------


def test_global_options_choose_catalog_store_and_home(data, tmp_path, home):
    other = tmp_path / "other"
    store = tmp_path / "elsewhere-store"
    args = ["--home", str(other), "--store", str(store)]
    cairn(*args, "put", str(data), "-n", "demo/mnist")
    assert (other / "catalog.db").exists() and (store / "projects" / "demo" / "objects").is_dir()
    assert not home.exists()  # CAIRN_HOME was overridden by --home
    # a second catalog needs its own store: the shared one belongs to the first catalog
    catalog = f"sqlite:///{tmp_path / 'cat.db'}"
    refused = cairn("--catalog", catalog, *args, "put", str(data), "-n", "demo/other", code=1)
    assert "cairn recover" in refused.stderr
    second = ["--catalog", catalog, "--home", str(other), "--store", str(tmp_path / "s2")]
    cairn(*second, "put", str(data), "-n", "demo/other")
    assert "other" not in cairn(*args, "ls", "demo").stdout
    assert "other" in cairn(*second, "ls", "demo").stdout


def test_postgres_catalog_from_the_environment(data, fresh_postgres_url, monkeypatch):
    monkeypatch.setenv("CAIRN_CATALOG", fresh_postgres_url)
    cairn("put", str(data), "-n", "demo/mnist")
    assert show("demo/mnist")["ref"] == "demo/mnist:v0"


def test_unexpected_errors_are_one_line_unless_debugging(data, monkeypatch):
    def broken(self, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(Repository, "gc", broken)
    r = cairn("gc", code=1)
    assert r.stderr == (
        "cairn: error: unexpected RuntimeError: disk on fire "
        "(set CAIRN_DEBUG=1 to see the traceback)\n"
    )
    monkeypatch.setenv("CAIRN_DEBUG", "1")
    r = cairn("gc", code=1)
    assert "Traceback (most recent call last)" in r.stderr
    assert r.stderr.endswith("cairn: error: unexpected RuntimeError: disk on fire\n")


def test_usage_errors_exit_2():
    cairn("put", code=2)
    cairn("get", code=2)
    cairn("no-such-command", code=2)
    cairn("put", ".", code=2)  # -n is required


# -- progress --------------------------------------------------------------------------------


def test_rich_progress_draws_bytes_rate_and_eta():
    import io

    from rich.console import Console

    out = io.StringIO()
    bar = RichProgress(Console(file=out, force_terminal=True, width=100))
    bar.start("downloading", 2_000_000)
    bar.advance(1_000_000)
    bar.advance(1_000_000)
    bar.finish()
    bar.finish()  # idempotent
    text = out.getvalue()
    assert "downloading" in text and "1.9 MiB/1.9 MiB" in text and "iB/s" in text

    quiet = io.StringIO()
    idle = RichProgress(Console(file=quiet, force_terminal=True))
    idle.start("downloading", 0)  # nothing to transfer: nothing drawn
    idle.advance(0)
    idle.finish()
    assert quiet.getvalue() == ""


def test_progress_is_passed_only_when_stderr_is_a_terminal(data, monkeypatch):
    seen = []
    real_open = Repository.open.__func__

    def spy(cls, *args, **kwargs):
        seen.append(kwargs.get("progress"))
        return real_open(cls, *args, **kwargs)

    monkeypatch.setattr(Repository, "open", classmethod(spy))
    cairn("put", str(data), "-n", "demo/mnist")
    assert seen == [None]  # CliRunner's stderr is not a terminal


def test_a_failed_transfer_clears_the_progress_bar_before_the_error(data, monkeypatch):
    import cairn.cli.frame as cli
    from cairn import IntegrityError

    class Bar:
        def __init__(self):
            self.calls = []

        def start(self, description, total):
            self.calls.append("start")

        def advance(self, nbytes):
            pass

        def finish(self):
            self.calls.append("finish")

    bars = []
    monkeypatch.setattr(cli, "_stderr_is_terminal", lambda: True)
    monkeypatch.setattr(cli, "RichProgress", lambda: bars.append(Bar()) or bars[-1])

    def failing_gc(self, **kwargs):
        self.progress.start("downloading", 10)  # and, like the engine, no finish on error
        raise IntegrityError("object abc is corrupt")

    monkeypatch.setattr(Repository, "gc", failing_gc)
    r = cairn("gc", code=1)
    assert r.stderr == "cairn: error: object abc is corrupt\n"
    assert bars[0].calls == ["start", "finish"]


# -- real subprocesses: `python -m cairn` --------------------------------------------------------


def run(*args: str, stderr=subprocess.PIPE) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cairn", *args],
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        timeout=120,
    )


def test_python_m_cairn_round_trip(data, tmp_path):
    put = run("put", str(data), "-n", "demo/mnist")
    assert (put.returncode, put.stdout) == (0, "demo/mnist:v0\n")
    # piped stderr: the summary line and no progress bar
    assert put.stderr == "logged demo/mnist:v0: 2 files, 10 bytes, 10 bytes newly stored\n"
    got = run("get", "demo/mnist", "--root", str(tmp_path / "out"))
    assert got.returncode == 0
    assert (Path(got.stdout.strip()) / "sub" / "b.txt").read_text() == "bravo"
    version = run("--version")
    assert version.stdout.startswith("cairn ") and version.returncode == 0


def test_console_script_entry_point_is_cli_main():
    from importlib.metadata import entry_points

    from cairn.cli import main

    assert [ep.load() for ep in entry_points(group="console_scripts", name="cairn")] == [main]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["get", "demo/nope"], 1, "artifact demo/nope not found"),
        (["get", "demo/mnist:v7"], 1, "version demo/mnist:v7 not found"),
        (["show", "demo/mnist:nope"], 1, "version demo/mnist:nope not found"),
        (["put", "DATA", "-n", "bad name/x"], 2, "invalid project 'bad name'"),
        (["put", "DATA", "-n", "demo/x", "-a", "../../etc"], 2, "invalid alias '../../etc'"),
        (["get", "../../etc/passwd"], 2, "invalid ref '../../etc/passwd'"),
        (["get", "demo/mnist:../../x"], 2, "invalid alias '../../x'"),
        (["alias", "add", "demo/mnist", "../x"], 2, "invalid alias '../x'"),
        (["put", "MISSING", "-n", "demo/x"], 2, "no such file or folder"),
        (["put", "DATA", "-n", "demo/x", "-m", "{not json"], 2, "-m is not valid JSON"),
        (["cache", "cleanup", "9ZB"], 2, "invalid size '9ZB'"),
        (["rm", "demo/mnist:v0"], 1, "has aliases keep"),
        (["get", "demo/mnist", "--root", "/proc/nope/x"], 1, "cannot create /proc/nope/x"),
        (["get", "demo/mnist", "--root", "/sys/cairn-x/y"], 1, "cannot create /sys/cairn-x/y"),
        (["get", "demo/mnist", "--root", "UNDERFILE"], 1, "a.txt is not a folder"),
        (["get", "demo/mnist", "--root", "TMP"], 1, "not a checkout of demo/mnist"),
    ],
)
def test_errors_are_one_line_and_exit_non_zero(data, tmp_path, args, code, message):
    assert run("put", str(data), "-n", "demo/mnist", "-a", "keep").returncode == 0
    swap = {
        "DATA": str(data),
        "MISSING": str(tmp_path / "missing.txt"),
        "UNDERFILE": str(data / "a.txt" / "x"),
        "TMP": str(tmp_path),
    }
    r = run(*[swap.get(a, a) for a in args])
    assert r.returncode == code, r.stderr
    assert r.stdout == ""
    assert "Traceback" not in r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("cairn: error: "), r.stderr
    assert message in lines[0]


def test_progress_bar_on_a_terminal(tmp_path):
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(4 << 20))
    leader, follower = pty.openpty()
    try:
        r = run("put", str(big), "-n", "demo/big", stderr=follower)
    finally:
        os.close(follower)
    drawn = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closed
            break
        if not chunk:
            break
        drawn += chunk
    os.close(leader)
    assert r.returncode == 0 and r.stdout == "demo/big:v0\n"
    text = drawn.decode(errors="replace")
    assert "hashing" in text and "/4.0 MiB" in text  # the bar: done/total bytes
    assert "logged demo/big:v0" in text


def _commands(group=None, path=()):
    """(argv path, command) of every command and group of the CLI."""
    import typer.main

    group = group or typer.main.get_command(app)
    yield path, group
    for name, sub in getattr(group, "commands", {}).items():
        yield from _commands(sub, (*path, name))


def test_help_reads_like_a_command_line_and_every_option_says_what_it_is_for():
    for path, command in _commands():
        text = runner.invoke(app, [*path, "--help"], terminal_width=200).stdout
        for typer_ism in ("<bool>", "<str>", "<int", "<list[", "{"):
            assert typer_ism not in text, (path, typer_ism, text)
        for param in command.params:
            if param.name not in ("install_completion", "show_completion"):
                assert getattr(param, "help", None), (path, param.name)
    put_help = runner.invoke(app, ["put", "--help"], terminal_width=200).stdout
    assert "Usage: cairn put [OPTIONS] PATH" in put_help
    assert "--description" in put_help and "What this version holds." in put_help
    lineage_help = runner.invoke(app, ["lineage", "--help"], terminal_width=200).stdout
    assert "[tree|dot|mermaid|json]" in lineage_help and "INTEGER" in lineage_help


def test_sizes_are_binary_units_everywhere(data, home):
    from cairn.foundation.sizes import format_size

    assert [format_size(n) for n in (1, 1023, 1536, 5 << 30)] == [
        "1 byte",
        "1023 bytes",
        "1.5 KiB",
        "5.0 GiB",
    ]
    write(data / "big.bin", os.urandom(3 << 20))
    put = cairn("put", str(data), "-n", "demo/mnist")
    assert put.stderr == "logged demo/mnist:v0: 3 files, 3.0 MiB, 3.0 MiB newly stored\n"
    assert "3.0 MiB (3145738 bytes), 3 files" in cairn("show", "demo/mnist").stdout
    assert "3.0 MiB" in cairn("ls", "demo/mnist").stdout
    assert "(3.0 MiB)" in cairn("verify").stdout


def test_verify_repair_from_a_folder_fixes_the_store_and_lists_what_is_left(data, home, tmp_path):
    cairn("put", str(data), "-n", "demo/mnist")
    checkout = tmp_path / "checkout"
    cairn("get", "demo/mnist", "--root", str(checkout))
    cairn("cache", "cleanup", "0")
    for victim in _objects(home):
        victim.unlink()
    moved = tmp_path / "moved"
    (data / "a.txt").rename(tmp_path / "a-moved.txt")  # the stat cache's copy is gone too
    (data / "sub" / "b.txt").rename(tmp_path / "b-moved.txt")

    missing = cairn("verify", "--from", str(tmp_path / "nope"), code=2)
    assert "--from" in missing.stderr and "no such folder" in missing.stderr
    (moved).mkdir()
    partial = cairn("verify", "--from", str(moved), code=1)
    assert "not repaired: no good copy" in partial.stdout
    assert "versions that need a bad object: demo/mnist:v0" in partial.stdout
    fixed = cairn("verify", "--repair", "--from", str(checkout))
    assert fixed.stdout.count("repaired ") == 2 and fixed.stdout.endswith("all good\n")
    assert str(checkout / "a.txt") in fixed.stdout
    cairn("verify")
