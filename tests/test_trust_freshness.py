"""Trust freshness (issue 9, item 7): expiring trust messages and "trust stale"."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from netsim import Net

from certs import KEYSET_DAYS, Pki
from schemas import Kind, Receiver, TrustStore, open_envelope, trust_topic
from schemas.truststore import STALE


def test_a_revocation_list_older_than_its_keyset_is_stale(net: Net) -> None:
    """The PKI signs both under one version: a lagging list was withheld (a rolled-back slot)."""
    store = net.store()
    receiver = Receiver(store)
    assert receiver.receive(
        trust_topic(Kind.REVOCATION, "kh"),
        net.trust_message(net.revoke_key("kh-analyst", 1)),
        net.now,
    ).ok
    # netsim's keyset is v1: the list is level with it, so fresh.
    assert not store.stale(net.now)
    newer = net.keyset("kh", version=2)
    assert receiver.receive(trust_topic(Kind.KEYSET, "kh"), net.trust_message(newer), net.now).ok
    warnings = [w for w in store.warnings(net.now) if w.startswith(STALE)]
    assert len(warnings) == 1
    assert "revocation list kh v1 is older than keyset v2" in warnings[0]
    assert store.stale(net.now)


def test_an_expired_revocation_list_is_stale(net: Net) -> None:
    store = net.store()
    receiver = Receiver(store)
    assert receiver.receive(
        trust_topic(Kind.REVOCATION, "kh"),
        net.trust_message(net.revoke_key("kh-analyst", 1)),
        net.now,
    ).ok
    assert not store.stale(net.now + timedelta(days=89))
    later = net.now + timedelta(days=91)  # netsim signs trust for 90 days
    stale = [w for w in store.warnings(later) if "revocation list kh" in w]
    assert stale
    assert stale[0].startswith(STALE)


def test_refresh_re_signs_the_same_registry_with_a_fresh_expiry(tmp_path: object) -> None:
    from pathlib import Path

    folder = Path(str(tmp_path)) / "pki"
    pki = Pki(folder)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    pki.init("kh", "kh-nacd", start)
    before = pki.keyset()
    later = start + timedelta(days=KEYSET_DAYS - 5)
    after = pki.refresh(later)
    assert after.version == before.version + 1
    assert after.nodes == before.nodes
    assert after.expires == later + timedelta(days=KEYSET_DAYS)
    revocation = open_envelope((folder / "trust" / "revocation.msg").read_bytes())
    assert revocation.header.seq == after.version
    assert revocation.header.expires == after.expires
    store = pki.trust_store(later)
    assert isinstance(store, TrustStore)
    assert not store.stale(start + timedelta(days=KEYSET_DAYS + 1))
