"""What the UI must never do: write to the catalog or the store, hand out unverified or
unbounded bytes, lose its prefix when mounted, or listen beyond the loopback by default."""

from __future__ import annotations

import hashlib
import http.client
import json
import re
import subprocess
import sys
from collections import deque
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest
from conftest import free_port, start_ui, stop
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import MetaData, select

from cairn import Artifact, Repository
from cairn.foundation.layout import object_key
from cairn.ui import create_app
from cairn.ui.preview import IMAGE_MAX, JSON_WHOLE, TEXT_HEAD

HREF = re.compile(r'(?:href|src)="([^"]+)"')


def catalog_rows(repo: Repository) -> dict[str, list[tuple]]:
    """Every row of every catalog table (read as the catalog's owner)."""
    meta = MetaData()
    meta.reflect(repo.catalog.engine)
    out = {}
    with repo.catalog.engine.connect() as conn:
        for table in meta.sorted_tables:
            rows = conn.execute(select(table)).fetchall()
            out[table.name] = sorted(tuple(map(repr, r)) for r in rows)
    return out


def store_files(home: Path) -> dict[str, str]:
    store = home / "store"
    return {
        str(p.relative_to(store)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(store.rglob("*"))
        if p.is_file()
    }


def crawl(client: TestClient, start: str = "/projects", limit: int = 800) -> set[str]:
    """Every page reachable from `start`, its JSON twin, and every download and
    expansion the pages link to; fails on any 5xx."""
    seen: set[str] = set()
    queue = deque([start])
    while queue and len(seen) < limit:
        path = queue.popleft()
        if path in seen:
            continue
        seen.add(path)
        r = client.get(path)
        assert r.status_code < 500, (path, r.text[:500])
        if not r.headers.get("content-type", "").startswith("text/html"):
            continue
        twin = client.get("/api" + path)
        assert twin.status_code == r.status_code, path
        for link in HREF.findall(r.text):
            target = urljoin(path, link.replace("&amp;", "&"))
            if urlsplit(target).netloc or "/static/" in target:
                continue
            queue.append(target)
        if path.endswith("/lineage"):
            for node in twin.json()["graph"]["nodes"]:
                key = (
                    f"version={node['ref']}"
                    if node["kind"] == "version"
                    else f"run={node['run_id']}"
                )
                assert client.get(f"/api/lineage/neighbours?{key}").status_code == 200
    return seen


def test_crawling_every_page_writes_nothing(sample):
    repo, home = sample["repo"], sample["home"]
    rows, files = catalog_rows(repo), store_files(home)
    client = TestClient(create_app(repo))
    seen = crawl(client)
    assert len(seen) > 80
    assert any("/raw/" in s for s in seen) and any("/lineage" in s for s in seen)
    assert any("/diff?" in s for s in seen) and any("/runs/" in s for s in seen)
    assert catalog_rows(repo) == rows
    assert store_files(home) == files


@pytest.fixture
def loose(tmp_path):
    """A repository with a few files stored as loose objects (no packs)."""
    home = tmp_path / "home"
    repo = Repository.open(home=str(home))
    art = Artifact("things", type="dataset")
    with art.new_file("notes.txt") as f:
        f.write("hello\n" * 100)
    with art.new_file("big.txt") as f:
        f.write("0123456789abcdef\n" * (3 * 1024 * 1024 // 17))
    with art.new_file("big.json", mode="wb") as f:
        f.write(json.dumps({"values": list(range(400_000))}).encode())
    with art.new_file("huge.png", mode="wb") as f:
        f.write(b"\x89PNG" + bytes(IMAGE_MAX))
    v = repo.log_artifact(art, project="demo")
    yield repo, v, home
    repo.close()


def test_a_large_text_is_previewed_only_in_part(loose):
    repo, _, _ = loose
    client = TestClient(create_app(repo))
    base = "/api/projects/demo/artifacts/things/v0/files"
    p = client.get(f"{base}/big.txt").json()["preview"]
    assert p["kind"] == "text" and p["truncated"] and len(p["text"]) == TEXT_HEAD
    j = client.get(f"{base}/big.json").json()["preview"]
    assert j["truncated"] and j["format"] == "json" and len(j["text"]) == JSON_WHOLE
    img = client.get(f"{base}/huge.png").json()["preview"]
    assert img["kind"] == "too_large"
    html = client.get("/projects/demo/artifacts/things/v0/files/big.txt")
    assert len(html.content) < 3 * TEXT_HEAD
    assert "Showing the first" in html.text


def _corrupt(v, path: str, home: Path) -> None:
    entry = v.entry(path)
    digest = entry.chunks[-1].digest if entry.chunks else entry.digest  # the last chunk
    obj = home / "store" / object_key(digest, namespace=v.namespace)
    data = bytearray(obj.read_bytes())
    data[10] ^= 0xFF
    obj.write_bytes(bytes(data))


def test_a_corrupt_object_is_an_error_never_served(loose):
    repo, v, home = loose
    _corrupt(v, "notes.txt", home)
    client = TestClient(create_app(repo), raise_server_exceptions=False)
    p = client.get("/api/projects/demo/artifacts/things/v0/files/notes.txt").json()["preview"]
    assert p["kind"] == "error" and "corrupt" in p["note"]
    r = client.get("/projects/demo/artifacts/things/v0/raw/notes.txt")
    assert r.status_code == 500 and "corrupt" in r.text
    assert "hello" not in r.text


def test_a_corrupt_later_chunk_cuts_the_download_short(small_chunks_home):
    """The first block went out before the bad chunk was read: the transfer stops short of
    its Content-Length, which every client reports as a failed download."""
    repo, home = small_chunks_home
    art = Artifact("chunky", type="dataset")
    payload = hashlib.shake_256(b"cairn").digest(3 << 20)  # 3 MiB: the first MiB goes out
    with art.new_file("data.bin", mode="wb") as f:
        f.write(payload)
    v = repo.log_artifact(art, project="demo")
    assert len(v.entry("data.bin").chunks) > 2
    _corrupt(v, "data.bin", home)
    port = free_port()
    proc = start_ui(home, port)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", "/projects/demo/artifacts/chunky/v0/raw/data.bin")
        response = conn.getresponse()
        assert response.status == 200
        with pytest.raises(http.client.IncompleteRead) as cut:
            response.read()
        assert len(cut.value.partial) < len(payload)
    finally:
        stop(proc)


@pytest.fixture
def small_chunks_home(tmp_path):
    home = tmp_path / "home"
    (home / "store").mkdir(parents=True)
    (home / "store" / "config.json").write_text(
        json.dumps(
            {"format": 1, "chunking": {"threshold": 65536, "avg": 16384, "min": 4096, "max": 65536}}
        )
    )
    repo = Repository.open(home=str(home))
    yield repo, home
    repo.close()


def test_mounted_under_a_prefix_every_link_keeps_it(sample):
    parent = FastAPI()
    parent.mount("/cairn", create_app(sample["repo"]))
    client = TestClient(parent)
    r = client.get("/cairn/", follow_redirects=False)
    assert r.headers["location"] == "/cairn/projects"
    html = client.get("/cairn/projects/demo/artifacts/mnist/v1").text
    links = HREF.findall(html)
    assert links and all(link.startswith("/cairn/") for link in links), links
    assert client.get("/cairn/api/projects/demo").json()["project"]["name"] == "demo"
    assert client.get("/cairn/static/app.css").status_code == 200
    lineage = client.get("/cairn/projects/demo/artifacts/mnist/v1/lineage").text
    assert '"expand": "/cairn/api/lineage/neighbours"' in lineage
    missing = client.get("/cairn/projects/nope")
    assert missing.status_code == 404 and 'href="/cairn/projects"' in missing.text


def _listening(port: int) -> set[str]:
    """Local addresses with a socket listening on `port` (from /proc/net/tcp*)."""
    found = set()
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(name).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.rsplit(":", 1)
            if int(hex_port, 16) == port and state == "0A":  # LISTEN
                found.add(address)
    return found


@pytest.mark.parametrize("sample", ["sqlite"], indirect=True)  # one catalog is enough here
def test_cairn_ui_listens_on_the_loopback_only_by_default(sample):
    port = free_port()
    proc = start_ui(sample["home"], port)
    try:
        assert _listening(port) == {"0100007F"}  # 127.0.0.1, nothing else
    finally:
        stop(proc)
    _, err = proc.communicate()
    assert f"cairn UI at http://127.0.0.1:{port}/ (read-only" in err


def test_without_the_ui_packages_cairn_ui_says_what_to_install(tmp_path):
    code = (
        "import sys; sys.modules['uvicorn'] = None\n"
        "from cairn.cli import main\n"
        f"sys.argv = ['cairn', '--home', {str(tmp_path)!r}, 'ui']\n"
        "main()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 1
    assert done.stderr == (
        "cairn: error: cairn ui needs the web UI's packages (uvicorn is missing): "
        "pip install 'cairn[ui]'\n"
    )


def test_a_reference_is_previewed_and_served_from_its_source_until_it_changes(tmp_path):
    source = tmp_path / "outside" / "table.csv"
    source.parent.mkdir()
    source.write_text("a,b\n1,2\n")
    with Repository.open(home=str(tmp_path / "home")) as repo:
        art = Artifact("linked", type="dataset")
        art.add_reference(str(source), name="table.csv")
        repo.log_artifact(art, project="demo")
        client = TestClient(create_app(repo), raise_server_exceptions=False)
        base = "/projects/demo/artifacts/linked/v0"
        doc = client.get(f"/api{base}/files/table.csv").json()
        assert doc["file"]["reference"].endswith("table.csv")
        assert doc["preview"]["kind"] == "table" and doc["preview"]["rows"] == [["1", "2"]]
        assert client.get(f"{base}/raw/table.csv").content == b"a,b\n1,2\n"
        source.write_text("a,b\n9,9\n")  # the source changed since it was logged
        changed = client.get(f"/api{base}/files/table.csv").json()["preview"]
        assert changed["kind"] == "error" and "changed" in changed["note"]
        r = client.get(f"{base}/raw/table.csv")
        assert r.status_code == 500 and b"9,9" not in r.content


@pytest.mark.parametrize("sample", ["sqlite"], indirect=True)  # one catalog is enough here
def test_without_pyarrow_a_parquet_file_says_what_to_install(sample, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    client = TestClient(create_app(sample["repo"]))
    doc = client.get("/api/projects/demo/artifacts/mnist/v1/files/test/labels.parquet").json()
    assert doc["preview"] == {
        "kind": "unavailable",
        "note": "previewing Parquet needs pyarrow: pip install 'cairn[table]'",
    }
