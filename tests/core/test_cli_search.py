"""`cairn ls --where/--sort/--limit/--json` and `cairn runs`: tables with metadata and
summary keys as columns, JSON, and one-line errors that leave nothing behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from cairn import Artifact, Repository
from cairn.cli import app

from .conftest import write

runner = CliRunner()


def cairn(*args: str, code: int = 0, env: dict[str, str] | None = None):
    result = runner.invoke(app, list(args), env=env)
    assert result.exit_code == code, (result.stdout, result.stderr, result.exception)
    return result


@pytest.fixture
def filled(home, tmp_path):
    """demo/clf v0..v2 (v0 production), demo/rows v0, lab/clf v0; two sweep runs."""
    with Repository.open(home=str(home)) as repo:
        for i, (acc, lr) in enumerate([(0.9, 0.1), (0.95, 0.01), (0.5, 1.0)]):
            path = write(tmp_path / f"m{i}" / "model.bin", f"model {i}")
            with repo.run(
                project="demo", name=f"train-{i}", group="sweep-1", job_type="train",
                config={"lr": lr},
            ) as run:  # fmt: skip
                run.log_summary({"val_acc": acc, "val_loss": 1 - acc})
                meta = {"acc": acc, "lr": lr, "train": {"epochs": 3 + i}}
                run.log_artifact(
                    Artifact("clf", "model", metadata=meta).add_file(path),
                    aliases=["production"] if i == 0 else [],
                )
        rows = write(tmp_path / "rows.csv", "a,b\n")
        meta = {"rows": 2_000_000}
        repo.log_artifact(Artifact("rows", "dataset", metadata=meta).add_file(rows), project="demo")
        other = write(tmp_path / "other.bin", "other")
        repo.log_artifact(Artifact("clf", "model", metadata={"acc": 0.99}).add_file(other),
                          project="lab")  # fmt: skip
    return home


def table(stdout: str) -> list[list[str]]:
    """Piped output: plain columns, cut where the header's columns start."""
    import re

    header, *lines = stdout.splitlines()
    starts = [m.start() for m in re.finditer(r"(?:^|(?<=  ))\S", header)]
    cuts = list(zip(starts, [*starts[1:], None], strict=True))
    return [[line[a:b].strip() for a, b in cuts] for line in [header, *lines]]


def test_ls_where_is_a_table_with_metadata_columns(filled):
    out = table(cairn("ls", "--where", "metadata.acc > 0.6", "--sort", "-metadata.acc").stdout)
    header, *rows = out
    assert header == [
        "ref",
        "type",
        "state",
        "size",
        "aliases",
        "created",
        "acc",
        "lr",
        "train.epochs",
    ]
    assert [r[0] for r in rows] == ["lab/clf:v0", "demo/clf:v1", "demo/clf:v0"]
    assert [r[6] for r in rows] == ["0.99", "0.95", "0.9"]
    assert rows[0][7:] == ["-", "-"] and rows[1][7:] == ["0.01", "4"]


def test_ls_ref_narrows_to_a_project_or_collection(filled):
    assert [r[0] for r in table(cairn("ls", "demo", "--sort", "version").stdout)[1:]] == [
        "demo/rows:v0",
        "demo/clf:v0",
        "demo/clf:v1",
        "demo/clf:v2",
    ]
    got = cairn("ls", "demo/clf", "--where", "alias = 'production'", "--json").stdout
    [doc] = json.loads(got)
    assert doc["ref"] == "demo/clf:v0" and doc["aliases"] == ["production"]
    assert doc["metadata"] == {"acc": 0.9, "lr": 0.1, "train": {"epochs": 3}}
    assert set(doc) >= {"project", "name", "type", "version", "digest", "size", "created_at"}
    got = cairn("ls", "--where", "type = 'dataset' AND metadata.rows > 1000000", "--json")
    assert [d["ref"] for d in json.loads(got.stdout)] == ["demo/rows:v0"]


def test_ls_limit_says_when_more_match(filled):
    r = cairn("ls", "--limit", "2")
    assert len(table(r.stdout)) == 3
    assert r.stderr == "showing 2 of 5 versions: --limit N shows more\n"
    r = cairn("ls", "--limit", "5", "--json")
    assert len(json.loads(r.stdout)) == 5 and r.stderr == ""
    r = cairn("ls", "--where", "metadata.acc > 5")
    assert r.stderr == "no version matches\n"
    assert json.loads(cairn("ls", "--where", "metadata.acc > 5", "--json").stdout) == []


def test_ls_without_search_options_lists_as_before(filled):
    assert table(cairn("ls", "demo").stdout)[0] == ["collection", "type", "versions"]


def test_runs_table_has_summary_columns_and_the_config_the_query_names(filled):
    r = cairn(
        "runs", "--where", "group = 'sweep-1' AND config.lr < 1", "--sort", "-summary.val_acc"
    )
    header, *rows = table(r.stdout)
    assert header == [
        "run", "name", "group", "job type", "state", "created", "config.lr", "val_acc", "val_loss",
    ]  # fmt: skip
    assert [(x[1], x[6], x[7]) for x in rows] == [
        ("train-1", "0.01", "0.95"),
        ("train-0", "0.1", "0.9"),
    ]
    ids = {d["name"]: d["id"] for d in json.loads(cairn("runs", "--json").stdout)}
    assert [x[0] for x in rows] == ["…" + ids[x[1]][-12:] for x in rows]  # the end of the id
    [best] = json.loads(
        cairn("runs", "--sort", "-summary.val_acc", "--limit", "1", "--json").stdout
    )
    assert best["name"] == "train-1" and best["summary"]["val_acc"] == 0.95
    assert best["config"] == {"lr": 0.01} and best["project"] == "demo"
    assert best["state"] == "finished" and best["group"] == "sweep-1"


def test_runs_project_from_the_option_the_global_option_or_the_environment(filled):
    with Repository.open(home=str(filled)) as repo:
        repo.run(project="lab", name="lonely").finish()

    def names(*args: str, env: dict[str, str] | None = None) -> set[str]:
        return {d["name"] for d in json.loads(cairn(*args, "--json", env=env).stdout)}

    assert names("runs") == {"train-0", "train-1", "train-2", "lonely"}
    assert names("runs", "--project", "lab") == {"lonely"}
    assert names("runs", "--where", "project = 'lab'") == {"lonely"}
    assert {d["name"] for d in json.loads(cairn("--project", "lab", "runs", "--json").stdout)} == {
        "lonely"
    }
    assert names("runs", env={"CAIRN_PROJECT": "lab"}) == {"lonely"}
    assert "project 'nope' not found" in cairn("runs", "--project", "nope", code=1).stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ls", "--where", "metadata.acc >> 1"], "invalid query at position 15: expected a value"),
        (["ls", "--where", "nme = 'x'"], "invalid query at position 1: unknown field 'nme'"),
        (["ls", "--sort", "alias"], "invalid order_by at position 1: versions cannot be sorted"),
        (["ls", "--where", "size > 'big'"], "invalid query at position 8: size is a number"),
        (["runs", "--where", "metadata.x = 1"], "invalid query at position 1: unknown field"),
        (["runs", "--sort", "-"], "invalid order_by: it needs a field"),
        (["ls", "--where", "group = :g"], "invalid query at position 9: no value for"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(home, args, message):
    r = cairn(*args, code=2)
    assert r.stdout == ""
    assert r.stderr.startswith(f"cairn: error: {message}") and r.stderr.count("\n") == 1
    assert not home.exists()  # not even the repository was opened


def test_a_negative_limit_is_a_usage_error(home):
    r = cairn("ls", "--limit", "-1", code=2)
    assert "--limit" in r.stderr and not home.exists()


def test_the_real_entry_point_prints_no_traceback(home):
    env = {**os.environ, "CAIRN_HOME": str(home)}
    done = subprocess.run(
        [sys.executable, "-m", "cairn", "runs", "--where", "summary.acc > 'a' AND ("],
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines() == [
        "cairn: error: invalid query at position 24: expected a field name, got the end of the "
        "query (in query \"summary.acc > 'a' AND (\")"
    ]
    assert not home.exists()
