"""Airflow 3 under test: a private AIRFLOW_HOME with a migrated SQLite DB, once per session.

Airflow reads its configuration when first imported, so this module sets it before any
test module imports airflow. `dag.test()` re-parses the DAGs folder and only runs DAGs it
finds there: the example DAGs (dags_examples/airflow_*.py) and the test DAGs (dags/ here)
are copied into one session folder and loaded from it. Each test gets an empty cairn
repository of its own (CAIRN_HOME in tmp_path).

OpenLineage is configured for the DAGs that ask for it (`enable_lineage`, selective
enable): its file transport appends every event to OPENLINEAGE_EVENTS, one JSON per line;
the events are emitted from a thread of the task process (not a fork, which pytest's
threads make unsafe), with the same extraction.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SESSION = Path(tempfile.mkdtemp(prefix="cairn-airflow-tests-"))
DAGS_FOLDER = SESSION / "dags"
OPENLINEAGE_EVENTS = SESSION / "openlineage.jsonl"

os.environ.update(
    AIRFLOW_HOME=str(SESSION / "airflow"),
    AIRFLOW__CORE__DAGS_FOLDER=str(DAGS_FOLDER),
    AIRFLOW__CORE__LOAD_EXAMPLES="False",
    # as a deployment that runs them would: asset events then queue the consumer DAGs
    AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="False",
    AIRFLOW__CORE__UNIT_TEST_MODE="False",
    CAIRN_EXAMPLE_DATA=str(SESSION / "example-data"),
    AIRFLOW__OPENLINEAGE__TRANSPORT=json.dumps(
        {"type": "file", "log_file_path": str(OPENLINEAGE_EVENTS), "append": True}
    ),
    AIRFLOW__OPENLINEAGE__SELECTIVE_ENABLE="True",
    AIRFLOW__OPENLINEAGE__EXECUTE_IN_THREAD="True",
    AIRFLOW__OPENLINEAGE__EXECUTION_TIMEOUT="120",
    AIRFLOW__OPENLINEAGE__NAMESPACE="cairn-tests",
)
for name in ("CAIRN_CATALOG", "CAIRN_STORE", "CAIRN_STORAGE_OPTIONS", "AIRFLOW_CONN_CAIRN_DEFAULT"):
    os.environ.pop(name, None)

DAGS_FOLDER.mkdir(parents=True)
EXAMPLE_HELPERS = ["tiny_model.py"]  # modules the example DAGs import from their folder
for source in [
    *ROOT.glob("dags_examples/airflow_*.py"),
    *(ROOT / "dags_examples" / name for name in EXAMPLE_HELPERS),
    *Path(__file__).parent.glob("dags/*.py"),
]:
    shutil.copy(source, DAGS_FOLDER / source.name)


@pytest.fixture(scope="session", autouse=True)
def airflow_db() -> Iterator[None]:
    """`airflow db migrate` once: without it dag.test() finds no tables."""
    done = subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    yield
    shutil.rmtree(SESSION, ignore_errors=True)


@pytest.fixture(autouse=True)
def cairn_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty embedded-default repository for each test."""
    home = tmp_path / "cairn"
    monkeypatch.setenv("CAIRN_HOME", str(home))
    monkeypatch.setenv("CAIRN_TEST_DATA", str(tmp_path / "data"))
    return home


@pytest.fixture
def repo(cairn_home: Path) -> Iterator[Any]:
    from cairn import Repository

    with Repository.open() as r:
        yield r
