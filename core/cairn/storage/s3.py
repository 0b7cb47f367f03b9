"""S3 (and S3-compatible servers) through s3fs, with a request per operation and no more.

s3fs's generic paths cost extra round trips that add up over thousands of objects: a
missing key's `info` also lists its "folder", a whole-object read first asks the size,
and botocore sends every PutObject with `Expect: 100-continue`, which holds the body back
for one more round trip. The primitives here call the S3 API directly instead.
"""

from __future__ import annotations

import builtins
import contextlib
from typing import Any

from .fsspec_store import FsspecStore


class S3Store(FsspecStore):
    protocols = ("s3", "s3a")

    def filesystem_options(self, options: dict[str, Any]) -> dict[str, Any]:
        options = super().filesystem_options(options)
        # botocore keeps 10 connections by default: fewer than the requests we overlap
        config = dict(options.get("config_kwargs") or {})
        config.setdefault("max_pool_connections", max(10, self.concurrency))
        options["config_kwargs"] = config
        return options

    async def _client(self, bucket: str) -> Any:
        await self.fs.set_session()
        client = await self.fs.get_s3(bucket)
        if not getattr(client, "_cairn_tuned", False):
            from botocore.handlers import add_expect_header

            client.meta.events.unregister("before-call.s3.PutObject", add_expect_header)
            client.meta.events.unregister("before-call.s3.UploadPart", add_expect_header)
            client._cairn_tuned = True
        return client

    async def _head(self, path: str) -> dict[str, Any] | None:
        bucket, key, _ = self.fs.split_path(path)
        await self._client(bucket)
        try:
            out = await self.fs._call_s3("head_object", Bucket=bucket, Key=key)
        except FileNotFoundError:
            return None
        return {
            "size": out["ContentLength"],
            "LastModified": out.get("LastModified"),
            "ETag": out.get("ETag"),
        }

    async def _read(self, path: str, start: int, end: int | None) -> bytes:
        if start == 0 and end is None:  # no Range: an empty object has no byte 0
            data: bytes = await self.fs._cat_file(path, max_concurrency=1)
        else:
            data = await self.fs._cat_file(path, start=start, end=end, max_concurrency=1)
        return data

    async def _write(self, path: str, data: bytes) -> None:
        bucket, key, _ = self.fs.split_path(path)
        await self._client(bucket)
        if len(data) >= 5 << 30:  # above a single PUT's limit: s3fs does multipart
            await self.fs._pipe_file(path, data)
            return
        await self.fs._call_s3("put_object", Bucket=bucket, Key=key, Body=data)

    async def _listdir(self, path: str) -> builtins.list[dict[str, Any]]:
        out: builtins.list[dict[str, Any]] = await self.fs._lsdir(path, refresh=True)
        return out

    async def _remove(self, paths: builtins.list[str]) -> None:
        # one bulk request per 1,000 keys (S3 DeleteObjects) or per 100 (GCS batch)
        with contextlib.suppress(FileNotFoundError):
            await self.fs._rm(paths)
