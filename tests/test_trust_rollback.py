"""Trust that cannot be rolled back (issue 9, item 7), on both brokers.

A revocation lives in the newest keyset and revocation list. Whoever can write
their retained slots can put older ones back, and a tablet switched on later
reads the slot first. So: only the trust publisher (the archive role) may write
trust topics; a node asks the archive for the newest trust at every connect;
and the archive puts a rolled-back slot right as soon as it sees it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from brokers import Network, embedded_broker, mosquitto_broker
from mqttc import TestClient
from netsim import ALERT
from nodekit import Nodes, wait_for

from broker.archive_service import ArchiveService
from certs import EnrolmentBundle, Pki
from schemas import Role, Scope, open_envelope, seal


@dataclass
class Rolled:
    """A network whose kh-rc was revoked after every office was enrolled."""

    network: Network
    old_keyset: bytes
    old_revocation: bytes
    version: int  # of the keyset and revocation list that revoke kh-rc


def revoke_after_enrolment(network: Network) -> Rolled:
    pki = Pki(network.kh)
    now = datetime.now(UTC)
    # A second trust publisher: it may write the slots without taking over the archive's
    # session (a second archive, a restored broker or stolen archive credentials).
    pki.issue("kh-archive2", Role.ARCHIVE, now)
    old_keyset = (network.kh / "trust" / "keyset.msg").read_bytes()
    old_revocation = (network.kh / "trust" / "revocation.msg").read_bytes()
    keyset = pki.revoke("kh-rc", now, reason="coordinator's laptop stolen")
    return Rolled(network, old_keyset, old_revocation, keyset.version)


def start(kind: str, network: Network):  # type: ignore[no-untyped-def]
    return (embedded_broker if kind == "amqtt" else mosquitto_broker)(network)


def slot(network: Network, port: int, name: str) -> list[bytes]:
    """What a fresh reader is handed from the retained slot ``blo/trust/kh/NAME``."""
    reader = TestClient(network.bundle("kh-blo-poipet"), port, clean=True)
    try:
        assert reader.connect()
        assert reader.subscribe(f"blo/trust/kh/{name}")
        return [p for t, p, _ in reader.collect(quiet=0.8) if t == f"blo/trust/kh/{name}"]
    finally:
        reader.close()


def version_of(data: bytes) -> int:
    return open_envelope(data).header.seq


@pytest.fixture(params=["amqtt", "mosquitto"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def rolled(network: Network) -> Rolled:
    return revoke_after_enrolment(network)


@pytest.fixture
def archive_factory(tmp_path: Path) -> Iterator[object]:
    started: list[ArchiveService] = []

    def make(network: Network, port: int) -> ArchiveService:
        archive = ArchiveService(
            EnrolmentBundle.load(network.bundle("kh-archive")),
            "127.0.0.1",
            port,
            tmp_path / f"archive{len(started)}.sqlite3",
            trust_source=Pki(network.kh).trust_messages,
            gap_grace=timedelta(seconds=1),
            probe_every=3.0,
        )
        started.append(archive)
        return archive

    yield make
    for archive in started:
        archive.stop()


def test_hq_cannot_put_an_old_keyset_in_the_retained_slot(rolled: Rolled, kind: str) -> None:
    network = rolled.network
    new = {n: (network.kh / "trust" / f"{n}.msg").read_bytes() for n in ("keyset", "revocation")}
    with start(kind, network) as handle:
        # The trust publisher fills the slots (no archive service: nothing repairs them).
        archive = TestClient(network.bundle("kh-archive"), handle.port, clean=True)
        assert archive.connect()
        for name, data in new.items():
            assert archive.publish(f"blo/trust/kh/{name}", data, retain=True)
        archive.close()
        assert slot(network, handle.port, "keyset") == [new["keyset"]]  # the control
        # HQ's own credential tries the rollback, retained and then live.
        hq = TestClient(network.bundle("kh-nacd"), handle.port, clean=True)
        assert hq.connect()
        hq.publish("blo/trust/kh/keyset", rolled.old_keyset, retain=True)
        hq.publish("blo/trust/kh/revocation", rolled.old_revocation, retain=True)
        hq.close()
        assert slot(network, handle.port, "keyset") == [new["keyset"]], kind
        assert slot(network, handle.port, "revocation") == [new["revocation"]], kind


def test_tablet_enrolled_before_a_revocation_learns_it_past_a_rolled_back_slot(
    rolled: Rolled, kind: str, tmp_path: Path, archive_factory
) -> None:  # type: ignore[no-untyped-def]
    """Only the on-connect trust request can teach Bavet here: the archive's own
    retained publishing and its slot repair are switched off for this test."""
    network = rolled.network
    with start(kind, network) as handle:
        archive = archive_factory(network, handle.port)
        archive.publish_trust = lambda: None
        archive._repair_slot = lambda topic, data: None
        archive.start()
        assert archive.connected.wait(10)
        # The rolled-back slot: the lists from before kh-rc's revocation.
        rogue = TestClient(network.bundle("kh-archive2"), handle.port, clean=True)
        assert rogue.connect()
        assert rogue.publish("blo/trust/kh/keyset", rolled.old_keyset, retain=True)
        assert rogue.publish("blo/trust/kh/revocation", rolled.old_revocation, retain=True)
        assert slot(network, handle.port, "revocation") == [rolled.old_revocation]
        # Bavet was enrolled before the revocation and is switched on only now.
        nodes = Nodes(network, handle.port, tmp_path)
        bavet = nodes.start("kh-blo-bavet")
        try:
            trust = bavet.receiver.trust
            assert wait_for(
                lambda: (r := trust.revocation("kh")) is not None and r.version == rolled.version,
                15,
            ), f"Bavet holds revocation v{trust.revocation('kh').version}, not v{rolled.version}"
            now = datetime.now(UTC).replace(microsecond=0)
            revoked = seal(
                EnrolmentBundle.load(network.bundle("kh-rc")).signer(),
                ALERT,
                seq=1,
                scope=Scope.all(),
                issued=now,
                expires=now + timedelta(days=1),
            )
            control = seal(
                EnrolmentBundle.load(network.bundle("kh-nacd")).signer(),
                ALERT,
                seq=1,
                scope=Scope.country("kh"),
                issued=now,
                expires=now + timedelta(days=1),
            )
            # Delivered by a credential that may write Bavet's replay topic.
            assert rogue.publish("blo/replay/kh-blo-bavet", revoked)
            assert rogue.publish("blo/replay/kh-blo-bavet", control)
            assert wait_for(lambda: bavet.inbox.count() >= 1, 15), "the control never arrived"
            assert wait_for(lambda: bavet.inbox.rejections().get("revoked_key", 0) >= 1, 5)
            held = [s.sealed.header.sender for s in bavet.inbox.messages()]
            assert held == ["kh-nacd"], held
            assert not trust.stale(datetime.now(UTC))
        finally:
            nodes.stop_all()
            rogue.close()


def test_archive_repairs_a_rolled_back_slot_within_a_minute(
    rolled: Rolled, kind: str, archive_factory
) -> None:  # type: ignore[no-untyped-def]
    network = rolled.network
    with start(kind, network) as handle:
        archive = archive_factory(network, handle.port)
        archive.start()
        assert archive.connected.wait(10)
        assert wait_for(
            lambda: (
                [version_of(d) for d in slot(network, handle.port, "revocation")]
                == [rolled.version]
            ),
            10,
        ), "the archive never published the current revocation list"
        # A live watcher sees the rollback arrive and then the repair (a fresh reader
        # alone could not tell a repaired slot from a rollback not yet stored).
        watcher = TestClient(network.bundle("kh-analyst"), handle.port, clean=True)
        assert watcher.connect()
        assert watcher.subscribe("blo/trust/+/revocation")
        assert watcher.subscribe("blo/trust/+/keyset")
        watcher.collect(quiet=0.5)  # the current slots, handed over at subscribe
        rogue = TestClient(network.bundle("kh-archive2"), handle.port, clean=True)
        assert rogue.connect()
        assert rogue.publish("blo/trust/kh/revocation", rolled.old_revocation, retain=True)
        assert rogue.publish("blo/trust/kh/keyset", rolled.old_keyset, retain=True)
        rogue.close()
        began = time.monotonic()
        seen: dict[str, list[int]] = {"blo/trust/kh/revocation": [], "blo/trust/kh/keyset": []}
        while time.monotonic() - began < 60:
            for topic, data, _ in watcher.collect(quiet=0.5, total=1.0):
                seen[topic].append(version_of(data))
            if all(v[-1:] == [rolled.version] and len(v) >= 2 for v in seen.values()):
                break
        watcher.close()
        old = version_of(rolled.old_revocation)
        for topic, versions in seen.items():
            assert versions[:1] == [old], f"the rollback of {topic} was never seen: {versions}"
            assert versions[-1:] == [rolled.version], (
                f"{topic} not repaired in a minute: {versions}"
            )
        for name in ("revocation", "keyset"):
            assert wait_for(
                lambda name=name: (
                    [version_of(d) for d in slot(network, handle.port, name)] == [rolled.version]
                ),
                10,
            ), f"the {name} slot was not left repaired"
