"""The sharing rules -> bridge configuration core (pure), its refusals, and the files:
``blo-certs bridge`` and ``blo-broker federation-config`` on real PKI folders."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from broker.cli import main as broker_main
from broker.federation import FederationError, federation_config, parse_rules, plan
from certs import NodeSpec, Pki, PkiExistsError, PkiMissingError
from certs.bridge import issue_bridge
from certs.cli import main as certs_main
from schemas import NodeEntry, Role

FOLDER = Path("/etc/mosquitto/blo")
SOURCE = "federation.toml"


def entry(node: str, role: Role, regions: tuple[str, ...] = (), peers: tuple[str, ...] = ()):
    return NodeEntry(node=node, role=role, regions=regions, counterparts=peers)


KEYSETS = {
    "kh": [
        entry("kh-nacd", Role.HQ),
        entry("kh-blo-bavet", Role.BLO, ("kh-vn-bavet",), ("vn-blo-mocbai",)),
        entry("kh-blo-poipet", Role.BLO, ("kh-th-poipet",)),
        entry("kh-analyst", Role.OBSERVER),
        entry("kh-archive", Role.ARCHIVE),
    ],
    "vn": [
        entry("vn-sodc", Role.HQ),
        entry("vn-blo-mocbai", Role.BLO, ("kh-vn-bavet",), ("kh-blo-bavet",)),
        entry("vn-archive", Role.ARCHIVE),
    ],
    "la": [entry("la-lcdc", Role.HQ), entry("la-unodc-rc", Role.REGIONAL)],
}

RULES = """
[brokers]
kh = "broker.kh.example.org:8883"
vn = "broker.vn.example.org:8883"
la = "broker.la.example.org:8883"

[[border]]
countries = ["kh", "vn"]
bulletins = ["kh>vn", "vn>kh"]
regions = { kh-vn-bavet = ["kh>vn", "vn>kh"] }

[[border]]
countries = ["kh", "la"]

[[border]]
countries = ["la", "vn"]

[[coordinator]]
node = "la-unodc-rc"
to = ["kh", "vn"]
"""


def config(country: str, text: str = RULES):
    return federation_config(parse_rules(text, SOURCE), country, KEYSETS, FOLDER, source=SOURCE)


def topic_lines(conf: str, connection: str) -> set[str]:
    section = conf.split(f"connection {connection}\n")[1].split("\n\n")[0]
    return {line for line in section.splitlines() if line.startswith("topic ")}


def acl_of(acl: str, user: str) -> set[str]:
    section = acl.split(f"user {user}\n")[1].split("\n\n")[0]
    return set(section.splitlines())


def test_the_dialing_side_bridges_exactly_the_shared_topics() -> None:
    kh = config("kh")
    assert kh.dials == ("vn", "la")
    assert kh.dialed_by == ()
    assert topic_lines(kh.conf, "bridge-kh-vn") == {
        # counterpart bulletins, each way on its own exact topic
        "topic blo/bulletin/vn-blo-mocbai/kh-blo-bavet out 1",
        "topic blo/bulletin/kh-blo-bavet/vn-blo-mocbai in 1",
        # the border region, both ways (one bridge: Mosquitto sends nothing back)
        "topic blo/region/kh-vn-bavet both 1",
        # repair: resend requests to the senders, catch-up to the far archive and back
        "topic blo/resend/kh-blo-bavet in 1",
        "topic blo/resend/vn-blo-mocbai out 1",
        "topic blo/resend/kh-nacd in 1",
        "topic blo/resend/vn-sodc out 1",
        "topic blo/request/kh-blo-bavet out 1",
        "topic blo/replay/kh-blo-bavet in 1",
        "topic blo/request/vn-blo-mocbai in 1",
        "topic blo/replay/vn-blo-mocbai out 1",
        # kh's analyst reads every region: it catches up on this one too
        "topic blo/request/kh-analyst out 1",
        "topic blo/replay/kh-analyst in 1",
        # receipts for the region alerts go back to the HQ that sent them (BLOs only
        # answer), and the HQs catch up on them from the far archive
        "topic blo/receipt/vn-sodc/kh-blo-bavet out 1",
        "topic blo/receipt/kh-nacd/vn-blo-mocbai in 1",
        "topic blo/request/kh-nacd out 1",
        "topic blo/replay/kh-nacd in 1",
        "topic blo/request/vn-sodc in 1",
        "topic blo/replay/vn-sodc out 1",
        # Lao PDR's coordinator reaches vn's offices directly, not through kh
    }
    la = topic_lines(kh.conf, "bridge-kh-la")
    assert "topic blo/all in 1" in la
    assert "topic blo/receipt/la-unodc-rc/kh-blo-bavet out 1" in la
    assert "topic blo/receipt/la-unodc-rc/kh-blo-poipet out 1" in la
    assert "topic blo/resend/la-unodc-rc out 1" in la
    assert not any("bulletin" in t or "region" in t for t in la), la
    # TLS both ways: the neighbour's CA only, this country's bridge certificate.
    assert f"bridge_cafile {FOLDER}/bridge-vn-ca.pem" in kh.conf
    assert f"bridge_certfile {FOLDER}/bridge-vn.crt" in kh.conf
    assert "address broker.vn.example.org:8883" in kh.conf
    assert "\ncleansession false" in kh.conf
    assert "local_cleansession false" in kh.conf
    # Nothing national, nothing wild.
    everything = kh.conf + config("vn").acl + config("la").acl
    assert "blo/country/" not in everything
    assert "blo/incident/" not in everything
    assert "#" not in "".join(line for line in everything.splitlines() if line[:1] != "#")


def test_the_dialed_side_gives_the_bridge_identity_exactly_those_topics() -> None:
    vn = config("vn")
    assert vn.dials == ()
    assert vn.dialed_by == ("kh", "la")
    assert vn.conf == ""
    kh_bridge = acl_of(vn.acl, "bridge-kh-vn")
    assert "topic write blo/bulletin/vn-blo-mocbai/kh-blo-bavet" in kh_bridge
    assert "topic read blo/bulletin/kh-blo-bavet/vn-blo-mocbai" in kh_bridge
    assert {"topic read blo/region/kh-vn-bavet", "topic write blo/region/kh-vn-bavet"} <= kh_bridge
    # What the dialer sends is what the ACL lets it write, and the reverse.
    kh_side = topic_lines(config("kh").conf, "bridge-kh-vn")
    writes = {t.split()[1] for t in kh_side if t.split()[2] in ("out", "both")}
    reads = {t.split()[1] for t in kh_side if t.split()[2] in ("in", "both")}
    assert writes == {line.split()[2] for line in kh_bridge if line.startswith("topic write")}
    assert reads == {line.split()[2] for line in kh_bridge if line.startswith("topic read")}
    la_bridge = acl_of(vn.acl, "bridge-la-vn")
    assert "topic write blo/all" in la_bridge
    assert "topic read blo/receipt/la-unodc-rc/vn-blo-mocbai" in la_bridge
    # The same rules and keysets give the same text: both sides can diff it.
    assert config("vn") == vn


def test_one_way_rules_carry_one_way() -> None:
    one_way = RULES.replace('bulletins = ["kh>vn", "vn>kh"]', 'bulletins = ["vn>kh"]')
    lines = topic_lines(config("kh", one_way).conf, "bridge-kh-vn")
    assert "topic blo/bulletin/kh-blo-bavet/vn-blo-mocbai in 1" in lines
    assert not any("blo/bulletin/vn-blo-mocbai/" in line for line in lines)
    assert "topic blo/resend/vn-blo-mocbai out 1" in lines  # kh's archive asks Moc Bai


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            ('bulletins = ["kh>vn", "vn>kh"]', 'bulletins = ["kh>la"]'),
            "[[border]] #1 (kh-vn): bulletins direction 'kh>la' is not across this border",
        ),
        (
            ("kh-vn-bavet = [", "kh-vn-bavit = ["),
            "[[border]] #1 (kh-vn): region 'kh-vn-bavit' has no office on either side",
        ),
        (
            ('node = "la-unodc-rc"', 'node = "la-lcdc"'),
            "[[coordinator]] #1 (la-lcdc): la-lcdc is a hq node, not a regional coordinator",
        ),
        (
            ('[[border]]\ncountries = ["kh", "la"]\n', ""),
            "[[coordinator]] #1 (la-unodc-rc): no [[border]] between la and kh",
        ),
        (
            ('countries = ["la", "vn"]', 'countries = ["vn", "kh"]'),
            "[[border]] #3 (vn-kh): a second border between vn-kh",
        ),
        (
            ('la = "broker.la.example.org:8883"', ""),
            "[[border]] #2 (kh-la): kh dials la, whose address is not in [brokers]",
        ),
        (
            ('bulletins = ["kh>vn", "vn>kh"]', 'bulletin = ["kh>vn"]'),
            "[[border]] #1 (kh-vn): bulletin: Extra inputs are not permitted",
        ),
        (
            ('bulletins = ["kh>vn", "vn>kh"]', 'bulletins = ["kh->vn"]'),
            "[[border]] #1 (kh-vn): bulletins.0: String should match pattern",
        ),
        (('to = ["kh", "vn"]', "to = ["), "not valid TOML"),
    ],
)
def test_bad_rules_are_refused_naming_the_file_and_the_rule(
    change: tuple[str, str], expected: str
) -> None:
    text = RULES.replace(*change)
    assert text != RULES
    with pytest.raises(FederationError) as caught:
        plan(parse_rules(text, SOURCE), KEYSETS, SOURCE)
    assert str(caught.value).startswith(f"{SOURCE}: "), caught.value
    assert expected in str(caught.value), caught.value


def test_a_topic_that_would_go_round_three_borders_is_refused() -> None:
    keysets = {
        **KEYSETS,
        "la": [*KEYSETS["la"], entry("la-blo-x", Role.BLO, ("tri-border",))],
        "vn": [*KEYSETS["vn"], entry("vn-blo-y", Role.BLO, ("tri-border",))],
    }
    text = RULES.replace(
        '[[border]]\ncountries = ["kh", "la"]\n',
        '[[border]]\ncountries = ["kh", "la"]\nregions = { tri-border = ["la>kh"] }\n',
    ).replace(
        'countries = ["la", "vn"]',
        'countries = ["la", "vn"]\nregions = { tri-border = ["vn>la"] }',
    )
    plan(parse_rules(text, SOURCE), keysets, SOURCE)  # a line la > kh, vn > la: no loop
    looped = text.replace(
        'regions = { kh-vn-bavet = ["kh>vn", "vn>kh"] }',
        'regions = { kh-vn-bavet = ["kh>vn", "vn>kh"], tri-border = ["kh>vn"] }',
    )
    with pytest.raises(FederationError, match="would go round") as caught:
        plan(parse_rules(looped, SOURCE), keysets, SOURCE)
    assert "blo/region/tri-border" in str(caught.value)
    assert "kh > vn > la > kh" in str(caught.value) or "la > kh > vn > la" in str(caught.value)


def test_a_country_without_a_border_is_told_so() -> None:
    with pytest.raises(FederationError, match="no \\[\\[border\\]\\] names th"):
        config("th")


# -- the files -----------------------------------------------------------------------------


def _pkis(root: Path) -> tuple[Path, Path]:
    now = datetime.now(UTC)
    kh, vn = Pki(root / "kh"), Pki(root / "vn")
    kh.init("kh", "kh-nacd", now)
    vn.init("vn", "vn-sodc", now)
    kh.issue_many([NodeSpec("kh-blo-bavet", Role.BLO, ("kh-vn-bavet",), ("vn-blo-mocbai",))], now)
    vn.issue_many([NodeSpec("vn-blo-mocbai", Role.BLO, ("kh-vn-bavet",), ("kh-blo-bavet",))], now)
    kh.server("broker", ["localhost"], now)
    return kh.dir, vn.dir


def test_blo_certs_bridge_issues_a_client_certificate_of_this_ca(tmp_path: Path) -> None:
    kh, vn = _pkis(tmp_path)
    with pytest.raises(PkiMissingError, match="import vn's root first"):
        issue_bridge(kh, "vn", datetime.now(UTC))
    Pki(kh).import_root(vn)
    assert certs_main(["bridge", "--dir", str(kh), "vn"]) == 0
    cert = x509.load_pem_x509_certificate((kh / "bridges" / "vn" / "tls.crt").read_bytes())
    ca = x509.load_pem_x509_certificate((kh / "root" / "ca.crt").read_bytes())
    cert.verify_directly_issued_by(ca)
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    assert names[0].value == "bridge-kh-vn"  # never a node id (those are cc-...)
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert (kh / "bridges" / "vn" / "tls.key").stat().st_mode & 0o777 == 0o600
    with pytest.raises(PkiExistsError):
        issue_bridge(kh, "vn", datetime.now(UTC))


def test_federation_config_writes_mosquittos_files_and_the_bridges(tmp_path: Path) -> None:
    kh, vn = _pkis(tmp_path)
    rules = tmp_path / "federation.toml"
    rules.write_text(
        '[brokers]\nvn = "broker.vn.example.org:8883"\n\n'
        '[[border]]\ncountries = ["kh", "vn"]\nbulletins = ["kh>vn", "vn>kh"]\n'
    )
    out = tmp_path / "out"
    args = ["federation-config", "--pki", str(kh), "--rules", str(rules), "--out", str(out)]
    # Not yet: vn's root is not imported, there is no bridge certificate; nothing written.
    assert broker_main([*args, "--user", "root"]) == 1
    Pki(kh).import_root(vn)
    assert broker_main([*args, "--user", "root"]) == 1
    assert not (out / "bridge-vn.crt").exists()
    issue_bridge(kh, "vn", datetime.now(UTC))
    assert broker_main([*args, "--user", "root"]) == 0
    conf = (out / "mosquitto.conf").read_text()
    assert "require_certificate true" in conf  # what mosquitto-config writes
    assert "connection bridge-kh-vn" in conf
    assert "topic blo/bulletin/vn-blo-mocbai/kh-blo-bavet out 1" in conf
    assert (out / "bridge-vn.key").stat().st_mode & 0o777 == 0o600
    ca = (out / "bridge-vn-ca.pem").read_bytes()
    assert ca == (vn / "root" / "ca.crt").read_bytes()
    assert "user kh-blo-bavet" in (out / "acl").read_text()
    # A bad rules file: one line naming it; the folder is left as it was.
    rules.write_text(rules.read_text().replace('"kh", "vn"]\n', '"kh", "la"]\n'))
    before = (out / "mosquitto.conf").read_text()
    assert broker_main([*args, "--user", "root"]) == 1
    assert (out / "mosquitto.conf").read_text() == before
