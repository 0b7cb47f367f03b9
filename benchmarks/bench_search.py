"""Search in the catalog against loading the rows and filtering in Python.

    python benchmarks/bench_search.py                          # 10k and 100k versions
    python benchmarks/bench_search.py --sizes 10000 --only sqlite
    python benchmarks/bench_search.py --postgres postgresql+psycopg://u@host/db --json out.json

For each catalog (SQLite, and PostgreSQL: a throwaway server started like the tests do,
tests/servers.py, unless --postgres names one) and each size N, a fresh catalog gets N
versions in 1,000 collections of 10 projects, with metadata of mixed types, and N/10 runs
in sweeps of 10 with config and summaries, written straight into the tables (logging 100k
versions through the API would measure logging). Then each query runs through the API
(`search_versions`, `search_runs`, `count_versions`) and through two Python baselines:

- load+filter: one SQL query loads every version (or run) row with its aliases, Python
  filters and sorts them with the same semantics: the least a client-side search costs;
- per collection (versions only): what a user does without search, `repo.collections()`
  then `repo.versions(...)` for each, then the same filter in Python.

Each baseline's answer is checked against the search's. Times are medians of --repeat runs
(the per-collection baseline runs once). Prints markdown tables, and how the times grow
from the smallest size to the largest. `--jsonb-variants` also times the PostgreSQL
queries with the GIN indexes dropped and with `metadata` as `json` cast per row (the
decision revision 0005 made: see benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
import servers  # noqa: E402  (tests/servers.py: the PostgreSQL server the test suite uses)
from sqlalchemy import cast, insert, select, text  # noqa: E402
from sqlalchemy.dialects.postgresql import JSONB  # noqa: E402

from cairn import Repository  # noqa: E402
from cairn.catalog import search as sql  # noqa: E402
from cairn.catalog.records import version_query  # noqa: E402
from cairn.catalog.schema import aliases, collections, projects, runs, versions  # noqa: E402

PROJECTS, COLLECTIONS = 10, 1000
FRAMEWORKS = ("torch", "jax", "sklearn", "xgboost")


# -- data ---------------------------------------------------------------------------------


def fill(repo: Repository, n_versions: int, seed: int = 0) -> None:
    """N versions and N/10 runs, straight into the catalog's tables."""
    rng = random.Random(seed)
    start = datetime(2024, 1, 1, tzinfo=timezone.utc)
    with repo.catalog.write() as conn:
        conn.execute(
            insert(projects),
            [
                {"id": p + 1, "name": f"p{p}", "visibility": "public", "created_at": start}
                for p in range(PROJECTS)
            ],
        )
        conn.execute(
            insert(collections),
            [
                {
                    "id": c + 1,
                    "project_id": c % PROJECTS + 1,
                    "name": f"c{c}",
                    "type": "model" if c % 2 else "dataset",
                    "next_index": 0,
                    "created_at": start,
                }
                for c in range(COLLECTIONS)
            ],
        )
        n_runs = max(n_versions // 10, 10)
        run_rows = []
        for r in range(n_runs):
            acc = round(rng.random(), 4)
            run_rows.append(
                {
                    "id": f"run-{r:07d}",
                    "project_id": r % PROJECTS + 1,
                    "name": f"train-{r % 10}",
                    "job_type": "train",
                    "group_name": f"sweep-{r // 10}",
                    "kind": "manual",
                    "attributes": {},
                    "config": {"lr": rng.choice([0.1, 0.01, 0.001]), "seed": r},
                    "summary": {"val_acc": acc, "val_loss": round(1 - acc, 4)}
                    if r % 20
                    else {},  # some runs crashed before reporting
                    "state": "finished",
                    "created_at": start + timedelta(seconds=r),
                }
            )
        for batch in _batches(run_rows):
            conn.execute(insert(runs), batch)
        version_rows, alias_rows, counts = [], [], [0] * COLLECTIONS
        for v in range(n_versions):
            c = rng.randrange(COLLECTIONS)
            meta: dict[str, Any] = {
                "rows": rng.randrange(10_000_000),
                # one version in a thousand: what an index is for
                "framework": "mxnet" if rng.random() < 0.001 else rng.choice(FRAMEWORKS),
                "nested": {"depth": rng.randrange(10)},
            }
            roll = rng.random()
            if roll < 0.8:
                meta["accuracy"] = round(rng.random(), 4)
            elif roll < 0.85:
                meta["accuracy"] = f"{rng.random():.4f}"  # a string: never a number match
            version_rows.append(
                {
                    "id": v + 1,
                    "collection_id": c + 1,
                    "idx": counts[c],
                    "state": "COMMITTED",
                    "digest": f"{v:064x}",
                    "description": None,
                    "metadata": meta,
                    "size": rng.randrange(1 << 30),
                    "file_count": 1,
                    "run_id": f"run-{v % n_runs:07d}",
                    "created_at": start + timedelta(seconds=v),
                    "committed_at": start + timedelta(seconds=v),
                    "namespace": "",
                }
            )
            counts[c] += 1
            if rng.random() < 0.01:
                alias_rows.append(
                    {"collection_id": c + 1, "name": "production", "version_id": v + 1}
                )
        for batch in _batches(version_rows):
            conn.execute(insert(versions), batch)
        production = {a["collection_id"]: a for a in alias_rows}  # one per collection
        latest = {row["collection_id"]: row["id"] for row in version_rows}
        conn.execute(
            insert(aliases),
            [*production.values()]
            + [{"collection_id": c, "name": "latest", "version_id": v} for c, v in latest.items()],
        )
        if conn.dialect.name == "postgresql":
            for table in ("projects", "collections", "versions"):
                conn.execute(
                    text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), 10000000)")
                )
    if repo.catalog.dialect == "postgresql":
        with repo.catalog.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))


def _batches(rows: list[dict[str, Any]], size: int = 5000) -> Iterator[list[dict[str, Any]]]:
    for i in range(0, len(rows), size):
        yield rows[i : i + size]


# -- the queries, and the same in Python ----------------------------------------------------


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _newest(row: Any) -> tuple[Any, int]:
    return (row.created_at, row.id)


@dataclass(frozen=True)
class Case:
    name: str
    kind: str  # "versions" or "runs"
    query: str
    order_by: str | None
    limit: int | None
    keep: Callable[[Any, list[str]], bool]  # row, its aliases -> matches
    sort: Callable[[list[Any]], list[Any]]
    count: bool = False  # time count_*() instead of the search


def _by_doc_desc(doc: str, key: str) -> Callable[[list[Any]], list[Any]]:
    def sort(rows: list[Any]) -> list[Any]:
        newest = sorted(rows, key=_newest, reverse=True)
        nums = [r for r in newest if _number(getattr(r, doc).get(key))]
        rest = [r for r in newest if not _number(getattr(r, doc).get(key))]
        return sorted(nums, key=lambda r: getattr(r, doc)[key], reverse=True) + rest

    return sort


def _by_doc_asc(doc: str, key: str) -> Callable[[list[Any]], list[Any]]:
    def sort(rows: list[Any]) -> list[Any]:
        newest = sorted(rows, key=_newest, reverse=True)
        nums = [r for r in newest if _number(getattr(r, doc).get(key))]
        return sorted(nums, key=lambda r: getattr(r, doc)[key])

    return sort


def _newest_first(rows: list[Any]) -> list[Any]:
    return sorted(rows, key=_newest, reverse=True)


CASES = [
    Case(
        "accuracy > 0.9, models, best 10",
        "versions",
        "metadata.accuracy > 0.9 AND type = 'model'",
        "-metadata.accuracy",
        10,
        lambda r, a: (
            r.type == "model"
            and _number(r.metadata.get("accuracy"))
            and r.metadata["accuracy"] > 0.9
        ),
        _by_doc_desc("metadata", "accuracy"),
    ),
    Case(
        "production and rows > 1M, newest 100",
        "versions",
        "alias = 'production' AND metadata.rows > 1000000",
        None,
        100,
        lambda r, a: "production" in a and r.metadata.get("rows", 0) > 1_000_000,
        _newest_first,
    ),
    Case(
        "framework = 'jax' (equality), newest 50",
        "versions",
        "metadata.framework = 'jax'",
        None,
        50,
        lambda r, a: r.metadata.get("framework") == "jax",
        _newest_first,
    ),
    Case(
        "framework = 'mxnet' (1 in 1,000), all",
        "versions",
        "metadata.framework = 'mxnet'",
        None,
        None,
        lambda r, a: r.metadata.get("framework") == "mxnet",
        _newest_first,
    ),
    Case(
        "sort every version by accuracy, top 10",
        "versions",
        "",
        "-metadata.accuracy",
        10,
        lambda r, a: True,
        _by_doc_desc("metadata", "accuracy"),
    ),
    Case(
        "count accuracy > 0.5",
        "versions",
        "metadata.accuracy > 0.5",
        None,
        None,
        lambda r, a: _number(r.metadata.get("accuracy")) and r.metadata["accuracy"] > 0.5,
        _newest_first,
        count=True,
    ),
    Case(
        "best run of a sweep",
        "runs",
        "group = 'sweep-7'",
        "-summary.val_acc",
        1,
        lambda r, a: r.group_name == "sweep-7",
        _by_doc_desc("summary", "val_acc"),
    ),
    Case(
        "runs with val_loss < 0.05, lowest 10",
        "runs",
        "summary.val_loss < 0.05",
        "summary.val_loss",
        10,
        lambda r, a: _number(r.summary.get("val_loss")) and r.summary["val_loss"] < 0.05,
        _by_doc_asc("summary", "val_loss"),
    ),
]


def api(repo: Repository, case: Case) -> Any:
    if case.count:
        return repo.count_versions(case.query)
    if case.kind == "versions":
        found = repo.search_versions(case.query, order_by=case.order_by, limit=case.limit)
    else:
        found = repo.search_runs(case.query, order_by=case.order_by, limit=case.limit)
    return [x.id for x in found]


def load_and_filter(repo: Repository, case: Case) -> Any:
    """Every row from the catalog in one query, then Python."""
    with repo.catalog.read() as conn:
        if case.kind == "versions":
            rows = list(conn.execute(version_query().where(versions.c.state != "DELETED")))
            tags: dict[int, list[str]] = {}
            for vid, name in conn.execute(select(aliases.c.version_id, aliases.c.name)):
                tags.setdefault(vid, []).append(name)
        else:
            rows = list(conn.execute(select(runs)))
            tags = {}
    return _python(case, rows, tags)


def per_collection(repo: Repository, case: Case) -> Any:
    """Without search: every collection's versions through the API, then Python."""
    found = []
    for c in repo.collections():
        for v in repo.versions(f"{c['project']}/{c['name']}"):
            found.append(_AsRow(v))
    return _python(case, found, {r.id: r.aliases for r in found})


class _AsRow:
    """An ArtifactVersion seen through the attribute names of a catalog row."""

    def __init__(self, v: Any):
        self.id, self.type, self.metadata, self.aliases = v.id, v.type, v.metadata, v.aliases
        self.created_at = v.created_at.replace(tzinfo=None) if v.created_at.tzinfo else v.created_at


def _python(case: Case, rows: list[Any], tags: dict[Any, list[str]]) -> Any:
    kept = [r for r in rows if case.keep(r, tags.get(r.id, []))]
    if case.count:
        return len(kept)
    ordered = case.sort(kept)
    return [r.id for r in ordered[: case.limit]]


# -- measuring ----------------------------------------------------------------------------


@dataclass
class Result:
    catalog: str
    size: int
    case: str
    search_ms: float
    load_ms: float
    per_collection_ms: float | None = None
    variant: str = "jsonb + GIN"

    @property
    def ratio(self) -> float:
        return self.load_ms / self.search_ms

    @property
    def ratio_api(self) -> float | None:
        return self.per_collection_ms / self.search_ms if self.per_collection_ms else None


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    fn()  # warm: the first call pays for connections and compiled statements
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000, out


def bench(
    repo: Repository, catalog: str, size: int, repeat: int, api_baseline: bool
) -> list[Result]:
    results = []
    for case in CASES:
        search_ms, got = timed(lambda case=case: api(repo, case), repeat)
        load_ms, want = timed(lambda case=case: load_and_filter(repo, case), max(1, repeat // 2))
        if got != want:
            raise AssertionError(f"{catalog} {size} {case.name}: search {got} != Python {want}")
        result = Result(catalog, size, case.name, search_ms, load_ms)
        if api_baseline and case.kind == "versions":
            t = time.perf_counter()
            slow = per_collection(repo, case)
            result.per_collection_ms = (time.perf_counter() - t) * 1000
            if slow != got:
                raise AssertionError(f"{catalog} {size} {case.name}: per-collection answer differs")
        results.append(result)
        print(
            f"  {case.name}: search {search_ms:.1f} ms, load+filter {load_ms:.0f} ms "
            f"({result.ratio:.0f}x)",
            flush=True,
        )
    return results


def as_reader(url: str, work: Path, size: int, repeat: int) -> list[Result]:
    """PostgreSQL: the searches as a role that is not the catalog's owner, which pays for
    row-level security on every row it reads (docs/ACCESS.md, "Cost")."""
    from sqlalchemy.engine import make_url

    role = f"bench_reader_{os.getpid()}"
    servers._admin_execute(url, f"DROP ROLE IF EXISTS {role}")
    servers._admin_execute(url, f"CREATE ROLE {role} LOGIN")
    reader_url = make_url(url).set(username=role).render_as_string(hide_password=False)
    out = []
    with Repository.open(catalog=reader_url, home=str(work / role)) as repo:
        for case in CASES:
            ms, _ = timed(lambda case=case: api(repo, case), repeat)
            out.append(Result("postgresql", size, case.name, ms, float("nan"), variant="reader"))
            print(f"  [reader role] {case.name}: {ms:.1f} ms", flush=True)
    return out


def jsonb_variants(repo: Repository, size: int, repeat: int) -> list[Result]:
    """PostgreSQL: the version queries without the GIN index, then on `json` cast per row."""
    out = []
    cases = [c for c in CASES if c.kind == "versions"]

    def run_all(variant: str, target: sql.Target) -> None:
        for case in cases:

            def search(case: Case = case) -> Any:
                s = sql.Search.compile(target, "postgresql", case.query, order_by=case.order_by)
                with repo.catalog.read() as conn:
                    if case.count:
                        return sql.count(conn, s, project=None)
                    return [
                        r.id for r in sql.find(conn, s, project=None, limit=case.limit, offset=0)
                    ]

            ms, _ = timed(search, repeat)
            out.append(Result("postgresql", size, case.name, ms, float("nan"), variant=variant))
            print(f"  [{variant}] {case.name}: {ms:.1f} ms", flush=True)

    with repo.catalog.write() as conn:
        conn.execute(text("DROP INDEX ix_versions_metadata"))
    run_all("jsonb, no GIN", sql.VERSIONS)
    with repo.catalog.write() as conn:
        conn.execute(
            text("ALTER TABLE versions ALTER COLUMN metadata TYPE json USING metadata::json")
        )
    casted = replace(sql.VERSIONS, documents={"metadata": cast(versions.c.metadata, JSONB)})
    with repo.catalog.engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE versions"))
    run_all("json, cast per row", casted)
    return out


# -- reporting ----------------------------------------------------------------------------


def report(results: list[Result], sizes: list[int]) -> str:
    lines = []
    main = [r for r in results if r.variant == "jsonb + GIN"]
    for catalog in dict.fromkeys(r.catalog for r in main):
        for size in sizes:
            rows = [r for r in main if r.catalog == catalog and r.size == size]
            if not rows:
                continue
            lines += [
                f"\n### {catalog}, {size:,} versions and {max(size // 10, 10):,} runs\n",
                "| query | search | load+filter | ratio | per collection | ratio |",
                "|---|---:|---:|---:|---:|---:|",
            ]
            for r in rows:
                api_ms = f"{r.per_collection_ms:,.0f} ms" if r.per_collection_ms else "-"
                api_ratio = f"{r.ratio_api:,.0f}x" if r.ratio_api else "-"
                lines.append(
                    f"| {r.case} | {r.search_ms:,.1f} ms | {r.load_ms:,.0f} ms | "
                    f"{r.ratio:,.0f}x | {api_ms} | {api_ratio} |"
                )
        small, big = min(sizes), max(sizes)
        if small != big:
            lines += [
                f"\n**{catalog}: growth from {small:,} to {big:,}** (time at {big:,} ÷ time at "
                f"{small:,}; the data grew {big / small:.0f}x)\n",
                "| query | search | load+filter |",
                "|---|---:|---:|",
            ]
            for case in CASES:
                a = _find(main, catalog, small, case.name)
                b = _find(main, catalog, big, case.name)
                if a and b:
                    lines.append(
                        f"| {case.name} | {b.search_ms / a.search_ms:.1f}x | "
                        f"{b.load_ms / a.load_ms:.1f}x |"
                    )
    readers = [r for r in results if r.variant == "reader"]
    if readers:
        size = max(r.size for r in readers)
        lines += [
            f"\n### PostgreSQL as a reader role (row-level security), {size:,} versions\n",
            "| query | owner | reader role |",
            "|---|---:|---:|",
        ]
        for r in readers:
            owner = _find(results, "postgresql", size, r.case)
            lines.append(
                f"| {r.case} | {owner.search_ms if owner else float('nan'):,.1f} ms | "
                f"{r.search_ms:,.1f} ms |"
            )
    variants = [r for r in results if r.variant not in ("jsonb + GIN", "reader")]
    if variants:
        size = max(r.size for r in variants)
        lines += [
            f"\n### PostgreSQL document storage, {size:,} versions (search time)\n",
            "| query | jsonb + GIN (0005) | jsonb, no GIN | json, cast per row |",
            "|---|---:|---:|---:|",
        ]
        for case in [c for c in CASES if c.kind == "versions"]:
            cells = [_find(results, "postgresql", size, case.name, v) for v in
                     ("jsonb + GIN", "jsonb, no GIN", "json, cast per row")]  # fmt: skip
            lines.append(
                f"| {case.name} | "
                + " | ".join(f"{c.search_ms:,.1f} ms" if c else "-" for c in cells)
                + " |"
            )
    return "\n".join(lines)


def _find(
    results: list[Result], catalog: str, size: int, case: str, variant: str = "jsonb + GIN"
) -> Result | None:
    for r in results:
        if (r.catalog, r.size, r.case, r.variant) == (catalog, size, case, variant):
            return r
    return None


@contextlib.contextmanager
def catalogs(
    only: set[str], postgres: str | None, work: Path
) -> Iterator[Callable[[str, int], Any]]:
    """Yields new_catalog(kind, size) -> a URL of an empty catalog."""
    with contextlib.ExitStack() as stack:
        server = None
        if "postgres" in only and not postgres:
            server = stack.enter_context(servers.postgres_server())

        def new(kind: str, size: int) -> str:
            if kind == "sqlite":
                return f"sqlite:///{work}/sqlite-{size}.db"
            base = postgres or f"{server}/postgres"
            return stack.enter_context(servers.fresh_database(base))

        yield new


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000", help="numbers of versions")
    parser.add_argument("--only", default="sqlite,postgres", help="sqlite, postgres or both")
    parser.add_argument("--postgres", help="an existing server's URL (default: start one)")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per query (median)")
    parser.add_argument("--no-per-collection", action="store_true", help="skip that baseline")
    parser.add_argument("--jsonb-variants", action="store_true", help="also time the json cast")
    parser.add_argument(
        "--reader", action="store_true", help="also search as a non-owner role (row-level security)"
    )
    parser.add_argument("--json", help="write the results to this file")
    args = parser.parse_args(argv)
    sizes = sorted(int(s) for s in args.sizes.split(","))
    only = set(args.only.split(","))
    work = Path(tempfile.mkdtemp(prefix="cairn-bench-search-"))
    results: list[Result] = []
    print(f"{platform.node()}: {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}", flush=True)
    with catalogs(only, args.postgres, work) as new_catalog:
        for kind in ("sqlite", "postgres"):
            if kind not in only:
                continue
            for size in sizes:
                url = new_catalog(kind, size)
                name = "postgresql" if kind == "postgres" else "sqlite"
                with Repository.open(catalog=url, home=str(work / f"{kind}-{size}")) as repo:
                    t = time.perf_counter()
                    fill(repo, size)
                    print(f"{name}, {size:,} versions: filled in {time.perf_counter() - t:.1f} s")
                    results += bench(repo, name, size, args.repeat, not args.no_per_collection)
                    if kind == "postgres" and args.reader and size == max(sizes):
                        results += as_reader(url, work, size, args.repeat)
                    if kind == "postgres" and args.jsonb_variants and size == max(sizes):
                        results += jsonb_variants(repo, size, args.repeat)
    table = report(results, sizes)
    print(table)
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(r) for r in results], indent=2))
    slow = [
        r for r in results if r.size == max(sizes) and r.variant == "jsonb + GIN" and r.ratio < 10
    ]
    for r in slow:
        print(f"FAIL: {r.catalog} {r.case}: {r.ratio:.1f}x, target 10x", file=sys.stderr)
    return 1 if slow else 0


if __name__ == "__main__":
    sys.exit(main())
