"""Retrying transient failures around any Store: exponential backoff with full jitter.

Every store operation is idempotent (objects are write-once and named by their digest),
so a call that failed with a connection reset, a timeout, a 5xx or throttling is simply
made again. A batched call retries only the keys that failed. Errors that say something
about the request itself (missing key, access denied, bad argument) are raised at once.
"""

from __future__ import annotations

import builtins
import errno
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

from .base import Batch, ObjectInfo, Store

T = TypeVar("T")

_PERMANENT = (
    FileNotFoundError,
    FileExistsError,
    PermissionError,
    IsADirectoryError,
    NotADirectoryError,
    ValueError,
    TypeError,
)
_TRANSIENT_ERRNO = {
    errno.ECONNRESET,
    errno.ECONNABORTED,
    errno.ECONNREFUSED,
    errno.EPIPE,
    errno.ETIMEDOUT,
    errno.EAGAIN,
    errno.EBUSY,  # s3fs: SlowDown, ServiceUnavailable, 503
    getattr(errno, "EREMOTEIO", errno.EIO),  # s3fs: InternalError, 500
}
_TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}
_TRANSIENT_CODES = {
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestTimeout",
    "RequestTimeTooSkewed",
    "InternalError",
    "ServiceUnavailable",
    "RequestLimitExceeded",
}
# exception classes of HTTP stacks, by name: no import of optional libraries needed
_TRANSIENT_NAMES = {
    "ClientConnectionError",
    "ClientOSError",
    "ClientPayloadError",
    "ServerDisconnectedError",
    "ServerTimeoutError",
    "ConnectionClosedError",
    "EndpointConnectionError",
    "ReadTimeoutError",
    "ConnectTimeoutError",
    "HTTPClientError",
    "ResponseStreamingError",
    "IncompleteReadError",
    "IncompleteRead",
    "RemoteDisconnected",
    "ChunkedEncodingError",
    "ProtocolError",
    "FSTimeoutError",
}


def is_transient(exc: BaseException) -> bool:
    """True when `exc` (or what caused it) is worth retrying: the request may well succeed."""
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if _transient_here(e):
            return True
        if isinstance(e, _PERMANENT):
            return False
        e = e.__cause__ or e.__context__
    return False


def _transient_here(e: BaseException) -> bool:
    if isinstance(e, _PERMANENT):
        return False
    if isinstance(e, (ConnectionError, TimeoutError)):
        return True
    if isinstance(e, OSError) and e.errno in _TRANSIENT_ERRNO:
        return True
    if any(cls.__name__ in _TRANSIENT_NAMES for cls in type(e).__mro__):
        return True
    status = getattr(e, "code", None) or getattr(e, "status", None)
    if isinstance(status, int) and status in _TRANSIENT_STATUS:
        return True
    response = getattr(e, "response", None)  # botocore ClientError
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        http = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return code in _TRANSIENT_CODES or http in _TRANSIENT_STATUS
    return False


class RetryingStore(Store):
    """Wraps a store; each call is tried up to `attempts` times while it fails transiently.

    The n-th retry waits a random time in [0, min(max_delay, base_delay * 2**n)] ("full
    jitter"), so many clients hitting one throttled bucket spread out instead of
    retrying in lockstep.
    """

    def __init__(
        self,
        inner: Store,
        *,
        attempts: int = 8,
        base_delay: float = 0.1,
        max_delay: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
    ):
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self.inner = inner
        self.url = inner.url
        self.concurrency = inner.concurrency
        self.attempts = attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._sleep = sleep
        #: how many retries this store made (for tests and progress reports)
        self.retries = 0

    def __repr__(self) -> str:
        return f"<RetryingStore {self.inner!r}>"

    def _backoff(self, attempt: int) -> None:
        self.retries += 1
        self._sleep(random.uniform(0, min(self.max_delay, self.base_delay * 2**attempt)))

    def _call(self, fn: Callable[..., T], *args: Any) -> T:
        for attempt in range(self.attempts):
            try:
                return fn(*args)
            except Exception as exc:
                if attempt + 1 >= self.attempts or not is_transient(exc):
                    raise
            self._backoff(attempt)
        raise AssertionError("unreachable")

    def _call_many(
        self, keys: builtins.list[str], fn: Callable[[builtins.list[str]], Batch[T]]
    ) -> Batch[T]:
        out: Batch[T] = Batch()
        pending = keys
        for attempt in range(self.attempts):
            result = fn(pending)
            out.ok.update(result.ok)
            retry = [k for k, e in result.failed.items() if is_transient(e)]
            for k, e in result.failed.items():
                if k not in retry:
                    out.failed[k] = e
            if not retry:
                return out
            if attempt + 1 >= self.attempts:
                out.failed.update((k, result.failed[k]) for k in retry)
                return out
            self._backoff(attempt)
            pending = retry
        return out

    # -- the Store interface ---------------------------------------------------------------

    def exists_many(self, keys: Iterable[str]) -> set[str]:
        keys = list(keys)
        return self._call(self.inner.exists_many, keys)

    def put(self, key: str, data: bytes | memoryview) -> None:
        self._call(self.inner.put, key, data)

    def put_many(self, items: Mapping[str, bytes | memoryview]) -> Batch[None]:
        def put(keys: builtins.list[str]) -> Batch[None]:
            return self.inner.put_many({k: items[k] for k in keys})

        return self._call_many(list(items), put)

    def put_file(self, key: str, local_path: str) -> None:
        self._call(self.inner.put_file, key, local_path)

    def get_range(self, key: str, start: int = 0, end: int | None = None) -> bytes:
        return self._call(self.inner.get_range, key, start, end)

    def get(self, key: str) -> bytes:
        return self._call(self.inner.get, key)

    def get_many(self, keys: Iterable[str]) -> Batch[bytes]:
        return self._call_many(list(keys), self.inner.get_many)

    def stat(self, key: str) -> ObjectInfo | None:
        return self._call(self.inner.stat, key)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """A listing that fails half-way is started again and goes on after the last
        key it gave (listings are in key order): streamed, never collected whole."""
        last: str | None = None
        attempt = 0
        while True:
            before = last
            try:
                for info in self.inner.list(prefix):
                    if last is None or info.key > last:
                        last = info.key
                        yield info
                return
            except Exception as exc:
                if last != before:
                    attempt = 0  # it got further: a long listing may meet several faults
                if attempt + 1 >= self.attempts or not is_transient(exc):
                    raise
            self._backoff(attempt)
            attempt += 1

    def delete(self, keys: Iterable[str]) -> None:
        keys = list(keys)
        self._call(self.inner.delete, keys)

    def sync(self) -> None:
        self._call(self.inner.sync)

    def close(self) -> None:
        self.inner.close()
