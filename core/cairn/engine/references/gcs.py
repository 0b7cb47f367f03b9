"""GCS objects as references: pinned by generation and md5/crc32c.

Reads ask for the pinned generation (GCS serves it while the bucket keeps it, else 404),
and a whole-object fetch is checked against the pinned md5 (or crc32c) as well, which
also catches servers that ignore `generation` (the GCS emulator does).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from typing import Any

import fsspec
from fsspec.asyn import sync

from ...foundation.errors import NotFound
from ...foundation.manifest import Entry
from .base import BLOCK, Source, SourceObject, changed_error


class GCSSource(Source):
    protocols = ("gs", "gcs")

    def __init__(self, options: dict[str, Any]):
        super().__init__(options)
        self.fs = fsspec.filesystem(
            "gs", **{"use_listings_cache": False, "skip_instance_cache": True, **options}
        )

    def _run(self, coro_fn: Any, *args: Any, **kwargs: Any) -> Any:
        return sync(self.fs.loop, coro_fn, *args, **kwargs)

    def objects(self, uri: str, *, limit: int | None, checksum: bool) -> list[SourceObject]:
        path = _path(uri)
        if not path.endswith("/") and "/" in path:
            try:
                return [_object(self._run(self.fs._get_object, path))]
            except FileNotFoundError:
                pass
        prefix = path.rstrip("/")
        items, _ = self._run(
            self.fs._do_list_objects,
            prefix,
            delimiter="",
            max_results=None if limit is None else limit + 1,
        )
        found = sorted(
            (_object(i) for i in items if not i["name"].endswith("/")), key=lambda o: o.uri
        )
        if not found:
            raise NotFound(f"nothing to reference at {uri}: no object and no prefix of that name")
        return found

    def current(self, entry: Entry) -> SourceObject | None:
        bucket, _, key = _path(entry.ref or "").partition("/")
        try:
            meta = self._run(
                self.fs._call,
                "GET",
                "b/{}/o/{}",
                bucket,
                key,
                json_out=True,
                generation=entry.pin.get("generation"),
            )
        except FileNotFoundError:
            return None
        return _object(self.fs._process_object(bucket, meta))

    def _get(self, entry: Entry, headers: dict[str, str]) -> bytes:
        url = self.fs.url(_path(entry.ref or ""), generation=entry.pin.get("generation"))
        try:
            _, body = self._run(self.fs._call, "GET", url, headers=headers)
        except FileNotFoundError:
            what = "its pinned generation" if entry.pin.get("generation") else "it"
            raise changed_error(entry, f"{what} no longer exists") from None
        data: bytes = body
        return data

    def stream(self, entry: Entry) -> Iterator[bytes]:
        md5 = hashlib.md5(usedforsecurity=False)
        if entry.size <= BLOCK or not entry.pin:
            data = self._get(entry, {})
            md5.update(data)
            yield data
        else:
            for start in range(0, entry.size, BLOCK):
                data = self._get(entry, {"Range": f"bytes={start}-{start + BLOCK - 1}"})
                md5.update(data)
                yield data
        pinned = entry.pin.get("md5")
        if pinned and base64.b64encode(md5.digest()).decode() != pinned:
            raise changed_error(entry, "its md5 no longer matches")

    def read(self, entry: Entry, start: int, end: int) -> bytes:
        if end <= start:
            return b""
        return self._get(entry, {"Range": f"bytes={start}-{end - 1}"})


def _path(uri: str) -> str:
    return uri.split("://", 1)[1]


def _object(info: dict[str, Any]) -> SourceObject:
    pin = {"generation": str(info.get("generation"))}
    for name, field in (("md5", "md5Hash"), ("crc32c", "crc32c")):
        if info.get(field):
            pin[name] = info[field]
    return SourceObject(f"gs://{info['name']}", int(info["size"]), pin)
