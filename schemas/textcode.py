"""Script-aware text coding: one byte a character for Khmer, Thai, Lao and Burmese.

UTF-8 spends three bytes on every Khmer letter. Unicode's SCSU (UTS #6)
showed the way out: a text in one small script is ASCII plus one 128-code-point
window, so one byte a character suffices. This is the single-window subset of
that idea, which is all a field message needs:

    payload  = window-id byte, then coded bytes
    0x00-7F  the ASCII character itself (except 0x1B)
    0x80-FF  the character at window base + (byte - 0x80)
    0x1B     escape: one character in UTF-8 follows (anything outside the window)

The codec picks the window that makes the text shortest and falls back to plain
UTF-8 when no window helps. On the reference alert's Khmer text: 883 bytes as
UTF-8, 304 coded (bench/size.py measures it on every run).
"""

from __future__ import annotations

__all__ = ["WINDOWS", "decode_text", "encode_text"]

#: Window id -> base code point. Append only: the id is on the wire.
WINDOWS: dict[int, int] = {
    1: 0x1780,  # Khmer
    2: 0x0E00,  # Thai
    3: 0x0E80,  # Lao
    4: 0x1000,  # Myanmar (U+1000-107F; the rest is escaped)
}
_ESC = 0x1B


def _coded_length(text: str, base: int) -> int:
    top = base + 0x80
    size = 0
    for ch in text:
        o = ord(ch)
        if (o < 0x80 and o != _ESC) or base <= o < top:
            size += 1
        else:
            size += 1 + len(ch.encode("utf-8", "surrogatepass"))
    return size


def encode_text(text: str) -> bytes | None:
    """The coded form of ``text``, or None when plain UTF-8 is as short or shorter."""
    if text.isascii():
        return None
    utf8_size = len(text.encode("utf-8", "surrogatepass"))
    best: tuple[int, int] | None = None
    for window_id, base in WINDOWS.items():
        if not any(base <= ord(ch) < base + 0x80 for ch in text):
            continue
        size = _coded_length(text, base) + 1
        if size < utf8_size and (best is None or size < best[0]):
            best = (size, window_id)
    if best is None:
        return None
    window_id = best[1]
    base = WINDOWS[window_id]
    out = bytearray((window_id,))
    for ch in text:
        o = ord(ch)
        if o < 0x80 and o != _ESC:
            out.append(o)
        elif base <= o < base + 0x80:
            out.append(o - base + 0x80)
        else:
            out.append(_ESC)
            out += ch.encode("utf-8")
    return bytes(out)


def _utf8_length(lead: int) -> int:
    if lead < 0x80:
        return 1
    if 0xC2 <= lead <= 0xDF:
        return 2
    if 0xE0 <= lead <= 0xEF:
        return 3
    if 0xF0 <= lead <= 0xF4:
        return 4
    raise ValueError(f"byte 0x{lead:02x} cannot start a UTF-8 character")


# Per window: byte 0x80 + k (read as Latin-1) -> the window's k-th character.
_TABLES = {wid: {0x80 + k: base + k for k in range(0x80)} for wid, base in WINDOWS.items()}


def decode_text(payload: bytes) -> str:
    """Decode a coded text; raises ``ValueError`` saying what is malformed."""
    if not payload:
        raise ValueError("coded text is empty (no window id)")
    table = _TABLES.get(payload[0])
    if table is None:
        raise ValueError(f"unknown text window {payload[0]}")
    # Runs between escapes are mapped in C (Latin-1 then translate): this runs
    # for every text of every message a tablet receives.
    out: list[str] = []
    i, n = 1, len(payload)
    while i < n:
        j = payload.find(_ESC, i)
        if j < 0:
            j = n
        out.append(payload[i:j].decode("latin-1").translate(table))
        if j == n:
            break
        if j + 1 >= n:
            raise ValueError("coded text ends inside an escape")
        size = _utf8_length(payload[j + 1])
        chunk = payload[j + 1 : j + 1 + size]
        if len(chunk) != size:
            raise ValueError("coded text ends inside an escaped character")
        out.append(chunk.decode("utf-8"))  # strict: rejects overlongs and surrogates
        i = j + 1 + size
    return "".join(out)
