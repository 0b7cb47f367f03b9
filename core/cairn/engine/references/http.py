"""Files served over HTTP(S) as references: pinned by ETag and Last-Modified.

Every response that delivers bytes is checked against the pin, so there is no window
between a check and the read. A server that sends neither header gets the file hashed
at log time (with checksum=True) and checked by digest instead.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import blake3

from ...foundation.errors import CairnError, NotFound
from ...foundation.manifest import Entry
from .base import Source, SourceObject, changed_error

_TIMEOUT = 60.0
_PIN_HEADERS = (("etag", "ETag"), ("last_modified", "Last-Modified"))


class HTTPSource(Source):
    protocols = ("http", "https")

    def _open(self, uri: str, *, method: str = "GET", headers: dict[str, str] | None = None) -> Any:
        request = urllib.request.Request(uri, method=method, headers=headers or {})
        return urllib.request.urlopen(request, timeout=self.options.get("timeout", _TIMEOUT))

    def objects(self, uri: str, *, limit: int | None, checksum: bool) -> list[SourceObject]:
        if uri.endswith("/"):
            raise CairnError(
                f"cannot reference {uri}: HTTP has no listing; reference each file by its URL"
            )
        try:
            now = self._head(uri)
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                raise NotFound(f"nothing to reference at {uri}: the server answers 404") from None
            raise
        if checksum and not now.pin:
            # no validator headers: pin the content itself
            h = blake3.blake3()
            size = 0
            with self._open(uri) as resp:
                while data := resp.read(1 << 20):
                    h.update(data)
                    size += len(data)
            return [SourceObject(uri, size, {}, h.hexdigest())]
        return [now]

    def _head(self, uri: str) -> SourceObject:
        try:
            with self._open(uri, method="HEAD") as resp:
                return _object(uri, resp)
        except urllib.error.HTTPError as exc:
            if exc.code not in (405, 501):
                raise
        with self._open(uri) as resp:  # no HEAD: the headers of a GET, body unread
            return _object(uri, resp)

    def current(self, entry: Entry) -> SourceObject | None:
        try:
            return self._head(entry.ref or "")
        except urllib.error.HTTPError as exc:
            if exc.code in (404, 410):
                return None
            raise

    def _checked(self, entry: Entry, resp: Any) -> None:
        now = _object(entry.ref or "", resp)
        why = self.changed(entry, SourceObject(now.uri, now.size, now.pin))
        if why:
            raise changed_error(entry, why)

    def changed(self, entry: Entry, now: SourceObject) -> str | None:
        for name, then in entry.pin.items():
            if now.pin.get(name) != then:
                return f"{name} was {then!r}, is now {now.pin.get(name)!r}"
        if not entry.pin and entry.digest:
            # pinned by content alone: only the content can tell
            h = blake3.blake3()
            with self._get(entry, {}) as resp:
                while data := resp.read(1 << 20):
                    h.update(data)
            if h.hexdigest() != entry.digest:
                return "its content no longer has the logged BLAKE3 digest"
        return None

    def stream(self, entry: Entry) -> Iterator[bytes]:
        with self._get(entry, {}) as resp:
            self._checked(entry, resp)
            while data := resp.read(1 << 20):
                yield data

    def read(self, entry: Entry, start: int, end: int) -> bytes:
        if end <= start:
            return b""
        with self._get(entry, {"Range": f"bytes={start}-{end - 1}"}) as resp:
            self._checked(entry, resp)
            data: bytes = resp.read()
            if resp.status == 200:  # the server ignored Range and sent it all
                data = data[start:end]
        return data

    def _get(self, entry: Entry, headers: dict[str, str]) -> Any:
        try:
            return self._open(entry.ref or "", headers=headers)
        except urllib.error.HTTPError as exc:
            if exc.code in (404, 410):
                raise changed_error(entry, f"the server answers {exc.code}") from None
            raise


def _object(uri: str, resp: Any) -> SourceObject:
    pin = {name: resp.headers[header] for name, header in _PIN_HEADERS if resp.headers[header]}
    length = resp.headers["Content-Length"]
    total = resp.headers["Content-Range"]
    size = int(total.rsplit("/", 1)[1]) if total and "/" in total else int(length or 0)
    return SourceObject(uri, size, pin)
