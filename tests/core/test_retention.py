"""Retention policies: every keep rule and their combinations, on SQLite and PostgreSQL,
protected aliases against every deleting command, dry runs, scopes and bad input.

The collection every rule is tried on (ages are set in the catalog, uses aged likewise):

    v0  60 days old, alias `best`
    v1  50 days old, alias `production` (protected by default)
    v2  40 days old, used by a run 5 days ago
    v3  20 days old, used by a run 40 days ago
    v4  10 days old
    v5   1 day old, the newest (`latest`)
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import MetaData, select, update
from typer.testing import CliRunner

from cairn import Artifact, Conflict, InvalidPolicy, NotFound, Repository, RetentionPolicy
from cairn.catalog.schema import usages, versions
from cairn.cli import app
from cairn.foundation.durations import format_duration, parse_duration

from .conftest import stored_objects

DAY = timedelta(days=1)
AGES = [60, 50, 40, 20, 10, 1]
ALIASES = {0: ["best"], 1: ["production"]}
USED = {2: 5, 3: 40}  # version -> days since a run used it


def _log(repo: Repository, name: str, content: str, *, project: str = "p", aliases=()) -> None:
    art = Artifact(name, "dataset")
    with art.new_file("a.txt") as f:
        f.write(content)
    repo.log_artifact(art, project=project, aliases=list(aliases))


def age(repo: Repository, ref: str, days: float) -> None:
    """Make a version `days` old, as the catalog records it."""
    at = datetime.now(timezone.utc) - days * DAY
    vid = repo.artifact(ref).id
    with repo.catalog.write() as conn:
        conn.execute(
            update(versions).where(versions.c.id == vid).values(created_at=at, committed_at=at)
        )


def use(repo: Repository, ref: str, days_ago: float, *, project: str = "p") -> None:
    """A finished run used `ref` as an input `days_ago` days ago."""
    with repo.run(project=project, name="consumer") as run:
        vid = run.use_artifact(ref).id
    at = datetime.now(timezone.utc) - days_ago * DAY
    with repo.catalog.write() as conn:
        conn.execute(update(usages).where(usages.c.version_id == vid).values(created_at=at))


def seed(repo: Repository, name: str = "ds", *, project: str = "p") -> None:
    for i, days in enumerate(AGES):
        _log(repo, name, f"{name} {i}", project=project, aliases=ALIASES.get(i, ()))
        age(repo, f"{project}/{name}:v{i}", days)
    for i, days in USED.items():
        use(repo, f"{project}/{name}:v{i}", days, project=project)


def left(repo: Repository, name: str = "p/ds") -> list[int]:
    return sorted(v.index for v in repo.versions(name) if v.index is not None)


POLICIES = [
    # (policy, versions deleted); v5 (newest) and v1 (production) are never deleted
    (dict(keep_last=2), [0, 2, 3]),
    (dict(keep_last=0), [0, 2, 3, 4]),
    (dict(keep_last=6), []),
    (dict(keep_younger="15d"), [0, 2, 3]),
    (dict(keep_younger="30d"), [0, 2]),
    (dict(keep_younger="2w"), [0, 2, 3]),
    (dict(keep_younger="1h"), [0, 2, 3, 4]),
    (dict(keep_aliased=True), [2, 3, 4]),
    (dict(keep_aliased=("best",)), [2, 3, 4]),
    (dict(keep_aliased=("other",)), [0, 2, 3, 4]),
    (dict(keep_used="30d"), [0, 3, 4]),
    (dict(keep_used="60d"), [0, 4]),
    (dict(keep_used="1d"), [0, 2, 3, 4]),
    # combinations: a version stays if ANY rule keeps it
    (dict(keep_last=1, keep_aliased=True, keep_used="30d"), [3, 4]),
    (dict(keep_last=2, keep_younger="30d"), [0, 2]),
    (dict(keep_younger="15d", keep_used="60d"), [0]),
    (dict(keep_aliased=("best",), keep_younger="45d"), []),
    (dict(keep_last=2, keep_younger="30d", keep_aliased=True, keep_used="30d"), []),
    # protected aliases: replaced, or none at all
    (dict(keep_last=0, protect=("best",)), [1, 2, 3, 4]),
    (dict(keep_last=0, protect=()), [0, 1, 2, 3, 4]),
    (dict(keep_last=0, protect=("best", "production")), [2, 3, 4]),
    # protection alone is no keep rule: nothing goes
    (dict(protect=("production",)), []),
]


@pytest.mark.parametrize(("rules", "deleted"), POLICIES, ids=[str(p[0]) for p in POLICIES])
def test_each_policy_and_combination_deletes_exactly_what_no_rule_keeps(repo, rules, deleted):
    seed(repo)
    repo.set_retention("p", **rules)

    dry = repo.retain(dry_run=True)
    assert sorted(int(d.ref.rsplit(":v", 1)[1]) for d in dry.deleted) == deleted
    assert left(repo) == [0, 1, 2, 3, 4, 5]  # the dry run deleted nothing

    report = repo.retain()
    assert [d.ref for d in report.deleted] == [d.ref for d in dry.deleted]
    assert left(repo) == sorted(set(range(6)) - set(deleted))
    keeps = RetentionPolicy(**rules).keeps
    assert (report.kept, report.collections) == ((6 - len(deleted), 1) if keeps else (0, 0))
    assert repo.artifact("p/ds:latest").index == 5
    assert repo.retain().deleted == ()  # applying it again changes nothing


@pytest.mark.parametrize(
    ("project_rules", "collection_rules", "deleted"),
    [
        # a collection's policy replaces its project's keep rules
        (dict(keep_last=5), dict(keep_last=1), [0, 2, 3, 4]),
        (dict(keep_last=1), dict(keep_aliased=True), [2, 3, 4]),
        # protected aliases fall back to the project's when the collection names none
        (dict(keep_last=0, protect=("best",)), dict(keep_last=0), [1, 2, 3, 4]),
        (dict(keep_last=0, protect=("best",)), dict(keep_last=0, protect=()), [0, 1, 2, 3, 4]),
        # a collection policy with no keep rule exempts it from the project's
        (dict(keep_last=0), dict(protect=("production",)), []),
        # no collection policy: the project's applies
        (dict(keep_younger="30d"), None, [0, 2]),
    ],
)
def test_a_collection_policy_replaces_its_projects(repo, project_rules, collection_rules, deleted):
    seed(repo)
    seed(repo, "other")
    repo.set_retention("p", **project_rules)
    if collection_rules is not None:
        repo.set_retention("p/ds", **collection_rules)

    report = repo.retain("p/ds")

    assert left(repo) == sorted(set(range(6)) - set(deleted))
    scope = "p/ds" if collection_rules is not None else "p"
    assert {d.policy for d in report.deleted} <= {scope}
    assert left(repo, "p/other") == list(range(6))  # only the collection named was touched


def test_retain_scopes_a_project_or_a_collection_and_every_project(repo):
    for project in ("a", "b"):
        for name in ("x", "y"):
            for i in range(3):
                _log(repo, name, f"{project}{name}{i}", project=project)
        repo.set_retention(project, keep_last=1)

    assert [d.ref for d in repo.retain("a/x").deleted] == ["a/x:v0", "a/x:v1"]
    assert [d.ref for d in repo.retain("a").deleted] == ["a/y:v0", "a/y:v1"]
    assert sorted(d.ref for d in repo.retain().deleted) == [
        "b/x:v0",
        "b/x:v1",
        "b/y:v0",
        "b/y:v1",
    ]
    for ref in ("nope", "a/nope"):
        with pytest.raises(NotFound):
            repo.retain(ref)


def test_a_version_a_running_run_uses_or_a_draft_holds_is_kept(repo):
    for i in range(5):
        _log(repo, "ds", f"c{i}")
        age(repo, f"p/ds:v{i}", 10 - i)
    repo.set_retention("p", keep_last=1)
    run = repo.run(project="p", name="still-running")
    run.use_artifact("p/ds:v1")
    use(repo, "p/ds:v2", 0)  # a finished run, a moment ago: during this retention run
    draft = repo.artifact("p/ds:v3").new_draft()

    report = repo.retain()

    assert [d.ref for d in report.deleted] == ["p/ds:v0"]
    assert report.in_use == ("p/ds:v1", "p/ds:v2", "p/ds:v3")
    assert "kept p/ds:v3: in use" in str(report)
    # the draft is logged, the run finishes and its use ages: they no longer hold anything
    with draft.new_file("more.txt") as f:
        f.write("more")
    repo.log_artifact(draft, project="p")
    run.finish()
    with repo.catalog.write() as conn:
        conn.execute(update(usages).values(created_at=datetime.now(timezone.utc) - 3 * DAY))
    assert [d.ref for d in repo.retain().deleted] == ["p/ds:v1", "p/ds:v2", "p/ds:v3", "p/ds:v4"]
    assert left(repo) == [5]


def test_a_draft_of_a_version_deleted_by_force_still_logs_after_gc(repo):
    _log(repo, "ds", "zero")
    _log(repo, "ds", "one")
    draft = repo.artifact("p/ds:v0").new_draft()
    repo.artifact("p/ds:v0").delete(force=True)
    repo.gc(grace=0)  # the draft's lease keeps the parent's bytes
    with draft.new_file("b.txt") as f:
        f.write("b")
    v = repo.log_artifact(draft, project="p")
    assert {e.path for e in v.files()} == {"a.txt", "b.txt"}
    assert v.get_path("a.txt").read_text() == "zero"


def test_using_a_version_retain_deleted_meanwhile_resolves_the_alias_again(repo):
    _log(repo, "ds", "zero", aliases=["candidate"])
    _log(repo, "ds", "one")
    v0 = repo.artifact("p/ds:v0")
    v0.delete(delete_aliases=True)
    with repo.run(project="p") as run:
        with pytest.raises(NotFound, match="was deleted"):
            repo.run_records.record_use(run.id, v0.id)
        assert run.use_artifact("p/ds:latest").version == "v1"
        with pytest.raises(NotFound):
            run.use_artifact("p/ds:v0")


# -- protected aliases against every deleting command --------------------------------------------


def _cli(home, catalog_url, *args: str, code: int = 0):
    result = CliRunner().invoke(
        app, ["--catalog", catalog_url, "--home", str(home), "--store", str(home / "store"), *args]
    )
    assert result.exit_code == code, (args, result.stdout, result.stderr)
    return result


def _protect(alias: str) -> list[str]:
    """Options a retain command names `alias` with (production is protected by default)."""
    return [] if alias == "production" else ["--protect", alias]


DELETERS = [
    ("api delete", lambda r, h, c, ref, a: r.artifact(ref).delete()),
    ("api delete_aliases", lambda r, h, c, ref, a: r.artifact(ref).delete(delete_aliases=True)),
    ("api prune", lambda r, h, c, ref, a: r.prune("p/ds", keep=0)),
    (
        "api retain",
        lambda r, h, c, ref, a: (
            r.set_retention("p", keep_last=0, protect=None if a == "production" else [a]),
            r.retain(),
        ),
    ),
    ("api gc", lambda r, h, c, ref, a: r.gc(grace=0)),
    ("cli rm", lambda r, h, c, ref, a: _cli(h, c, "rm", ref, code=1)),
    (
        "cli rm --delete-aliases",
        lambda r, h, c, ref, a: _cli(h, c, "rm", ref, "--delete-aliases", code=1),
    ),
    ("cli prune", lambda r, h, c, ref, a: _cli(h, c, "prune", "p/ds", "--keep", "0")),
    (
        "cli retain",
        lambda r, h, c, ref, a: (
            _cli(h, c, "retention", "set", "p", "--keep-last", "0", *_protect(a)),
            _cli(h, c, "retain"),
        ),
    ),
    ("cli gc", lambda r, h, c, ref, a: _cli(h, c, "gc", "--grace", "0")),
]


@pytest.mark.parametrize("alias", ["production", "gold"])
@pytest.mark.parametrize(("command", "attempt"), DELETERS, ids=[d[0] for d in DELETERS])
def test_no_command_deletes_a_version_with_a_protected_alias(
    repo, home, catalog_url, command, attempt, alias
):
    _log(repo, "ds", "precious", aliases=[alias])
    _log(repo, "ds", "newer")
    _log(repo, "ds", "newest")
    if alias != "production" and "retain" not in command:
        repo.set_retention("p", protect=[alias])
    ref = "p/ds:v0"

    try:
        attempt(repo, home, catalog_url, ref, alias)
    except Conflict as exc:
        assert "has aliases" in str(exc) or f"holds protected alias {alias}" in str(exc)

    v = repo.artifact(f"p/ds:{alias}")
    assert (v.version, v.state) == ("v0", "COMMITTED")
    repo.gc(grace=0)
    assert v.get_path("a.txt").read_text() == "precious"  # its bytes are still there
    if "retain" in command:
        assert left(repo) == [0, 2]  # the unprotected one went; the newest stays
    if "prune" in command:
        assert left(repo) == [0]  # prune --keep 0 takes the newest too
    if "cli rm" in command:
        err = _cli(home, catalog_url, "rm", ref, "--delete-aliases", code=1).stderr
        assert err.count("\n") == 1 and f"holds protected alias {alias}" in err
    if alias == "gold":  # not protected here: deleted as before
        with pytest.raises(Conflict, match="has aliases"):
            repo.artifact(ref).delete()


def test_rm_force_deletes_a_protected_version(repo, home, catalog_url):
    _log(repo, "ds", "precious", aliases=["production"])
    _log(repo, "ds", "newer")
    with pytest.raises(Conflict, match="protected alias production"):
        repo.artifact("p/ds:v0").delete(delete_aliases=True)
    _cli(home, catalog_url, "rm", "p/ds:v0", "--force")
    assert left(repo) == [1]
    with pytest.raises(NotFound):
        repo.artifact("p/ds:production")


# -- dry runs ------------------------------------------------------------------------------------


def catalog_rows(repo: Repository) -> dict[str, list[tuple]]:
    """Every row of every catalog table, sorted: what a dry run must leave as it was."""
    meta = MetaData()
    meta.reflect(repo.catalog.engine)
    with repo.catalog.read() as conn:
        return {
            t.name: sorted(tuple(map(repr, r)) for r in conn.execute(select(t)))
            for t in meta.sorted_tables
        }


def test_a_dry_run_changes_nothing_and_predicts_the_run(repo):
    seed(repo)
    seed(repo, "other")
    repo.set_retention("p", keep_last=1)
    repo.set_retention("p/other", keep_used="30d")
    draft = repo.artifact("p/ds:v2").new_draft()  # a lease, in the catalog
    before = catalog_rows(repo)
    objects_before = stored_objects(repo)

    dry = repo.retain(dry_run=True)
    assert dry.gc_bytes > 0 and dry.gc_bytes_before == 0

    assert catalog_rows(repo) == before
    assert stored_objects(repo) == objects_before
    real = repo.retain()
    assert [d.ref for d in real.deleted] == [d.ref for d in dry.deleted]
    assert real.in_use == dry.in_use == ("p/ds:v2",)
    assert real.gc_bytes == dry.gc_bytes  # what gc would free, predicted by the dry run
    assert repo.gc(grace=0).bytes_freed == dry.gc_bytes
    del draft


# -- declaring policies --------------------------------------------------------------------------


def test_policies_are_stored_shown_replaced_and_removed(repo):
    _log(repo, "ds", "x")
    assert repo.retention("p") is None and repo.retention("p/ds", effective=True) is None
    assert repo.protected_aliases("p/ds") == ("production",)

    p = repo.set_retention("p", keep_last=10, keep_younger="30d", keep_aliased=True, keep_used="2w")
    assert p == RetentionPolicy(
        keep_last=10, keep_younger=30 * DAY, keep_aliased=True, keep_used=14 * DAY
    )
    assert repo.retention("p") == p and repo.retention("p").scope == "p"
    assert str(p) == (
        "keep the last 10; younger than 30d; any with an alias; any used by a run in the "
        "last 2w; protect: inherited"
    )
    c = repo.set_retention(
        "p/ds", RetentionPolicy(keep_aliased=("best", "staging"), protect=("gold",))
    )
    assert repo.retention("p/ds") == c and c.scope == "p/ds"
    assert repo.retention("p/ds", effective=True).keep_aliased == ("best", "staging")
    assert repo.protected_aliases("p/ds") == ("gold",)
    assert [x.scope for x in repo.retention_policies()] == ["p", "p/ds"]
    assert repo.retention_policies("p")[1].protect == ("gold",)

    repo.set_retention("p", keep_last=3)  # replaces the whole policy
    assert repo.retention("p") == RetentionPolicy(keep_last=3)
    assert repo.remove_retention("p/ds") is True
    assert repo.remove_retention("p/ds") is False
    assert repo.retention("p/ds", effective=True).scope == "p"


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        (dict(keep_last=-1), "invalid --keep-last -1"),
        (dict(keep_last=True), "invalid --keep-last True"),
        (dict(keep_last="3"), "invalid --keep-last '3'"),
        (dict(keep_younger="30x"), "unknown unit 'x'"),
        (dict(keep_younger="-5d"), "a negative duration makes no sense"),
        (dict(keep_younger="30"), "give a unit, e.g. 30d"),
        (dict(keep_used="1.5d"), "use a whole number and a unit"),
        (dict(keep_used="1d12h"), "use a whole number and a unit"),
        (dict(keep_used=timedelta(days=-1)), "invalid --keep-used"),
        (dict(keep_aliased=["v3"]), "names like v3 are version numbers"),
        (dict(keep_aliased=["../x"]), "invalid alias '../x'"),
        (dict(protect=["a b"]), "--protect: invalid alias 'a b'"),
    ],
)
def test_an_invalid_policy_is_refused(rules, message):
    with pytest.raises(InvalidPolicy, match=message.replace("(", r"\(").replace(".", r"\.")):
        RetentionPolicy(**rules)


def test_policies_for_what_does_not_exist_are_refused(repo):
    _log(repo, "ds", "x")
    with pytest.raises(NotFound):
        repo.set_retention("p/nope", keep_last=1)
    with pytest.raises(NotFound):
        repo.set_retention("nope", keep_last=1)
    with pytest.raises(Exception, match="not a version ref"):
        repo.set_retention("p/ds:v0", keep_last=1)


@pytest.mark.parametrize(
    ("text", "seconds", "canonical"),
    [
        ("30d", 30 * 86400, "30d"),
        ("12h", 12 * 3600, "12h"),
        ("2w", 14 * 86400, "2w"),
        ("14d", 14 * 86400, "2w"),
        ("90m", 5400, "90m"),
        ("60m", 3600, "1h"),
        ("45s", 45, "45s"),
        ("0d", 0, "0s"),
        (" 7D ", 7 * 86400, "1w"),
    ],
)
def test_durations_read_and_print(text, seconds, canonical):
    d = parse_duration(text)
    assert d.total_seconds() == seconds
    assert format_duration(d) == canonical


def test_pending_versions_and_writers_staging_identical_content_are_left_alone(repo):
    from cairn.catalog import leases

    for i in range(3):
        _log(repo, "ds", f"c{i}")
    part = Artifact("ds", "dataset")
    with part.new_file("part.txt") as f:
        f.write("part")
    repo.upsert_artifact(part, project="p", distributed_id="job-1", writer_id="w0")
    v1 = repo.artifact("p/ds:v1")
    with repo.catalog.write() as conn:  # a writer about to commit v1's manifest again
        lease = leases.create(conn, namespace=v1.namespace)
        leases.add_objects(conn, lease, [v1.digest])
    repo.set_retention("p", keep_last=0)

    report = repo.retain()

    assert [d.ref for d in report.deleted] == ["p/ds:v0"]
    assert report.in_use == ("p/ds:v1",)
    pending = [v for v in repo.versions("p/ds") if v.state == "PENDING"]
    assert [v.distributed_id for v in pending] == ["job-1"]
    done = repo.finish_artifact(Artifact("ds", "dataset"), project="p", distributed_id="job-1")
    assert (done.version, [e.path for e in done.files()]) == ("v3", ["part.txt"])
    with repo.catalog.write() as conn:
        leases.drop(conn, lease)
    assert [d.ref for d in repo.retain().deleted] == ["p/ds:v1", "p/ds:v2"]
