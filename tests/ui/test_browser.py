"""The UI in a real headless Chromium, served by `cairn ui` on the sample repository:
projects -> collection -> version -> files -> preview -> lineage (expand a node, open a
group), sorting, and no script error on the way. Screenshots go to $CAIRN_UI_SCREENSHOTS
(or the test's temporary folder); the README shows two of them, ui-*.png, copied to docs/:

    CAIRN_UI_SCREENSHOTS=/tmp/shots .venv/bin/pytest tests/ui/test_browser.py
    cp /tmp/shots/ui-*.png docs/
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser import VIEWPORT, Console, chromium, node_names, node_position, screenshots
from conftest import free_port, start_ui, stop
from sample import build

from cairn import Artifact, Repository
from cairn.console import human_size
from cairn.ui.files import QUICK_FROM

#: more files than the UI lists with every folder's size on the first request
BULK_FOLDERS, BULK_PER_FOLDER = 60, 350


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("browser-home")
    with Repository.open(home=str(home)) as repo:
        build(repo)
        data = tmp_path_factory.mktemp("bulk")
        for f in range(BULK_FOLDERS):
            (data / f"part-{f:02d}").mkdir()
            for i in range(BULK_PER_FOLDER):
                (data / f"part-{f:02d}" / f"{i:04d}.txt").write_text(f"{f} {i}\n" * (f + 1))
        bulk = Artifact("bulk", type="dataset")
        bulk.add_dir(str(data))
        repo.log_artifact(bulk, project="vision")
    port = free_port()
    proc = start_ui(home, port)
    yield f"http://127.0.0.1:{port}"
    stop(proc)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as b:
        yield b


@pytest.fixture
def page(browser) -> Iterator[Any]:
    context = browser.new_context(viewport=VIEWPORT)
    p = context.new_page()
    yield p
    context.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    return screenshots(tmp_path_factory.mktemp("screenshots"))


def test_walk_from_projects_to_a_file_preview(server, page, shots):
    console = Console(page)
    page.goto(f"{server}/")
    assert page.locator("h1").inner_text() == "Projects"
    page.screenshot(path=shots / "01-projects.png", full_page=True)
    page.get_by_role("link", name="demo", exact=True).click()
    page.wait_for_url("**/projects/demo")
    page.screenshot(path=shots / "02-project.png", full_page=True)
    page.get_by_role("link", name="mnist", exact=True).click()
    page.wait_for_url("**/projects/demo/artifacts/mnist")
    page.locator("#versions").get_by_role("link", name="v1", exact=True).click()
    page.wait_for_url("**/artifacts/mnist/v1")
    assert "Handwritten digits" in page.locator(".description").inner_text()
    assert page.locator("#metadata").get_by_text("ingest").is_visible()
    # usage snippets: one tab at a time
    page.get_by_role("tab", name="CLI").click()
    assert page.get_by_text("cairn get demo/mnist:v1 --root mnist-v1").is_visible()
    assert not page.get_by_text('repo.artifact("demo/mnist:v1")').is_visible()
    page.get_by_role("tab", name="Python").click()
    page.screenshot(path=shots / "03-version.png", full_page=True)
    page.screenshot(path=shots / "ui-version.png")  # the README's (docs/)

    page.locator(".tabs").get_by_role("link", name="Files").click()
    page.wait_for_url("**/v1/files")
    rows = page.locator("#files tbody tr")
    assert rows.count() == 3  # meta, test, train
    page.get_by_role("link", name="train", exact=True).click()
    page.get_by_role("link", name="labels.csv", exact=True).click()
    page.wait_for_url("**/files/train/labels.csv")
    table = page.locator("#preview table")
    assert table.locator("th").all_inner_texts() == ["id", "label", "pixels"]
    assert table.locator("tbody tr").count() == 50
    page.screenshot(path=shots / "04-preview-csv.png", full_page=True)
    with page.expect_download() as download:
        page.locator(".card-head").get_by_role("link", name="Download").click()
    assert download.value.suggested_filename == "labels.csv"
    assert Path(download.value.path()).read_bytes().startswith(b"id,label,pixels\n0,0,0\n")

    page.goto(f"{server}/projects/demo/artifacts/mnist/v1/files/train/images/0001.png")
    image = page.locator("#preview img")
    image.wait_for()
    assert page.evaluate("(img) => img.complete && img.naturalWidth", image.element_handle()) == 48
    page.goto(f"{server}/projects/demo/artifacts/mnist/v1/files/test/labels.parquet")
    assert page.locator("#preview th .type").all_inner_texts() == ["int64", "string", "double"]
    console.expect_clean()


def _wait_ready(page: Any) -> None:
    page.wait_for_selector("#graph[data-ready='1']", timeout=20_000)


def test_lineage_expands_a_collapsed_node_and_opens_a_group(server, page, shots):
    console = Console(page)
    page.goto(f"{server}/projects/demo/artifacts/mnist/v1/lineage")
    _wait_ready(page)
    names = node_names(page)
    assert "mnist:v1" in names and "prep" in names and "8 runs" in names
    assert "mnist:v0" not in names
    page.screenshot(path=shots / "05-lineage.png")

    # prep logged mnist:v0 too: it is drawn collapsed; a click fetches and draws the rest
    before = len(names)
    where = node_position(page, "prep")
    page.mouse.click(where["x"], where["y"])
    page.wait_for_function(f"() => window.cairnLineage.cy.nodes().length > {before}")
    _wait_ready(page)
    assert "mnist:v0" in node_names(page)
    assert page.locator("#node-title").inner_text() == "prep"
    page.screenshot(path=shots / "06-lineage-expanded.png")

    # the eight sweep runs are one group until clicked
    count = len(node_names(page))
    where = node_position(page, "8 runs")
    page.mouse.click(where["x"], where["y"])
    page.wait_for_function(f"() => window.cairnLineage.cy.nodes().length > {count}")
    _wait_ready(page)
    names = node_names(page)
    assert {f"sweep-{i}" for i in range(8)} <= set(names) and "8 runs" not in names

    # a node's card opens its page
    where = node_position(page, "evaluate")
    page.mouse.click(where["x"], where["y"])
    page.locator("#node-open").click()
    page.wait_for_url("**/projects/demo/runs/*")
    assert "evaluate" in page.locator("h1").inner_text()
    console.expect_clean()


def test_the_depth_control_redraws_the_graph(server, page, shots):
    page.goto(f"{server}/projects/demo/artifacts/classifier/v5/lineage?depth=1")
    _wait_ready(page)
    shallow = len(node_names(page))
    page.select_option("#depth", "all")
    page.wait_for_url("**/lineage?depth=all")
    _wait_ready(page)
    deep = node_names(page)
    assert len(deep) > shallow and "raw:v0" in deep and "predictions:v0" in deep
    page.goto(f"{server}/projects/demo/artifacts/classifier/v5/lineage?depth=3")
    _wait_ready(page)
    page.screenshot(path=shots / "ui-lineage.png")  # the README's (docs/)


def test_versions_sort_by_a_metadata_metric_and_filter_with_a_query(server, page, shots):
    console = Console(page)
    page.goto(f"{server}/projects/demo/artifacts/classifier")
    page.locator("#versions thead").get_by_role("link", name="accuracy").click()
    page.wait_for_url("**/classifier?sort=-metadata.accuracy")
    first = page.locator("#versions tbody tr").first
    assert first.locator("td").first.inner_text().startswith("v7")
    page.locator("#versions thead").get_by_role("link", name="accuracy ↓").click()
    page.wait_for_url("**/classifier?sort=metadata.accuracy")
    assert page.locator("#versions tbody tr").first.locator("td").first.inner_text() == "v0"
    # the search box filters with the query language, keeping the sort
    box = page.get_by_role("searchbox", name="Query")
    box.fill("metadata.accuracy > 0.85 AND metadata.epochs < 17")
    box.press("Enter")
    page.wait_for_url("**/classifier?q=*")
    versions = page.locator("#versions tbody tr td:first-child").all_inner_texts()
    assert [v.split()[0] for v in versions] == ["v3", "v4", "v6", "v5"]  # accuracy, ascending
    page.screenshot(path=shots / "07-collection-search.png", full_page=True)
    box = page.get_by_role("searchbox", name="Query")
    box.fill("metadata.accuracy >")
    box.press("Enter")
    assert "invalid query at position" in page.get_by_role("alert").inner_text()
    # the search in the top bar looks through every project
    top = page.get_by_role("searchbox", name="Search versions")
    top.fill("alias = 'production'")
    top.press("Enter")
    page.wait_for_url("**/search?q=*")
    refs = page.locator("#versions tbody tr td:first-child").all_inner_texts()
    assert sorted(r.split()[0] for r in refs) == ["demo/mnist:v1", "demo/raw:v0"]
    assert [e for e in console.errors if "400" not in e] == []


def test_runs_sort_by_a_metric_and_filter_by_group(server, page, shots):
    console = Console(page)
    page.goto(f"{server}/projects/demo")
    page.locator(".tabs").get_by_role("link", name="Runs").click()
    page.wait_for_url("**/projects/demo/runs")
    box = page.get_by_role("searchbox", name="Query")
    box.fill("group = 'sweep-1'")
    box.press("Enter")
    page.wait_for_url("**/runs?q=*")
    assert page.locator("#runs tbody tr").count() == 8
    page.locator("#runs thead").get_by_role("link", name="val_acc").click()
    page.wait_for_url("**sort=-summary.val_acc*")
    names = page.locator("#runs tbody tr td:first-child").all_inner_texts()
    assert names[:3] == ["sweep-7", "sweep-5", "sweep-6"]
    page.screenshot(path=shots / "08-runs-sorted.png", full_page=True)
    page.screenshot(path=shots / "ui-runs.png")  # the README's (docs/)
    page.get_by_role("link", name="sweep-7").click()
    page.wait_for_url("**/projects/demo/runs/*")
    assert page.locator(".card", has_text="Summary").get_by_text("0.91").is_visible()
    assert page.locator(".card", has_text="Config").get_by_text("3e-05").is_visible()
    console.expect_clean()


def test_a_large_sharded_version_shows_its_folders_with_their_sizes_at_once(server, page):
    assert BULK_FOLDERS * BULK_PER_FOLDER > QUICK_FROM
    console = Console(page)
    size = human_size(sum(len(f"0 {i}\n") for i in range(BULK_PER_FOLDER)))
    files = f"{server}/projects/vision/artifacts/bulk/v0/files"
    # a large version's manifest is sharded, and its root knows every folder's size
    response = page.goto(files)
    assert "data-size-of" not in response.text()
    table = page.locator("#files")
    assert table.locator("tbody tr").count() == BULK_FOLDERS
    assert table.locator("tbody tr").first.locator("td").nth(1).inner_text() == size
    assert "…" not in table.inner_text()
    console.expect_clean()


def test_a_missing_page_is_a_page(server, page):
    response = page.goto(f"{server}/projects/demo/artifacts/mnist/v42")
    assert response.status == 404
    assert page.locator("h1").inner_text() == "Not found"
    assert "demo/mnist:v42" in page.locator(".error-page p").first.inner_text()
