"""S3 objects as references: pinned by ETag, and by version id where the bucket keeps them.

Reads name the pinned version when there is one (so an overwritten object is still read
as it was logged) and send `If-Match: <etag>`, so S3 itself refuses to return anything
but the pinned content.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import fsspec
from fsspec.asyn import sync

from ...foundation.errors import NotFound
from ...foundation.manifest import Entry
from .base import Source, SourceObject, changed_error


class S3Source(Source):
    protocols = ("s3", "s3a")

    def __init__(self, options: dict[str, Any]):
        super().__init__(options)
        # an instance of its own: fsspec's shared instances keep the environment they were made in
        self.fs = fsspec.filesystem(
            "s3", **{"use_listings_cache": False, "skip_instance_cache": True, **options}
        )

    def _call(self, method: str, **kwargs: Any) -> Any:
        return sync(self.fs.loop, self.fs._call_s3, method, **kwargs)

    def objects(self, uri: str, *, limit: int | None, checksum: bool) -> list[SourceObject]:
        bucket, key = _split(uri)
        if key and not key.endswith("/"):
            try:
                head = self._call("head_object", Bucket=bucket, Key=key)
            except FileNotFoundError:
                pass
            else:
                return [_object(bucket, key, head["ContentLength"], head)]
        prefix = key.rstrip("/") + "/" if key else ""
        found = self._list(bucket, prefix, limit)
        if not found:
            raise NotFound(f"nothing to reference at {uri}: no object and no prefix of that name")
        return found

    def _list(self, bucket: str, prefix: str, limit: int | None) -> list[SourceObject]:
        # list_object_versions gives each latest version's id in the same pages; without
        # the permission for it, plain listings (and no version ids) have to do
        try:
            return self._pages(bucket, prefix, limit, versions=True)
        except PermissionError:
            return self._pages(bucket, prefix, limit, versions=False)

    def _pages(
        self, bucket: str, prefix: str, limit: int | None, *, versions: bool
    ) -> list[SourceObject]:
        out: list[SourceObject] = []
        kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
        method = "list_object_versions" if versions else "list_objects_v2"
        while True:
            page = self._call(method, **kwargs)
            for item in page.get("Versions" if versions else "Contents", []):
                if versions and not item.get("IsLatest"):
                    continue
                if item["Key"].endswith("/"):
                    continue  # a "folder" marker, not content
                out.append(_object(bucket, item["Key"], item["Size"], item))
            if limit is not None and len(out) > limit:
                return out
            if not page.get("IsTruncated"):
                return sorted(out, key=lambda o: o.uri)
            if versions:
                kwargs["KeyMarker"] = page.get("NextKeyMarker", "")
                kwargs["VersionIdMarker"] = page.get("NextVersionIdMarker", "")
            else:
                kwargs["ContinuationToken"] = page["NextContinuationToken"]

    def current(self, entry: Entry) -> SourceObject | None:
        bucket, key = _split(entry.ref or "")
        try:
            head = self._call("head_object", Bucket=bucket, Key=key, **_version(entry))
        except FileNotFoundError:
            return None
        return _object(bucket, key, head["ContentLength"], head)

    def _get(self, entry: Entry, **kwargs: Any) -> Any:
        bucket, key = _split(entry.ref or "")
        etag = entry.pin.get("etag")
        condition = {"IfMatch": etag} if etag else {}
        try:
            return self._call(
                "get_object", Bucket=bucket, Key=key, **_version(entry), **condition, **kwargs
            )
        except FileNotFoundError:
            if entry.pin.get("version_id"):
                raise changed_error(entry, "its pinned version no longer exists") from None
            raise changed_error(entry, "it no longer exists") from None
        except OSError as exc:
            if _precondition_failed(exc):
                raise changed_error(entry, f"its ETag is no longer {etag}") from None
            raise

    def stream(self, entry: Entry) -> Iterator[bytes]:
        body = self._get(entry)["Body"]
        try:
            while data := sync(self.fs.loop, body.read, 1 << 20):
                yield data
        finally:
            body.close()

    def read(self, entry: Entry, start: int, end: int) -> bytes:
        if end <= start:
            return b""
        body = self._get(entry, Range=f"bytes={start}-{end - 1}")["Body"]
        try:
            data: bytes = sync(self.fs.loop, body.read)
        finally:
            body.close()
        return data


def _split(uri: str) -> tuple[str, str]:
    path = uri.split("://", 1)[1]
    bucket, _, key = path.partition("/")
    return bucket, key


def _version(entry: Entry) -> dict[str, str]:
    v = entry.pin.get("version_id")
    return {"VersionId": v} if v else {}


def _object(bucket: str, key: str, size: int, meta: dict[str, Any]) -> SourceObject:
    pin = {"etag": meta.get("ETag")}
    version = meta.get("VersionId")
    if version and version != "null":  # "null": the bucket does not keep versions
        pin["version_id"] = version
    return SourceObject(f"s3://{bucket}/{key}", int(size), pin)


def _precondition_failed(exc: BaseException) -> bool:
    cause = exc.__cause__
    response = getattr(cause, "response", None)
    return isinstance(response, dict) and response.get("Error", {}).get("Code") in (
        "PreconditionFailed",
        "412",
    )
