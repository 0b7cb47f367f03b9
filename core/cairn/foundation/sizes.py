"""Sizes and counts as people read them: one formatter for everything cairn prints.

The CLI, reports (`gc`, `verify`, `recover`, cache cleanup), the progress bar and the
adapters' logs all say "3.2 MiB", never "3.4 MB" in one place and "3355443 bytes" in
another, and "1 object", never "1 objects".
"""

from __future__ import annotations

_UNITS = ("KiB", "MiB", "GiB", "TiB", "PiB", "EiB")


def format_size(n: int | float) -> str:
    """1 -> '1 byte', 1000 -> '1000 bytes', 1536 -> '1.5 KiB', 3 << 30 -> '3.0 GiB'."""
    if n < 1024:
        count = int(n)
        return "1 byte" if count == 1 else f"{count} bytes"
    size = float(n)
    for unit in _UNITS:
        size /= 1024
        if size < 1024 or unit == _UNITS[-1]:
            return f"{size:.1f} {unit}"
    raise AssertionError("unreachable")


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """'1 object', '2 objects'; `plural` for nouns that do not just add an s ('aliases')."""
    return f"{n} {noun}" if n == 1 else f"{n} {plural or noun + 's'}"


__all__ = ["counted", "format_size"]
