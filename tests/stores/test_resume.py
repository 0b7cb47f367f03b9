"""A `cairn put` to S3 killed mid-upload, then run again, re-sends at most what was in flight.

The client talks to moto through FaultProxy, which records every object PUT and whether
the server answered it. After N objects have arrived the proxy parks further PUTs, so at
the SIGKILL the client has requests in flight that never reach the server; they are the
only objects of the first run the second run may send again (DESIGN invariant 2).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from fault_proxy import FaultProxy

from cairn import NotFound, Repository

SMALL_CHUNKS = {"threshold": 65536, "avg": 16384, "min": 4096, "max": 65536}
ARRIVED_BEFORE_KILL = 150


def _object_puts(proxy: FaultProxy) -> tuple[set[str], set[str]]:
    """(keys whose PUT was sent, keys whose PUT the server answered 200)."""
    puts = proxy.requests("PUT", "/objects/")
    started = {r.path.split("/objects/", 1)[1] for r in puts}
    arrived = {r.path.split("/objects/", 1)[1] for r in puts if r.status == 200}
    return started, arrived


@pytest.mark.timeout(300)
def test_put_killed_mid_upload_then_rerun_resends_only_what_was_in_flight(
    s3_endpoint, s3_bucket, tmp_path
):
    client = s3_endpoint.client()
    client.put_object(
        Bucket=s3_bucket,
        Key="repo/config.json",
        Body=json.dumps({"format": 1, "chunking": SMALL_CHUNKS}).encode(),
    )
    data = tmp_path / "data"
    data.mkdir()
    payload = os.urandom(8 << 20)  # ~500 chunks
    (data / "big.bin").write_bytes(payload)
    home = tmp_path / "home"
    catalog = f"sqlite:///{tmp_path}/catalog.db"
    store = f"s3://{s3_bucket}/repo"

    def arrived_enough(method: str, path: str) -> bool:
        return method == "PUT" and len(_object_puts(proxy)[1]) >= ARRIVED_BEFORE_KILL

    with FaultProxy(s3_endpoint.endpoint_url, hold=arrived_enough) as proxy:
        options = {**s3_endpoint.storage_options, "client_kwargs": {"endpoint_url": proxy.url}}
        env = {
            **os.environ,
            "CAIRN_HOME": str(home),
            "CAIRN_CATALOG": catalog,
            "CAIRN_STORE": store,
            "CAIRN_STORAGE_OPTIONS": json.dumps(options),
        }
        cmd = [sys.executable, "-m", "cairn", "put", str(data), "-n", "p/ds", "-t", "dataset"]
        child = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and child.poll() is None:
            started, arrived = _object_puts(proxy)
            if len(arrived) >= ARRIVED_BEFORE_KILL and len(started - arrived) >= 8:
                break  # requests parked by the proxy: the client is mid-upload
            time.sleep(0.01)
        time.sleep(0.3)  # let every slot of the client's window fill up
        child.send_signal(signal.SIGKILL)
        out, err = child.communicate()
        assert child.returncode == -signal.SIGKILL, (out, err)
        started, arrived = _object_puts(proxy)
        in_flight = started - arrived
        assert len(arrived) >= ARRIVED_BEFORE_KILL
        assert 0 < len(in_flight) <= 64, len(in_flight)

        # nothing is visible; what arrived is really in the bucket
        with (
            Repository.open(catalog=catalog, store=store, home=str(home), **_opts(options)) as r,
            pytest.raises(NotFound),
        ):
            r.artifact("p/ds:latest")
        listed = client.list_objects_v2(Bucket=s3_bucket, Prefix="repo/projects/p/objects/")
        in_bucket = {o["Key"].split("/objects/", 1)[1] for o in listed.get("Contents", [])}
        assert arrived <= in_bucket

        # run it again, with nothing held back
        proxy.hold = None
        proxy.release()
        proxy.clear()
        rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
        assert rerun.returncode == 0, rerun.stderr
        resent, _ = _object_puts(proxy)

    assert not resent & arrived, "objects that had arrived were sent again"
    assert resent & started <= in_flight
    assert resent  # the chunks never sent before, and those lost in flight
    direct = s3_endpoint.storage_options
    with Repository.open(catalog=catalog, store=store, home=str(home), **_opts(direct)) as repo:
        v = repo.artifact("p/ds:latest")
        chunks = v.entry("big.bin").chunks
        assert len(chunks) > ARRIVED_BEFORE_KILL + len(in_flight)
        # every chunk went up exactly once over both runs (bar the in-flight ones)
        assert len(arrived) + len(resent) == len({c.digest for c in chunks})
        assert repo.verify(v.ref).ok
        assert (v.download(tmp_path / "out") / "big.bin").read_bytes() == payload


def _opts(options: dict) -> dict:
    return {"storage_options": options}
