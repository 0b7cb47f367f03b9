"""cairn errors as Airflow task failures: the core's one-line message, no deep traceback."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from airflow.sdk.exceptions import AirflowFailException

from cairn import CairnError


@contextmanager
def task_errors() -> Iterator[None]:
    """Fail the task with the message of any `CairnError` raised inside.

    cairn raises on purpose about the data (a bad ref, a missing file, a finished version),
    which a retry cannot fix: the task fails without spending its retries. Anything else
    (a network error, a crash in user code) propagates and is retried as usual.
    """
    try:
        yield
    except CairnError as e:
        raise AirflowFailException(f"{type(e).__name__}: {e}") from None
