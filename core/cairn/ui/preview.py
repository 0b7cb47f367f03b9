"""Previews of one file: the head of a text, JSON pretty-printed, the first rows of a CSV or
Parquet table, an image. Reads are the API's verified streams (`v.open`); a preview reads
at most a bounded head of the file, and never a large or binary file whole.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from ..foundation.errors import CairnError
from ..foundation.manifest import Entry
from ..listing import cell
from ..version import ArtifactVersion
from .views import Doc

TEXT_HEAD = 256 * 1024  # bytes of a text file shown
JSON_WHOLE = 1024 * 1024  # JSON up to this size is parsed and pretty-printed
IMAGE_MAX = 20 * 1024 * 1024
ROW_GROUP_MAX = 64 * 1024 * 1024  # a Parquet preview reads the first row group
TABLE_ROWS = 50
TABLE_COLUMNS = 60
SNIFF = 8192

#: images a browser shows, by extension, with the type they are served as
IMAGE_TYPES = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "gif": "image/gif",
    "webp": "image/webp",
    "bmp": "image/bmp",
    "ico": "image/x-icon",
    "avif": "image/avif",
    "svg": "image/svg+xml",
}
DELIMITERS = {"csv": ",", "tsv": "\t"}


def extension(path: str) -> str:
    name = path.rsplit("/", 1)[-1]
    return name.rsplit(".", 1)[-1].lower() if "." in name else ""


def preview(v: ArtifactVersion, entry: Entry, *, image_url: str) -> Doc:
    """What the file page shows; a failed read (a corrupt object, a changed reference)
    is a preview saying so, not an error page: the download link says the same."""
    ext = extension(entry.path)
    try:
        if ext in IMAGE_TYPES:
            if entry.size > IMAGE_MAX:
                return _not_shown(f"an image of {entry.size:,} bytes: too large to show here")
            return {"kind": "image", "src": image_url}
        if ext == "parquet":
            return _parquet(v, entry)
        head = _head(v, entry, JSON_WHOLE if ext == "json" else TEXT_HEAD)
        text = _decode(head)
        if text is None:
            return {"kind": "binary", "note": "a binary file: download it to open it"}
        truncated = len(head) < entry.size
        if ext == "json" and not truncated:
            try:
                pretty = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
                return {"kind": "text", "format": "json", "text": pretty, "truncated": False}
            except ValueError:
                pass  # not valid JSON after all: shown as it is
        if ext in DELIMITERS:
            return _delimited(text, DELIMITERS[ext], truncated)
        return {"kind": "text", "format": ext or "text", "text": text, "truncated": truncated}
    except CairnError as exc:
        return {"kind": "error", "note": str(exc)}


def _not_shown(note: str) -> Doc:
    return {"kind": "too_large", "note": note}


def _head(v: ArtifactVersion, entry: Entry, limit: int) -> bytes:
    with v.open(entry.path) as f:
        data: bytes = f.read(min(limit, entry.size) if entry.size else limit)
    return data  # `entry` is a file (a link's target, for a link)


def _decode(data: bytes) -> str | None:
    """The text, or None for binary data (a NUL early on, or not UTF-8). A multi-byte
    character cut by the end of the head is dropped."""
    if b"\x00" in data[:SNIFF]:
        return None
    for cut in range(4):
        try:
            return data[: len(data) - cut].decode("utf-8")
        except UnicodeDecodeError as exc:
            if exc.start < len(data) - 4:
                return None
    return None


def _delimited(text: str, delimiter: str, truncated: bool) -> Doc:
    lines = text.splitlines()
    if truncated and lines:
        lines = lines[:-1]  # the last line may be cut
    rows = list(csv.reader(io.StringIO("\n".join(lines[: TABLE_ROWS + 1])), delimiter=delimiter))
    if not rows:
        return {"kind": "text", "format": "csv", "text": text, "truncated": truncated}
    header, body = rows[0], rows[1 : TABLE_ROWS + 1]
    return {
        "kind": "table",
        "columns": header[:TABLE_COLUMNS],
        "rows": [r[:TABLE_COLUMNS] for r in body],
        "total_rows": None if truncated else max(len(lines) - 1, 0),
        "more_columns": max(len(header) - TABLE_COLUMNS, 0),
    }


def _parquet(v: ArtifactVersion, entry: Entry) -> Doc:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        return {
            "kind": "unavailable",
            "note": "previewing Parquet needs pyarrow: pip install 'cairn[table]'",
        }
    with v.open(entry.path) as f:
        try:
            pf = pq.ParquetFile(f)
        except Exception as exc:  # pyarrow's errors: not a Parquet file after all
            return {"kind": "error", "note": f"not a readable Parquet file: {exc}"}
        meta = pf.metadata
        names = pf.schema_arrow.names
        if meta.num_row_groups and meta.row_group(0).total_byte_size > ROW_GROUP_MAX:
            return _not_shown(
                f"{meta.num_rows:,} rows in row groups too large to preview; columns: "
                + ", ".join(names[:TABLE_COLUMNS])
            )
        columns = names[:TABLE_COLUMNS]
        rows: list[list[Any]] = []
        if meta.num_rows:
            batch = next(pf.iter_batches(batch_size=TABLE_ROWS, columns=columns))
            rows = [[cell(r.get(c)) for c in columns] for r in batch.to_pylist()]
    return {
        "kind": "table",
        "columns": columns,
        "types": [str(pf.schema_arrow.field(c).type) for c in columns],
        "rows": rows,
        "total_rows": meta.num_rows,
        "more_columns": max(len(names) - TABLE_COLUMNS, 0),
    }
