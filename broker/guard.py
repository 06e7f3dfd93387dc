"""The connection guard: MQTT framing checks done before amqtt sees a byte.

amqtt 0.12.1 has no maximum packet size, looks up (and with clean_session
deletes) the stored session of a CONNECT's client id before any auth plugin
runs, and gives an auth plugin the *stored* session's TLS object. So the
checks that protect other offices' sessions and the broker's memory run here,
on each raw packet, with the connection's own certificate:

* a packet may not exceed ``max_packet`` bytes (checked from the length
  prefix, before the body is read);
* the first packet must be a CONNECT whose client id is the certificate's node
  id (no session takeover), without a will (a will would publish past the ACL);
* PUBLISH: QoS 3, DUP on QoS 0, packet id 0, an empty topic or a wildcard in
  the topic are protocol violations; a retained PUBLISH must be allowed by
  the node's rules (only trust topics);
* SUBSCRIBE: reserved flags, packet id 0 and QoS 3 are violations.

``inspect`` is a pure function: packet bytes in, a refusal sentence or None out.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from schemas.access import Action, Rules

__all__ = ["Frame", "PacketError", "inspect", "parse_length"]

CONNECT, PUBLISH, SUBSCRIBE = 1, 3, 8


class PacketError(Exception):
    """A packet that breaks the protocol or the broker's rules (internal to the broker)."""


@dataclass(frozen=True, slots=True)
class Frame:
    """One MQTT control packet: its first byte and its body (after the length)."""

    first: int
    body: bytes

    @property
    def kind(self) -> int:
        return self.first >> 4

    @property
    def flags(self) -> int:
        return self.first & 0x0F


def parse_length(encoded: bytes) -> int | None:
    """Decode an MQTT remaining length; None if more bytes are needed.

    Raises ``PacketError`` when it runs past four bytes.
    """
    value, shift = 0, 0
    for i, byte in enumerate(encoded):
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value
        shift += 7
        if i == 3:
            raise PacketError("malformed remaining length (more than 4 bytes)")
    return None


def _string(body: bytes, at: int) -> tuple[str, int]:
    if at + 2 > len(body):
        raise PacketError("packet ends inside a string length")
    (size,) = struct.unpack_from("!H", body, at)
    end = at + 2 + size
    if end > len(body):
        raise PacketError("packet ends inside a string")
    try:
        return body[at + 2 : end].decode("utf-8"), end
    except UnicodeDecodeError:
        raise PacketError("string is not UTF-8") from None


def _connect(frame: Frame, identity: str) -> str | None:
    body = frame.body
    _, at = _string(body, 0)  # protocol name
    if at + 4 > len(body):
        return "CONNECT is truncated"
    flags = body[at + 1]
    client_id, _ = _string(body, at + 4)
    if client_id != identity:
        return (
            f"client id {client_id[:60]!r} is not the certificate's node id {identity!r}"
            " (a node may only use its own session)"
        )
    if flags & 0x04:
        return "CONNECT with a will message is not allowed (it would publish past the ACL)"
    return None


def _publish(frame: Frame, rules: Rules) -> str | None:
    qos = (frame.flags >> 1) & 0x03
    retain = bool(frame.flags & 0x01)
    if qos == 3:
        return "PUBLISH with QoS 3 (malformed)"
    if qos == 0 and frame.flags & 0x08:
        return "PUBLISH with DUP set on QoS 0 (malformed)"
    topic, at = _string(frame.body, 0)
    if not topic or "+" in topic or "#" in topic or "\x00" in topic:
        return f"PUBLISH topic {topic[:80]!r} is empty or holds a wildcard"
    if qos:
        if at + 2 > len(frame.body):
            return "PUBLISH is missing its packet id"
        if struct.unpack_from("!H", frame.body, at)[0] == 0:
            return "PUBLISH with packet id 0 (malformed)"
    if retain and not rules.allows(Action.PUBLISH, topic, retain=True):
        return f"retained PUBLISH on {topic} is not allowed (only trust topics are retained)"
    return None


def _subscribe(frame: Frame) -> str | None:
    if frame.flags != 0x02:
        return "SUBSCRIBE with reserved flags set (malformed)"
    body = frame.body
    if len(body) < 2 or struct.unpack_from("!H", body, 0)[0] == 0:
        return "SUBSCRIBE with packet id 0 (malformed)"
    at = 2
    while at < len(body):
        _, at = _string(body, at)
        if at >= len(body) or body[at] & 0xFC or (body[at] & 0x03) == 3:
            return "SUBSCRIBE with an invalid QoS byte (malformed)"
        at += 1
    return None


def inspect(frame: Frame, *, first: bool, identity: str, rules: Rules) -> str | None:
    """Why ``frame`` must be refused, or None. Never raises."""
    try:
        if first:
            if frame.kind != CONNECT:
                return "the first packet is not CONNECT"
            return _connect(frame, identity)
        if frame.kind == CONNECT:
            return "a second CONNECT on one connection"
        if frame.kind == PUBLISH:
            return _publish(frame, rules)
        if frame.kind == SUBSCRIBE:
            return _subscribe(frame)
    except PacketError as exc:
        return str(exc)
    return None
