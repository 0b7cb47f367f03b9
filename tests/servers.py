"""Real servers for tests and benchmarks: PostgreSQL, S3 (moto) and GCS (gcp-storage-emulator).

Each server is a subprocess listening on a free port of 127.0.0.1, in its own process group,
logging to a temporary file. Its context manager waits until it answers and, on exit (normal or
not), stops it and kills whatever is left of its process group; where util-linux's setpriv is
available, the kernel also stops it if the Python process dies without cleaning up (SIGKILL).
Start servers from the main thread: that parent-death signal fires when the starting thread
ends. A server that cannot start raises ServerError with the tail of its log. Usable without
pytest:

    with servers.moto_s3() as s3, servers.s3_bucket(s3) as bucket:
        fs = s3fs.S3FileSystem(**s3.storage_options)
"""

import contextlib
import os
import pwd
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STARTUP_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
# Console scripts (moto_server, gcp-storage-emulator) of the virtualenv running this code.
VENV_BIN = Path(sys.executable).parent
POSTGRES_MISSING = (
    "PostgreSQL server binaries not found (no /usr/lib/postgresql/*/bin/initdb and no initdb on "
    "PATH). Install the Debian package `postgresql` (apt-get install -y postgresql; .ci/run does "
    "this), or point CAIRN_TEST_POSTGRES_URL at an existing server."
)

# urllib without proxies from the environment: every server here is on the loopback.
_http = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class ServerError(RuntimeError):
    """A test server could not be started."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _log_tail(log: Path, lines: int = 40) -> str:
    text = log.read_text(errors="replace") if log.exists() else ""
    return "\n".join(text.splitlines()[-lines:]) or "(empty)"


def _http_answers(url: str) -> bool:
    try:
        with _http.open(url, timeout=2):
            return True
    except urllib.error.HTTPError:
        return True  # any HTTP status means the server is up
    except OSError:
        return False


def _stop(proc: subprocess.Popen[bytes], stop_signal: signal.Signals) -> None:
    """Ask the process to stop, kill it after STOP_TIMEOUT, then kill its leftover group."""
    if proc.poll() is None:
        proc.send_signal(stop_signal)
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


@contextlib.contextmanager
def running(
    name: str,
    argv: list[str],
    log: Path,
    ready: Callable[[], bool],
    stop_signal: signal.Signals = signal.SIGTERM,
    **popen_kwargs: Any,
) -> Iterator[None]:
    """Run argv until the block exits; enter the block once ready() is true."""
    command = argv
    setpriv = shutil.which("setpriv")
    if setpriv:  # util-linux: should this process die uncleanly, the kernel stops the server
        command = [setpriv, f"--pdeathsig={stop_signal.name}", "--", *argv]
    with log.open("ab") as out:
        proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            **popen_kwargs,
        )
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not ready():
            if proc.poll() is not None:
                problem = f"exited with status {proc.returncode} while starting"
            elif time.monotonic() > deadline:
                problem = f"did not answer within {STARTUP_TIMEOUT:.0f} s"
            else:
                time.sleep(0.1)
                continue
            raise ServerError(
                f"{name} {problem}: {shlex.join(argv)}\n"
                f"last lines of its log {log}:\n{_log_tail(log)}"
            )
        yield
    finally:
        _stop(proc, stop_signal)


def _venv_script(name: str, package: str) -> str:
    path = VENV_BIN / name
    if not path.exists():
        raise ServerError(f"{path} not found: install {package} here (scripts/test does)")
    return str(path)


# ---------------------------------------------------------------- PostgreSQL


def postgres_bindir() -> Path | None:
    """The newest Debian PostgreSQL server binaries, else the folder of initdb on PATH."""
    debian = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3])
    )
    if debian:
        return debian[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _drop_root(owned: Path) -> dict[str, Any]:
    """initdb and postgres refuse to run as root: when root, hand `owned` to the postgres user
    and return the Popen arguments that run a command as that user (runuser -u postgres)."""
    if os.geteuid() != 0:
        return {}
    try:
        user = pwd.getpwnam("postgres")
    except KeyError:
        raise ServerError(
            "running as root, but there is no `postgres` user to run PostgreSQL as. "
            + POSTGRES_MISSING
        ) from None
    os.chown(owned, user.pw_uid, user.pw_gid)
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}


@contextlib.contextmanager
def postgres_server(*, password: str | None = None) -> Iterator[str]:
    """A throwaway PostgreSQL cluster (fsync off). Yields its SQLAlchemy URL without a
    database name, e.g. postgresql+psycopg://postgres@127.0.0.1:5433

    Trust auth by default. With `password`, connections over TCP must authenticate
    (scram-sha-256, the way a real server is set up) and the superuser `postgres` has that
    password, which the yielded URL carries; the Unix socket still trusts."""
    bindir = postgres_bindir()
    if bindir is None:
        raise ServerError(POSTGRES_MISSING)
    base = Path(tempfile.mkdtemp(prefix="cairn-postgres-"))
    try:
        as_postgres = _drop_root(base)
        data, log = base / "data", base / "server.log"
        auth = ["--auth=trust"]
        if password is not None:
            pwfile = base / "pwfile"
            pwfile.write_text(password + "\n")
            if as_postgres:
                os.chown(pwfile, as_postgres["user"], as_postgres["group"])
            auth = ["--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={pwfile}"]
        initdb = subprocess.run(
            [str(bindir / "initdb"), "-D", str(data), "-U", "postgres", *auth,
             "-E", "UTF8", "--no-locale", "--no-sync"],
            cwd=base, capture_output=True, text=True, **as_postgres,
        )  # fmt: skip
        if initdb.returncode:
            raise ServerError(f"initdb failed:\n{initdb.stdout}{initdb.stderr}")
        port = str(free_port())
        argv = [
            str(bindir / "postgres"), "-D", str(data), "-p", port, "-k", str(base),
            "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
            "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
        ]  # fmt: skip
        isready = [str(bindir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", port]

        def ready() -> bool:
            return subprocess.run(isready, stdout=subprocess.DEVNULL).returncode == 0

        # SIGINT is PostgreSQL's "fast shutdown": roll back open sessions and stop.
        user = "postgres" if password is None else f"postgres:{password}"
        with running("PostgreSQL", argv, log, ready, signal.SIGINT, cwd=base, **as_postgres):
            yield f"postgresql+psycopg://{user}@127.0.0.1:{port}"
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _admin_execute(url: str, sql: str) -> None:
    """Run sql outside a transaction in the `postgres` database of url's server."""
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url
    from sqlalchemy.pool import NullPool

    admin = make_url(url).set(database="postgres")
    engine = create_engine(admin, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(sql)
    finally:
        engine.dispose()


def create_database(url: str) -> None:
    from sqlalchemy.engine import make_url

    _admin_execute(url, f'CREATE DATABASE "{make_url(url).database}"')


@contextlib.contextmanager
def fresh_database(url: str) -> Iterator[str]:
    """A new empty database (cairn_<random>) on url's server, dropped afterwards even if
    connections to it are still open. Yields its URL."""
    from sqlalchemy.engine import make_url

    name = f"cairn_{uuid.uuid4().hex[:12]}"
    fresh = make_url(url).set(database=name).render_as_string(hide_password=False)
    create_database(fresh)
    try:
        yield fresh
    finally:
        _admin_execute(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# ---------------------------------------------------------------- S3 (moto)


@dataclass(frozen=True)
class S3Endpoint:
    endpoint_url: str
    key: str = "testing"
    secret: str = "testing"

    @property
    def storage_options(self) -> dict[str, Any]:
        """s3fs.S3FileSystem(**storage_options); a new dict on every access."""
        return {
            "key": self.key,
            "secret": self.secret,
            "client_kwargs": {"endpoint_url": self.endpoint_url},
        }

    @property
    def environ(self) -> dict[str, str]:
        # A region in client_kwargs breaks bucket creation on moto; the environment's is fine.
        return {
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": self.key,
            "AWS_SECRET_ACCESS_KEY": self.secret,
        }

    def client(self) -> Any:
        """A boto3 S3 client for this endpoint."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.key,
            aws_secret_access_key=self.secret,
            region_name="us-east-1",
        )


@contextlib.contextmanager
def moto_s3() -> Iterator[S3Endpoint]:
    """moto's S3 in server mode; objects live in its memory."""
    port = str(free_port())
    argv = [_venv_script("moto_server", "moto[server]"), "-H", "127.0.0.1", "-p", port]
    url = f"http://127.0.0.1:{port}"
    with (
        tempfile.TemporaryDirectory(prefix="cairn-moto-") as tmp,
        running("moto_server", argv, Path(tmp, "server.log"), lambda: _http_answers(url)),
    ):
        yield S3Endpoint(url)


@contextlib.contextmanager
def s3_bucket(s3: S3Endpoint) -> Iterator[str]:
    """A new bucket; afterwards every object version in it, and the bucket, are deleted."""
    client = s3.client()
    name = f"cairn-test-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=name)
    try:
        yield name
    finally:
        with contextlib.suppress(client.exceptions.NoSuchBucket):
            # list every page before deleting: deleting under a paginator moves its markers
            doomed = [
                {"Key": v["Key"], "VersionId": v["VersionId"]}
                for page in client.get_paginator("list_object_versions").paginate(Bucket=name)
                for v in page.get("Versions", []) + page.get("DeleteMarkers", [])
            ]
            for i in range(0, len(doomed), 1000):  # delete_objects takes at most 1000 keys
                client.delete_objects(Bucket=name, Delete={"Objects": doomed[i : i + 1000]})
            client.delete_bucket(Bucket=name)


# ---------------------------------------------------------------- GCS (gcp-storage-emulator)


@dataclass(frozen=True)
class GCSEndpoint:
    endpoint_url: str

    @property
    def storage_options(self) -> dict[str, Any]:
        """gcsfs.GCSFileSystem(**storage_options); a new dict on every access."""
        return {"project": "test", "token": "anon", "endpoint_url": self.endpoint_url}

    @property
    def environ(self) -> dict[str, str]:
        return {"STORAGE_EMULATOR_HOST": self.endpoint_url}

    def filesystem(self) -> Any:
        import gcsfs

        return gcsfs.GCSFileSystem(**self.storage_options)


@contextlib.contextmanager
def gcs_emulator() -> Iterator[GCSEndpoint]:
    """gcp-storage-emulator, in memory. It ignores `generation=` on reads and does not enforce
    `if_generation_match=0`: test those behaviours against moto's S3 equivalents."""
    port = str(free_port())
    argv = [
        _venv_script("gcp-storage-emulator", "gcp-storage-emulator"),
        "start", "--host=127.0.0.1", f"--port={port}", "--in-memory",
    ]  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    with (
        tempfile.TemporaryDirectory(prefix="cairn-gcs-") as tmp,
        running("gcp-storage-emulator", argv, Path(tmp, "server.log"), lambda: _http_answers(url)),
    ):
        yield GCSEndpoint(url)


@contextlib.contextmanager
def gcs_bucket(gcs: GCSEndpoint) -> Iterator[str]:
    """A new bucket, deleted with its objects afterwards."""
    fs = gcs.filesystem()
    name = f"cairn-test-{uuid.uuid4().hex[:12]}"
    fs.mkdir(name)
    try:
        yield name
    finally:
        with contextlib.suppress(FileNotFoundError):
            fs.rm(name, recursive=True)
