"""The sans-I/O receiver core: envelope bytes in, Accepted or Rejected out.

No sockets, no clock, no files: the caller passes the topic, the bytes and
``now``, and persists whatever it likes. Nothing here raises for bad input; a
bad message comes back as ``Rejected`` with a ``Reason`` and a sentence a
person can act on, so one bad message never stops a receive loop.

Order of checks, cheapest trustworthy answer first::

    parse header (strict, bounded)  -> MALFORMED / UNSUPPORTED
    find the key                    -> UNKNOWN_KEY (quarantine and retry later)
    verify signature on raw bytes   -> BAD_SIGNATURE
    revocation, clock, key validity -> REVOKED_KEY / ISSUED_IN_FUTURE / KEY_NOT_VALID
    topic derived from the header   -> WRONG_TOPIC
    role may send kind to scope     -> UNAUTHORIZED
    scope includes this node        -> NOT_FOR_ME
    sequence window, message id     -> DUPLICATE / TOO_OLD / SEQ_JUMP
    body decode (only now inflated) -> MALFORMED
    sealed: recipients and keys     -> BAD_RECIPIENTS / UNKNOWN_KEY / REVOKED_KEY / ...
            (checked without opening; a recipient with an ``Opener`` then opens it)
    trust messages: version         -> ROLLBACK
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from schemas.authority import addressed_to, may_send
from schemas.base import WireModel
from schemas.envelope import Header, Sealed, open_envelope
from schemas.errors import DecodeError, RollbackError, UnsupportedError
from schemas.kinds import Kind
from schemas.recipients import recipients_refusal
from schemas.seal import Opener, SealedBody
from schemas.topics import replay_topic, topics_for
from schemas.trust import Keyset, Revocation
from schemas.truststore import TrustStore
from schemas.window import Gap, ReplayWindow, SeqVerdict

#: Signatures checked together by one task of a ``receive_many`` executor: large
#: enough that a task's overhead is small beside its verifications (~0.1 ms each),
#: small enough that the first results come while the rest are still being checked.
VERIFY_CHUNK = 8

__all__ = ["FUTURE_MARGIN", "KEY_GRACE", "Accepted", "Reason", "Receiver", "Rejected", "Result"]

#: How far a message's ``issued`` may lie ahead of the receiver's clock (clock skew).
#: Beyond it the message is refused: an alert dated months ahead would otherwise be
#: stored as active and sort first, and a key's validity would be judged at a time
#: that has not come.
FUTURE_MARGIN = timedelta(minutes=10)
#: How long after a key's ``not_after`` a message it signed while valid is still
#: accepted: long enough for a tablet that was offline to catch up from the archive,
#: short enough that a rotated-out key stops working (docs/design.md, "Clock").
KEY_GRACE = timedelta(days=30)


class Reason(StrEnum):
    """Why a message was refused."""

    MALFORMED = "malformed"
    UNSUPPORTED = "unsupported"
    UNKNOWN_KEY = "unknown_key"
    BAD_SIGNATURE = "bad_signature"
    REVOKED_KEY = "revoked_key"
    ISSUED_IN_FUTURE = "issued_in_future"
    KEY_NOT_VALID = "key_not_valid"
    WRONG_TOPIC = "wrong_topic"
    UNAUTHORIZED = "unauthorized"
    NOT_FOR_ME = "not_for_me"
    DUPLICATE = "duplicate"
    TOO_OLD = "too_old"
    SEQ_JUMP = "seq_jump"
    ROLLBACK = "rollback"
    #: A sealed message whose recipients are not its audience (e.g. a third office).
    BAD_RECIPIENTS = "bad_recipients"

    @property
    def benign(self) -> bool:
        """True for the normal echoes of at-least-once delivery, not signs of attack."""
        return self is Reason.DUPLICATE


@dataclass(frozen=True, slots=True)
class Accepted:
    """A verified, authorised, new message. ``active`` is False once it has expired."""

    header: Header
    body: WireModel
    topic: str
    raw: bytes
    active: bool

    ok = True


@dataclass(frozen=True, slots=True)
class Rejected:
    """A refused message, with what a person needs to act on it."""

    reason: Reason
    detail: str
    topic: str
    header: Header | None = None

    ok = False

    def __str__(self) -> str:
        who = f" from {self.header.sender}" if self.header else ""
        return f"rejected{who} on {self.topic}: {self.reason.value}: {self.detail}"


Result = Accepted | Rejected


def _decode_reason(exc: DecodeError) -> Reason:
    return Reason.UNSUPPORTED if isinstance(exc, UnsupportedError) else Reason.MALFORMED


class Receiver:
    """Checks envelopes against a trust store, as node ``me`` (None: any audience)."""

    def __init__(
        self,
        trust: TrustStore,
        *,
        me: str | None = None,
        window: ReplayWindow | None = None,
        max_ids: int = 65_536,
        opener: Opener | None = None,
    ) -> None:
        """``opener`` (the node's encryption keys) opens sealed messages sealed for ``me``;
        without one, an accepted sealed message's body is its ``SealedBody``."""
        self.trust = trust
        self.opener = opener
        self.me = me
        self.window = window or ReplayWindow()
        self._ids: OrderedDict[bytes, None] = OrderedDict()
        self._max_ids = max_ids

    def receive(self, topic: str, data: bytes, now: datetime) -> Result:
        """Check one envelope that arrived on ``topic``."""
        try:
            sealed = open_envelope(data)
        except UnsupportedError as exc:
            return Rejected(Reason.UNSUPPORTED, str(exc), topic)
        except DecodeError as exc:
            return Rejected(Reason.MALFORMED, str(exc), topic)
        if sealed.header.kind in (Kind.KEYSET, Kind.REVOCATION):
            return self._receive_trust(topic, sealed, data, now)
        return self._receive_message(topic, sealed, data, now)

    def receive_many(
        self,
        items: Sequence[tuple[str, bytes]],
        now: datetime,
        verify_in: Executor | None = None,
    ) -> list[Result]:
        """``receive`` each (topic, envelope) in order; the results are the same.

        With ``verify_in`` (a thread pool: cryptography releases the GIL while it
        verifies), the batch's signatures are checked there, ``VERIFY_CHUNK`` at a
        time and ahead of the caller, while the caller's thread runs the other
        checks and decodes the bodies already verified. Every check still happens
        in order and a body is still decoded only after its signature held; a
        signature checked ahead counts only if the key found then is the very key
        object that checked it (a keyset or revocation list earlier in the batch
        loads the keys again).
        """
        # item index -> (its envelope, the key, the future of its chunk, its place in it)
        ahead: dict[int, tuple[Sealed, Ed25519PublicKey, Future[list[bool]], int]] = {}
        if verify_in is not None and len(items) > 1:
            jobs: list[tuple[int, Sealed, Ed25519PublicKey]] = []
            for i, (_, data) in enumerate(items):
                try:
                    sealed = open_envelope(data)
                except DecodeError:
                    continue
                h = sealed.header
                found = None if h.kind in _TRUST else self.trust.lookup(h.sender, h.key_id)
                if found is not None:
                    jobs.append((i, sealed, found.public_key))
            for start in range(0, len(jobs), VERIFY_CHUNK):
                chunk = jobs[start : start + VERIFY_CHUNK]
                future = verify_in.submit(_verify_all, [(sealed, key) for _, sealed, key in chunk])
                for place, (i, sealed, key) in enumerate(chunk):
                    ahead[i] = (sealed, key, future, place)
        out: list[Result] = []
        for i, (topic, data) in enumerate(items):
            early = ahead.get(i)
            if early is None:
                out.append(self.receive(topic, data, now))
                continue
            sealed, key, future, place = early
            verified = (key, future.result()[place])
            out.append(self._receive_message(topic, sealed, data, now, verified))
        return out

    def gaps(self, now: datetime | None = None, grace: timedelta = timedelta(0)) -> list[Gap]:
        """Missing sequence ranges per sender, older than ``grace`` (for replay requests)."""
        return self.window.gaps(now, grace)

    def forget(self, msg_ids: Iterable[bytes]) -> None:
        """Forget message ids accepted here but never stored by the caller.

        With the window rebuilt from the store, this lets the redelivery of a
        batch whose commit failed be accepted instead of refused as a duplicate.
        """
        for msg_id in msg_ids:
            self._ids.pop(msg_id, None)

    # -- node messages -----------------------------------------------------------

    def _receive_message(
        self,
        topic: str,
        sealed: Sealed,
        data: bytes,
        now: datetime,
        verified: tuple[Ed25519PublicKey, bool] | None = None,
    ) -> Result:
        """``verified``: (the key, whether the signature held for it), checked ahead."""
        h = sealed.header

        def reject(reason: Reason, detail: str) -> Rejected:
            return Rejected(reason, detail, topic, h)

        found = self.trust.lookup(h.sender, h.key_id)
        if found is None:
            return reject(
                Reason.UNKNOWN_KEY,
                f"key {h.key_id.hex()} of {h.sender} is not in any keyset held; "
                "kept for a retry when a newer keyset arrives",
            )
        if verified is not None and verified[0] is found.public_key:
            good = verified[1]
        else:
            good = sealed.verify(found.public_key)
        if not good:
            return reject(Reason.BAD_SIGNATURE, "signature does not match the message bytes")
        revoked = self.trust.revoked(h.sender, h.key_id)
        if revoked:
            return reject(Reason.REVOKED_KEY, revoked)
        if h.issued > now + FUTURE_MARGIN:
            return reject(
                Reason.ISSUED_IN_FUTURE,
                f"issued {h.issued.isoformat()}, more than {FUTURE_MARGIN} ahead of this "
                f"node's clock ({now.replace(microsecond=0).isoformat()}): check the clock "
                "of the sender, or of this node",
            )
        if not found.key.valid_at(h.issued):
            return reject(
                Reason.KEY_NOT_VALID,
                f"key {h.key_id.hex()} is valid {found.key.not_before.isoformat()} to "
                f"{found.key.not_after.isoformat()}, message issued {h.issued.isoformat()}",
            )
        # Validity is also judged at receipt: the claimed ``issued`` is the signer's word,
        # so a rotated-out key could otherwise sign backdated messages for ever.
        if now > found.key.not_after + KEY_GRACE:
            return reject(
                Reason.KEY_NOT_VALID,
                f"key {h.key_id.hex()} ended {found.key.not_after.isoformat()}; what it signed "
                f"is accepted until {KEY_GRACE.days} days after that, and this arrived "
                f"{now.replace(microsecond=0).isoformat()}",
            )
        me = self.trust.node(self.me) if self.me else None
        on_replay = self.me is not None and topic == replay_topic(self.me)
        expected = topics_for(h.kind, h.scope, h.sender)
        if topic not in expected and not on_replay:
            where = ", ".join(expected) or "no topic"
            return reject(Reason.WRONG_TOPIC, f"a {h.kind.label} to {h.scope} belongs on {where}")
        denied = may_send(found.node, h.kind, h.scope, found.keyset)
        if denied:
            return reject(Reason.UNAUTHORIZED, denied)
        if self.me is not None and me is None:
            # Without its own entry a node cannot tell what is meant for it; taking
            # everything would make it a reader of every audience.
            return reject(Reason.NOT_FOR_ME, f"{self.me} is in no keyset held: re-enrol this node")
        if me is not None and not addressed_to(h.scope, me):
            return reject(Reason.NOT_FOR_ME, f"{h.scope} does not include {me.node}")
        return self._admit(topic, sealed, data, now)

    def _admit(self, topic: str, sealed: Sealed, data: bytes, now: datetime) -> Result:
        h = sealed.header
        verdict = self.window.check(h.sender, h.seq, epoch=h.epoch)
        name = f"{h.sender} #{h.seq} (outbox {h.epoch:x})"
        if verdict is SeqVerdict.DUPLICATE or h.msg_id in self._ids:
            return Rejected(Reason.DUPLICATE, f"{name} was already received", topic, h)
        top = self.window.top(h.sender, epoch=h.epoch)
        if verdict is SeqVerdict.TOO_OLD:
            return Rejected(Reason.TOO_OLD, f"{name} is below the window (top #{top})", topic, h)
        if verdict is SeqVerdict.JUMP:
            return Rejected(Reason.SEQ_JUMP, f"{name} jumped from #{top}", topic, h)
        try:
            body = sealed.decode_body()
        except DecodeError as exc:
            return Rejected(_decode_reason(exc), f"body: {exc}", topic, h)
        if isinstance(body, SealedBody):
            fault = recipients_refusal(h, body, self.trust)
            if fault is not None:
                return Rejected(Reason(fault[0]), fault[1], topic, h)
            if self.opener is not None:
                # What cannot be opened is still accepted (as ``Unopened``, with why):
                # the signature holds, and refusing would only make it asked for again.
                body = sealed.open_body(self.opener, body)
        self.window.commit(h.sender, h.seq, now, epoch=h.epoch)
        self._ids[h.msg_id] = None
        if len(self._ids) > self._max_ids:
            self._ids.popitem(last=False)
        return Accepted(h, body, topic, data, active=now < h.expires)

    # -- trust messages ------------------------------------------------------------

    def _receive_trust(self, topic: str, sealed: Sealed, data: bytes, now: datetime) -> Result:
        h = sealed.header

        def reject(reason: Reason, detail: str) -> Rejected:
            return Rejected(reason, detail, topic, h)

        root = self.trust.root_key(h.sender, h.key_id)
        if root is None:
            return reject(
                Reason.UNKNOWN_KEY,
                f"{h.sender} root key {h.key_id.hex()} is not pinned; "
                "import that country's root with blo-certs",
            )
        if not sealed.verify(root):
            return reject(Reason.BAD_SIGNATURE, "signature does not match the root key")
        # The archive answers a node's trust request on its replay topic (issue 9, item 7).
        on_replay = self.me is not None and topic == replay_topic(self.me)
        if topic not in topics_for(h.kind, h.scope, h.sender) and not on_replay:
            return reject(Reason.WRONG_TOPIC, f"{h.kind.label} of {h.sender} arrived on {topic}")
        try:
            body = sealed.decode_body()
        except DecodeError as exc:
            return reject(_decode_reason(exc), f"body: {exc}")
        assert isinstance(body, Keyset | Revocation)
        if body.country != h.sender or body.version != h.seq:
            return reject(Reason.MALFORMED, "trust body disagrees with its header")
        held = (
            self.trust.keyset(h.sender)
            if isinstance(body, Keyset)
            else self.trust.revocation(h.sender)
        )
        if held is not None and held.version == body.version:
            return reject(Reason.DUPLICATE, f"{h.kind.label} {h.sender} v{body.version} is held")
        try:
            if isinstance(body, Keyset):
                self.trust.apply_keyset(body)
            else:
                self.trust.apply_revocation(body, h.expires)
        except RollbackError as exc:
            return reject(Reason.ROLLBACK, str(exc))
        return Accepted(h, body, topic, data, active=True)


_TRUST = (Kind.KEYSET, Kind.REVOCATION)


def _verify_all(checks: list[tuple[Sealed, Ed25519PublicKey]]) -> list[bool]:
    return [sealed.verify(key) for sealed, key in checks]
