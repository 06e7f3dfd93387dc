"""The officer's and HQ's pages in a real browser (Debian's chromium via Playwright),
against a real broker, the archive and two real nodes, each serving its web app.

One network, one browser and one page per person for the whole module (starting
them is most of the cost). ``BLO_WEB_SCREENS=DIR`` also writes the README's
screenshots (officer.png, hq.png) there.
"""

from __future__ import annotations

import io
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from brokers import Network, embedded_broker
from nodekit import Nodes, wait_for
from PIL import Image

from broker.archive_service import ArchiveService
from certs import EnrolmentBundle, Pki
from publisher.cli import main as blo_pub
from web.headless import CHROMIUM, CHROMIUM_ARGS
from web.server import WebServer

KHMER = "រឹបអូសមេតំហ្វេតាមីន ១.៩ គីឡូក្រាម នៅព្រំដែនបាវិត"
BAVET = (11.0791, 106.1846)

playwright_api = pytest.importorskip("playwright.sync_api")
if not Path(CHROMIUM).exists():
    if os.environ.get("CI"):
        pytest.fail(".ci/run installs chromium: it is missing", pytrace=False)
    pytest.skip("chromium is not installed (apt-get install chromium)", allow_module_level=True)


@dataclass
class Site:
    """The running network, the two web apps and a browser page for each person."""

    network: Network
    nodes: Nodes
    hq_url: str
    officer_url: str
    hq: Any  # playwright Page
    officer: Any
    root: Path
    alerts: list[str]


def launch(playwright: Any) -> Any:
    """Debian's chromium, headless: no browser download, no network of its own."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def alert(site: Site, headline: str, headline_km: str | None = None) -> str:
    """HQ sends an alert to every Cambodian office with blo-pub; returns its id."""
    argv = ["alert", "--bundle", str(site.network.bundle("kh-nacd"))]
    argv += ["--data", str(site.nodes.folder("kh-nacd")), "--scope", "country:kh"]
    argv += ["--category", "drug_seizure", "--severity", "severe", "--headline", headline]
    if headline_km:
        argv += ["--headline-km", headline_km]
    before = {q.msg_id for q in site.nodes.running["kh-nacd"].outbox.range(1, None)}
    assert blo_pub(argv) == 0
    new = [q for q in site.nodes.running["kh-nacd"].outbox.range(1, None) if q.msg_id not in before]
    site.alerts.append(new[0].msg_id.hex())
    return new[0].msg_id.hex()


def arrived(site: Site, node: str, msg_id: str) -> bool:
    inbox = site.nodes.running[node].inbox
    return any(s.msg_id.hex() == msg_id for s in inbox.messages())


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("web")
    network = Network(root)
    with embedded_broker(network) as broker:
        archive = ArchiveService(
            EnrolmentBundle.load(network.bundle("kh-archive")),
            "127.0.0.1",
            broker.port,
            root / "archive.sqlite3",
            trust_source=Pki(network.kh).trust_messages,
            gap_grace=timedelta(seconds=1),
            probe_every=3.0,
        )
        archive.start()
        nodes = Nodes(network, broker.port, root)
        servers = []
        try:
            assert archive.connected.wait(10)
            for node in ("kh-nacd", "kh-blo-bavet"):
                assert nodes.start(node).connected.wait(10)
                server = WebServer(
                    EnrolmentBundle.load(network.bundle(node)),
                    nodes.folder(node),
                    port=0,
                    watch_period=0.2,
                )
                server.start()
                servers.append(server)
            from playwright.sync_api import sync_playwright

            with sync_playwright() as pw:
                browser = launch(pw)
                hq = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
                officer = browser.new_context(
                    viewport={"width": 1024, "height": 768}, has_touch=True
                ).new_page()
                yield Site(network, nodes, servers[0].url, servers[1].url, hq, officer, root, [])
                browser.close()
        finally:
            for server in servers:
                server.stop()
            nodes.stop_all()
            archive.stop()


def screens(name: str) -> Path | None:
    folder = os.environ.get("BLO_WEB_SCREENS")
    if not folder:
        return None
    Path(folder).mkdir(parents=True, exist_ok=True)
    return Path(folder) / name


def test_officer_opens_an_alert_and_hq_sees_it_read_live(site: Site) -> None:
    msg_id = alert(site, "1.9 kg methamphetamine seized at Dong Kralor", KHMER)
    hq, officer = site.hq, site.officer
    hq.goto(site.hq_url)
    officer.goto(site.officer_url)
    # The officer's inbox fills in by itself once the alert is stored (server-sent events).
    row = officer.locator(f'a.headline[href="/m/{msg_id}"]')
    row.wait_for(timeout=20_000)
    assert "unread" in (officer.locator("tr", has=row).get_attribute("class") or "")
    hq.locator(f'[data-alert="{msg_id}"]').wait_for(timeout=10_000)
    hq.evaluate("window.__notReloaded = true")
    assert "0 of 2 read" in hq.locator("#read-total").inner_text()
    started = time.monotonic()
    row.click()
    officer.wait_for_url(f"**/m/{msg_id}")
    # HQ's matrix: the read receipt travelled tablet -> broker -> HQ, and the page updated.
    hq.locator("#read-total", has_text="1 of 2 read").wait_for(timeout=5_000)
    seconds = time.monotonic() - started
    assert seconds < 5
    assert hq.evaluate("window.__notReloaded") is True  # live, not a reload
    bavet = hq.locator('tr[data-office="kh-blo-bavet"]')
    assert "read" in (bavet.get_attribute("class") or "")
    assert "never" in (hq.locator('tr[data-office="kh-blo-poipet"]').get_attribute("class") or "")
    # The page's read went through blo-sub show's path: the inbox says read, a receipt queued.
    inbox = site.nodes.running["kh-blo-bavet"].inbox
    assert next(s for s in inbox.messages() if s.msg_id.hex() == msg_id).read_at is not None


def _ink_columns(png: bytes) -> tuple[int, int]:
    """(columns holding a vertical stroke over 60% of the ink's height, columns with ink).

    A missing glyph is drawn as a box: two tall vertical edges per character.
    Khmer letters have no stroke that tall (vowels above, subscripts below)."""
    image = Image.open(io.BytesIO(png)).convert("L")
    w, h = image.size
    px = image.load()
    ink = [[px[x, y] < 110 for x in range(w)] for y in range(h)]
    rows = [y for y in range(h) if any(ink[y])]
    if not rows:
        return 0, 0
    top, bottom = rows[0], rows[-1]
    need = 0.6 * (bottom - top + 1)
    tall = 0
    for x in range(w):
        run = best = 0
        for y in range(top, bottom + 1):
            run = run + 1 if ink[y][x] else 0
            best = max(best, run)
        tall += best >= need
    inked = sum(any(ink[y][x] for y in range(h)) for x in range(w))
    return tall, inked


def test_khmer_headline_renders_with_a_khmer_font(site: Site) -> None:
    msg_id = alert(site, "Cannabis seized at Poipet", KHMER)
    assert wait_for(lambda: arrived(site, "kh-blo-bavet", msg_id), 20)
    page = site.officer
    page.goto(f"{site.officer_url}lang/km?next=/")
    headline = page.locator(f'a.headline[href="/m/{msg_id}"]')
    headline.wait_for(timeout=10_000)
    assert headline.inner_text() == KHMER
    # Which fonts drew it, from the browser itself (DevTools protocol).
    cdp = page.context.new_cdp_session(page)
    cdp.send("DOM.enable")
    cdp.send("CSS.enable")
    selector = f'a.headline[href="/m/{msg_id}"]'
    for attempt in range(5):
        # A live update may swap the region between two calls (the node id goes stale).
        try:
            root = cdp.send("DOM.getDocument")["root"]["nodeId"]
            node = cdp.send("DOM.querySelector", {"nodeId": root, "selector": selector})
            fonts = cdp.send("CSS.getPlatformFontsForNode", {"nodeId": node["nodeId"]})["fonts"]
            break
        except playwright_api.Error:
            if attempt == 4:
                raise
            page.wait_for_timeout(200)
    khmer = sum(f["glyphCount"] for f in fonts if "khmer" in f["familyName"].lower())
    assert khmer >= len(KHMER.replace(" ", "")) * 0.6, fonts
    # On the screenshot: no missing-glyph boxes. Positive control: the same check on a
    # line of characters no font has, in DejaVu Sans (the first font of the English
    # pages, which is what Khmer would fall back to without a Khmer font), finds boxes.
    shot = headline.screenshot()
    page.evaluate(
        """([text, selector]) => {
            const p = document.createElement("p");
            p.id = "tofu";
            const size = getComputedStyle(document.querySelector(selector)).fontSize;
            p.lang = "en";
            p.style.font = "bold " + size + " 'DejaVu Sans'";
            p.textContent = text;
            document.querySelector("main").prepend(p);
        }""",
        [
            "\U0010fffd\U0010fffc\U0010fffb A \U0010fffd\U0010fffc",
            f'a.headline[href="/m/{msg_id}"]',
        ],
    )
    control = page.locator("#tofu").screenshot()
    shots = site.root / "screens"
    shots.mkdir(exist_ok=True)
    (shots / "khmer-headline.png").write_bytes(shot)
    (shots / "missing-glyphs-control.png").write_bytes(control)
    page.evaluate("document.getElementById('tofu').remove()")
    tall_km, inked_km = _ink_columns(shot)
    tall_tofu, _ = _ink_columns(control)
    assert tall_tofu >= 6, "the box detector did not see the control's boxes"
    assert tall_km <= 2, f"{tall_km} box-like columns in the Khmer headline"
    assert inked_km > 150, "the headline drew almost nothing (blank glyphs?)"
    page.screenshot(path=str(shots / "officer-km.png"))
    if out := screens("officer.png"):  # the README's: the officer's inbox in Khmer
        page.screenshot(path=str(out))
    page.goto(f"{site.officer_url}lang/en?next=/")


def test_message_text_is_escaped_and_nothing_runs(site: Site) -> None:
    evil = '<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2">'
    evil_km = '"><img src=x onerror=window.__xss=3><svg onload=window.__xss=4>'
    msg_id = alert(site, evil, evil_km)
    assert wait_for(lambda: arrived(site, "kh-blo-bavet", msg_id), 20)
    page = site.officer
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    response = page.goto(f"{site.officer_url}lang/en?next=/")
    assert response is not None
    assert "script-src 'self'" in response.headers["content-security-policy"]
    link = page.locator(f'a.headline[href="/m/{msg_id}"]')
    link.wait_for(timeout=10_000)
    assert link.inner_text() == evil  # shown as text, whole
    link.click()
    page.wait_for_url(f"**/m/{msg_id}")
    texts = page.locator(".text .headline").all_inner_texts()
    assert evil in texts
    assert evil_km in texts
    page.wait_for_timeout(300)  # an image error handler would have run by now
    assert page.evaluate("typeof window.__xss") == "undefined"
    assert page.locator("main img[src=x], main svg[onload]").count() == 0
    # Positive control: the same page does run a script when one is really put in it.
    page.evaluate("window.__xss = 'control'")
    assert page.evaluate("window.__xss") == "control"
    assert not dialogs


def test_a_form_without_its_csrf_token_is_refused(site: Site) -> None:
    page = site.officer
    page.goto(f"{site.officer_url}bulletin")
    token = page.locator('input[name="csrf"]').first.get_attribute("value")
    form = {"to": "vn-blo-mocbai", "headline_en": "Courier on a red motorbike"}
    refused = page.request.post(f"{site.officer_url}bulletin", form=form)
    assert refused.status == 403
    forged = page.request.post(f"{site.officer_url}bulletin", form={**form, "csrf": "0" * 64})
    assert forged.status == 403
    # The same form with the page's token is taken: signed and queued by the node.
    taken = page.request.post(f"{site.officer_url}bulletin", form={**form, "csrf": token or ""})
    assert taken.status == 200, taken.text()
    assert "Signed and queued" in taken.text()


def _photo(path: Path) -> Path:
    noise = Image.frombytes("RGB", (640, 480), os.urandom(640 * 480 * 3))
    noise.save(path, "JPEG", quality=80)
    return path


def test_an_incident_with_a_photo_from_the_officer_reaches_hq(site: Site, tmp_path: Path) -> None:
    page = site.officer
    page.goto(f"{site.officer_url}report")
    page.select_option('select[name="crime"]', "drug_trafficking")
    page.fill("#lat", str(BAVET[0]))
    page.fill("#lon", str(BAVET[1]))
    page.fill('input[name="place"]', "Bavet checkpoint")
    page.fill('input[name="substance_1"]', "methamphetamine")
    page.fill('input[name="quantity_1"]', "1.9")
    page.select_option('select[name="unit_1"]', "kg")
    page.check('input[name="agency"][value="police"]')
    page.fill('textarea[name="narrative_km"]', "រឹបអូសនៅព្រំដែន")
    page.set_input_files('input[name="photo"][multiple]', str(_photo(tmp_path / "seizure.jpg")))
    page.click("button.primary")
    page.locator("p.ok, p.error").first.wait_for(timeout=15_000)
    assert page.locator("p.error").count() == 0, page.locator("p.error").inner_text()
    sent = page.locator("p.ok code").inner_text()
    hq = site.hq
    hq.goto(site.hq_url)
    hq.evaluate("window.__notReloaded = true")
    row = hq.locator("table.incident-list tr", has_text="Bavet checkpoint")
    row.wait_for(timeout=20_000)
    incident = row.get_attribute("data-id") or ""
    assert incident.startswith(sent)
    assert hq.locator(f'svg.map a[href="/m/{incident}"] circle').count() == 1
    # The photo follows in chunks; the list shows it once it is whole at HQ.
    hq.locator(f'a.photo.done[href="/photo/{incident}/1"]').wait_for(timeout=30_000)
    assert hq.evaluate("window.__notReloaded") is True
    image = hq.request.get(f"{site.hq_url}photo/{incident}/1")
    assert image.status == 200
    assert image.body()[:2] == b"\xff\xd8"
    thumb = hq.request.get(f"{site.hq_url}photo/{incident}/1?size=preview")
    assert thumb.status == 200
    assert len(thumb.body()) < len(image.body())  # the list's thumbnail is the preview
    if out := screens("hq.png"):  # the README's: the first alert's matrix, the incident
        hq.goto(f"{site.hq_url}?alert={site.alerts[0]}")
        hq.locator(f'a.photo.done[href="/photo/{incident}/1"]').wait_for(timeout=10_000)
        hq.screenshot(path=str(out), full_page=True)
    # blo-trends over what HQ holds: the week's table and its plots (trends/plots.py).
    hq.goto(f"{site.hq_url}trends")
    assert "Trends, week" in hq.locator("h1").inner_text()
    # This week's incident is not in a complete week yet: the page says so, nothing broke.
    assert "complete weeks" in hq.locator("main").inner_text()
    shutil.rmtree(tmp_path, ignore_errors=True)
