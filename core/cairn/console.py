"""Terminal output for the CLI: a rich progress bar and plain-or-rich tables.

The engine reports bytes through the `Progress` protocol (progress.py); `RichProgress`
draws them as a bar with bytes, rate and ETA. The CLI only installs it when stderr is a
terminal, so piped output stays quiet.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import IO

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from .foundation.sizes import format_size


class RichProgress:
    """A `cairn.progress.Progress` drawn with rich: one bar per phase, cleared when done.

    `advance` may be called from worker threads; rich's own lock makes that safe, ours
    only guards the start/finish bookkeeping.
    """

    def __init__(self, console: Console | None = None):
        self.console = console or Console(stderr=True)
        self._bar: Progress | None = None
        self._task: TaskID | None = None
        self._lock = threading.Lock()

    def start(self, description: str, total: int) -> None:
        self.finish()
        if total <= 0:
            return  # nothing to transfer (all cached or already stored): draw nothing
        bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            _Bytes(),
            _Rate(),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
        )
        with self._lock:
            self._bar = bar
            self._task = bar.add_task(description, total=total)
            bar.start()

    def advance(self, nbytes: int) -> None:
        bar, task = self._bar, self._task
        if bar is not None and task is not None:
            bar.advance(task, nbytes)

    def finish(self) -> None:
        with self._lock:
            bar, self._bar, self._task = self._bar, None, None
        if bar is not None:
            bar.stop()


class _Bytes(ProgressColumn):
    """'1.5/4.0 GiB': bytes done and to do, as every size cairn prints."""

    def render(self, task: Task) -> Text:
        total = format_size(task.total or 0)
        return Text(f"{format_size(task.completed)}/{total}", style="progress.download")


class _Rate(ProgressColumn):
    """'85.3 MiB/s'."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        shown = "?" if speed is None else f"{format_size(speed)}/s"
        return Text(shown, style="progress.data.speed")


def human_size(n: int) -> str:
    """1234567 -> '1.2 MiB': cairn.sizes.format_size, the one formatter for sizes."""
    return format_size(n)


def when(moment: datetime | None) -> str:
    """A timestamp as 'YYYY-MM-DD HH:MM:SS' UTC (the catalog stores UTC)."""
    if moment is None:
        return "-"
    return utc(moment).strftime("%Y-%m-%d %H:%M:%S")


def utc(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; every catalog timestamp is UTC."""
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment


def print_table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    file: IO[str] | None = None,
    header: bool = True,
) -> None:
    """A rich table on a terminal; plain aligned columns (never truncated) when piped.
    Without `header`, the rows go on from a table printed before (a page at a time)."""
    out = file or sys.stdout
    if out.isatty():
        table = Table(*headers, box=None, header_style="bold", pad_edge=False, show_header=header)
        for row in rows:
            table.add_row(*row)
        Console(file=out).print(table)
        return
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows, strict=False)]
    for row in [headers, *rows] if header else rows:
        cells = [str(c).ljust(w) for c, w in zip(row, widths, strict=False)]
        out.write("  ".join(cells).rstrip() + "\n")


class _WarningLine(logging.Formatter):
    """A logged warning as one line (`cairn: warning: ...: RuntimeError: why`), the
    traceback left out: what went wrong in a listener or plugin, without the noise."""

    def format(self, record: logging.LogRecord) -> str:
        line = record.getMessage()
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None:
            line += f" ({type(exc).__name__}: {exc})"
        return "cairn: warning: " + " ".join(line.split())


def log_warnings(*, debug: bool = False) -> None:
    """Print cairn's logged warnings and errors (a failing event listener or plugin) on
    stderr: one line each, or with their traceback when `debug`."""
    logger = logging.getLogger("cairn")
    if logger.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(logging.WARNING)
    fmt = "cairn: %(levelname)s: %(message)s"
    handler.setFormatter(logging.Formatter(fmt) if debug else _WarningLine())
    logger.addHandler(handler)
