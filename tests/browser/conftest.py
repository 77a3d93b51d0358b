"""The shop with its dashboard, driven by headless Chromium (Debian's `chromium`, through
Playwright for Python; no browser download). One shop serves the module's tests.

Each test page records Content-Security-Policy violations (none may occur), `axe()` runs the
vendored axe-core in the page, and `shot()` saves a screenshot under `tests/artifacts/`; the
paths are listed at the end of the run, so CI's log names them.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.settings import SERVICES, Settings
from services.supervisor import read_ready_file
from tests.system.harness import Shop

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
AXE = Path(__file__).with_name("vendor") / "axe.min.js"
TOKEN = "browser-test-admin-token-42"
SAVED: list[Path] = []
WIDE = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/browser/" in str(item.path):
            item.add_marker(pytest.mark.slow)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if SAVED:
        terminalreporter.section("dashboard screenshots")
        for path in SAVED:
            terminalreporter.line(f"screenshot: {path}")


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
        message = f"{CHROMIUM} is missing: run `bash scripts/browser.sh` (apt-get install chromium)"
        if os.environ.get("TIDINGS_REQUIRE_SERVICES") == "1":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        yield browser
        browser.close()


class Running:
    """The running shop: its settings, the orders API and the dashboard's base URL."""

    def __init__(self, shop: Shop, settings: Settings) -> None:
        self.shop = shop
        self.settings = settings
        self.api = shop.api
        info = read_ready_file(settings, "dashboard")
        assert info is not None, "the dashboard is not running"
        self.dashboard = str(info["dashboard"])

    def place(self, customer: str, sku: str, quantity: int = 1) -> str:
        body = {"customer_id": customer, "lines": [{"sku": sku, "quantity": quantity}]}
        key = f"browser-{time.monotonic_ns()}"
        response = httpx.post(f"{self.api}/orders", json=body, headers={"Idempotency-Key": key}, timeout=30)
        assert response.status_code == 201, response.text
        order_id: str = response.json()["order_id"]
        return order_id

    def settled(self, order_id: str, within: float = 60) -> str:
        deadline = time.monotonic() + within
        while True:
            status: str = httpx.get(f"{self.api}/orders/{order_id}", timeout=10).json()["status"]
            if status != "pending":
                return status
            assert time.monotonic() < deadline, f"order {order_id} still pending"
            time.sleep(0.1)

    def dashboard_api(self, path: str) -> Any:
        return httpx.get(f"{self.dashboard}{path}", timeout=10).json()


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("browser") / "data", api_port=0, dashboard_port=0, metrics_port=0
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TIDINGS_DASHBOARD_TOKEN", TOKEN)
        patch.setenv("TIDINGS_DASHBOARD_SAMPLE_INTERVAL", "1")
        with Shop(settings, services=[*SERVICES, "dashboard"]) as running:
            yield Running(running, settings)


@pytest.fixture
def page(chromium: Any, shop: Running) -> Iterator[Any]:
    context = chromium.new_context(viewport=WIDE, base_url=shop.dashboard)
    context.add_init_script(
        "window.__csp = []; document.addEventListener('securitypolicyviolation',"
        " (e) => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));"
    )
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.set_default_timeout(30_000)
    yield page
    violations = page.evaluate("window.__csp || []")
    context.close()
    assert violations == [], f"Content-Security-Policy violations: {violations}"
    assert errors == [], f"errors in the page: {errors}"


def axe(page: Any, view: str) -> None:
    """No serious or critical axe-core violation in the current view (evaluated through the
    DevTools protocol, so the page's CSP stays as it is)."""
    page.evaluate(AXE.read_text(encoding="utf-8"))
    result = page.evaluate("async () => await axe.run(document, { resultTypes: ['violations'] })")
    bad = [
        {"id": item["id"], "impact": item["impact"], "nodes": [node["target"] for node in item["nodes"][:3]]}
        for item in result["violations"]
        if item["impact"] in ("serious", "critical")
    ]
    assert bad == [], f"axe-core on {view}: {json.dumps(bad, indent=1)}"


def shot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"dashboard-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    SAVED.append(path)
    return path


def fits(page: Any) -> None:
    """Nothing wider than the window: no clipped or sideways-scrolling page (scrolling boxes,
    like the journey's lanes, scroll inside themselves)."""
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page is {overflow}px wider than the window"
