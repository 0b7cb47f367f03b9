"""One Prefect test server per session (`prefect_test_harness`), a fresh cairn home per test.

Prefect reads its settings when first imported: PREFECT_HOME and analytics are set above
every import of prefect. Run with the Prefect virtualenv: `.venv-prefect/bin/pytest tests/prefect`.
"""

import atexit
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

_PREFECT_HOME = tempfile.mkdtemp(prefix="cairn-prefect-home-")
atexit.register(shutil.rmtree, _PREFECT_HOME, True)
os.environ["PREFECT_HOME"] = _PREFECT_HOME
# telemetry writes to the server database from a thread: "database is locked" tracebacks
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ.pop("PREFECT_API_URL", None)  # the harness provides the server
os.environ.pop("PREFECT_PROFILES_PATH", None)

import pytest  # noqa: E402
from prefect.settings import PREFECT_API_URL  # noqa: E402
from prefect.testing.utilities import prefect_test_harness  # noqa: E402

from cairn import Repository  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "dags_examples"
# the example flows import as modules (and process-pool workers inherit sys.path)
sys.path.insert(0, str(EXAMPLES))

_CAIRN_VARS = (
    "CAIRN_CATALOG",
    "CAIRN_STORE",
    "CAIRN_STORAGE_OPTIONS",
    "CAIRN_PROJECT",
    "CAIRN_CACHE_DIR",
)


@pytest.fixture(scope="session", autouse=True)
def prefect_server() -> Iterator[str]:
    """A Prefect API server for the whole session; yields its URL."""
    with prefect_test_harness(server_startup_timeout=90):
        yield PREFECT_API_URL.value()


@pytest.fixture(autouse=True)
def cairn_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own embedded default repository (SQLite + local store)."""
    home = tmp_path / "cairn-home"
    monkeypatch.setenv("CAIRN_HOME", str(home))
    for name in _CAIRN_VARS:
        monkeypatch.delenv(name, raising=False)
    return home


@pytest.fixture
def repo(cairn_home: Path) -> Iterator[Repository]:
    """The embedded default repository the tasks write to."""
    with Repository.open() as r:
        yield r


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    d.mkdir()
    return d
