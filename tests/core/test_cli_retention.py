"""`cairn retention set|show|rm`, `cairn retain` and `cairn rm --force` from the command line;
bad input is one line and a non-zero exit, in a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from cairn.cli import app

from .conftest import write

runner = CliRunner()


def cairn(*args: str, code: int = 0):
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, (result.stdout, result.stderr, result.exception)
    return result


@pytest.fixture
def demo(home, tmp_path):
    """demo/mnist v0 (production), v1 (best), v2, v3."""
    for i in range(4):
        folder = tmp_path / f"d{i}"
        write(folder / "a.txt", f"content {i}")
        aliases = {0: ["-a", "production"], 1: ["-a", "best"]}.get(i, [])
        cairn("put", str(folder), "-n", "demo/mnist", *aliases)
    return "demo/mnist"


def test_set_show_and_rm_a_policy(demo):
    r = cairn(
        "retention",
        "set",
        "demo",
        "--keep-last",
        "10",
        "--keep-younger",
        "30d",
        "--keep-aliased",
        "--keep-used",
        "2w",
    )
    assert r.stdout.strip() == (
        "demo: keep the last 10; younger than 30d; any with an alias; any used by a run in "
        "the last 2w; protect: inherited"
    )
    cairn(
        "retention",
        "set",
        "demo/mnist",
        "--keep-last",
        "1",
        "--keep-alias",
        "best",
        "--keep-alias",
        "staging",
        "--protect",
        "production",
        "--protect",
        "gold",
    )
    table = cairn("retention", "show").stdout
    assert "demo/mnist" in table and "any with alias best, staging" in table
    assert "production, gold" in table
    doc = json.loads(cairn("retention", "show", "--json").stdout)
    assert [p["scope"] for p in doc] == ["demo", "demo/mnist"]
    assert doc[0]["keep_younger"] == "30d" and doc[0]["keep_aliased"] is True
    assert doc[1]["keep_aliased"] == ["best", "staging"]

    effective = cairn("retention", "show", "demo/mnist").stdout
    assert effective.splitlines() == [
        "demo/mnist: policy of demo/mnist: keep the last 1; any with alias best, staging; "
        "protect: production, gold",
        "protected aliases: production, gold",
    ]
    cairn("retention", "rm", "demo/mnist")
    assert cairn("retention", "show", "demo/mnist").stdout.startswith(
        "demo/mnist: policy of demo: keep the last 10"
    )
    assert "protected aliases: production" in cairn("retention", "show", "demo/mnist").stdout
    cairn("retention", "set", "demo", "--no-protect", "--keep-last", "0")
    assert "protected aliases: none" in cairn("retention", "show", "demo/mnist").stdout
    cairn("retention", "rm", "demo")
    r = cairn("retention", "show")
    assert "no retention policy" in r.stderr


def test_retain_dry_run_then_retain_then_gc(demo):
    cairn("retention", "set", "demo", "--keep-last", "1", "--keep-aliased")
    dry = cairn("retain", "--dry-run")
    assert dry.stdout.splitlines() == ["would delete demo/mnist:v2 (9 bytes, policy demo)"]
    assert "would delete 1 version, kept 3 in 1 collection" in dry.stderr
    assert "`cairn gc` would then free 9 bytes" in dry.stderr
    assert len(cairn("ls", "demo/mnist").stdout.splitlines()) == 5  # header + 4

    r = cairn("retain", "demo/mnist")
    assert r.stdout.splitlines() == ["deleted demo/mnist:v2 (9 bytes, policy demo)"]
    assert "`cairn gc` would now free 9 bytes" in r.stderr
    assert "freed 9 bytes" in cairn("gc", "--grace", "0").stdout
    left = [ln.split()[0] for ln in cairn("ls", "demo/mnist").stdout.splitlines()[1:]]
    assert left == ["v3", "v1", "v0"]


def test_rm_needs_force_for_a_protected_version(demo):
    r = cairn("rm", "demo/mnist:v0", "--delete-aliases", code=1)
    assert "holds protected alias production" in r.stderr and "--force" in r.stderr
    assert cairn("rm", "demo/mnist:v0", "--force").stdout.strip() == "deleted demo/mnist:v0"


def test_retention_commands_have_help():
    for args in (["retention", "set"], ["retention", "show"], ["retention", "rm"], ["retain"]):
        out = cairn(*args, "--help").stdout
        assert "Usage: cairn " + " ".join(args) in out
    helptext = cairn("retention", "set", "--help").stdout
    for option in (
        "--keep-last",
        "--keep-younger",
        "--keep-aliased",
        "--keep-alias",
        "--keep-used",
        "--protect",
        "--no-protect",
    ):
        assert option in helptext
    assert "--force" in cairn("rm", "--help").stdout


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["retention", "set", "demo", "--keep-last", "-1"], 2, "a count cannot be negative"),
        (["retention", "set", "demo", "--keep-last", "ten"], 2, "invalid --keep-last 'ten'"),
        (["retention", "set", "demo", "--keep-younger", "30x"], 2, "unknown unit 'x'"),
        (["retention", "set", "demo", "--keep-younger", "-3d"], 2, "negative duration"),
        (["retention", "set", "demo", "--keep-used", "1.5d"], 2, "a whole number and a unit"),
        (["retention", "set", "demo", "--keep-used", "30"], 2, "give a unit, e.g. 30d"),
        (["retention", "set", "demo", "--keep-alias", "v3"], 2, "names like v3 are version"),
        (["retention", "set", "demo", "--keep-alias", "../x"], 2, "invalid alias '../x'"),
        (["retention", "set", "demo", "--protect", "a b"], 2, "invalid alias 'a b'"),
        (["retention", "set", "demo", "--protect", "x", "--no-protect"], 2, "contradict"),
        (["retention", "set", "demo/nope", "--keep-last", "1"], 1, "demo/nope not found"),
        (["retention", "set", "nope", "--keep-last", "1"], 1, "project 'nope' not found"),
        (["retention", "set", "demo/mnist:v1", "--keep-last", "1"], 2, "not a version ref"),
        (["retention", "rm", "demo"], 1, "demo has no retention policy of its own"),
        (["retain", "demo/mnist:v0"], 2, "not a version ref"),
        (["retain", "nope"], 1, "project 'nope' not found"),
        (["rm", "demo/mnist:v0", "--delete-aliases"], 1, "holds protected alias production"),
    ],
)
def test_bad_input_is_one_line_and_changes_nothing(demo, home, args, code, message):
    before = cairn("ls", "demo/mnist").stdout
    r = subprocess.run(
        [sys.executable, "-m", "cairn", *args], capture_output=True, text=True, timeout=120
    )
    assert r.returncode == code, r.stderr
    assert r.stdout == "" and "Traceback" not in r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("cairn: error: "), r.stderr
    assert message in lines[0]
    assert cairn("ls", "demo/mnist").stdout == before
    assert cairn("retention", "show", "--json").stdout.strip() == "[]"
