"""An HTTP proxy for tests: forwards to a server (moto), records requests, injects faults.

    with FaultProxy("http://127.0.0.1:5000", fail_rate=0.2, reset_rate=0.05) as proxy:
        options = {..., "client_kwargs": {"endpoint_url": proxy.url}}

Faults are seeded, so a failing run repeats: a fraction of requests is answered with a
503 SlowDown (S3's throttling reply), another fraction has its connection dropped before
any answer, and `hold` parks matching requests (without forwarding them) until released,
which lets a test kill a client while it has requests in flight.
"""

from __future__ import annotations

import contextlib
import http.client
import random
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "upgrade"}
_SLOW_DOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message></Error>"
)


@dataclass
class Record:
    method: str
    path: str
    status: int | None = None  # None: dropped or held, never answered by the server
    client: tuple[str, int] | None = None  # the client's address and port


@dataclass
class FaultProxy:
    upstream: str
    fail_rate: float = 0.0
    reset_rate: float = 0.0
    seed: int = 0
    #: requests for which this returns True are parked until `release()` (then dropped)
    hold: Callable[[str, str], bool] | None = None
    records: list[Record] = field(default_factory=list)
    faults: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random(self.seed)
        self._released = threading.Event()
        up = urlsplit(self.upstream)
        self._up_host, self._up_port = up.hostname or "127.0.0.1", up.port or 80
        self._local = threading.local()
        self._server: ThreadingHTTPServer | None = None

    # -- use -------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FaultProxy:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _any(self) -> None:
                proxy._handle(self)

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _any

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: object, client_address: object) -> None:
                pass  # a client gone mid-answer (killed, or a dropped connection): expected

        self._server = Server(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()

    def release(self) -> None:
        """Let go of held requests: their connections are dropped, nothing is forwarded.
        Requests held after this wait for the next release."""
        with self._lock:
            released, self._released = self._released, threading.Event()
        released.set()

    def requests(self, method: str | None = None, contains: str = "") -> list[Record]:
        with self._lock:
            return [
                r
                for r in self.records
                if (method is None or r.method == method) and contains in r.path
            ]

    def clear(self) -> None:
        with self._lock:
            self.records.clear()
            self.faults = 0

    # -- internals -------------------------------------------------------------------------

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        body = _read_body(h)
        record = Record(h.command, h.path, client=h.client_address[:2])
        with self._lock:
            self.records.append(record)
            roll = self._rng.random()
        if body is None:  # the client went away mid-body: S3 would store nothing
            _drop(h)
            return
        if self.hold is not None and self.hold(h.command, h.path):
            with self._lock:
                released = self._released
            released.wait()
            _drop(h)
            return
        if roll < self.reset_rate:
            with self._lock:
                self.faults += 1
            _drop(h)
            return
        if roll < self.reset_rate + self.fail_rate:
            with self._lock:
                self.faults += 1
            _reply(h, 503, {"Content-Type": "application/xml"}, _SLOW_DOWN)
            return
        status, headers, payload = self._forward(h, body)
        record.status = status
        _reply(h, status, headers, payload, head=h.command == "HEAD")

    def _forward(self, h: BaseHTTPRequestHandler, body: bytes) -> tuple[int, dict[str, str], bytes]:
        headers = {k: v for k, v in h.headers.items() if k.lower() not in _HOP_BY_HOP}
        headers.pop("Expect", None)
        headers["Content-Length"] = str(len(body))
        for attempt in range(2):  # a pooled connection the server closed: reconnect once
            conn = getattr(self._local, "conn", None)
            if conn is None:
                conn = http.client.HTTPConnection(self._up_host, self._up_port, timeout=60)
                self._local.conn = conn
            try:
                conn.request(h.command, h.path, body=body, headers=headers)
                resp = conn.getresponse()
                payload = resp.read()
            except (ConnectionError, http.client.HTTPException, OSError):
                conn.close()
                self._local.conn = None
                if attempt:
                    raise
                continue
            if resp.getheader("Connection", "").lower() == "close":
                conn.close()
                self._local.conn = None
            out = {k: v for k, v in resp.getheaders() if k.lower() not in _HOP_BY_HOP}
            return resp.status, out, payload
        raise AssertionError("unreachable")


def _read_body(h: BaseHTTPRequestHandler) -> bytes | None:
    """The request's whole body, or None if the connection ended before all of it came
    (a client killed mid-upload): forwarding the part that came would store a truncated
    object, which S3 never does."""
    if h.headers.get("Transfer-Encoding", "").lower() == "chunked":
        parts = []
        while True:
            line = h.rfile.readline()
            if not line.endswith(b"\n"):
                return None
            size = int(line.split(b";")[0].strip(), 16)
            if size == 0:
                h.rfile.readline()
                return b"".join(parts)
            part = h.rfile.read(size)
            if len(part) < size:
                return None
            parts.append(part)
            h.rfile.readline()
    length = int(h.headers.get("Content-Length") or 0)
    body = h.rfile.read(length) if length else b""
    return body if len(body) == length else None


def _reply(
    h: BaseHTTPRequestHandler,
    status: int,
    headers: dict[str, str],
    payload: bytes,
    *,
    head: bool = False,
) -> None:
    h.send_response(status)
    for k, v in headers.items():
        if k.lower() != "content-length":
            h.send_header(k, v)
    h.send_header("Content-Length", headers.get("Content-Length", str(len(payload))))
    h.end_headers()
    if not head:
        h.wfile.write(payload)


def _drop(h: BaseHTTPRequestHandler) -> None:
    """Close the connection with no answer at all, as a reset or a crashed server would."""
    h.close_connection = True
    with contextlib.suppress(OSError):
        h.connection.shutdown(socket.SHUT_RDWR)
