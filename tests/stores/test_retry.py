"""RetryingStore: which errors are retried, how long it waits, and that batches retry only
the keys that failed."""

from __future__ import annotations

import errno

import pytest

from cairn.storage import Batch, MemoryStore, RetryingStore, is_transient


class _HttpError(Exception):
    def __init__(self, code: int):
        super().__init__(f"HTTP {code}")
        self.code = code


class ClientError(Exception):  # the shape of botocore's, without botocore
    def __init__(self, code: str, status: int):
        super().__init__(code)
        self.response = {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}


class ServerDisconnectedError(Exception):  # named like aiohttp's
    pass


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionResetError(),
        ConnectionRefusedError(),
        TimeoutError(),
        OSError(errno.EBUSY, "SlowDown"),  # s3fs's translation of 503
        OSError(errno.EREMOTEIO, "InternalError"),  # and of 500
        _HttpError(503),
        _HttpError(429),
        ClientError("SlowDown", 503),
        ClientError("InternalError", 500),
        ServerDisconnectedError(),
    ],
)
def test_transient(exc):
    assert is_transient(exc)


@pytest.mark.parametrize(
    "exc",
    [
        FileNotFoundError("k"),
        PermissionError("denied"),
        ValueError("bad"),
        OSError(errno.EINVAL, "InvalidArgument"),
        _HttpError(404),
        _HttpError(403),
        ClientError("AccessDenied", 403),
        KeyError("x"),
    ],
)
def test_permanent(exc):
    assert not is_transient(exc)


def test_cause_chain_is_followed():
    try:
        try:
            raise ConnectionResetError("reset")
        except ConnectionResetError as inner:
            raise RuntimeError("wrapped") from inner
    except RuntimeError as outer:
        assert is_transient(outer)


class _Failing(MemoryStore):
    """Fails `get` n times with `exc`, and put_many for keys in `flaky` once each."""

    def __init__(self, exc: BaseException, n: int, flaky: set[str] = frozenset()):
        super().__init__()
        self.exc, self.n, self.calls = exc, n, 0
        self.flaky = set(flaky)
        self.put_calls: list[list[str]] = []

    def get_range(self, key, start=0, end=None):
        self.calls += 1
        if self.calls <= self.n:
            raise self.exc
        return super().get_range(key, start, end)

    def put_many(self, items):
        self.put_calls.append(sorted(items))
        out = Batch()
        for k, v in items.items():
            if k in self.flaky:
                self.flaky.discard(k)
                out.failed[k] = ConnectionResetError(k)
            else:
                self.put(k, v)
                out.ok[k] = None
        return out


def test_retries_transient_failures_with_capped_jittered_backoff():
    waits: list[float] = []
    inner = _Failing(ConnectionResetError(), n=5)
    inner.put("k", b"v")
    store = RetryingStore(inner, attempts=8, base_delay=0.1, max_delay=0.5, sleep=waits.append)
    assert store.get("k") == b"v"
    assert store.retries == 5 and len(waits) == 5
    caps = [min(0.5, 0.1 * 2**i) for i in range(5)]
    assert all(0 <= w <= cap for w, cap in zip(waits, caps, strict=True))


def test_gives_up_after_attempts():
    inner = _Failing(ConnectionResetError("down"), n=100)
    store = RetryingStore(inner, attempts=3, sleep=lambda s: None)
    with pytest.raises(ConnectionResetError):
        store.get("k")
    assert inner.calls == 3


def test_permanent_errors_are_not_retried():
    inner = _Failing(PermissionError("denied"), n=100)
    store = RetryingStore(inner, attempts=5, sleep=lambda s: None)
    with pytest.raises(PermissionError):
        store.get("k")
    assert inner.calls == 1
    with pytest.raises(FileNotFoundError):
        RetryingStore(MemoryStore(), sleep=lambda s: None).get("missing")


def test_put_many_retries_only_the_keys_that_failed():
    inner = _Failing(ConnectionResetError(), n=0, flaky={"b", "d"})
    store = RetryingStore(inner, sleep=lambda s: None)
    result = store.put_many({k: k.encode() for k in "abcde"})
    assert not result.failed and sorted(result.ok) == list("abcde")
    assert inner.put_calls == [list("abcde"), ["b", "d"]]
    assert inner.get("d") == b"d"


class _FlakyListing(MemoryStore):
    """Its listing fails with a reset at the `after`-th object, `times` times in all;
    with `moving`, each listing gets `after` objects further than the one before."""

    def __init__(self, after: int, times: int, *, moving: bool = False):
        super().__init__()
        self.after, self.times, self.moving, self.listings = after, times, moving, 0

    def list(self, prefix=""):
        self.listings += 1
        fails_at = self.after * (self.listings if self.moving else 1)
        for n, info in enumerate(super().list(prefix)):
            if n == fails_at and self.times:
                self.times -= 1
                raise ConnectionResetError("reset mid-listing")
            yield info


def test_a_listing_that_fails_half_way_goes_on_after_the_last_key_it_gave():
    """Streamed, not collected first: what was yielded before the fault is not yielded
    again, nothing is lost, and a listing that keeps getting further keeps going."""
    inner = _FlakyListing(after=3, times=3, moving=True)
    keys = [f"objects/{i:02x}/{i:062x}" for i in range(10)]
    inner.put_many({k: b"x" for k in keys}).raise_first()
    store = RetryingStore(inner, attempts=2, sleep=lambda s: None)
    listing = store.list("objects/")
    assert next(listing).key == keys[0] and inner.listings == 1  # before the rest is read
    assert [keys[0], *(i.key for i in listing)] == keys
    assert (inner.listings, store.retries) == (4, 3)


def test_a_listing_that_fails_at_the_same_place_gives_up():
    inner = _FlakyListing(after=3, times=100)
    inner.put_many({f"k{i}": b"x" for i in range(10)}).raise_first()
    store = RetryingStore(inner, attempts=3, sleep=lambda s: None)
    got = []
    with pytest.raises(ConnectionResetError):
        got.extend(i.key for i in store.list())
    assert got == ["k0", "k1", "k2"] and inner.listings == 3
