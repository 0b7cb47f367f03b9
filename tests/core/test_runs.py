"""Run config and metrics, and searching runs: on SQLite and PostgreSQL.

`run.log_summary` merges keys in the catalog, so processes logging different keys of one
run keep each other's; `search_runs` finds the best run of a sweep.
"""

from __future__ import annotations

import json
import math
import multiprocessing as mp
from datetime import datetime, timezone

import pytest

from cairn import CairnError, InvalidQuery, Repository, Run, RunKeys
from cairn.engine.storeconfig import StoreConfig

_ctx = mp.get_context("spawn")


def _log_keys(catalog: str, store: str, home: str, run_id: str, worker: int, rounds: int) -> None:
    with Repository.open(catalog=catalog, store=store, home=home) as repo:
        [run] = repo.search_runs("id = :id", params={"id": run_id})
        for i in range(rounds):
            run.log_summary({f"w{worker}": i, "shared": worker})


def test_config_and_summary_are_json_objects_read_back_by_anyone(repo, catalog_url, home):
    with repo.run(project="p", name="train", config={"lr": 0.1, "layers": [64, 64]}) as run:
        assert run.config == {"lr": 0.1, "layers": [64, 64]} and run.summary == {}
        assert run.log_summary({"val_loss": 0.5, "epoch": 1}) == {"val_loss": 0.5, "epoch": 1}
        run.log_summary({"val_loss": 0.21, "val_acc": 0.93})  # later calls update keys
        assert run.summary == {"val_loss": 0.21, "epoch": 1, "val_acc": 0.93}
    with Repository.open(catalog=catalog_url, home=str(home)) as other:
        [again] = other.search_runs("name = 'train'")
        assert again.summary == {"val_loss": 0.21, "epoch": 1, "val_acc": 0.93}
        assert again.config == {"lr": 0.1, "layers": [64, 64]}
        assert again.state == "finished" and again.finished_at is not None
        again.log_summary({"test_acc": 0.9})
    assert run.summary["epoch"] == 1 and "test_acc" not in run.summary
    assert run.refresh().summary["test_acc"] == 0.9
    # the copies handed out do not write back
    run.summary["epoch"] = 99
    run.config["lr"] = 1
    assert run.refresh().summary["epoch"] == 1 and run.config["lr"] == 0.1


def test_a_resumed_run_keeps_its_summary_and_updates_its_config(repo):
    run = repo.run(project="p", run_id="task-1", config={"lr": 0.1, "seed": 1})
    run.log_summary({"loss": 1.0})
    run.finish("failed")
    retry = repo.run(project="p", run_id="task-1", config={"seed": 2})
    assert retry.state == "running"
    assert retry.config == {"lr": 0.1, "seed": 2} and retry.summary == {"loss": 1.0}
    assert repo.run(project="p", run_id="task-1").config == {"lr": 0.1, "seed": 2}


def test_values_json_cannot_hold_are_stored_in_a_form_it_can(repo):
    np = pytest.importorskip("numpy")
    with repo.run(project="p") as run:
        got = run.log_summary(
            {
                "loss": float("nan"),
                "best": math.inf,
                "worst": -math.inf,
                "acc": np.float32(0.5),
                "steps": np.int64(7),
                "curve": np.array([1.0, 2.0]),
                "at": datetime(2024, 5, 1, tzinfo=timezone.utc),
                "pair": (1, 2),
            }
        )
    assert got == {
        "loss": "NaN",
        "best": "Infinity",
        "worst": "-Infinity",
        "acc": 0.5,
        "steps": 7,
        "curve": [1.0, 2.0],
        "at": "2024-05-01T00:00:00+00:00",
        "pair": [1, 2],
    }
    assert run.refresh().summary == got
    # a NaN is not a number to a search: it matches neither side of a comparison
    assert repo.search_runs("summary.loss > 0 OR summary.loss <= 0") == []
    assert repo.search_runs("summary.loss = 'NaN'") == [run]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({1: 0.5}, "summary keys must be strings"),
        ({"model": object()}, "summary must hold JSON values"),
        ([("a", 1)], "summary must be a dict"),
    ],
)
def test_bad_summaries_are_refused_and_change_nothing(repo, values, message):
    with repo.run(project="p") as run:
        run.log_summary({"kept": 1})
        with pytest.raises(CairnError, match=message):
            run.log_summary(values)
    assert run.refresh().summary == {"kept": 1}
    with pytest.raises(CairnError, match="config must be a dict"):
        repo.run(project="p", config=["lr"])  # type: ignore[arg-type]


def test_processes_logging_different_keys_keep_each_others(repo, catalog_url, home, tmp_path):
    run = repo.run(project="p", name="shared")
    workers, rounds = 4, 15
    args = [
        (catalog_url, repo.store.url, str(tmp_path / f"w{i}"), run.id, i, rounds)
        for i in range(workers)
    ]
    with _ctx.Pool(workers) as pool:
        pool.starmap(_log_keys, args)
    summary = run.refresh().summary
    assert {k: summary[k] for k in summary if k != "shared"} == {
        f"w{i}": rounds - 1 for i in range(workers)
    }
    assert summary["shared"] in range(workers)


# -- searching runs --------------------------------------------------------------------------


def _sweep(repo: Repository) -> dict[str, Run]:
    """Two sweeps of three runs and one manual run, in two projects."""
    runs: dict[str, Run] = {}
    results = {"a": (0.1, 0.91, 0.3), "b": (0.01, 0.95, 0.2), "c": (1.0, 0.5, 0.9)}
    for group in ("sweep-1", "sweep-2"):
        for name, (lr, acc, loss) in results.items():
            with repo.run(
                project="ml", name=name, job_type="train", group=group, config={"lr": lr}
            ) as run:
                if not (group == "sweep-2" and name == "c"):  # that one crashed early
                    run.log_summary({"val_acc": acc, "val_loss": loss, "nested": {"f1": acc}})
            runs[f"{group}/{name}"] = run
    with repo.run(project="other", name="manual", kind="cli") as run:
        run.log_summary({"val_acc": "high"})
    runs["manual"] = run
    failed = repo.run(project="ml", name="broken", job_type="train", group="sweep-2")
    failed.finish("failed")
    runs["broken"] = failed
    return runs


def _names(runs: list[Run]) -> list[str]:
    return [f"{r.group}/{r.name}" if r.group else str(r.name) for r in runs]


def test_the_best_run_of_a_sweep(repo):
    _sweep(repo)
    [best] = repo.search_runs(
        "group = :g", params={"g": "sweep-1"}, order_by="-summary.val_acc", limit=1
    )
    assert (best.name, best.summary["val_acc"], best.config) == ("b", 0.95, {"lr": 0.01})
    assert best.project == "ml" and best.job_type == "train"
    ranked = repo.search_runs("group = 'sweep-2'", order_by="summary.val_loss")
    # missing summaries sort last, newest first
    assert _names(ranked) == ["sweep-2/b", "sweep-2/a", "sweep-2/broken", "sweep-2/c"]


def test_run_filters(repo):
    runs = _sweep(repo)
    cases = {
        "summary.val_acc > 0.9": ["sweep-2/b", "sweep-2/a", "sweep-1/b", "sweep-1/a"],
        "summary.val_acc > 0.9 AND group = 'sweep-1'": ["sweep-1/b", "sweep-1/a"],
        "summary.val_acc = null": ["sweep-2/broken", "sweep-2/c"],
        "summary.val_acc > 'a'": ["manual"],
        "summary.nested.f1 < 0.6": ["sweep-1/c"],
        "config.lr IN (0.1, 1)": ["sweep-2/c", "sweep-2/a", "sweep-1/c", "sweep-1/a"],
        "config.lr = 1.0 AND NOT summary.val_acc != null": ["sweep-2/c"],
        "state = 'failed'": ["sweep-2/broken"],
        "state = 'finished' AND kind = 'cli'": ["manual"],
        "project = 'other'": ["manual"],
        "group = null": ["manual"],
        "group LIKE 'sweep-_' AND name = 'a'": ["sweep-2/a", "sweep-1/a"],
        "job_type != 'train'": [],
        "finished_at = null": [],
        "created_at > '2000-01-01' AND finished_at > '2000-01-01'": _names(repo.search_runs()),
        "id = :id": ["sweep-1/c"],
    }
    for query, expected in cases.items():
        params = {"id": runs["sweep-1/c"].id} if ":id" in query else None
        assert _names(repo.search_runs(query, params=params)) == expected, query
        assert repo.count_runs(query, params=params) == len(expected), query
    assert len(repo.search_runs()) == repo.count_runs() == 8
    assert _names(repo.search_runs(project="other")) == ["manual"]
    assert repo.count_runs(project="ml") == 7


def test_run_order_and_pages(repo):
    _sweep(repo)
    by_acc = _names(repo.search_runs(order_by="-summary.val_acc"))
    assert by_acc[:4] == ["sweep-2/b", "sweep-1/b", "sweep-2/a", "sweep-1/a"]
    assert by_acc[4:] == ["sweep-1/c", "manual", "sweep-2/broken", "sweep-2/c"]
    pages = [
        _names(repo.search_runs(order_by="-summary.val_acc", limit=3, offset=o)) for o in (0, 3, 6)
    ]
    assert sum(pages, []) == by_acc
    assert _names(repo.search_runs("name = 'a'", order_by="group")) == ["sweep-1/a", "sweep-2/a"]
    assert _names(repo.search_runs("name = 'a'", order_by="-config.lr")) == [
        "sweep-2/a",
        "sweep-1/a",
    ]


def test_run_keys_are_the_columns_of_a_table_of_runs(repo):
    _sweep(repo)
    assert repo.run_keys() == RunKeys(config=("lr",), summary=("nested.f1", "val_acc", "val_loss"))
    assert repo.run_keys(project="other") == RunKeys(config=(), summary=("val_acc",))
    assert repo.run_keys("state = 'failed'") == RunKeys(config=(), summary=())


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("metadata.acc > 1", "unknown field 'metadata.acc': runs have created_at, finished_at"),
        ("alias = 'x'", "unknown field 'alias'"),
        ("summary = 1", "summary is a JSON object"),
        ("group > 5", "group is a string"),
    ],
)
def test_bad_run_queries(repo, query, reason):
    with pytest.raises(InvalidQuery) as info:
        repo.search_runs(query)
    assert reason in str(info.value)


def _read_policy(engine, table: str) -> str:
    from sqlalchemy import text

    with engine.connect() as conn:
        return str(
            conn.execute(
                text(
                    "SELECT qual FROM pg_policies "
                    "WHERE tablename = :t AND policyname = 'cairn_read'"
                ),
                {"t": table},
            ).scalar_one()
        )


# -- revision 0005 ----------------------------------------------------------------------------


def test_migration_0005_adds_run_documents_and_downgrades_cleanly(catalog_url, home):
    from sqlalchemy import create_engine, inspect, text
    from sqlalchemy.pool import NullPool

    from .conftest import migrate_to, write

    home.mkdir(parents=True, exist_ok=True)
    engine = create_engine(catalog_url, poolclass=NullPool)
    postgres = engine.dialect.name == "postgresql"

    def columns(table: str) -> dict[str, str]:
        return {c["name"]: str(c["type"]) for c in inspect(engine).get_columns(table)}

    def indexes(table: str) -> set[str]:
        return {i["name"] for i in inspect(engine).get_indexes(table)}

    migrate_to(catalog_url, "0004")
    now = datetime.now(timezone.utc)
    with engine.begin() as conn:  # a catalog written by cairn at revision 0004
        pid = conn.execute(
            text("INSERT INTO projects (name, visibility, created_at) VALUES ('p', 'public', :t)"
                 " RETURNING id"), {"t": now}
        ).scalar_one()  # fmt: skip
        cid = conn.execute(
            text("INSERT INTO collections (project_id, name, type, next_index, created_at) "
                 "VALUES (:p, 'm', 'model', 1, :t) RETURNING id"), {"p": pid, "t": now}
        ).scalar_one()  # fmt: skip
        conn.execute(
            text("INSERT INTO versions (collection_id, idx, state, digest, metadata, size, "
                 "file_count, created_at, namespace) VALUES (:c, 0, 'COMMITTED', :d, "
                 "'{\"acc\": 0.9, \"tag\": \"x\"}', 0, 0, :t, '')"),
            {"c": cid, "d": "0" * 64, "t": now},
        )  # fmt: skip
        conn.execute(
            text("INSERT INTO runs (id, project_id, kind, attributes, state, created_at) "
                 "VALUES ('r1', :p, 'manual', '{\"host\": \"h\"}', 'finished', :t)"),
            {"p": pid, "t": now},
        )  # fmt: skip
    assert "summary" not in columns("runs")

    migrate_to(catalog_url, "0005")
    assert {"config", "summary"} <= set(columns("runs"))
    assert {"ix_versions_created"} <= indexes("versions")
    assert {"ix_runs_created", "ix_runs_group"} <= indexes("runs")
    if postgres:
        assert columns("versions")["metadata"] == "JSONB"
        assert columns("runs")["attributes"] == columns("runs")["summary"] == "JSONB"
        assert {"ix_versions_metadata"} <= indexes("versions")
        assert {"ix_runs_config", "ix_runs_summary"} <= indexes("runs")
        with engine.connect() as conn:  # row-level security is still on, and forced
            rls = conn.execute(
                text("SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class "
                     "WHERE relname IN ('runs', 'versions')")
            ).all()  # fmt: skip
            policies = conn.execute(
                text("SELECT count(*) FROM pg_policies WHERE tablename IN ('runs', 'versions')")
            ).scalar()
        assert sorted(rls) == [("runs", True, True), ("versions", True, True)]
        assert policies == 8
        assert "cairn_right(p.id" in _read_policy(engine, "versions")  # once per statement
    # its store, as the cairn of 0004 left it: config.json of store format 1 (no id)
    write(home / "store" / "config.json", StoreConfig().to_bytes())
    with Repository.open(catalog=catalog_url, home=str(home)) as repo:
        [v] = repo.search_versions("metadata.acc > 0.5 AND metadata.tag = 'x'")
        assert v.metadata == {"acc": 0.9, "tag": "x"}
        [run] = repo.search_runs("attributes.host = 'h'")
        assert (run.config, run.summary) == ({}, {})
        run.log_summary({"loss": 0.1})

    migrate_to(catalog_url, "0004", down=True)
    assert "summary" not in columns("runs") and "config" not in columns("runs")
    assert "ix_versions_created" not in indexes("versions")
    if postgres:
        assert columns("versions")["metadata"] == "JSON"
        assert "cairn_collection_right(collection_id" in _read_policy(engine, "versions")
    with engine.connect() as conn:
        meta = conn.execute(text("SELECT metadata FROM versions")).scalar_one()
    assert (meta if isinstance(meta, dict) else json.loads(meta)) == {"acc": 0.9, "tag": "x"}
    engine.dispose()
    # opened again, cairn upgrades it and the summary starts empty
    with Repository.open(catalog=catalog_url, home=str(home)) as repo:
        [run] = repo.search_runs()
        assert run.summary == {} and repo.count_versions("metadata.acc = 0.9") == 1
