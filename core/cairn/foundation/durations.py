"""Durations as people write them (retention policies, `gc --grace`): `30d`, `12h`, `2w`, `90m`.

One number and one unit, nothing else: `1d12h` or `1.5d` are refused rather than guessed
at, so a policy reads back exactly as it was written (`format_duration` picks the largest
unit that divides the duration).
"""

from __future__ import annotations

import re
from datetime import timedelta

from .errors import InvalidPolicy

UNITS = {"w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1}
_DURATION = re.compile(r"^([0-9]+)([a-zA-Z]*)$")
#: a century: anything longer is a typo, and keeps datetime arithmetic in range
_LONGEST = 100 * 365 * 86400


def parse_duration(value: str | timedelta, *, what: str = "duration") -> timedelta:
    """`'30d'` -> 30 days; a `timedelta` passes through. Negative values, fractions,
    unknown units and compound forms are an `InvalidPolicy` error naming `what`."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
        if seconds < 0 or seconds != int(seconds) or seconds > _LONGEST:
            raise InvalidPolicy(
                f"invalid {what} {value}: use whole seconds, from 0 up to 100 years"
            )
        return value
    text = value.strip() if isinstance(value, str) else ""
    m = _DURATION.match(text)
    if not m:
        hint = "a negative duration makes no sense; " if text.startswith("-") else ""
        raise InvalidPolicy(
            f"invalid {what} {value!r}: {hint}use a whole number and a unit, e.g. 30d, "
            "12h, 2w (units: w, d, h, m, s)"
        )
    number, unit = m.groups()
    if not unit and int(number) == 0:  # zero is zero in every unit
        return timedelta(0)
    if unit.lower() not in UNITS:
        raise _unit_error(what, value, number, unit)
    seconds = int(number) * UNITS[unit.lower()]
    if seconds > _LONGEST:
        raise InvalidPolicy(f"invalid {what} {value!r}: longer than 100 years")
    return timedelta(seconds=seconds)


def _unit_error(what: str, value: str, number: str, unit: str) -> InvalidPolicy:
    if not unit:
        return InvalidPolicy(f"invalid {what} {value!r}: give a unit, e.g. {number}d or {number}h")
    return InvalidPolicy(
        f"invalid {what} {value!r}: unknown unit {unit!r}; use w, d, h, m or s (e.g. 30d)"
    )


def format_duration(value: timedelta) -> str:
    """30 days -> `'30d'`, 14 days -> `'2w'`, 90 minutes -> `'90m'`, 0 -> `'0s'`."""
    seconds = int(value.total_seconds())
    for unit, size in UNITS.items():
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


__all__ = ["UNITS", "format_duration", "parse_duration"]
