"""``blo-pub`` refuses, before queuing, what no receiver or broker would ever accept (issue 9.12).

The rules come from schemas.authority, schemas.access and schemas.topics, and the
keys from the bundle's trust store: the same sources the receivers and brokers use.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from brokers import Network

from certs import EnrolmentBundle, Pki
from publisher import Outbox
from publisher.cli import main
from schemas import Role

INCIDENT = ["--crime", "drug_trafficking", "--lat", "11.08", "--lon", "106.18"]
ALERT = ["--category", "drug_seizure", "--severity", "severe", "--headline", "Heroin at Poipet"]


@pytest.fixture(autouse=True)
def current_hq(network: Network) -> None:
    """HQ's bundle re-issued with the current keyset (the fixture's predates the offices)."""
    Pki(network.kh).write_bundle("kh-nacd")


def run(network: Network, node: str, folder: Path, *argv: str) -> int:
    return main([argv[0], "--bundle", str(network.bundle(node)), "--data", str(folder), *argv[1:]])


def held(network: Network, node: str, folder: Path) -> int:
    if not (folder / "outbox.sqlite3").exists():
        return 0
    outbox = Outbox(folder / "outbox.sqlite3", EnrolmentBundle.load(network.bundle(node)).signer())
    try:
        return len(outbox.range(1, None))
    finally:
        outbox.close()


@pytest.mark.parametrize(
    ("node", "argv", "rule"),
    [
        (
            "kh-blo-bavet",
            ["alert", "--scope", "country:kh", *ALERT],
            "blo node like kh-blo-bavet sends: incident, bulletin",
        ),
        ("kh-nacd", ["alert", "--scope", "country:th", *ALERT], "only its own country"),
        ("kh-nacd", ["alert", "--scope", "region:nowhere", *ALERT], "only its own country"),
        ("kh-nacd", ["alert", "--scope", "node:kh-blo-nosuch", *ALERT], "no office"),
        # An observer is in the keyset but reads no blo/node topic: it could never arrive.
        ("kh-nacd", ["alert", "--scope", "node:kh-analyst", *ALERT], "reads its topic"),
        ("kh-rc", ["alert", "--scope", "region:nowhere", *ALERT], "no office"),
        ("kh-analyst", ["alert", "--scope", "country:kh", *ALERT], "only reads"),
        (
            "kh-blo-bavet",
            ["bulletin", "--to", "kh-blo-poipet", "--headline", "Van at night"],
            "not a counterpart",
        ),
        ("kh-nacd", ["incident", *INCIDENT], "may not send incident"),
        ("kh-nacd", ["alert", "--scope", "country:kh", *ALERT[:4], "--headline", "   "], "spaces"),
    ],
)
def test_what_can_never_arrive_is_refused_and_not_queued(
    network: Network,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    node: str,
    argv: list[str],
    rule: str,
) -> None:
    assert run(network, node, tmp_path, *argv) == 1
    err = capsys.readouterr().err
    assert rule in err
    assert "not queued" in err
    assert err.count("\n") == 1  # one line
    assert held(network, node, tmp_path) == 0


def test_refusal_names_the_valid_choices(
    network: Network, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(network, "kh-nacd", tmp_path, "alert", "--scope", "country:th", *ALERT) == 1
    err = " ".join(capsys.readouterr().err.split())
    # HQ's own country, its offices' regions and its offices; nothing of Viet Nam's.
    for choice in ("country:kh", "region:kh-vn-bavet", "node:kh-blo-bavet"):
        assert choice in err
    assert "country:vn" not in err


def test_a_file_sent_outside_the_key_validity_is_refused(
    network: Network, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = {
        "kind": "alert",
        "scope": "country:kh",
        "sent": "2001-01-01T09:00:00+07:00",
        "expires": "2001-01-02T09:00:00+07:00",
        "category": "drug_seizure",
        "severity": "severe",
        "urgency": "immediate",
        "certainty": "observed",
        "text": {"en": {"headline": "Old news"}},
    }
    path = tmp_path / "alert.json"
    path.write_text(json.dumps(doc))
    assert run(network, "kh-nacd", tmp_path, "alert", "--file", str(path)) == 1
    assert "outside the signing key's validity" in capsys.readouterr().err
    assert held(network, "kh-nacd", tmp_path) == 0
    # Positive control: the same document sent now is queued.
    del doc["sent"], doc["expires"]
    path.write_text(json.dumps(doc))
    assert run(network, "kh-nacd", tmp_path, "alert", "--file", str(path)) == 0
    assert held(network, "kh-nacd", tmp_path) == 1


@pytest.mark.parametrize(
    ("node", "argv"),
    [
        ("kh-nacd", ["alert", "--scope", "country:kh", *ALERT]),
        ("kh-nacd", ["alert", "--scope", "region:kh-vn-bavet", *ALERT]),
        ("kh-nacd", ["alert", "--scope", "node:kh-blo-poipet", *ALERT]),
        ("kh-rc", ["alert", "--scope", "all", *ALERT]),
        ("kh-blo-bavet", ["incident", *INCIDENT]),
        ("kh-blo-bavet", ["bulletin", "--to", "vn-blo-mocbai", "--headline", "Van at night"]),
    ],
)
def test_what_can_arrive_is_queued(
    network: Network, tmp_path: Path, node: str, argv: list[str]
) -> None:
    assert run(network, node, tmp_path, *argv) == 0
    assert held(network, node, tmp_path) == 1


def test_a_stale_keyset_says_how_to_fetch_the_current_one(
    network: Network, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Offices enrolled after this bundle are unknown here: the refusal says how to learn them."""
    Pki(network.kh).issue("kh-blo-new", Role.BLO, datetime.now(UTC), regions=["kh-la-new"])
    assert run(network, "kh-nacd", tmp_path, "alert", "--scope", "region:kh-la-new", *ALERT) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "held here" in err
    # An HQ whose bundle knows no office at all is told to fetch the keyset.
    Pki(tmp_path / "fresh").init("kh", "kh-nacd", datetime.now(UTC))
    bundle = str(tmp_path / "fresh" / "bundles" / "kh-nacd.json")
    argv = ["alert", "--bundle", bundle, "--data", str(tmp_path / "d"), "--scope", "country:kh"]
    assert main([*argv, *ALERT]) == 1
    assert "let 'blo-sub run' fetch the current keyset" in " ".join(capsys.readouterr().err.split())
    Pki(network.kh).write_bundle("kh-nacd")
    assert run(network, "kh-nacd", tmp_path, "alert", "--scope", "region:kh-la-new", *ALERT) == 0
