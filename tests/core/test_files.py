"""Local file helpers."""

import sqlite3
import threading
import time

import pytest

from cairn.foundation.files import use_wal


def test_use_wal_waits_for_a_database_another_connection_holds(tmp_path):
    path = str(tmp_path / "x.db")
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")
    db = sqlite3.connect(path, timeout=0.01)
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        db.execute("PRAGMA journal_mode=WAL")  # what a plain switch does meanwhile

    threading.Timer(0.3, lambda: holder.execute("COMMIT")).start()
    started = time.monotonic()
    use_wal(db)

    assert time.monotonic() - started >= 0.2
    assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
