"""Every page of the UI and its JSON twin, over the sample repository, on SQLite and
PostgreSQL catalogs (served in-process by FastAPI's TestClient)."""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest
from sample import PENDING_ID, SCRIPT

from cairn.ui import links


def api(client, path: str, status: int = 200):
    r = client.get(links.api(path))
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    return r.json()


def page(client, path: str, status: int = 200) -> str:
    r = client.get(path)
    assert r.status_code == status, r.text[:2000]
    assert r.headers["content-type"].startswith("text/html")
    return r.text


def test_root_redirects_to_the_projects(client):
    r = client.get("/", follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (307, "/projects")


def test_projects_list_every_project_with_counts(client):
    doc = api(client, "/projects")
    by_name = {p["name"]: p for p in doc["projects"]}
    assert set(by_name) == {"demo", "vision"}
    assert by_name["demo"]["collections"] == 7
    assert by_name["demo"]["versions"] == 2 + 1 + 8 + 1 + 1 + 1 + 1
    assert by_name["vision"]["visibility"] == "public"
    html = page(client, "/projects")
    assert 'href="/projects/demo"' in html and 'href="/projects/vision"' in html


def test_a_project_lists_its_collections_with_their_latest_version(client):
    doc = api(client, "/projects/demo")
    rows = {c["name"]: c for c in doc["collections"]}
    assert rows["classifier"]["type"] == "model" and rows["classifier"]["versions"] == 8
    assert rows["classifier"]["latest"]["version"] == "v7"
    assert rows["mnist"]["latest"]["aliases"] == ["latest", "production"]
    assert doc["types"] == {"dataset": 5, "model": 1, "report": 1}
    assert rows["features"]["latest"] is None  # only a pending version so far
    assert 'href="/projects/demo/artifacts/mnist"' in page(client, "/projects/demo")


def test_a_collection_lists_versions_with_aliases_metadata_and_their_runs(client):
    doc = api(client, "/projects/demo/artifacts/classifier")
    assert [v["version"] for v in doc["versions"]] == [f"v{i}" for i in range(7, -1, -1)]
    assert doc["metadata_columns"] == ["accuracy", "epochs", "lr"]
    v5 = doc["versions"][2]
    assert (v5["aliases"], v5["metadata"]["lr"], v5["logged_by"]["name"]) == (
        ["best"],
        0.0003,
        "sweep-5",
    )
    assert v5["columns"] == ["0.9", "15", "0.0003"]
    assert doc["collection"]["aliases"] == {"best": "v5", "latest": "v7"}
    html = page(client, "/projects/demo/artifacts/classifier")
    assert 'href="/projects/demo/artifacts/classifier/v5"' in html
    assert "sweep-5" in html


def test_versions_sort_by_any_field_or_metadata_key(client):
    def order(sort: str) -> list[str]:
        doc = api(client, f"/projects/demo/artifacts/classifier?sort={sort}")
        return [v["version"] for v in doc["versions"]]

    assert order("-metadata.accuracy")[:3] == ["v7", "v5", "v6"]
    assert order("metadata.lr")[0] == "v7"
    assert order("version") == [f"v{i}" for i in range(8)]
    assert order("-created_at")[0] == "v7"
    bad = api(client, "/projects/demo/artifacts/classifier?sort=colour", 400)
    assert "colour" in bad["error"]


def test_versions_filter_with_the_query_language(client):
    doc = api(client, "/projects/demo/artifacts/classifier?q=metadata.accuracy+>+0.85")
    assert sorted(v["version"] for v in doc["versions"]) == ["v3", "v4", "v5", "v6", "v7"]
    assert doc["total"] == 5
    # the keys the query names come first among the columns
    named = api(client, "/projects/demo/artifacts/classifier?q=metadata.lr+<+0.01")
    assert named["metadata_columns"][0] == "lr"
    html = page(client, "/projects/demo/artifacts/classifier?q=alias+%3D+%27best%27")
    assert 'href="/projects/demo/artifacts/classifier/v5"' in html
    assert 'href="/projects/demo/artifacts/classifier/v4"' not in html
    assert 'value="alias = &#39;best&#39;"' in html  # the box keeps the query


def test_a_malformed_query_is_shown_beside_the_box(client):
    r = client.get("/projects/demo/artifacts/classifier?q=metadata.accuracy+>")
    assert r.status_code == 400
    assert "invalid query at position" in r.text and 'class="query-error"' in r.text
    assert 'name="q" value="metadata.accuracy &gt;"' in r.text
    j = client.get("/api/projects/demo/artifacts/classifier?q=size+>+%27big%27")
    assert j.status_code == 400 and "invalid query" in j.json()["error"]


def test_search_finds_versions_in_every_project(client):
    doc = api(client, "/search?q=type+%3D+%27dataset%27+AND+alias+%3D+%27production%27")
    assert sorted(v["ref"] for v in doc["versions"]) == ["demo/mnist:v1", "demo/raw:v0"]
    everything = api(client, "/search")
    assert everything["total"] == 17 and len(everything["versions"]) == 17
    assert {v["project"] for v in everything["versions"]} == {"demo", "vision"}
    assert api(client, "/search?q=nope+%3D+1", 400)["error"].startswith("invalid query")


def test_runs_table_has_config_and_summary_columns_sorted_by_a_metric(client):
    doc = api(client, "/projects/demo/runs?q=group+%3D+%27sweep-1%27&sort=-summary.val_acc")
    assert [r["name"] for r in doc["runs"]][:3] == ["sweep-7", "sweep-5", "sweep-6"]
    assert doc["total"] == 8
    assert doc["summary_columns"] == ["val_acc", "val_loss"]
    assert set(doc["config_columns"]) == {"epochs", "lr", "optimizer"}
    best = doc["runs"][0]
    assert best["summary"] == {"val_acc": 0.91, "val_loss": 0.14}
    assert best["summary_cells"] == ["0.91", "0.14"]
    assert best["url"].startswith("/projects/demo/runs/")
    every = api(client, "/projects/demo/runs")
    assert every["total"] == len(every["runs"]) > 8  # ingest, prep, evaluate, shards...
    filtered = api(
        client, "/projects/demo/runs?q=config.optimizer+%3D+%27adam%27+AND+summary.val_acc+>+0.85"
    )
    assert sorted(r["name"] for r in filtered["runs"]) == ["sweep-3", "sweep-5", "sweep-7"]
    html = page(client, "/projects/demo/runs?sort=-summary.val_acc")
    assert "val_acc ↓" in html
    assert api(client, "/projects/demo/runs?q=summary.val_acc+>", 400)["error"]
    assert api(client, "/projects/demo")["runs"] == every["total"]


def test_a_version_page_has_overview_lineage_and_usage(client, sample):
    mnist = sample["versions"]["mnist"]
    doc = api(client, "/projects/demo/artifacts/mnist/v1")
    v = doc["version"]
    assert (v["ref"], v["digest"], v["size"], v["file_count"]) == (
        "demo/mnist:v1",
        mnist.digest,
        mnist.size,
        7,
    )
    assert v["metadata"] == {"rows": 300, "source": "ingest", "split": {"train": 0.8, "test": 0.2}}
    assert v["description"] == "Handwritten digits, split into train and test."
    assert doc["logged_by"]["name"] == "prep"
    assert sorted(r["name"] for r in doc["used_by"]) == ["evaluate"] + [
        f"sweep-{i}" for i in range(8)
    ]
    assert [s["version"] for s in doc["siblings"]] == ["v1", "v0"]
    assert doc["previous"] == "v0"
    usage = doc["usage"]
    assert 'repo.artifact("demo/mnist:v1")' in usage["python"]
    assert "cairn get demo/mnist:v1" in usage["cli"]
    assert 'pd.read_parquet("cairn://demo/mnist:v1/test/labels.parquet")' in usage["pandas"]
    assert 'ref="demo/mnist:v1"' in usage["airflow"] and "use_artifact(" in usage["prefect"]
    # an alias names the same page, and the usage pins the version number
    assert api(client, "/projects/demo/artifacts/mnist/production")["version"]["ref"] == (
        "demo/mnist:v1"
    )
    html = page(client, "/projects/demo/artifacts/mnist/v1")
    assert "Handwritten digits" in html and "cairn get demo/mnist:v1" in html


def test_a_distributed_version_shows_the_runs_that_wrote_its_parts(client):
    doc = api(client, "/projects/demo/artifacts/predictions/v0")
    assert sorted(r["name"] for r in doc["contributors"]) == ["shard-0", "shard-1", "shard-2"]
    assert doc["logged_by"]["name"] == "commit-preds"
    assert doc["version"]["metadata"] == {"shards": 3}


def test_a_pending_version_has_its_own_page(client):
    doc = api(client, "/projects/demo/artifacts/features")
    [pending] = doc["versions"]
    assert (pending["state"], pending["version"]) == ("PENDING", "pending")
    assert pending["url"] == f"/projects/demo/artifacts/features/@{quote(PENDING_ID, safe='@')}"
    page_doc = api(client, pending["url"])
    assert page_doc["version"]["distributed_id"] == PENDING_ID
    assert [t["id"] for t in page_doc["tabs"]] == ["overview"]  # no files, no graph yet
    assert [r["name"] for r in page_doc["contributors"]] == ["feature-writer"]
    assert page_doc["usage"] == {}
    assert "PENDING" in page(client, pending["url"])


def test_the_file_tree_lists_folders_first_with_sizes(client, sample):
    doc = api(client, "/projects/demo/artifacts/mnist/v1/files")
    items = doc["listing"]["items"]
    assert [(i["name"], i["kind"]) for i in items] == [
        ("meta", "folder"),
        ("test", "folder"),
        ("train", "folder"),
    ]
    assert (
        doc["listing"]["files"] == 7 and doc["listing"]["size"] == sample["versions"]["mnist"].size
    )
    train = api(client, "/projects/demo/artifacts/mnist/v1/files/train")["listing"]
    assert [(i["name"], i["files"]) for i in train["items"]] == [("images", 3), ("labels.csv", 1)]
    assert train["items"][1]["download"] == "/projects/demo/artifacts/mnist/v1/raw/train/labels.csv"
    html = page(client, "/projects/demo/artifacts/mnist/v1/files/train")
    assert 'href="/projects/demo/artifacts/mnist/v1/files/train/images"' in html


@pytest.mark.parametrize(
    ("path", "kind", "check"),
    [
        ("meta/notes.txt", "text", lambda p: p["text"].startswith("line 0: handwritten")),
        ("meta/info.json", "text", lambda p: p["format"] == "json" and '"classes": [' in p["text"]),
        ("train/labels.csv", "table", lambda p: p["columns"] == ["id", "label", "pixels"]),
        (
            "test/labels.parquet",
            "table",
            lambda p: p["types"] == ["int64", "string", "double"] and p["total_rows"] == 120,
        ),
        ("train/images/0001.png", "image", lambda p: p["src"].endswith("0001.png?inline=1")),
    ],
)
def test_previews(client, path, kind, check):
    doc = api(client, f"/projects/demo/artifacts/mnist/v1/files/{path}")
    assert doc["file"]["path"] == path
    assert doc["preview"]["kind"] == kind, doc["preview"]
    assert check(doc["preview"])


def test_a_table_preview_shows_the_first_rows_only(client):
    p = api(client, "/projects/demo/artifacts/mnist/v1/files/train/labels.csv")["preview"]
    assert len(p["rows"]) == 50 and p["rows"][0] == ["0", "0", "0"] and p["total_rows"] == 200


def test_a_binary_file_is_not_previewed(client):
    p = api(client, "/projects/demo/artifacts/mnist/v0/files/blob.bin")["preview"]
    assert p["kind"] == "binary"
    assert "text" not in p


def test_download_streams_the_verified_bytes_as_an_attachment(client, sample):
    v = sample["versions"]["mnist"]
    r = client.get("/projects/demo/artifacts/mnist/v1/raw/train/labels.csv")
    assert r.status_code == 200
    with v.open("train/labels.csv") as f:
        assert r.content == f.read()
    assert r.headers["content-type"].startswith("text/csv")
    assert r.headers["content-disposition"].startswith('attachment; filename="labels.csv"')
    assert r.headers["content-length"] == str(v.entry("train/labels.csv").size)
    assert r.headers["content-security-policy"].startswith("sandbox")
    assert r.headers["x-content-type-options"] == "nosniff"


def test_only_images_are_served_inline(client):
    img = client.get("/projects/demo/artifacts/mnist/v1/raw/train/images/0001.png?inline=1")
    assert img.headers["content-type"] == "image/png"
    assert img.headers["content-disposition"].startswith("inline")
    assert img.content.startswith(b"\x89PNG")
    text = client.get("/projects/demo/artifacts/mnist/v1/raw/meta/notes.txt?inline=1")
    assert text.headers["content-disposition"].startswith("attachment")


def test_odd_file_names_are_quoted_in_links_and_downloads(client):
    listing = api(client, "/projects/demo/artifacts/odd-names/v0/files/a b")["listing"]
    assert (
        listing["items"][0]["url"] == "/projects/demo/artifacts/odd-names/v0/files/a%20b/c%26d.txt"
    )
    r = client.get(listing["items"][0]["download"])
    assert r.content == b"spaces and ampersands"
    assert "filename*=UTF-8''c%26d.txt" in r.headers["content-disposition"]


def test_diff_lists_added_removed_and_modified_paths_with_sizes(client, sample):
    doc = api(client, "/projects/demo/artifacts/mnist/diff?a=v0&b=v1")
    assert doc["counts"] == {"added": 1, "removed": 1, "modified": 0}
    assert doc["added"] == [
        {
            "path": "train/images/0003.png",
            "new_size": sample["versions"]["mnist"].entry("train/images/0003.png").size,
            "url": "/projects/demo/artifacts/mnist/v1/files/train/images/0003.png",
        }
    ]
    assert doc["removed"] == [{"path": "blob.bin", "old_size": 256 * 64}]
    # without versions: the latest against the one before it
    assert api(client, "/projects/demo/artifacts/mnist/diff")["old"]["version"] == "v0"
    modified = api(client, "/projects/demo/artifacts/classifier/diff?a=v1&b=v2")
    assert [m["path"] for m in modified["modified"]] == ["model.bin"]
    assert "+1 added" in page(client, "/projects/demo/artifacts/mnist/diff?a=v0&b=v1")


def test_lineage_has_versions_runs_and_edges_with_degrees(client):
    doc = api(client, "/projects/demo/artifacts/mnist/v1/lineage?depth=1")
    nodes = {n["id"]: n for n in doc["graph"]["nodes"]}
    names = {n["name"] for n in nodes.values()}
    assert "mnist:v1" in names and "prep" in names and "evaluate" in names
    kinds = {
        (nodes[e["source"]]["name"], nodes[e["target"]]["name"], e["kind"])
        for e in doc["graph"]["edges"]
    }
    assert ("prep", "mnist:v1", "logged") in kinds
    assert ("mnist:v1", "sweep-3", "used") in kinds
    root = nodes[doc["graph"]["root"]]
    assert root["root"] and root["degree"] == 10  # prep, 8 sweeps, evaluate: all shown
    prep = next(n for n in nodes.values() if n["name"] == "prep")
    assert prep["degree"] == 3  # raw (used), mnist v0 and v1 (logged): two not shown yet
    assert prep["url"].startswith("/projects/demo/runs/")
    deeper = api(client, "/projects/demo/artifacts/mnist/v1/lineage?depth=all")["graph"]
    assert len(deeper["nodes"]) > len(doc["graph"]["nodes"])
    assert api(client, "/projects/demo/artifacts/mnist/v1/lineage?depth=9", 400)


def test_expanding_a_node_returns_its_neighbours(client):
    doc = api(client, "/projects/demo/artifacts/mnist/v1/lineage?depth=1")
    prep = next(n for n in doc["graph"]["nodes"] if n["name"] == "prep")
    around = api(client, f"/lineage/neighbours?run={prep['run_id']}")
    assert sorted(n["name"] for n in around["nodes"]) == ["mnist:v0", "mnist:v1", "prep", "raw:v0"]
    by_ref = api(client, "/lineage/neighbours?version=demo/predictions:v0")
    assert {e["kind"] for e in by_ref["edges"]} == {"logged", "contributed"}
    assert api(client, "/lineage/neighbours", 400)
    assert api(client, "/lineage/neighbours?run=nope", 404)


def test_a_run_page_shows_what_it_used_logged_and_wrote_parts_of(client, sample):
    run = sample["versions"]["predictions"].contributors()[0]
    doc = api(client, f"/projects/demo/runs/{run.id}")
    assert doc["run"]["name"] == run.name and doc["run"]["group"] == "preds-1"
    sweep = api(client, "/projects/demo/runs?q=name+%3D+%27sweep-2%27")["runs"][0]
    sweep_page = api(client, sweep["url"])
    assert sweep_page["run"]["config"] == {"lr": 0.01, "epochs": 12, "optimizer": "sgd"}
    assert sweep_page["run"]["summary"] == {"val_acc": 0.84, "val_loss": 0.21}
    group = api(client, sweep_page["group_url"])  # the group's runs, by the query language
    assert group["q"] == "group = 'sweep-1'" and group["total"] == 8
    assert [v["ref"] for v in doc["used"]] == ["demo/classifier:v5"]
    assert [v["ref"] for v in doc["contributed"]] == ["demo/predictions:v0"]
    assert doc["logged"] == []
    assert run.name in page(client, f"/projects/demo/runs/{run.id}")
    api(client, f"/projects/vision/runs/{run.id}", 404)  # not that project's run


@pytest.mark.parametrize(
    "path",
    [
        "/projects/nope",
        "/projects/demo/artifacts/nope",
        "/projects/demo/artifacts/mnist/v9",
        "/projects/demo/artifacts/mnist/no-such-alias",
        "/projects/demo/artifacts/mnist/v1/files/nope.txt",
        "/projects/demo/artifacts/mnist/v1/files/train/nope",
        "/projects/demo/artifacts/mnist/v1/raw/nope.txt",
        "/projects/demo/artifacts/mnist/v1/raw/train",
        "/projects/demo/artifacts/mnist/v1/lineage-x",
        "/projects/demo/runs/no-such-run",
        "/projects/bad%20name",
        "/projects/demo/artifacts/mnist/@no-such-id",
        "/nothing/here",
    ],
)
def test_unknown_things_are_404_pages_not_tracebacks(client, path):
    r = client.get(path)
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("text/html")
    assert "Traceback" not in r.text and "Not found" in r.text
    if not path.startswith("/nothing"):
        j = client.get(links.api(path))
        assert j.status_code == 404 and "error" in j.json()


@pytest.mark.parametrize(
    "path",
    [
        "../../../etc/passwd",
        "..%2F..%2F..%2Fetc%2Fpasswd",
        "train/../../catalog.db",
        "train%2F..%2F..%2Fcatalog.db",
        "%2Fetc%2Fpasswd",
        "train//labels.csv",
        "train%5Clabels.csv",
        "train/%00",
    ],
)
def test_paths_cannot_escape(client, path, sample):
    base = "/projects/demo/artifacts/mnist/v1"
    for kind in ("files", "raw"):
        r = client.get(f"{base}/{kind}/{path}")
        assert r.status_code in (400, 404), (kind, path, r.status_code)
        assert b"root:" not in r.content and b"SQLite format" not in r.content


def test_html_in_metadata_and_descriptions_is_escaped(client):
    for path in (
        "/projects/demo/artifacts/odd-names/v0",
        "/projects/demo/artifacts/odd-names",
        "/projects/demo/artifacts/odd-names/v0/lineage",
    ):
        html = page(client, path)
        assert SCRIPT not in html, path
        assert "<script>document" not in html
    overview = page(client, "/projects/demo/artifacts/odd-names/v0")
    assert "&lt;script&gt;document.title=&#39;pwned&#39;&lt;/script&gt;" in overview
    doc = api(client, "/projects/demo/artifacts/odd-names/v0")
    assert doc["version"]["description"] == SCRIPT  # JSON keeps the text as it is


def test_pages_forbid_foreign_scripts(client):
    r = client.get("/projects/demo")
    policy = r.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'self'" in policy
    assert not re.search(r"<script(?![^>]*\bsrc=)(?![^>]*application/json)", r.text)


def test_the_ui_only_reads(client):
    for method in ("post", "put", "patch", "delete"):
        r = client.request(method.upper(), "/projects/demo/artifacts/mnist/v1")
        assert r.status_code == 405
        assert "only reads" in r.text


def test_paging_a_large_folder(sample, client):
    from cairn import Artifact

    art = Artifact("many", type="dataset")
    for i in range(250):
        with art.new_file(f"flat/f{i:04d}.txt") as f:
            f.write(str(i))
    sample["repo"].log_artifact(art, project="vision")
    first = api(client, "/projects/vision/artifacts/many/v0/files/flat")
    assert len(first["listing"]["items"]) == 100 and first["pages"] == 3
    last = api(client, "/projects/vision/artifacts/many/v0/files/flat?page=3")
    assert [i["name"] for i in last["listing"]["items"]] == [
        f"f{i:04d}.txt" for i in range(200, 250)
    ]
    assert not last["listing"]["has_more"]
    small = api(client, "/projects/vision/artifacts/many/v0/files/flat?limit=7&page=2")
    assert [i["name"] for i in small["listing"]["items"]][0] == "f0007.txt"
    assert api(client, "/projects/vision/artifacts/many/v0/files/flat?page=0", 400)
    html = page(client, "/projects/vision/artifacts/many/v0/files/flat?page=2")
    assert 'href="/projects/vision/artifacts/many/v0/files/flat?page=3"' in html


def test_a_large_version_lists_a_folder_before_its_subfolders_sizes(client, monkeypatch):
    from cairn.ui import files

    normal = api(client, "/projects/demo/artifacts/mnist/v1/files")["listing"]
    monkeypatch.setattr(files, "QUICK_FROM", 3)  # mnist's 7 files count as large here
    client.app.state.cairn._readers.clear()  # as a fresh server would read it
    quick = api(client, "/projects/demo/artifacts/mnist/v1/files")["listing"]
    assert [(i["name"], i["size"], i["files"]) for i in quick["items"]] == [
        ("meta", None, 2),
        ("test", None, 1),
        ("train", None, 4),
    ]
    assert (quick["size"], quick["files"]) == (None, 7)
    html = page(client, "/projects/demo/artifacts/mnist/v1/files")
    assert 'data-sizes="/api/projects/demo/artifacts/mnist/v1/files"' in html
    assert 'data-size-of="train"' in html
    # what the page then asks for: the sizes (and from then on the page has them)
    full = api(client, "/projects/demo/artifacts/mnist/v1/files?sizes=true")["listing"]
    assert full == normal
    assert api(client, "/projects/demo/artifacts/mnist/v1/files")["listing"] == normal


def test_links_and_empty_folders(client):
    base = "/projects/vision/artifacts/linked/v0"
    items = api(client, f"{base}/files")["listing"]["items"]
    assert [(i["name"], i["kind"], i.get("link", False)) for i in items] == [
        ("data", "folder", False),
        ("empty", "folder", False),
        ("broken", "file", True),
        ("current.csv", "file", True),
    ]
    assert api(client, f"{base}/files/empty")["listing"]["items"] == []
    link = api(client, f"{base}/files/current.csv")
    assert link["file"]["link"] == "data/table.csv" and link["file"]["size"] == 8
    assert link["preview"]["kind"] == "table" and link["preview"]["rows"] == [["1", "2"]]
    r = client.get(f"{base}/raw/current.csv")  # the target's bytes, under the link's name
    assert (
        r.content == b"a,b\n1,2\n" and 'filename="current.csv"' in r.headers["content-disposition"]
    )
    broken = api(client, f"{base}/files/broken")["preview"]
    assert broken["kind"] == "error" and "data/gone.csv" in broken["note"]
    assert client.get(f"{base}/raw/broken").status_code == 404
    assert client.get(f"{base}/raw/empty").status_code == 404
