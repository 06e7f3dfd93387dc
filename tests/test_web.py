"""The web app without a browser: bind policy, sessions and CSRF, headers, escaping,
view models, the SVG map and the change watcher (no broker; Starlette's test client
calls the app in-process, no socket)."""

from __future__ import annotations

import sqlite3
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from brokers import Network
from netsim import ALERT, NOW, Net

with warnings.catch_warnings():  # Starlette 1.x would rather have httpx2; httpx works
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from certs import EnrolmentBundle, Pki
from schemas import Kind, Lang, Scope, Severity, open_envelope
from subscriber.inbox import Stored
from web.app import COOKIE, WebApp, render
from web.errors import BindRefused
from web.live import Watcher, changed, sse
from web.node import WebNode
from web.security import (
    BindPolicy,
    Sessions,
    check_bind,
    hash_password,
    host_allowed,
    is_loopback,
    verify_password,
)
from web.svgmap import HEIGHT, WIDTH, borders_svg, project
from web.views import (
    WORDS,
    InboxRow,
    OfficeRow,
    inbox_rows,
    matrix,
    message_view,
    office_points,
    office_rows,
)

EVIL = '<script>alert(1)</script><img src=x onerror="alert(2)">'


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Network:
    made = Network(tmp_path_factory.mktemp("webnet"))
    # HQ's bundle with the offices in its keyset (blo-certs issue re-writes it so; the
    # test network wrote it first), as if its blo-sub run had fetched the keyset.
    Pki(made.kh).write_bundle("kh-nacd")
    return made


def client_for(network: Network, node: str, folder: Path, **kw: object) -> TestClient:
    app = WebApp(WebNode(EnrolmentBundle.load(network.bundle(node)), folder), BindPolicy(), **kw)  # type: ignore[arg-type]
    return TestClient(app.app, base_url="http://127.0.0.1:8080")


# -- bind policy -------------------------------------------------------------------------


def test_loopback_is_the_only_bind_without_tls_and_login(tmp_path: Path) -> None:
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        assert is_loopback(host)
        check_bind(BindPolicy(host=host))
    cert, key, logins = tmp_path / "c.pem", tmp_path / "k.pem", tmp_path / "logins"
    for host in ("0.0.0.0", "192.168.1.20", "tablet.local", "::"):
        with pytest.raises(BindRefused, match="TLS"):
            check_bind(BindPolicy(host=host))
        with pytest.raises(BindRefused, match="login"):
            check_bind(BindPolicy(host=host, certfile=cert, keyfile=key))
        with pytest.raises(BindRefused, match="TLS"):
            check_bind(BindPolicy(host=host, login_file=logins))
        # Positive controls: TLS with a login, or with client certificates, is accepted.
        check_bind(BindPolicy(host=host, certfile=cert, keyfile=key, login_file=logins))
        check_bind(BindPolicy(host=host, certfile=cert, keyfile=key, client_ca=cert))


def test_blo_sub_run_refuses_a_lan_bind_without_tls_at_start(
    network: Network, tmp_path: Path
) -> None:
    import subprocess
    import sys

    argv = ["run", "--bundle", str(network.bundle("kh-blo-bavet")), "--data", str(tmp_path)]
    argv += ["-p", "1", "--web", "--web-host", "0.0.0.0", "--web-port", "0"]
    code = "import sys; from subscriber.cli import main; sys.exit(main(sys.argv[1:]))"
    # Its own process: a refusal that did not happen would leave it running, not hang here.
    run = subprocess.Popen([sys.executable, "-c", code, *argv], stderr=subprocess.PIPE, text=True)
    try:
        _, err = run.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        run.kill()
        run.communicate()
        pytest.fail("blo-sub run --web --web-host 0.0.0.0 started instead of refusing")
    assert run.returncode == 1
    assert "will not listen on 0.0.0.0 without TLS" in err


# -- sessions, CSRF, headers, host -------------------------------------------------------


def test_session_cookies_and_csrf_tokens_are_bound_to_the_secret() -> None:
    sessions = Sessions(b"k" * 32)
    sid = Sessions.new_id()
    assert sessions.read(sessions.cookie(sid, "ana")) == (sid, "ana")
    assert sessions.read(sessions.cookie(sid, "ana").replace("ana", "bob")) is None
    assert sessions.read(Sessions(b"x" * 32).cookie(sid)) is None
    assert sessions.read(None) is None
    token = sessions.csrf_token(sid)
    assert sessions.csrf_ok(sid, token)
    assert not sessions.csrf_ok(Sessions.new_id(), token)
    assert not sessions.csrf_ok(sid, None)
    assert not sessions.csrf_ok(sid, "")


def test_passwords_are_scrypt_hashes() -> None:
    stored = hash_password("correct horse battery")
    assert stored.startswith("scrypt$")
    assert verify_password(stored, "correct horse battery")
    assert not verify_password(stored, "correct horse batterz")
    assert not verify_password("junk", "x")


def test_host_header_must_be_loopback_on_a_loopback_bind() -> None:
    policy = BindPolicy()
    assert host_allowed("127.0.0.1:8080", policy)
    assert host_allowed("localhost:8080", policy)
    assert host_allowed("[::1]:8080", policy)
    assert not host_allowed("evil.example:8080", policy)  # DNS rebinding
    assert host_allowed("tablet.lan", BindPolicy(host="0.0.0.0"))


def test_a_post_without_its_csrf_token_is_refused(network: Network, tmp_path: Path) -> None:
    client = client_for(network, "kh-blo-bavet", tmp_path)
    page = client.get("/bulletin")
    assert page.status_code == 200
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    cookie = page.cookies.get(COOKIE)
    assert cookie
    token = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    form = {"to": "vn-blo-mocbai", "headline_en": "Courier on a red motorbike"}
    assert client.post("/bulletin", data=form).status_code == 403
    assert client.post("/bulletin", data={**form, "csrf": "f" * 64}).status_code == 403
    # A token from another session is not this session's.
    other = client_for(network, "kh-blo-bavet", tmp_path)
    other_token = other.get("/bulletin").text.split('name="csrf" value="', 1)[1].split('"')[0]
    assert client.post("/bulletin", data={**form, "csrf": other_token}).status_code == 403
    taken = client.post("/bulletin", data={**form, "csrf": token})
    assert taken.status_code == 200, taken.text
    assert "Signed and queued" in taken.text


def test_a_foreign_host_header_is_refused(network: Network, tmp_path: Path) -> None:
    client = client_for(network, "kh-blo-bavet", tmp_path)
    assert client.get("/", headers={"host": "evil.example"}).status_code == 421
    assert client.get("/", headers={"host": "127.0.0.1:8080"}).status_code == 200


def test_with_a_login_file_every_page_asks_for_it(network: Network, tmp_path: Path) -> None:
    client = client_for(
        network, "kh-nacd", tmp_path, logins={"hq": hash_password("a long passphrase")}
    )
    first = client.get("/", follow_redirects=False)
    assert first.status_code == 303
    assert first.headers["location"] == "/login"
    login = client.get("/login")
    token = login.text.split('name="csrf" value="', 1)[1].split('"')[0]
    wrong = client.post("/login", data={"user": "hq", "password": "nope", "csrf": token})
    assert wrong.status_code == 401
    good = client.post(
        "/login",
        data={"user": "hq", "password": "a long passphrase", "csrf": token},
        follow_redirects=False,
    )
    assert good.status_code == 303
    assert client.get("/").status_code == 200


# -- escaping and view models ------------------------------------------------------------


def page(template: str, *, hq: bool = False, lang: str = "en", **values: object) -> str:
    """``template`` rendered with a minimal page context (the base template's needs)."""
    context: dict[str, object] = {
        "status": {"link": "up", "last_error": None, "waiting": 0, "sent": 0},
        "ui": {k: "" for k in ("inbox", "unread", "link", "last_error", "waiting", "sent")}
        | {"active": "active", "nothing": "", "other_lang": "km", "language": ""},
        "lang": lang,
        "node": "kh-nacd" if hq else "kh-blo-bavet",
        "role": "hq" if hq else "blo",
        "hq": hq,
        "csrf": "t",
        "path": "/hq" if hq else "/",
    }
    return render(template, **(context | values))


def test_text_from_a_message_is_escaped_in_every_template() -> None:
    row = InboxRow(
        "ab" * 16, "2026-11-30 08:00", EVIL, "alert", "severe", EVIL, EVIL, "active", True
    )
    html = page(
        "officer.html",
        rows=[row],
        unread=1,
        status={"link": EVIL, "last_error": EVIL, "waiting": 0, "sent": 0},
    )
    assert "<script>alert" not in html
    assert "<img src=x" not in html
    assert (
        "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=&#34;alert(2)&#34;&gt;" in html
    )


def test_the_officer_reads_kind_and_severity_in_khmer() -> None:
    sealed = open_envelope(Net().send("kh-nacd", ALERT, Scope.country("kh")))
    items = [Stored(sealed, sealed.decode_body(), "t", NOW, None)]
    km, en = (inbox_rows(items, lang, NOW, {})[0] for lang in (Lang.KM, Lang.EN))
    assert en.what == "severe"
    assert km.what == "ធ្ងន់ធ្ងរ"
    assert km.severity == en.severity == "severe"  # the CSS class, whatever the language
    assert message_view(items[0], Lang.KM, NOW, {}).what == "ការប្រកាសអាសន្ន"
    assert message_view(items[0], Lang.EN, NOW, {}).what == "alert"
    html = page("officer.html", lang="km", rows=[km], unread=1)
    assert '<span class="sev severe">ធ្ងន់ធ្ងរ</span>' in html
    shown = {s.value for s in Severity} | {
        k.label for k in (Kind.ALERT, Kind.INCIDENT, Kind.BULLETIN, Kind.TREND, Kind.RECEIPT)
    }
    assert shown <= WORDS["km"].keys(), shown - WORDS["km"].keys()


def test_hq_map_places_the_offices_it_knows_with_their_state() -> None:
    rows = [
        OfficeRow("kh-blo-bavet", "2026-11-30 08:00", "heard recently"),
        OfficeRow("kh-blo-poipet", "", "never heard from"),
        OfficeRow("kh-blo-nowhere", "", "quiet"),  # not in trends.offices: listed, not placed
    ]
    points = office_points(rows)
    assert [(p.label, p.state) for p in points] == [
        ("Bavet (kh-blo-bavet): heard recently", "heard recently"),
        ("Poipet (kh-blo-poipet): never heard from", "never heard from"),
    ]
    bavet, poipet = points
    assert (bavet.x, bavet.y) == project(11.07, 106.16)
    assert poipet.x < bavet.x  # Poipet is west of Bavet
    assert poipet.y < bavet.y  # and north of it (y grows southwards)
    assert all(0 <= p.x <= WIDTH and 0 <= p.y <= HEIGHT for p in points)
    html = page(
        "hq.html",
        hq=True,
        alerts=[],
        shown=None,
        offices=rows,
        office_points=points,
        incidents=[],
        points=[],
        map_w=WIDTH,
        map_h=HEIGHT,
    )
    assert html.count('class="office ') == 2
    assert 'class="office never-heard-from"><title>Poipet (kh-blo-poipet)' in html


def test_the_delivery_matrix_counts_read_as_delivered() -> None:
    t0 = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    m = matrix(
        b"\x01" * 16,
        "h",
        "country:kh",
        t0,
        ["kh-a", "kh-b", "kh-c"],
        {"kh-a": {"delivered": t0, "read": t0}, "kh-b": {"read": t0}},
    )
    assert (m.totals.offices, m.totals.delivered, m.totals.read, m.totals.never) == (3, 2, 2, 1)
    assert [r.office for r in m.rows if not r.delivered] == ["kh-c"]
    rows = office_rows(["kh-a", "kh-b", "kh-c"], {"kh-a": t0, "kh-b": t0 - timedelta(days=1)}, t0)
    assert [r.state for r in rows] == ["heard recently", "quiet", "never heard from"]


def test_the_border_map_is_small_and_in_frame() -> None:
    svg = borders_svg()
    assert svg.startswith("<svg")
    assert len(svg) < 50_000
    assert svg.count("<path") >= 6
    x, y = project(11.0791, 106.1846)  # Bavet: south-east of the frame, inside it
    assert 0 < x < WIDTH
    assert 0 < y < HEIGHT


# -- live updates ----------------------------------------------------------------------


def test_the_watcher_sees_commits_from_other_connections(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "inbox.sqlite3")
    db.execute("CREATE TABLE t (x)")
    db.commit()
    watcher = Watcher(tmp_path)
    watcher.poll()
    before = watcher.versions
    assert watcher.poll() == []  # nothing committed since
    db.execute("INSERT INTO t VALUES (1)")
    db.commit()
    assert watcher.poll() == ["inbox"]
    assert changed(before, watcher.versions) == ["inbox"]
    watcher.stop() if watcher._thread.is_alive() else None
    db.close()
    assert sse("change", "inbox outbox") == b"event: change\ndata: inbox outbox\n\n"
    with pytest.raises(ValueError, match="one line"):
        sse("change", "a\ndata: injected")


# -- blo-demo --web --------------------------------------------------------------------


def test_blo_demo_web_serves_hq_page_while_the_story_plays(tmp_path: Path) -> None:
    import re
    import urllib.request

    from demo.config import DemoSettings
    from demo.scenario import Demo

    demo = Demo(
        DemoSettings(live=False, pace=0.2, timeout=90, offices=3, web=True, web_port=0), tmp_path
    )
    pages: list[str] = []

    def watch(demo: Demo, _: object) -> None:
        if demo.web is not None and not any(re.search(r"\d+ of \d+ read", p) for p in pages):
            with urllib.request.urlopen(demo.web.url, timeout=5) as response:
                pages.append(response.read().decode())

    outcome = demo.run(watch)
    assert outcome.ok, outcome.problems
    said = [e.text for e in demo.events if "HQ's page" in e.text]
    assert said
    assert "http://127.0.0.1:" in said[0]
    assert any(re.search(r"\d+ of \d+ read", p) for p in pages), pages[-1][:2000]


def test_hq_composes_an_alert_through_blo_pubs_checks(network: Network, tmp_path: Path) -> None:
    from publisher import Outbox
    from schemas import Alert, Lang, open_envelope

    client = client_for(network, "kh-nacd", tmp_path)
    page = client.get("/compose")
    assert "<option selected>country:kh</option>" in page.text or "country:kh" in page.text
    token = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    form = {
        "csrf": token,
        "scope": "country:kh",
        "category": "drug_seizure",
        "severity": "severe",
        "expires_in": "2d",
        "headline_en": "1.9 kg methamphetamine seized at Dong Kralor",
        "headline_km": "រឹបអូសមេតំហ្វេតាមីន ១.៩ គីឡូក្រាម",
    }
    sent = client.post("/compose", data=form)
    assert sent.status_code == 200, sent.text
    assert "Signed and queued" in sent.text
    # Refused before signing, with blo-pub's sentence: nothing more is queued.
    blank = client.post("/compose", data={**form, "headline_en": "   ", "headline_km": ""})
    assert blank.status_code == 400
    assert "an alert needs a headline" in blank.text
    abroad = client.post("/compose", data={**form, "scope": "country:vn"})
    assert abroad.status_code == 400
    assert "not queued" in abroad.text
    signer = EnrolmentBundle.load(network.bundle("kh-nacd")).signer()
    outbox = Outbox(tmp_path / "outbox.sqlite3", signer)
    queued = outbox.pending()
    outbox.close()
    assert len(queued) == 1
    body = open_envelope(queued[0].data).decode_body()
    assert isinstance(body, Alert)
    assert body.text[Lang.KM].headline == form["headline_km"]
    # An update chained to it, as blo-pub alert --update ID does.
    first = queued[0].msg_id.hex()
    page = client.get("/compose")
    assert f'value="update:{first}"' in page.text
    update = client.post("/compose", data={**form, "chain": f"update:{first}"})
    assert update.status_code == 200, update.text
    stranger = client.post("/compose", data={**form, "chain": "cancel:" + "ab" * 16})
    assert stranger.status_code == 400
    outbox = Outbox(tmp_path / "outbox.sqlite3", signer)
    newest = open_envelope(outbox.pending()[-1].data).decode_body()
    outbox.close()
    assert isinstance(newest, Alert)
    assert newest.msg_type.value == "update"
    assert [r.hex() for r in newest.references] == [first]
    # The trends page with nothing to analyse yet says so.
    assert "No incidents held yet" in client.get("/trends").text


# -- serving: blo-sub run --web, and a LAN bind with TLS and a login ----------------------


def test_blo_sub_run_web_serves_the_page_on_loopback(network: Network, tmp_path: Path) -> None:
    import subprocess
    import sys
    import urllib.request

    argv = ["run", "--bundle", str(network.bundle("kh-blo-bavet")), "--data", str(tmp_path)]
    argv += ["-p", "1", "--web", "--web-port", "0"]  # no broker: the page works offline
    code = "import sys; from subscriber.cli import main; sys.exit(main(sys.argv[1:]))"
    run = subprocess.Popen(
        [sys.executable, "-c", code, *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert run.stdout is not None
        line = run.stdout.readline()  # blocks until it prints (or exits)
        assert "kh-blo-bavet: web app at http://127.0.0.1:" in line, run.stderr.read()
        url = line.rsplit(" ", 1)[1].strip()
        with urllib.request.urlopen(url, timeout=10) as page:
            html = page.read().decode()
        assert "kh-blo-bavet" in html
        assert "never started" not in html  # the running client's own link state is shown
    finally:
        run.terminate()
        run.communicate(timeout=30)
    assert run.returncode == 0


def test_a_lan_bind_with_tls_and_a_login_serves_only_after_login(
    network: Network, tmp_path: Path
) -> None:
    import http.cookiejar
    import ssl
    import urllib.error
    import urllib.request

    from web.server import WebServer

    server_files = network.kh / "servers" / "broker"
    logins = tmp_path / "logins"
    logins.write_text(f"hq:{hash_password('a long passphrase')}\n")
    policy = BindPolicy(
        host="0.0.0.0",
        certfile=server_files / "tls.crt",
        keyfile=server_files / "tls.key",
        login_file=logins,
    )
    server = WebServer(
        EnrolmentBundle.load(network.bundle("kh-nacd")), tmp_path / "hq", policy, port=0
    )
    server.start()
    try:
        assert server.url.startswith("https://")
        tls = ssl.create_default_context(cafile=str(network.kh / "root" / "ca.crt"))
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(
            urllib.request.HTTPSHandler(context=tls), urllib.request.HTTPCookieProcessor(jar)
        )
        base = f"https://127.0.0.1:{server.port}"
        with opener.open(f"{base}/", timeout=10) as page:  # redirected to the login
            assert page.url.endswith("/login")
            html = page.read().decode()
        assert all(c.secure for c in jar)  # the session cookie only ever goes over TLS
        with pytest.raises(urllib.error.HTTPError) as refused:
            opener.open(f"{base}/events", timeout=10)
        assert refused.value.code == 401
        token = html.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        form = f"user=hq&password=a+long+passphrase&csrf={token}".encode()
        with opener.open(f"{base}/login", data=form, timeout=10) as page:
            assert "Alerts" in page.read().decode()
    finally:
        server.stop()


def test_the_trends_page_shows_blo_trends_table_and_plots(tmp_path: Path) -> None:
    from trends.simulate import history, write

    now = datetime.now(UTC)
    write(history(3, 1, seed=7, end=now), tmp_path, now)
    bundle = EnrolmentBundle.load(tmp_path / "pki" / "kh" / "bundles" / "kh-nacd.json")
    app = WebApp(WebNode(bundle, tmp_path / "data" / "kh-nacd"), BindPolicy())
    client = TestClient(app.app, base_url="http://127.0.0.1:8080")
    page = client.get("/trends")
    assert page.status_code == 200
    assert "Trends, week" in page.text
    assert "Bavet" in page.text  # a crossing's level, as blo-trends shows it
    assert 'src="/trends/heatmap.png"' in page.text
    plot = client.get("/trends/heatmap.png")
    assert plot.status_code == 200
    assert plot.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert client.get("/trends/..%2Finbox.sqlite3").status_code == 404
    assert client.get("/trends/inbox.sqlite3").status_code == 404


def test_a_bulletin_from_the_officer_page_is_sealed_like_blo_pubs(
    network: Network, tmp_path: Path
) -> None:
    """The form goes through publisher.submit as blo-pub does: sealed for Moc Bai alone,
    so the outbox (and every broker after it) holds no plaintext of it."""
    import sqlite3

    from schemas import open_envelope

    client = client_for(network, "kh-blo-bavet", tmp_path)
    page = client.get("/bulletin")
    token = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    marker = "Marker-7f3a courier on a red motorbike"
    form = {"to": "vn-blo-mocbai", "headline_en": marker, "csrf": token}
    taken = client.post("/bulletin", data=form)
    assert taken.status_code == 200, taken.text
    files = list(tmp_path.rglob("outbox.sqlite3"))
    assert len(files) == 1, files
    with sqlite3.connect(files[0]) as db:
        rows = [bytes(r[0]) for r in db.execute("SELECT data FROM outbox")]
    assert len(rows) == 1
    assert open_envelope(rows[0]).is_sealed
    assert marker.encode() not in rows[0]
