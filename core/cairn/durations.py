"""Durations as people type them: `90s`, `15m`, `1h`, `2d`, `1w`, or plain seconds."""

from __future__ import annotations

import re
from datetime import timedelta

from .errors import CairnError

_DURATION = re.compile(r"^(\d+(?:\.\d*)?|\.\d+)\s*([smhdw]?)$", re.IGNORECASE)
_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> timedelta:
    """'1h' -> one hour, '30m', '2d', '90s', '0' -> zero; CairnError for anything else."""
    m = _DURATION.match(text.strip())
    if not m:
        raise CairnError(
            f"invalid duration {text!r}: use a number and a unit, e.g. 90s, 30m, 1h, 2d or 1w"
        )
    number, unit = m.groups()
    return timedelta(seconds=float(number) * _SECONDS[unit.lower()])


def format_duration(seconds: float) -> str:
    """3600 -> '1h', 90 -> '90s', 5400 -> '90m': the largest unit that divides it."""
    for unit in ("w", "d", "h", "m"):
        if seconds and seconds % _SECONDS[unit] == 0:
            return f"{int(seconds // _SECONDS[unit])}{unit}"
    return f"{seconds:g}s"


__all__ = ["format_duration", "parse_duration"]
