"""blo-sub export and blo-pub alert --from-cap end to end on a node folder (no broker)."""

from __future__ import annotations

import json
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
from brokers import Network
from netsim import reference_alert
from nodekit import stored_alert

from certs import EnrolmentBundle, Pki
from interchange.cap import CAP, document_from_cap, validate
from publisher import Outbox
from publisher.cli import main as pub_main
from schemas import open_envelope
from subscriber.cli import main as sub_main


def fill(folder: Path) -> bytes:
    """An inbox holding the reference alert (with Khmer), as the running client stores it."""
    body, _, issued, expires = reference_alert()
    return stored_alert(folder, body, issued=issued, expires=expires)


def test_export_each_format_from_an_inbox(
    network: Network, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    msg_id = fill(tmp_path)
    args = ["--bundle", str(network.bundle("kh-blo-bavet")), "--data", str(tmp_path)]
    out = tmp_path / "alert.xml"
    assert sub_main(["export", *args, msg_id.hex()[:8], "--format", "cap", "--out", str(out)]) == 0
    validate(ET.fromstring(out.read_bytes()))
    back = document_from_cap(out.read_bytes(), str(out))
    assert back.document["text"]["km"]["headline"].startswith("រឹបអូស")
    assert back.identifier == msg_id.hex()
    capsys.readouterr()
    assert sub_main(["export", *args, "--since", "2026-06-01", "--format", "geojson"]) == 0
    (feature,) = json.loads(capsys.readouterr().out)["features"]
    assert feature["geometry"]["coordinates"] == [105.4618, 14.3312]
    assert sub_main(["export", *args, "--format", "cot"]) == 0
    assert 'lat="14.3312000"' in capsys.readouterr().out
    # A quiet period is an empty map, still a valid document; CAP has no empty alert.
    assert sub_main(["export", *args, "--since", "2099-01-01", "--format", "geojson"]) == 0
    assert json.loads(capsys.readouterr().out)["features"] == []
    assert sub_main(["export", *args, "--since", "2099-01-01", "--format", "cap"]) == 1
    assert "CAP carries alerts only" in capsys.readouterr().err


def test_alert_from_cap_is_shown_then_queued(
    network: Network, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    Pki(network.kh).write_bundle("kh-nacd")  # HQ's bundle with the offices (test_publisher)
    msg_id = fill(tmp_path / "bavet")
    exported = tmp_path / "in.xml"
    bavet = ["--bundle", str(network.bundle("kh-blo-bavet")), "--data", str(tmp_path / "bavet")]
    assert (
        sub_main(["export", *bavet, msg_id.hex(), "--format", "cap", "--out", str(exported)]) == 0
    )
    capsys.readouterr()
    hq = ["--bundle", str(network.bundle("kh-nacd")), "--data", str(tmp_path / "hq")]
    # The reference alert expired in 2026-06; a CAP file's expiry is kept, so override it.
    root = ET.fromstring(exported.read_bytes())
    for el in root.iter(f"{{{CAP}}}expires"):
        el.text = "2099-01-01T00:00:00+07:00"
    exported.write_bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True))
    assert pub_main(["alert", *hq, "--from-cap", str(exported), "--scope", "country:kh"]) == 0
    out = capsys.readouterr().out
    assert "from CAP" in out
    assert "dropped" in out
    assert "queued" in out
    # The existing checks apply: an audience no one reads is refused, nothing queued.
    assert pub_main(["alert", *hq, "--from-cap", str(exported), "--scope", "node:kh-nope"]) == 1
    assert "not queued" in capsys.readouterr().err
    signer = EnrolmentBundle.load(network.bundle("kh-nacd")).signer()
    outbox = Outbox(tmp_path / "hq" / "outbox.sqlite3", signer)
    (queued,) = outbox.range(1, None)  # the CAP alert, signed as kh-nacd's; not the refused one
    assert open_envelope(queued.data).decode_body() == reference_alert()[0]
    outbox.close()


def test_hostile_cap_is_refused_by_blo_pub(
    network: Network, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bomb = tmp_path / "bomb.xml"
    bomb.write_text('<?xml version="1.0"?><!DOCTYPE a [<!ENTITY b "c">]><alert>&b;</alert>')
    hq = ["--bundle", str(network.bundle("kh-nacd")), "--data", str(tmp_path / "hq")]
    assert pub_main(["alert", *hq, "--from-cap", str(bomb)]) == 1
    assert "bomb.xml: refused" in capsys.readouterr().err


def test_the_parser_offers_every_format_and_loads_no_exporter() -> None:
    import argparse
    import subprocess
    import sys

    from interchange.cli import add_export
    from interchange.export import FORMATS

    parser = argparse.ArgumentParser()
    add_export(parser)
    action = next(a for a in parser._actions if a.dest == "format")
    assert tuple(action.choices or ()) == FORMATS
    # blo-sub builds this parser for every command, 'run' included: no XML stack then.
    code = (
        "import sys, subscriber.cli; subscriber.cli._parser(); print('defusedxml' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
