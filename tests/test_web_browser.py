"""The dashboard in headless Chromium (Playwright) against a real gateway in-process and a real REST target.

An operator finds a failed order by its PO number, sees the error, retries it and sees it
delivered; a viewer cannot retry and sees masked payloads. Screenshots of the overview and
the transmission page go to the test's tmp dir, and to tests/artifacts/ when
GATEWAY_SCREENSHOTS is set.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from gateway.app import Gateway
from gateway.config import load_deployment
from harness import REPO, SECRET, RecordingTarget, drop, edifact_order, make_deployment
from gateway.store import Store
from web_helpers import PASSWORDS, Dashboard, add_users, eventually

CHROMIUM = Path("/usr/bin/chromium")
playwright_api = pytest.importorskip("playwright.async_api", reason="playwright is not installed (pip install playwright)")
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium (apt-get install -y chromium)")]


def keep(shot: Path) -> None:
    """Copy a screenshot to tests/artifacts/ when asked to (GATEWAY_SCREENSHOTS)."""
    if os.environ.get("GATEWAY_SCREENSHOTS"):
        (REPO / "tests" / "artifacts").mkdir(exist_ok=True)
        shutil.copy(shot, REPO / "tests" / "artifacts" / shot.name)


async def sign_in(browser: object, url: str, name: str) -> object:
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})   # type: ignore[attr-defined]
    page = await context.new_page()
    await page.goto(f"{url}/")
    assert "/ui/login" in page.url   # no session: the login page
    await page.fill("input[name=username]", name)
    await page.fill("input[name=password]", PASSWORDS[name])
    await page.click("button:has-text('Sign in')")
    await page.wait_for_url(f"{url}/")
    return page


@pytest.fixture
async def running(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A gateway delivering ACME's orders to a REST target that refuses the first one (400) and takes the rest."""
    target = RecordingTarget()
    answers = iter([400])
    target.mode = lambda document: next(answers, 200)
    monkeypatch.setenv("GW_HARNESS_SECRET", SECRET)
    deployment = load_deployment(make_deployment(tmp_path / "gw", target.url))
    store = Store.open(deployment.settings.store.url, deployment.settings.store.blobs)
    add_users(store)
    gateway = Gateway(deployment, store)
    await gateway.start()
    try:
        async with Dashboard(deployment, store, write=gateway.write, on_queued=gateway.worker.wake) as dash:
            yield {"dash": dash, "store": store, "target": target, "inbox": deployment.partners["ACME"].inbox}
    finally:
        await gateway.stop()
        store.close()
        target.close()


async def test_operator_finds_a_failed_order_by_po_number_retries_it_and_sees_it_delivered(running: dict,
                                                                                           tmp_path: Path) -> None:
    store, target, url = running["store"], running["target"], running["dash"].url
    drop(running["inbox"], "po-7781.edi", edifact_order("PO-7781"))
    await eventually(lambda: store.deliveries(status="dead"), 20, "the refused delivery to be dead-lettered")
    for n in range(1, 4):   # some traffic that goes through, for the overview
        drop(running["inbox"], f"po-80{n}.edi", edifact_order(f"PO-80{n}", lines=n))
    await eventually(lambda: len(target.received) == 3, 20, "three orders delivered")

    async with playwright_api.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM))
        page = await sign_in(browser, url, "olivia")
        assert await page.inner_text("#dead-letters") == "1"
        await page.screenshot(path=str(tmp_path / "overview.png"), full_page=True)
        keep(tmp_path / "overview.png")

        await page.click("nav >> text=Transmissions")
        await page.fill("input[name=number]", "PO-7781")
        await page.click("button:has-text('Search')")
        rows = page.locator("table.results tbody tr")
        assert await rows.count() == 1
        await rows.locator("a").first.click()
        assert "HTTP 400" in await page.inner_text(".last-error")
        assert await page.inner_text(".delivery-status") == "dead"
        await page.click("button.retry")
        await page.wait_for_selector("p.notice")
        for _ in range(100):   # the worker delivers it in the background; reload until the page says so
            if await page.inner_text(".delivery-status") == "delivered":
                break
            await page.wait_for_timeout(100)
            await page.reload()
        assert await page.inner_text(".delivery-status") == "delivered"
        assert "operator" in await page.inner_text("table.timeline")
        await page.screenshot(path=str(tmp_path / "transmission.png"), full_page=True)
        keep(tmp_path / "transmission.png")
        await browser.close()
    assert [r["document"]["document"]["number"] for r in target.received].count("PO-7781") == 1


async def test_viewer_cannot_retry_and_sees_masked_payloads(running: dict, tmp_path: Path) -> None:
    store, url = running["store"], running["dash"].url
    drop(running["inbox"], "po-9001.edi", edifact_order("PO-9001"))
    dead = (await eventually(lambda: store.deliveries(status="dead"), 20, "the refused delivery"))[0]
    async with playwright_api.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM))
        page = await sign_in(browser, url, "victor")
        await page.goto(f"{url}/transmissions?number=PO-9001")
        await page.locator("table.results tbody tr a").first.click()
        assert await page.inner_text(".delivery-status") == "dead"
        assert await page.locator("button.retry").count() == 0 and await page.locator("#replay").count() == 0
        assert "operators only" in await page.inner_text("#raw-hidden")
        payload = await page.inner_text("pre.document-payload")
        assert '"name": "***"' in payload and '"unit_price": "***"' in payload and "ACME Retail Europe" not in payload
        # Even a hand-made POST with the viewer's own valid CSRF token is refused.
        status = await page.evaluate("""async (path) => {
            const csrf = document.querySelector("input[name=csrf]").value;
            const response = await fetch(path, {method: "POST", body: new URLSearchParams({csrf})});
            return response.status;
        }""", f"/ui/deliveries/{dead.id}/retry")
        assert status == 403
        await page.screenshot(path=str(tmp_path / "transmission-viewer.png"), full_page=True)
        keep(tmp_path / "transmission-viewer.png")
        await browser.close()
    assert store.delivery(dead.id).status.value == "dead"
