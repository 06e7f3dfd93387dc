"""The receiver's audience check (schemas.authority.addressed_to), both ways round.

Kills the mutants "region audience always true" and "country audience always true"
(issue 9, tests that cannot fail): a message scoped to a region or a country is
NOT_FOR_ME at an office outside it, and accepted at one inside it.
"""

from __future__ import annotations

import pytest
from netsim import ALERT, Net

from schemas import Kind, Reason, Scope, addressed_to, topics_for


@pytest.fixture(scope="module")
def net() -> Net:
    return Net()


@pytest.mark.parametrize(
    ("sender", "scope", "inside", "outside"),
    [
        # Bavet and Moc Bai share the border region; Dong Kralor faces Laos.
        ("kh-nacd", Scope.region("kh-vn-bavet"), "kh-blo-bavet", "kh-blo-dongkralor"),
        ("th-unodc-rbm", Scope.region("kh-vn-bavet"), "vn-blo-mocbai", "kh-blo-dongkralor"),
        ("kh-nacd", Scope.country("kh"), "kh-blo-dongkralor", "vn-blo-mocbai"),
        ("vn-sodc", Scope.country("vn"), "vn-blo-mocbai", "kh-blo-bavet"),
    ],
)
def test_scoped_alert_reaches_inside_and_not_outside(
    net: Net, sender: str, scope: Scope, inside: str, outside: str
) -> None:
    data = net.send(sender, ALERT, scope)
    topic = topics_for(Kind.ALERT, scope, sender)[0]
    assert net.receiver(me=inside).receive(topic, data, net.now).ok
    refused = net.receiver(me=outside).receive(topic, data, net.now)
    assert not refused.ok
    assert refused.reason is Reason.NOT_FOR_ME  # type: ignore[union-attr]


def test_addressed_to_region_and_country(net: Net) -> None:
    bavet, dongkralor = net.entries["kh-blo-bavet"], net.entries["kh-blo-dongkralor"]
    mocbai = net.entries["vn-blo-mocbai"]
    assert addressed_to(Scope.region("kh-vn-bavet"), bavet)
    assert addressed_to(Scope.region("kh-vn-bavet"), mocbai)
    assert not addressed_to(Scope.region("kh-vn-bavet"), dongkralor)
    assert addressed_to(Scope.country("kh"), dongkralor)
    assert not addressed_to(Scope.country("kh"), mocbai)
    assert not addressed_to(Scope.country("vn"), bavet)


def test_a_node_missing_from_its_keysets_is_the_audience_of_nothing(net: Net) -> None:
    scope = Scope.country("kh")
    data = net.send("kh-nacd", ALERT, scope)
    refused = net.receiver(me="kh-blo-nosuch").receive("blo/country/kh", data, net.now)
    assert not refused.ok
    assert refused.reason is Reason.NOT_FOR_ME  # type: ignore[union-attr]
    assert "re-enrol" in refused.detail  # type: ignore[union-attr]
    assert net.receiver(me="kh-blo-bavet").receive("blo/country/kh", data, net.now).ok
