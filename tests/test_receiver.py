"""The sans-I/O receiver core: every refusal reason, and what it accepts."""

from __future__ import annotations

from datetime import timedelta

import pytest
from netsim import ALERT, Net, reference_alert

from schemas import (
    Accepted,
    Bulletin,
    BulletinText,
    Category,
    Crime,
    Incident,
    Kind,
    Lang,
    MsgType,
    Position,
    Reason,
    Receipt,
    ReceiptStatus,
    Rejected,
    Scope,
    trust_topic,
)


def incident(net: Net) -> Incident:
    return Incident(
        crime=Crime.DRUG_TRAFFICKING,
        occurred=net.now - timedelta(hours=2),
        position=Position(lat=11.0791, lon=106.1846, accuracy_m=10),
        crossing="Bavet",
    )


def bulletin() -> Bulletin:
    return Bulletin(
        category=Category.MIGRANT_SMUGGLING,
        text={Lang.EN: BulletinText(headline="Van seen crossing at night")},
    )


def rejected(result: object, reason: Reason) -> Rejected:
    assert isinstance(result, Rejected), result
    assert result.reason is reason, str(result)
    assert str(result)  # a sentence a person can read
    return result


def test_reference_alert_accepted_with_typed_body(net: Net) -> None:
    body, scope, issued, expires = reference_alert()
    wire = net.send("kh-nacd", body, scope, issued=issued, expires=expires)
    # The reference alert is scoped to all: only a regional coordinator may send that.
    rejected(net.receiver().receive("blo/all", wire, net.now), Reason.UNAUTHORIZED)
    wire = net.send("th-unodc-rbm", body, scope, issued=issued, expires=expires)
    result = net.receiver("kh-blo-bavet").receive("blo/all", wire, net.now)
    assert isinstance(result, Accepted)
    assert result.body == body
    assert result.active
    assert result.header.sender == "th-unodc-rbm"


@pytest.mark.parametrize(
    ("sender", "scope", "topic"),
    [
        ("kh-blo-bavet", Scope.country("kh"), "blo/country/kh"),  # a BLO may not alert
        ("kh-analyst", Scope.country("kh"), "blo/country/kh"),  # an observer sends nothing
        ("kh-nacd", Scope.country("vn"), "blo/country/vn"),  # HQ alerts only its own country
        ("kh-nacd", Scope.all(), "blo/all"),  # nor all
        ("kh-nacd", Scope.node("vn-blo-mocbai"), "blo/node/vn-blo-mocbai"),
        ("kh-nacd", Scope.region("th-mm-maesai"), "blo/region/th-mm-maesai"),
        ("th-unodc-rbm", Scope.country("kh"), "blo/country/kh"),
    ],
)
def test_wrong_role_for_alert(net: Net, sender: str, scope: Scope, topic: str) -> None:
    wire = net.send(sender, ALERT, scope)
    rejected(net.receiver().receive(topic, wire, net.now), Reason.UNAUTHORIZED)


@pytest.mark.parametrize(
    ("sender", "scope", "topic"),
    [
        ("kh-nacd", Scope.country("kh"), "blo/country/kh"),
        ("kh-nacd", Scope.region("kh-vn-bavet"), "blo/region/kh-vn-bavet"),
        ("kh-nacd", Scope.node("kh-blo-bavet"), "blo/node/kh-blo-bavet"),
        ("th-unodc-rbm", Scope.all(), "blo/all"),
        ("th-unodc-rbm", Scope.region("kh-vn-bavet"), "blo/region/kh-vn-bavet"),
    ],
)
def test_allowed_alerts_reach_bavet(net: Net, sender: str, scope: Scope, topic: str) -> None:
    wire = net.send(sender, ALERT, scope)
    assert net.receiver("kh-blo-bavet").receive(topic, wire, net.now).ok


def test_blo_incident_receipt_and_bulletin(net: Net) -> None:
    hq = net.receiver("kh-nacd")
    wire = net.send("kh-blo-bavet", incident(net), Scope.country("kh"))
    assert hq.receive("blo/incident/kh/kh-blo-bavet", wire, net.now).ok
    receipt = Receipt(of=b"\x01" * 16, status=ReceiptStatus.DELIVERED, at=net.now)
    wire = net.send("kh-blo-bavet", receipt, Scope.node("kh-nacd"))
    assert hq.receive("blo/receipt/kh-nacd/kh-blo-bavet", wire, net.now).ok
    wire = net.send("kh-blo-bavet", bulletin(), Scope.bulletin("vn-blo-mocbai"))
    peer = net.receiver("vn-blo-mocbai")
    assert peer.receive("blo/bulletin/vn-blo-mocbai/kh-blo-bavet", wire, net.now).ok


def test_incident_to_another_country_refused(net: Net) -> None:
    wire = net.send("kh-blo-bavet", incident(net), Scope.country("vn"))
    result = net.receiver().receive("blo/incident/vn/kh-blo-bavet", wire, net.now)
    rejected(result, Reason.UNAUTHORIZED)


def test_bulletin_to_non_counterpart_refused(net: Net) -> None:
    wire = net.send("kh-blo-dongkralor", bulletin(), Scope.bulletin("vn-blo-mocbai"))
    result = net.receiver().receive("blo/bulletin/vn-blo-mocbai/kh-blo-dongkralor", wire, net.now)
    assert "not a counterpart" in rejected(result, Reason.UNAUTHORIZED).detail


@pytest.mark.parametrize(
    "topic",
    [
        "blo/all",  # replayed onto a wider topic
        "blo/country/vn",  # onto another country
        "blo/node/kh-blo-bavet",
        "blo/incident/kh/kh-nacd",  # kind confusion: an alert on the incident topic
        "blo/trust/kh/keyset",
    ],
)
def test_scope_must_match_topic(net: Net, topic: str) -> None:
    wire = net.send("kh-nacd", ALERT, Scope.country("kh"))
    result = net.receiver().receive(topic, wire, net.now)
    assert "blo/country/kh" in rejected(result, Reason.WRONG_TOPIC).detail


def test_not_for_me(net: Net) -> None:
    wire = net.send("kh-nacd", ALERT, Scope.node("kh-blo-dongkralor"))
    result = net.receiver("kh-blo-bavet").receive("blo/node/kh-blo-dongkralor", wire, net.now)
    rejected(result, Reason.NOT_FOR_ME)


def test_replay_topic_accepts_what_is_addressed_to_me(net: Net) -> None:
    wire = net.send("kh-nacd", ALERT, Scope.region("kh-vn-bavet"))
    assert net.receiver("kh-blo-bavet").receive("blo/replay/kh-blo-bavet", wire, net.now).ok
    other = net.send("kh-nacd", ALERT, Scope.node("kh-blo-dongkralor"))
    result = net.receiver("kh-blo-bavet").receive("blo/replay/kh-blo-bavet", other, net.now)
    rejected(result, Reason.NOT_FOR_ME)


def test_unknown_key(net: Net) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from schemas import Signer

    stranger = Signer("kh-nacd", Ed25519PrivateKey.generate())
    wire = net.send("kh-nacd", ALERT, Scope.country("kh"), signer=stranger)
    result = net.receiver().receive("blo/country/kh", wire, net.now)
    assert "retry" in rejected(result, Reason.UNKNOWN_KEY).detail


def test_key_signing_for_another_node_is_unknown(net: Net) -> None:
    # Bavet's key, but the header claims to be NACD: no such (node, key) pair.
    from schemas import Signer

    forged = Signer("kh-nacd", net.signers["kh-blo-bavet"].private_key)
    wire = net.send("kh-nacd", ALERT, Scope.country("kh"), signer=forged)
    rejected(net.receiver().receive("blo/country/kh", wire, net.now), Reason.UNKNOWN_KEY)


def test_revoked_key_via_revocation_list(net: Net) -> None:
    receiver = net.receiver()
    wire = net.send("kh-nacd", ALERT, Scope.country("kh"))
    revocation = net.trust_message(net.revoke_key("kh-nacd", version=2))
    assert receiver.receive(trust_topic(Kind.REVOCATION, "kh"), revocation, net.now).ok
    rejected(receiver.receive("blo/country/kh", wire, net.now), Reason.REVOKED_KEY)


def test_revoked_node_via_keyset(net: Net) -> None:
    receiver = net.receiver()
    entries = dict(net.entries)
    entries["kh-nacd"] = entries["kh-nacd"].model_copy(update={"revoked": net.now})
    keyset = net.keyset("kh", version=2).model_copy(
        update={"nodes": tuple(e for n, e in entries.items() if n[:2] == "kh")}
    )
    assert receiver.receive("blo/trust/kh/keyset", net.trust_message(keyset), net.now).ok
    wire = net.send("kh-nacd", ALERT, Scope.country("kh"))
    rejected(receiver.receive("blo/country/kh", wire, net.now), Reason.REVOKED_KEY)


def test_key_not_valid_at_issue_time(net: Net) -> None:
    late = net.now + timedelta(days=400)  # keys in netsim are valid for 365 days
    wire = net.send("kh-nacd", ALERT, Scope.country("kh"), issued=late)
    result = net.receiver().receive("blo/country/kh", wire, late)
    rejected(result, Reason.KEY_NOT_VALID)


def test_keyset_rollback_refused(net: Net) -> None:
    receiver = net.receiver()
    v5 = net.trust_message(net.keyset("kh", version=5))
    v3 = net.trust_message(net.keyset("kh", version=3))
    assert receiver.receive("blo/trust/kh/keyset", v5, net.now).ok
    rejected(receiver.receive("blo/trust/kh/keyset", v3, net.now), Reason.ROLLBACK)
    # The same version again is the normal retained echo, not an attack.
    assert rejected(receiver.receive("blo/trust/kh/keyset", v5, net.now), Reason.DUPLICATE)
    assert Reason.DUPLICATE.benign


def test_keyset_signed_by_wrong_root(net: Net) -> None:
    receiver = net.receiver()
    # Viet Nam's root cannot speak for Cambodia: the key id is not a pinned kh root.
    from schemas import Signer

    vn_root = Signer("kh", net.roots["vn"].private_key)
    forged = net.trust_message(net.keyset("kh", version=9), root=vn_root)
    rejected(receiver.receive("blo/trust/kh/keyset", forged, net.now), Reason.UNKNOWN_KEY)
    # A keyset signed by a node key posing as the root is refused as well.
    posing = Signer("kh", net.signers["kh-nacd"].private_key)
    forged = net.trust_message(net.keyset("kh", version=9), root=posing)
    rejected(receiver.receive("blo/trust/kh/keyset", forged, net.now), Reason.UNKNOWN_KEY)


def test_keyset_on_wrong_topic(net: Net) -> None:
    wire = net.trust_message(net.keyset("kh", version=7))
    rejected(net.receiver().receive("blo/trust/vn/keyset", wire, net.now), Reason.WRONG_TOPIC)


def test_replay_of_same_message_refused(net: Net) -> None:
    receiver = net.receiver()
    wire = net.send("kh-nacd", ALERT, Scope.country("kh"))
    assert receiver.receive("blo/country/kh", wire, net.now).ok
    rejected(receiver.receive("blo/country/kh", wire, net.now), Reason.DUPLICATE)


def test_same_message_id_under_new_sequence_refused(net: Net) -> None:
    receiver = net.receiver()
    msg_id = b"\x42" * 16
    first = net.send("kh-nacd", ALERT, Scope.country("kh"), msg_id=msg_id)
    again = net.send("kh-nacd", ALERT, Scope.country("kh"), msg_id=msg_id)
    assert receiver.receive("blo/country/kh", first, net.now).ok
    rejected(receiver.receive("blo/country/kh", again, net.now), Reason.DUPLICATE)


def test_sequence_far_below_window_refused(net: Net) -> None:
    receiver = net.receiver()
    span = receiver.window.span
    top = net.send("kh-nacd", ALERT, Scope.country("kh"), seq=span * 3)
    assert receiver.receive("blo/country/kh", top, net.now).ok
    old = net.send("kh-nacd", ALERT, Scope.country("kh"), seq=span)
    rejected(receiver.receive("blo/country/kh", old, net.now), Reason.TOO_OLD)


def test_absurd_sequence_jump_refused(net: Net) -> None:
    receiver = net.receiver()
    assert receiver.receive(
        "blo/country/kh", net.send("kh-nacd", ALERT, Scope.country("kh"), seq=10), net.now
    ).ok
    jump = net.send("kh-nacd", ALERT, Scope.country("kh"), seq=2**62)
    rejected(receiver.receive("blo/country/kh", jump, net.now), Reason.SEQ_JUMP)


def test_gaps_reported_and_filled(net: Net) -> None:
    receiver = net.receiver()

    def send(seq: int) -> bool:
        wire = net.send("kh-nacd", ALERT, Scope.country("kh"), seq=seq)
        return receiver.receive("blo/country/kh", wire, net.now).ok

    assert send(1)
    assert send(2)
    assert send(6)
    assert [(g.sender, g.first, g.last) for g in receiver.gaps()] == [("kh-nacd", 3, 5)]
    # Within the reorder grace nothing is reported yet.
    assert receiver.gaps(net.now, grace=timedelta(seconds=30)) == []
    later = net.now + timedelta(minutes=1)
    assert len(receiver.gaps(later, grace=timedelta(seconds=30))) == 1
    assert send(4)  # the archive's replay fills the gap, out of order
    assert [(g.first, g.last) for g in receiver.gaps()] == [(3, 3), (5, 5)]
    assert send(3)
    assert send(5)
    assert receiver.gaps() == []
    assert not send(4)


def test_expired_alert_kept_but_inactive(net: Net) -> None:
    issued = net.now - timedelta(days=10)
    wire = net.send(
        "kh-nacd", ALERT, Scope.country("kh"), issued=issued, expires=issued + timedelta(days=7)
    )
    result = net.receiver().receive("blo/country/kh", wire, net.now)
    assert isinstance(result, Accepted)
    assert not result.active


def test_rejections_do_not_consume_sequence_numbers(net: Net) -> None:
    receiver = net.receiver()
    wire = net.send("kh-nacd", ALERT, Scope.country("kh"), seq=500)
    rejected(receiver.receive("blo/all", wire, net.now), Reason.WRONG_TOPIC)
    assert receiver.receive("blo/country/kh", wire, net.now).ok


def test_cancel_must_reference_an_alert() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="must reference"):
        ALERT.model_copy(update={"msg_type": MsgType.CANCEL}).model_validate(
            {**ALERT.model_dump(), "msg_type": MsgType.CANCEL}
        )


def test_stale_or_missing_keyset_warns(net: Net) -> None:
    from schemas import TrustStore

    store = net.store()
    assert store.warnings(net.now) == []
    warnings = store.warnings(net.now + timedelta(days=91))
    assert len(warnings) == 3
    assert all("expired" in w and "reconnect" in w for w in warnings)
    empty = TrustStore({"kh": [net.roots["kh"].public_key]})
    assert "no keyset for kh" in empty.warnings(net.now)[0]


# -- clock and key validity at receipt (issue 9, item 8) ---------------------------------


def _with_nacd_key(net: Net, not_after_days: float, version: int = 50) -> object:
    """A receiver whose kh keyset gives HQ's key validity ending ``not_after_days`` from now."""
    from schemas import KeyEntry, Keyset

    receiver = net.receiver("kh-blo-bavet")
    held = net.entries["kh-nacd"].keys[0]
    key = KeyEntry(
        key_id=held.key_id,
        public_key=held.public_key,
        not_before=net.now - timedelta(days=400),
        not_after=net.now + timedelta(days=not_after_days),
    )
    nodes = tuple(
        e.model_copy(update={"keys": (key,)}) if e.node == "kh-nacd" else e
        for n, e in net.entries.items()
        if n.startswith("kh-")
    )
    keyset = Keyset(
        country="kh",
        version=version,
        issued=net.now,
        expires=net.now + timedelta(days=90),
        nodes=nodes,
    )
    assert receiver.receive(trust_topic(Kind.KEYSET, "kh"), net.trust_message(keyset), net.now).ok
    return receiver


def test_alert_dated_far_ahead_refused(net: Net) -> None:
    """An alert dated 200 days ahead (its key valid then) was stored as active and sorted first."""
    ahead = net.now + timedelta(days=200)
    wire = net.send("kh-nacd", ALERT, Scope.country("kh"), issued=ahead)
    result = rejected(
        net.receiver("kh-blo-bavet").receive("blo/country/kh", wire, net.now),
        Reason.ISSUED_IN_FUTURE,
    )
    assert "clock" in result.detail


def test_clock_skew_within_the_margin_accepted(net: Net) -> None:
    from schemas.receiver import FUTURE_MARGIN

    skewed = net.now + FUTURE_MARGIN - timedelta(seconds=30)
    wire = net.send("kh-nacd", ALERT, Scope.country("kh"), issued=skewed)
    result = net.receiver("kh-blo-bavet").receive("blo/country/kh", wire, net.now)
    assert isinstance(result, Accepted)
    assert result.active


def test_rotated_out_key_cannot_sign_backdated_messages(net: Net) -> None:
    """HQ's key ended 40 days ago (rotated out, not revoked). Whoever kept it signs an alert
    dated inside its validity: refused, judged at receipt (grace 30 days)."""
    receiver = _with_nacd_key(net, not_after_days=-40)
    backdated = net.now - timedelta(days=45)
    wire = net.send("kh-nacd", ALERT, Scope.country("kh"), issued=backdated)
    result = rejected(receiver.receive("blo/country/kh", wire, net.now), Reason.KEY_NOT_VALID)
    assert "arrived" in result.detail


def test_late_delivery_within_the_key_grace_accepted(net: Net) -> None:
    """An offline tablet catching up: signed while the key was valid, the key ended 10 days
    ago, the archive replays it now. Accepted (expired alerts are kept, inactive)."""
    receiver = _with_nacd_key(net, not_after_days=-10)
    wire = net.send("kh-nacd", ALERT, Scope.country("kh"), issued=net.now - timedelta(days=12))
    result = receiver.receive("blo/replay/kh-blo-bavet", wire, net.now)
    assert isinstance(result, Accepted), result
    assert not result.active


def test_trust_on_my_replay_topic_accepted_on_another_refused(net: Net) -> None:
    """The archive answers a node's trust request on that node's replay topic (item 7)."""
    newer = net.trust_message(net.keyset("kh", version=7))
    other = net.receiver("kh-blo-bavet")
    rejected(other.receive("blo/replay/kh-nacd", newer, net.now), Reason.WRONG_TOPIC)
    mine = net.receiver("kh-blo-bavet")
    assert mine.receive("blo/replay/kh-blo-bavet", newer, net.now).ok
    keyset = mine.trust.keyset("kh")
    assert keyset is not None
    assert keyset.version == 7


def test_keyset_with_a_pinned_key_id_but_a_broken_signature_refused(net: Net) -> None:
    """The key id names the pinned root, so only the signature check stands in the way."""
    good = net.trust_message(net.keyset("kh", version=9))
    wire = bytearray(good)
    wire[-1] ^= 0x01  # the signature is the last 64 bytes
    result = net.receiver().receive("blo/trust/kh/keyset", bytes(wire), net.now)
    rejected(result, Reason.BAD_SIGNATURE)
    assert net.receiver().receive("blo/trust/kh/keyset", good, net.now).ok  # positive control


def test_replay_topic_of_another_node_refused(net: Net) -> None:
    """Only this node's own replay topic stands in for the scope's topic."""
    wire = net.send("kh-nacd", ALERT, Scope.region("kh-vn-bavet"))
    result = net.receiver("kh-blo-bavet").receive("blo/replay/kh-blo-poipet", wire, net.now)
    rejected(result, Reason.WRONG_TOPIC)
    assert net.receiver("kh-blo-bavet").receive("blo/replay/kh-blo-bavet", wire, net.now).ok


def test_key_used_before_its_validity_refused(net: Net) -> None:
    """Signed at a time before the key's not_before (netsim: 30 days back), received now."""
    early = net.now - timedelta(days=31)
    wire = net.send("kh-nacd", ALERT, Scope.country("kh"), issued=early)
    result = net.receiver().receive("blo/country/kh", wire, net.now)
    assert "valid" in rejected(result, Reason.KEY_NOT_VALID).detail
    within = net.send("kh-nacd", ALERT, Scope.country("kh"), issued=net.now - timedelta(days=29))
    assert net.receiver().receive("blo/country/kh", within, net.now).ok


def test_trust_store_refuses_an_older_revocation_list(net: Net) -> None:
    """The store's own guard, below the receiver's version check."""
    from schemas.errors import RollbackError

    store = net.store()
    store.apply_revocation(net.revoke_key("kh-nacd", version=4))
    with pytest.raises(RollbackError, match="older"):
        store.apply_revocation(net.revoke_key("kh-blo-bavet", version=3))
    assert store.revoked("kh-nacd", net.signers["kh-nacd"].key_id)
    assert not store.revoked("kh-blo-bavet", net.signers["kh-blo-bavet"].key_id)
