"""blo-certs through its command line, on real files in a temporary folder."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID
from netsim import ALERT

from certs import EnrolmentBundle, Pki, PkiExistsError
from certs.cli import main
from schemas import (
    Reason,
    Receiver,
    Rejected,
    Role,
    Scope,
    seal,
)


def cli(*args: str) -> int:
    return main(list(args))


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    folder = tmp_path / "pki"
    assert cli("init", "--dir", str(folder), "--country", "kh", "--hq", "kh-nacd") == 0
    return folder


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_init_writes_root_and_hq_with_private_modes(pki: Path) -> None:
    for secret in (
        "root/ca.key",
        "root/trust.key",
        "nodes/kh-nacd/sign.key",
        "nodes/kh-nacd/tls.key",
        "bundles/kh-nacd.json",
    ):
        assert mode(pki / secret) == 0o600, secret
    assert mode(pki / "root/ca.crt") == 0o644
    keyset = Pki(pki).keyset()
    assert [n.node for n in keyset.nodes] == ["kh-nacd"]
    assert keyset.nodes[0].role is Role.HQ


def test_init_refuses_to_overwrite(pki: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = (pki / "root/trust.key").read_bytes()
    assert cli("init", "--dir", str(pki), "--country", "kh", "--hq", "kh-nacd") == 1
    assert "already exists" in capsys.readouterr().err
    assert (pki / "root/trust.key").read_bytes() == before


def test_issue_then_refuse_reissue(pki: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = [
        "issue",
        "--dir",
        str(pki),
        "kh-blo-bavet",
        "--role",
        "blo",
        "--region",
        "kh-vn-bavet",
        "--counterpart",
        "vn-blo-mocbai",
    ]
    assert cli(*args) == 0
    key = (pki / "nodes/kh-blo-bavet/sign.key").read_bytes()
    assert cli(*args) == 1
    err = capsys.readouterr().err
    assert "already issued" in err
    assert "rotate" in err
    assert (pki / "nodes/kh-blo-bavet/sign.key").read_bytes() == key
    entry = Pki(pki).keyset().node("kh-blo-bavet")
    assert entry is not None
    assert entry.regions == ("kh-vn-bavet",)
    assert entry.counterparts == ("vn-blo-mocbai",)


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["issue", "vn-blo-mocbai", "--role", "blo"], "must be a kh- id"),
        (["issue", "kh-blo-x", "--role", "blo", "--region", "Bad Region"], "region"),
        (["revoke", "kh-blo-nobody"], "not in keyset"),
    ],
)
def test_bad_input_named(
    pki: Path, capsys: pytest.CaptureFixture[str], args: list[str], complaint: str
) -> None:
    assert cli(args[0], "--dir", str(pki), *args[1:]) == 1
    assert complaint in capsys.readouterr().err


def test_missing_pki_says_what_to_do(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("list", "--dir", str(tmp_path / "nowhere")) == 1
    assert "blo-certs init" in capsys.readouterr().err


def test_bundle_holds_everything_a_tablet_needs(pki: Path) -> None:
    assert cli("issue", "--dir", str(pki), "kh-blo-bavet", "--role", "blo") == 0
    bundle = EnrolmentBundle.load(pki / "bundles/kh-blo-bavet.json")
    now = datetime.now(UTC)
    store = bundle.trust_store(now)
    assert store.node("kh-blo-bavet") is not None
    cert = x509.load_pem_x509_certificate(bundle.tls_cert.encode())
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "kh-blo-bavet"
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["kh-blo-bavet"]
    # The TLS chain verifies with cryptography's own X.509 verifier (P-256, not Ed25519).
    from cryptography.x509.verification import PolicyBuilder, Store

    ca = x509.load_pem_x509_certificate(bundle.ca_certs[0].encode())
    verifier = PolicyBuilder().store(Store([ca])).build_client_verifier()
    verified = verifier.verify(cert, [])
    assert verified.subjects is not None
    # A message signed with the bundle's key is accepted by HQ's receiver.
    hq = Receiver(Pki(pki).trust_store(now), me="kh-nacd")
    signer = bundle.signer()
    from schemas import Receipt, ReceiptStatus

    receipt = Receipt(of=b"\x00" * 16, status=ReceiptStatus.READ, at=now.replace(microsecond=0))
    wire = seal(
        signer,
        receipt,
        seq=1,
        scope=Scope.node("kh-nacd"),
        issued=now,
        expires=now + timedelta(days=1),
    )
    assert hq.receive("blo/receipt/kh-nacd/kh-blo-bavet", wire, now).ok


def test_revoke_reaches_receivers_and_list_shows_it(pki: Path) -> None:
    assert cli("issue", "--dir", str(pki), "kh-blo-poipet", "--role", "blo") == 0
    now = datetime.now(UTC)
    bundle = EnrolmentBundle.load(pki / "bundles/kh-blo-poipet.json")
    tablet = Receiver(bundle.trust_store(now), me="kh-blo-poipet")
    assert cli("revoke", "--dir", str(pki), "kh-blo-poipet", "--reason", "tablet lost") == 0
    # The tablet learns of the revocation from the signed trust messages.
    for name, topic in (
        ("keyset.msg", "blo/trust/kh/keyset"),
        ("revocation.msg", "blo/trust/kh/revocation"),
    ):
        assert tablet.receive(topic, (pki / "trust" / name).read_bytes(), now).ok
    signer = bundle.signer()
    wire = seal(
        signer, ALERT, seq=1, scope=Scope.country("kh"), issued=now, expires=now + timedelta(days=1)
    )
    result = tablet.receive("blo/country/kh", wire, now)
    assert isinstance(result, Rejected)
    assert result.reason is Reason.REVOKED_KEY
    out = subprocess.run(
        [sys.executable, "-m", "certs.cli", "list", "--dir", str(pki)],
        capture_output=True,
        text=True,
        check=True,
        env={"COLUMNS": "160", "PATH": ""},
    ).stdout
    assert "kh-blo-poipet" in out
    assert "revoked" in out
    assert "keyset kh v4" in out


def test_replacement_tablet_keeps_old_keys_revoked(pki: Path) -> None:
    assert cli("issue", "--dir", str(pki), "kh-blo-bavet", "--role", "blo") == 0
    old = EnrolmentBundle.load(pki / "bundles/kh-blo-bavet.json").signer()
    assert cli("revoke", "--dir", str(pki), "kh-blo-bavet") == 0
    assert cli("issue", "--dir", str(pki), "kh-blo-bavet", "--role", "blo", "--replace") == 0
    now = datetime.now(UTC)
    new = EnrolmentBundle.load(pki / "bundles/kh-blo-bavet.json").signer()
    assert new.key_id != old.key_id
    hq = Receiver(Pki(pki).trust_store(now), me="kh-nacd")
    from schemas import Receipt, ReceiptStatus

    receipt = Receipt(of=b"\x00" * 16, status=ReceiptStatus.READ, at=now.replace(microsecond=0))
    for signer, seq, ok in ((old, 1, False), (new, 2, True)):
        wire = seal(
            signer,
            receipt,
            seq=seq,
            scope=Scope.node("kh-nacd"),
            issued=now,
            expires=now + timedelta(days=1),
        )
        assert hq.receive("blo/receipt/kh-nacd/kh-blo-bavet", wire, now).ok is ok


def test_rotate_overlaps_old_and_new_keys(pki: Path) -> None:
    assert cli("issue", "--dir", str(pki), "kh-blo-bavet", "--role", "blo") == 0
    old = EnrolmentBundle.load(pki / "bundles/kh-blo-bavet.json").signer()
    assert cli("rotate", "--dir", str(pki), "kh-blo-bavet", "--overlap-days", "7") == 0
    new = EnrolmentBundle.load(pki / "bundles/kh-blo-bavet.json").signer()
    assert mode(pki / f"nodes/kh-blo-bavet/sign.{old.key_id.hex()}.key") == 0o600
    now = datetime.now(UTC)
    entry = Pki(pki).keyset().node("kh-blo-bavet")
    assert entry is not None
    assert [k.key_id for k in entry.keys] == [old.key_id, new.key_id]
    assert entry.keys[0].valid_at(now + timedelta(days=6))
    assert not entry.keys[0].valid_at(now + timedelta(days=8))
    assert entry.keys[1].valid_at(now + timedelta(days=8))


def test_keyset_versions_increase_and_bundle_is_json(pki: Path) -> None:
    versions = [Pki(pki).keyset().version]
    for node in ("kh-blo-a", "kh-blo-b"):
        assert cli("issue", "--dir", str(pki), node, "--role", "blo") == 0
        versions.append(Pki(pki).keyset().version)
    assert versions == sorted(set(versions))
    data = json.loads((pki / "bundles/kh-blo-b.json").read_text())
    assert data["format"] == "blo-enrolment/1"
    assert data["node"] == "kh-blo-b"


def test_server_certificate_and_foreign_root(pki: Path, tmp_path: Path) -> None:
    assert (
        cli("server", "--dir", str(pki), "broker", "--host", "localhost", "--host", "127.0.0.1")
        == 0
    )
    assert mode(pki / "servers/broker/tls.key") == 0o600
    vn = tmp_path / "vn"
    assert cli("init", "--dir", str(vn), "--country", "vn", "--hq", "vn-sodc") == 0
    assert (
        cli(
            "issue",
            "--dir",
            str(vn),
            "vn-blo-mocbai",
            "--role",
            "blo",
            "--counterpart",
            "kh-blo-bavet",
        )
        == 0
    )
    assert cli("import-root", "--dir", str(pki), str(vn)) == 0
    assert (
        cli(
            "issue",
            "--dir",
            str(pki),
            "kh-blo-bavet",
            "--role",
            "blo",
            "--counterpart",
            "vn-blo-mocbai",
        )
        == 0
    )
    bundle = EnrolmentBundle.load(pki / "bundles/kh-blo-bavet.json")
    store = bundle.trust_store(datetime.now(UTC))
    assert store.countries == ["kh", "vn"]
    assert store.node("vn-blo-mocbai") is not None
    assert len(bundle.ca_certs) == 2


def test_pki_refuses_to_issue_into_existing_node_folder(pki: Path) -> None:
    (pki / "nodes/kh-blo-stray").mkdir(parents=True)
    with pytest.raises(PkiExistsError):
        Pki(pki).issue("kh-blo-stray", Role.BLO, datetime.now(UTC))
