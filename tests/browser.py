"""Headless Chromium for browser tests: Debian's /usr/bin/chromium driven by Playwright
(never `playwright install`: it downloads browsers). .ci/run installs the package.

    with chromium() as browser:
        page = browser.new_page()
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
#: as root in a sandbox, offline: no sandbox, no GPU, no background requests to the network
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]
VIEWPORT = {"width": 1360, "height": 860}


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    import pytest
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"{CHROMIUM} is missing: apt-get install -y chromium chromium-driver (.ci/run does)",
            pytrace=False,
        )
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


def screenshots(default: Path) -> Path:
    """Where the tests save their screenshots: $CAIRN_UI_SCREENSHOTS, else `default`."""
    folder = Path(os.environ.get("CAIRN_UI_SCREENSHOTS") or default)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class Console:
    """Collects a page's script errors and failed requests, to assert there were none."""

    def __init__(self, page: Any):
        self.errors: list[str] = []
        page.on("pageerror", lambda e: self.errors.append(f"script error: {e}"))
        page.on(
            "console",
            lambda m: self.errors.append(f"console: {m.text}") if m.type == "error" else None,
        )

    def expect_clean(self) -> None:
        assert self.errors == [], self.errors


def node_position(page: Any, name: str) -> dict[str, float]:
    """Where a lineage node is drawn on the page (cytoscape draws on a canvas)."""
    return page.evaluate(
        """(name) => {
            const cy = window.cairnLineage.cy;
            const node = cy.nodes().filter((n) => n.data("name") === name)[0];
            if (!node) return null;
            const p = node.renderedPosition();
            const box = cy.container().getBoundingClientRect();
            return {x: box.left + p.x, y: box.top + p.y};
        }""",
        name,
    )


def node_names(page: Any) -> list[str]:
    return page.evaluate("() => window.cairnLineage.cy.nodes().map((n) => n.data('name'))")
