"""blo-demo headless: the field scenario on real clients, TLS and brokers, end to end."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest
from brokers import require_mosquitto
from PIL import Image

from demo import Demo, DemoSettings
from demo.cli import main
from demo.offices import HQ, VN_COUNTERPART
from schemas import Incident, Kind
from schemas.messages import PositionSource
from subscriber import Inbox


def test_the_scenario_reaches_every_office_and_no_forgery_is_accepted(tmp_path: Path) -> None:
    demo = Demo(DemoSettings(live=False, pace=0.3, timeout=90), tmp_path)
    outcome = demo.run()
    assert outcome.ok, outcome.problems
    by_node = {s.node: s for s in outcome.offices}
    assert len(by_node) == 14  # NACD, 12 Cambodian BLOs, Moc Bai
    blos = [n for n in by_node if n.startswith("kh-blo-")]
    assert len(blos) == 12
    for node in blos:
        assert by_node[node].alert, node
        assert by_node[node].read, node
    # NACD got Bavet's incident, with its coordinates, items and photo reference,
    # and a delivered and a read receipt from every BLO.
    hq = by_node[HQ]
    assert (hq.delivered_receipts, hq.read_receipts) == (12, 12)
    inbox = Inbox(tmp_path / "offices" / HQ / "inbox.sqlite3")
    incidents = [s.body for s in inbox.messages((Kind.INCIDENT,))]
    inbox.close()
    assert len(incidents) == 1
    incident = incidents[0]
    assert isinstance(incident, Incident)
    assert (incident.position.lat, incident.position.lon) == (11.0735, 106.1542)
    assert incident.items[0].quantity == 2.4
    # Two geo-coded photos, positions from their EXIF, at HQ byte for byte.
    assert [a.media_type for a in incident.attachments] == ["image/jpeg"] * 2
    assert [a.position_source for a in incident.attachments] == [PositionSource.EXIF] * 2
    held = (tmp_path / "offices" / HQ / "photos").iterdir()
    digests = {hashlib.sha256(p.read_bytes()).digest() for p in held}
    assert digests >= {a.sha256 for a in incident.attachments}
    # Once they arrived HQ drew the incident's map (blo-sub map's) into the demo's folder.
    assert outcome.map_file == tmp_path / "incident-map.png"
    png = outcome.map_file.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert 30_000 < len(png) < 5_000_000, len(png)
    with Image.open(io.BytesIO(png)) as image:
        assert image.format == "PNG"
        assert image.size == (1500, 700)  # render_map's 15 x 7 inches at 100 dpi
    # The bulletins reached Bavet and Moc Bai and no one else.
    for node, status in by_node.items():
        expected = 1 if node in ("kh-blo-bavet", VN_COUNTERPART) else 0
        assert status.bulletins == expected, node
    assert not by_node[VN_COUNTERPART].alert  # NACD's alert is Cambodia's
    # Every office (HQ and Moc Bai too: all read blo/all) refused all three forgeries.
    for node, status in by_node.items():
        assert status.forged_accepted == 0, node
        assert status.rejected.get("bad_signature", 0) >= 2, (node, status.rejected)
        assert status.rejected.get("wrong_topic", 0) >= 1, (node, status.rejected)
    # The flaky office was off the air when the alert went out, and caught up.
    assert outcome.cuts >= 1
    assert any("link is back" in e.text for e in outcome.events)


@pytest.fixture(autouse=True)
def _brisk(monkeypatch: pytest.MonkeyPatch) -> None:
    """The story's pauses are for a human watching; the tests need not wait."""
    monkeypatch.setenv("BLO_DEMO_PACE", "0.3")


def test_the_command_exits_0_and_prints_the_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["--no-live", "--dir", str(tmp_path / "run"), "--lang", "km", "--offices", "5"])
    out = capsys.readouterr().out
    assert status == 0, out
    assert "PASS: NACD and all 5 office tablets" in out
    assert "រឹបអូសមេតំហ្វេតាមីន ១.៩ គីឡូក្រាម" in out  # the Khmer headline, as text
    assert (tmp_path / "run" / "demo.log").exists()
    assert "incident-map.png" in out  # the summary says where the map is
    assert (tmp_path / "run" / "incident-map.png").stat().st_size > 30_000
    assert (tmp_path / "run" / "pki-kh" / "bundles" / "kh-blo-bavet.json").exists()


def test_on_mosquitto(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    require_mosquitto()
    status = main(
        ["--no-live", "--broker", "mosquitto", "--offices", "5", "--dir", str(tmp_path / "m")]
    )
    out = capsys.readouterr().out
    assert status == 0, out
    assert "Mosquitto" in out
    assert "PASS" in out


def test_a_run_that_cannot_finish_fails_and_says_what_was_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # 2 s is too short for the story: the exit status must say so.
    status = main(["--no-live", "--offices", "3", "--timeout", "2", "--dir", str(tmp_path / "t")])
    out = capsys.readouterr().out
    assert status == 1
    assert "FAIL: timed out after 2 s" in out


def test_usage_errors_are_plain(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "file").write_text("x")
    assert main(["--no-live", "--dir", str(tmp_path / "full")]) == 1
    assert "is not empty" in capsys.readouterr().err
    assert main(["--no-live", "--offices", "2"]) == 1
    assert "offices" in capsys.readouterr().err
