"""Searching versions, on SQLite and PostgreSQL with the same expected answers.

One repository per catalog holds versions whose metadata mixes types on purpose: the
accuracy of demo/clf is a float, a string, an int, null, missing and a boolean across its
versions, so every operator shows that numbers compare as numbers, strings as strings,
and missing keys match nothing (docs/SEARCH.md).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import servers
from sqlalchemy import text

from cairn import Artifact, InvalidName, InvalidQuery, NotFound, Repository

from .conftest import write

# short names of the versions the world holds, in the order they are logged
CLF = [f"c{i}" for i in range(7)]  # demo/clf:v0..v6
ROWS = ["r0", "r1", "r2"]  # demo/rows:v0..v2 (r1 deleted)
OTHER = ["o0"]  # other/clf:v0
#: every version a search sees by default, newest first (r1 is deleted)
ALL = ["o0", "r2", "r0", "c6", "c5", "c4", "c3", "c2", "c1", "c0"]


@dataclass
class World:
    repo: Repository
    versions: dict[str, Any] = field(default_factory=dict)

    def short(self, v: Any) -> str:
        for name, known in self.versions.items():
            if known.id == v.id:
                return name
        raise AssertionError(f"unknown version {v.ref}")

    def names(self, query: str = "", **kwargs: Any) -> list[str]:
        return [self.short(v) for v in self.repo.search_versions(query, **kwargs)]


def _build(url: str, home: Path) -> World:
    repo = Repository.open(catalog=url, store=str(home / "store"), home=str(home))
    w = World(repo)

    def log(short: str, project: str, name: str, type_: str, meta: dict, **kw: Any) -> None:
        path = write(home / "src" / uuid.uuid4().hex / "f.txt", f"{short} {uuid.uuid4()}")
        art = Artifact(name, type_, metadata=meta, description=kw.pop("description", None))
        w.versions[short] = repo.log_artifact(art.add_file(path), project=project, **kw)

    deep = {"depth": 3, "name": "deep"}
    log("c0", "demo", "clf", "model", {"acc": 0.95, "lr": 0.1, "nested": deep, "tags": ["a", "b"]},
        aliases=["production"], description="best so far")  # fmt: skip
    log("c1", "demo", "clf", "model", {"acc": "0.99"}, description="string accuracy: 50% sure")
    log("c2", "demo", "clf", "model", {"acc": 10})
    log("c3", "demo", "clf", "model", {"acc": None})
    log("c4", "demo", "clf", "model", {})
    log("c5", "demo", "clf", "model", {"acc": True})
    log("c6", "demo", "clf", "model", {"acc": 0.5, "learning rate": 0.01, "nested": {"depth": 1}},
        aliases=["candidate"])  # fmt: skip
    prod = ["production"]
    log("r0", "demo", "rows", "dataset", {"rows": 2_000_000, "source": "s3"}, aliases=prod)
    log("r1", "demo", "rows", "dataset", {"rows": 500})
    log("r2", "demo", "rows", "dataset", {"rows": 1_500_000, "source": "S3"})
    log("o0", "other", "clf", "model", {"acc": 0.97})
    repo.artifact("demo/rows:v1").delete()
    return w


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def world(request, tmp_path_factory) -> Iterator[World]:
    """One repository per catalog for the whole module: searches only read it."""
    home = tmp_path_factory.mktemp(f"search-{request.param}")
    with contextlib.ExitStack() as stack:
        if request.param == "sqlite":
            url = f"sqlite:///{home}/catalog.db"
        else:
            server = request.getfixturevalue("postgres_url")
            url = stack.enter_context(servers.fresh_database(server))
        w = _build(url, home)
        yield w
        w.repo.close()


# -- filters --------------------------------------------------------------------------------

FILTERS = [
    ("", ALL),
    # numbers compare as numbers: 10 > 0.9, the string '0.99' and true are not numbers
    ("metadata.acc > 0.9", ["o0", "c2", "c0"]),
    ("metadata.acc >= 10", ["c2"]),
    ("metadata.acc < 1", ["o0", "c6", "c0"]),
    ("metadata.acc <= 0.5", ["c6"]),
    ("metadata.acc = 10", ["c2"]),
    ("metadata.acc = 10.0", ["c2"]),
    ("metadata.acc = 0.99", []),
    ("metadata.acc = 1", []),  # true is not 1
    # strings compare as strings
    ("metadata.acc > '0.9'", ["c1"]),
    ("metadata.acc = '0.99'", ["c1"]),
    ("metadata.acc < 'z'", ["c1"]),
    # booleans, null and missing keys
    ("metadata.acc = true", ["c5"]),
    ("metadata.acc = false", []),
    ("metadata.acc = null", ["r2", "r0", "c4", "c3"]),
    ("metadata.acc IS NULL", ["r2", "r0", "c4", "c3"]),
    ("metadata.acc != null", ["o0", "c6", "c5", "c2", "c1", "c0"]),
    ("metadata.acc IS NOT NULL", ["o0", "c6", "c5", "c2", "c1", "c0"]),
    ("metadata.acc != 0.95", ["o0", "c6", "c5", "c2", "c1"]),  # present and not 0.95
    ("NOT metadata.acc = 0.95", ["o0", "r2", "r0", "c6", "c5", "c4", "c3", "c2", "c1"]),
    ("metadata.nope = 1 OR metadata.nope != 1 OR metadata.nope > 0", []),
    ("metadata.acc IN (0.95, '0.99', true)", ["c5", "c1", "c0"]),
    ("metadata.acc IN (null, 10)", ["r2", "r0", "c4", "c3", "c2"]),
    ("metadata.acc NOT IN (0.95, 10)", ["o0", "c6", "c5", "c1"]),
    # nested and quoted keys; objects and arrays are neither numbers nor strings
    ("metadata.nested.depth >= 3", ["c0"]),
    ("metadata.nested.depth > 0", ["c6", "c0"]),
    ("metadata.nested != null", ["c6", "c0"]),
    ("metadata.nested = 3", []),
    ("metadata.nested.name LIKE 'd%'", ["c0"]),
    ('metadata."learning rate" < 0.1', ["c6"]),
    ("metadata.tags = 'a'", []),
    ("metadata.tags != null", ["c0"]),
    ("metadata.acc.deeper = 1", []),  # a key inside a number
    # the questions
    ("metadata.acc > 0.9 AND name = 'clf' AND project = 'demo'", ["c2", "c0"]),
    ("type = 'dataset' AND alias = 'production' AND metadata.rows > 1000000", ["r0"]),
    # aliases are a set: = has it, != lacks it
    ("alias = 'production'", ["r0", "c0"]),
    ("alias != 'production'", ["o0", "r2", "c6", "c5", "c4", "c3", "c2", "c1"]),
    ("alias = null", ["c5", "c4", "c3", "c2", "c1"]),
    ("alias != null", ["o0", "r2", "r0", "c6", "c0"]),
    ("alias IN ('candidate', 'production')", ["r0", "c6", "c0"]),
    ("alias NOT IN ('latest', 'production')", ["c5", "c4", "c3", "c2", "c1"]),
    ("alias LIKE 'prod%'", ["r0", "c0"]),
    ("alias NOT LIKE '%a%'", ["r0", "c5", "c4", "c3", "c2", "c1", "c0"]),
    # columns
    ("type = 'dataset'", ["r2", "r0"]),
    ("name = 'clf' AND project = 'other'", ["o0"]),
    ("project = 'demo' AND type != 'model'", ["r2", "r0"]),
    ("project IN ('other')", ["o0"]),
    ("name > 'm'", ["r2", "r0"]),
    ("size > 0 AND files = 1", ALL),
    ("size < 0", []),
    ("version = 2", ["r2", "c2"]),
    ("version >= 'v5'", ["c6", "c5"]),
    ("version != 0", ["r2", "c6", "c5", "c4", "c3", "c2", "c1"]),
    # LIKE is case-sensitive everywhere; ILIKE folds ASCII; backslash escapes % and _
    ("name LIKE 'c%'", ["o0", *CLF[::-1]]),
    ("name LIKE '_lf'", ["o0", *CLF[::-1]]),
    ("name LIKE 'C%'", []),
    ("name LIKE 'cl'", []),
    ("name ILIKE 'C%'", ["o0", *CLF[::-1]]),
    ("metadata.source LIKE 's3'", ["r0"]),
    ("metadata.source ILIKE 's3'", ["r2", "r0"]),
    ("metadata.source NOT LIKE 's%'", ["r2"]),
    ("description LIKE '%50\\%%'", ["c1"]),
    ("description LIKE '%5_\\% s%'", ["c1"]),
    ("description LIKE '%50\\_%'", []),
    ("description LIKE 'best*'", []),  # * and ? are no wildcards
    ("description = null", ["o0", "r2", "r0", "c6", "c5", "c4", "c3", "c2"]),
    ("description != 'best so far'", ["c1"]),
    # DELETED versions only when the query names the state
    ("state = 'DELETED'", ["r1"]),
    ("state = 'deleted'", ["r1"]),
    ("name = 'rows' AND state IN ('COMMITTED', 'DELETED')", ["r2", "r1", "r0"]),
    ("state = 'COMMITTED'", ALL),
    # dates
    ("created_at >= '2000-01-01'", ALL),
    ("created_at < '2000-01-01T00:00:00Z'", []),
    ("committed_at > '2000-01-01 00:00:00+02:00'", ALL),
    # precedence
    ("type = 'dataset' OR name = 'clf' AND metadata.acc > 0.96", ["o0", "r2", "r0", "c2"]),
    ("(type = 'dataset' OR name = 'clf') AND metadata.acc > 0.96", ["o0", "c2"]),
    ("NOT (metadata.acc > 0.9 OR type = 'dataset')", ["c6", "c5", "c4", "c3", "c1"]),
    ("NOT NOT alias = 'candidate'", ["c6"]),
]


@pytest.mark.parametrize(("query", "expected"), FILTERS, ids=[q or "(empty)" for q, _ in FILTERS])
def test_filters_give_the_same_answers_on_every_catalog(world, query, expected):
    assert world.names(query) == expected
    assert world.repo.count_versions(query) == len(expected)


def test_dates_and_digests_as_parameters(world):
    c6 = world.versions["c6"]
    after = ["o0", "r2", "r0"]
    assert world.names("created_at > :t", params={"t": c6.created_at}) == after
    iso = (c6.created_at + timedelta(microseconds=1)).isoformat()
    assert world.names("created_at >= :t", params={"t": iso}) == after
    digest = world.versions["c3"].digest
    assert world.names("digest = :d", params={"d": digest}) == ["c3"]
    assert world.names("digest = :d AND name = 'clf'", params={"d": digest}) == ["c3"]


def test_project_narrows_the_search(world):
    assert world.names(project="other") == ["o0"]
    assert world.names("metadata.acc > 0.9", project="demo") == ["c2", "c0"]
    assert world.repo.count_versions("metadata.acc > 0.9", project="demo") == 2
    assert world.names(project="demo", name="rows") == ["r2", "r0"]
    assert world.names("metadata.acc > 0.9", project="other", name="clf") == ["o0"]
    assert world.repo.count_versions(project="demo", name="clf") == 7
    with pytest.raises(InvalidQuery, match="a collection name needs its project"):
        world.repo.search_versions(name="clf")
    with pytest.raises(NotFound, match="project 'nope' not found"):
        world.repo.search_versions(project="nope")
    with pytest.raises(InvalidName):
        world.repo.search_versions(project="../demo")


def test_results_are_versions_with_their_aliases(world):
    [v] = world.repo.search_versions("alias = 'candidate'")
    assert v.ref == "demo/clf:v6" and v.aliases == ["candidate", "latest"]
    assert v.metadata == {"acc": 0.5, "learning rate": 0.01, "nested": {"depth": 1}}
    assert v.type == "model" and v.state == "COMMITTED"
    assert v.files()[0].path == "f.txt"


# -- order and pages ------------------------------------------------------------------------

ORDERS = [
    # numbers numerically, then strings, then booleans; null and missing last either way
    ("-metadata.acc", ["c2", "c0", "c6", "c1", "c5", "c4", "c3"]),
    ("metadata.acc", ["c6", "c0", "c2", "c1", "c5", "c4", "c3"]),
    ("metadata.nested.depth", ["c6", "c0", "c5", "c4", "c3", "c2", "c1"]),
    ("-metadata.nested.depth", ["c0", "c6", "c5", "c4", "c3", "c2", "c1"]),
    ("description", ["c0", "c1", "c6", "c5", "c4", "c3", "c2"]),
    ("-description", ["c1", "c0", "c6", "c5", "c4", "c3", "c2"]),
    ("created_at", CLF),
    ("-created_at", CLF[::-1]),
    ("version", CLF),
    (" -version ", CLF[::-1]),
    ("name", CLF[::-1]),  # ties: newest first
]


@pytest.mark.parametrize(("order", "expected"), ORDERS, ids=[o for o, _ in ORDERS])
def test_sorting(world, order, expected):
    got = world.names("name = 'clf'", project="demo", order_by=order)
    assert got == expected


def test_sorting_across_projects_and_types(world):
    assert world.names(order_by="-metadata.acc", limit=3) == ["c2", "o0", "c0"]
    assert world.names(order_by="name") == ["o0", *CLF[::-1], "r2", "r0"]
    assert world.names(order_by="-name") == ["r2", "r0", "o0", *CLF[::-1]]
    assert world.names(order_by="project") == ["r2", "r0", *CLF[::-1], "o0"]
    assert world.names("version = 0", order_by="version") == ["o0", "r0", "c0"]
    assert world.names("type = 'dataset'", order_by="-metadata.rows") == ["r0", "r2"]


def test_pages_add_up_to_the_whole_result(world):
    whole = world.names(order_by="-metadata.acc")
    assert len(whole) == world.repo.count_versions() == len(ALL)
    pages = [world.names(order_by="-metadata.acc", limit=3, offset=o) for o in range(0, 12, 3)]
    assert [n for page in pages for n in page] == whole
    assert pages[-1] == whole[9:]
    assert world.names(limit=0) == []
    assert world.names(offset=100) == []


def test_metadata_keys_of_the_matching_versions(world):
    assert world.repo.version_keys() == (
        "acc",
        '"learning rate"',
        "lr",
        "nested.depth",
        "nested.name",
        "rows",
        "source",
        "tags",
    )
    assert world.repo.version_keys("type = 'dataset'") == ("rows", "source")
    assert world.repo.version_keys(project="other") == ("acc",)
    assert world.repo.version_keys("name = 'nothing'") == ()
    nested = ("acc", '"learning rate"', "lr", "nested.depth", "nested.name", "tags")
    assert world.repo.version_keys(project="demo", name="clf") == nested


# -- bad input ------------------------------------------------------------------------------

ERRORS = [
    ("nme = 'x'", 1, "unknown field 'nme': versions have alias, committed_at, created_at"),
    ("summary.acc = 1", 1, "unknown field 'summary.acc'"),
    ("metadata = 1", 1, "metadata is a JSON object: name a key"),
    ("name.x = 1", 1, "name has no keys"),
    ("size > 'big'", 8, "size is a number, not 'big'"),
    ("name = 5", 8, "name is a string, not the number 5"),
    ("name = true", 8, "name is a string, not true"),
    ("created_at > 'yesterday'", 14, "created_at takes an ISO date or time"),
    ("created_at > 5", 14, "created_at takes an ISO date string"),
    ("metadata.acc > true", 16, "true and false compare only with = and !="),
    ("metadata.acc > null", 16, "null compares only with = and !="),
    ("size < null", 8, "null compares only with = and !="),
    ("alias > 'a'", 1, "alias compares with = and !="),
    ("alias = 5", 9, "alias compares with = and !="),
    ("size LIKE '1%'", 1, "LIKE needs a text field"),
    ("version = 'three'", 11, "version is a version: write 3 or 'v3'"),
    ("name LIKE 'a\\'", 11, "cannot end with a backslash"),
]


@pytest.mark.parametrize(("query", "position", "reason"), ERRORS, ids=[q for q, _, _ in ERRORS])
def test_bad_queries_name_the_position(world, query, position, reason):
    with pytest.raises(InvalidQuery) as info:
        world.repo.search_versions(query)
    assert info.value.position == position
    assert reason in info.value.reason, info.value.reason
    with pytest.raises(InvalidQuery):
        world.repo.count_versions(query)


@pytest.mark.parametrize(
    ("order", "reason"),
    [
        ("alias", "versions cannot be sorted by alias"),
        ("nme", "unknown field 'nme'"),
        ("metadata", "name a key"),
        ("-", "it needs a field"),
    ],
)
def test_bad_orders(world, order, reason):
    with pytest.raises(InvalidQuery, match="invalid order_by") as info:
        world.repo.search_versions(order_by=order)
    assert reason in str(info.value)


@pytest.mark.parametrize(
    "page", [{"limit": -1}, {"offset": -1}, {"limit": 1.5}, {"limit": True}, {"offset": None}]
)
def test_bad_pages(world, page):
    with pytest.raises(InvalidQuery, match="must be a whole number"):
        world.repo.search_versions(**page)


# -- injection ------------------------------------------------------------------------------

INJECTIONS = [
    ("name = 'x''; DROP TABLE versions; --'", {}),
    ("name = 'clf'' OR ''1''=''1'", {}),
    ('metadata."a\') OR 1=1 --" = 1', {}),
    ("metadata.\"acc' || '\" > 0", {}),
    ("name = :n", {"n": "' OR 1=1 --"}),
    ("metadata.acc = :x", {"x": "0.95' OR '1'='1"}),
    ("metadata.acc LIKE :x", {"x": "%' OR '1'='1"}),
    ("description LIKE '%'')) OR 1=1 --'", {}),
]


@pytest.mark.parametrize(("query", "params"), INJECTIONS, ids=[q for q, _ in INJECTIONS])
def test_injection_attempts_are_values_not_sql(world, query, params):
    assert world.names(query, params=params) == []
    with world.repo.catalog.read() as conn:
        assert conn.execute(text("SELECT count(*) FROM versions")).scalar() == 11
    assert world.repo.count_versions() == len(ALL)


def test_the_search_sql_holds_no_value_of_the_query(world):
    """Every literal and key reaches the database as a bound parameter."""
    from sqlalchemy.dialects import postgresql, sqlite

    from cairn.catalog.search import VERSIONS, Search

    marker = "zq" + uuid.uuid4().hex[:8]
    query = (
        f"metadata.{marker}k.\"{marker} x\" = '{marker}v' AND name LIKE '{marker}%' "
        f"AND alias != '{marker}a' AND metadata.{marker}n > 0.123456789 "
        f"AND description ILIKE '%{marker}%'"
    )
    for dialect, module in (("sqlite", sqlite), ("postgresql", postgresql)):
        search = Search.compile(VERSIONS, dialect, query, order_by=f"-metadata.{marker}s")
        sql = str(search.select(None).order_by(*search.order).compile(dialect=module.dialect()))
        assert marker not in sql and "0.123456789" not in sql, sql


def test_a_search_reads_nothing_of_a_project_a_fresh_catalog_lacks(tmp_path):
    with Repository.open(catalog=f"sqlite:///{tmp_path}/c.db", home=str(tmp_path)) as repo:
        assert repo.search_versions() == [] and repo.count_versions() == 0
        assert repo.version_keys() == ()
        assert repo.search_versions("metadata.x > 1 AND alias = 'p'", order_by="-metadata.x") == []
    assert os.listdir(tmp_path)  # the catalog it opened


def test_postgres_serves_searches_from_indexes(fresh_postgres_url, tmp_path):
    """Equality on a metadata key uses the GIN index (containment), the best run of a
    sweep the group index, the default newest-first page the (created_at, id) index."""
    from cairn.catalog.search import RUNS, VERSIONS, Search

    with Repository.open(catalog=fresh_postgres_url, home=str(tmp_path)) as repo:

        def plan(target: Any, query: str, order_by: str | None = None) -> str:
            search = Search.compile(target, "postgresql", query, order_by=order_by)
            stmt = search.select(None).order_by(*search.order).limit(10)
            compiled = stmt.compile(dialect=repo.catalog.engine.dialect)
            with repo.catalog.read() as conn:
                conn.exec_driver_sql("SET LOCAL enable_seqscan = off")  # a tiny table
                rows = conn.exec_driver_sql(f"EXPLAIN {compiled}", compiled.params)
                return "\n".join(r[0] for r in rows)

        assert "ix_versions_metadata" in plan(VERSIONS, "metadata.framework = 'jax'")
        assert "ix_runs_summary" in plan(RUNS, "summary.done = true")
        assert "ix_runs_group" in plan(RUNS, "group = 'sweep-1'", "-summary.val_acc")
        assert "ix_versions_created" in plan(VERSIONS, "")
