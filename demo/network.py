"""The demo's PKI: Cambodia's (NACD, its offices, the archive, a regional coordinator)
and Viet Nam's (its HQ and the office facing Bavet), each pinning the other's root.

Built with the same ``certs.Pki`` calls ``blo-certs`` makes, so the demo's
folder is a working example of a two-country deployment.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from certs import NodeSpec, Pki
from demo.offices import HQ, Office
from schemas import Role

__all__ = ["ARCHIVE", "ATTACKER", "VN_HQ", "DemoPki", "provision"]

ARCHIVE = "kh-archive"
#: The regional coordinator whose TLS credential the attacker copied (see attacker.py).
ATTACKER = "kh-rc"
VN_HQ = "vn-sodc"


@dataclass(frozen=True)
class DemoPki:
    """Where the two countries' PKI folders are."""

    kh: Path
    vn: Path

    def bundle(self, node: str) -> Path:
        """The enrolment bundle of ``node``."""
        folder = self.vn if node.startswith("vn-") else self.kh
        return folder / "bundles" / f"{node}.json"


def provision(root: Path, offices: list[Office], now: datetime) -> DemoPki:
    """Create both PKIs under ``root`` and every node's enrolment bundle."""
    pki = DemoPki(root / "pki-kh", root / "pki-vn")
    vn, kh = Pki(pki.vn), Pki(pki.kh)
    vn.init("vn", VN_HQ, now)
    kh.init("kh", HQ, now)
    # One keyset version per country for the whole fleet; bundles are written below.
    for country, folder in (("vn", vn), ("kh", kh)):
        specs = [
            NodeSpec(o.node, Role.BLO, o.regions, o.counterparts)
            for o in offices
            if o.country == country
        ]
        if country == "kh":
            specs += [NodeSpec(ARCHIVE, Role.ARCHIVE), NodeSpec(ATTACKER, Role.REGIONAL)]
        folder.issue_many(specs, now, bundles=False)
    kh.server("broker", ["localhost", "127.0.0.1"], now)
    vn.import_root(pki.kh)
    kh.import_root(pki.vn)
    # Bundles are written last so each carries both countries' final keysets.
    for folder in (kh, vn):
        for node in folder.keyset().nodes:
            folder.write_bundle(node.node)
    return pki
