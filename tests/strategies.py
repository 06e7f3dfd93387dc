"""Hypothesis strategies for every wire model, with Khmer, Thai, Lao and Burmese text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import strategies as st

from schemas import (
    Agency,
    Alert,
    AlertText,
    Attachment,
    Bulletin,
    BulletinText,
    Category,
    Certainty,
    Crime,
    Incident,
    IncidentSummary,
    Item,
    KeyEntry,
    Keyset,
    Lang,
    MsgType,
    NodeEntry,
    Position,
    Receipt,
    ReceiptStatus,
    Revocation,
    RevokedKey,
    Role,
    Severity,
    Status,
    Unit,
    Urgency,
)

# Characters from the scripts of the region, plus ASCII, Latin with diacritics
# (Vietnamese), CJK, the escape byte and characters just outside each window.
_ALPHABET = st.one_of(
    st.characters(min_codepoint=0x20, max_codepoint=0x7E),
    st.characters(min_codepoint=0x1780, max_codepoint=0x17FF),  # Khmer
    st.characters(min_codepoint=0x0E00, max_codepoint=0x0EFF),  # Thai, Lao
    st.characters(min_codepoint=0x1000, max_codepoint=0x109F),  # Myanmar
    st.sampled_from("ăâđêôơưạảấầẩẫậ中国边境毒品\x1b\u200b\U0001f6a8"),
    st.characters(exclude_categories=("Cs",)),
)


def text(min_size: int = 0, max_size: int = 60) -> st.SearchStrategy[str]:
    return st.text(_ALPHABET, min_size=min_size, max_size=max_size)


def times() -> st.SearchStrategy[datetime]:
    return st.builds(
        lambda secs, q: datetime.fromtimestamp(secs, UTC).astimezone(
            timezone(timedelta(minutes=15 * q))
        ),
        st.integers(0, 2**33),
        st.integers(-48, 56),
    )


nodes = st.from_regex(r"\A(kh|vn|la|th)-[a-z0-9]{1,8}(-[a-z0-9]{1,6}){0,2}\Z")
ids = st.binary(min_size=16, max_size=16)
floats = st.floats(min_value=0.001, max_value=1e6, allow_nan=False)

positions = st.builds(
    Position,
    lat=st.floats(-90, 90),
    lon=st.floats(-180, 180),
    accuracy_m=st.none() | st.integers(0, 100_000),
)
items = st.builds(
    Item,
    substance=text(1),
    form=st.none() | text(1),
    quantity=floats,
    unit=st.sampled_from(Unit),
)
summaries = st.builds(
    IncidentSummary,
    crime=st.sampled_from(Crime),
    occurred=times(),
    position=st.none() | positions,
    place=st.none() | text(1),
    reported_by=st.none() | nodes,
    items=st.lists(items, max_size=3).map(tuple),
    persons_detained=st.none() | st.integers(0, 100_000),
)
alert_texts = st.builds(
    AlertText,
    headline=text(1, 80),
    description=text(0, 200),
    instruction=text(0, 80),
)
alerts = st.builds(
    Alert,
    msg_type=st.just(MsgType.ALERT),
    status=st.sampled_from(Status),
    category=st.sampled_from(Category),
    severity=st.sampled_from(Severity),
    urgency=st.sampled_from(Urgency),
    certainty=st.sampled_from(Certainty),
    text=st.dictionaries(st.sampled_from(Lang), alert_texts, min_size=1, max_size=3),
    incident=st.none() | summaries,
    references=st.lists(ids, max_size=3).map(tuple),
) | st.builds(
    Alert,
    msg_type=st.sampled_from([MsgType.UPDATE, MsgType.CANCEL]),
    status=st.sampled_from(Status),
    category=st.sampled_from(Category),
    severity=st.sampled_from(Severity),
    urgency=st.sampled_from(Urgency),
    certainty=st.sampled_from(Certainty),
    text=st.dictionaries(st.sampled_from(Lang), alert_texts, min_size=1, max_size=2),
    references=st.lists(ids, min_size=1, max_size=3).map(tuple),
)
attachments = st.builds(
    Attachment,
    sha256=st.binary(min_size=32, max_size=32),
    size=st.integers(0, 64 * 1024 * 1024),
    media_type=st.sampled_from(["image/jpeg", "image/png", "application/pdf"]),
    position=st.none() | positions,
    taken=st.none() | times(),
)
incidents = st.builds(
    Incident,
    crime=st.sampled_from(Crime),
    occurred=times(),
    position=positions,
    place=st.none() | text(1),
    crossing=st.none() | text(1),
    items=st.lists(items, max_size=3).map(tuple),
    persons_detained=st.integers(0, 100_000),
    agencies=st.lists(st.sampled_from(Agency), max_size=4, unique=True).map(tuple),
    narrative=st.dictionaries(st.sampled_from(Lang), text(1, 200), max_size=2),
    attachments=st.lists(attachments, max_size=3).map(tuple),
)
bulletins = st.builds(
    Bulletin,
    category=st.sampled_from(Category),
    text=st.dictionaries(
        st.sampled_from(Lang),
        st.builds(BulletinText, headline=text(1, 80), body=text(0, 200)),
        min_size=1,
        max_size=2,
    ),
    incident=st.none() | summaries,
    references=st.lists(ids, max_size=2).map(tuple),
)
receipts = st.builds(Receipt, of=ids, status=st.sampled_from(ReceiptStatus), at=times())
key_entries = st.builds(
    KeyEntry,
    key_id=st.binary(min_size=8, max_size=8),
    public_key=st.binary(min_size=32, max_size=32),
    not_before=times(),
    not_after=times(),
)
keysets = st.builds(
    lambda version, issued, entries: Keyset(
        country="kh",
        version=version,
        issued=issued,
        expires=issued,
        nodes=tuple(
            NodeEntry(node=f"kh-node{i}", role=role, keys=keys)
            for i, (role, keys) in enumerate(entries)
        ),
    ),
    st.integers(1, 2**63 - 1),
    times(),
    st.lists(
        st.tuples(st.sampled_from(Role), st.lists(key_entries, max_size=2).map(tuple)), max_size=4
    ),
)
revocations = st.builds(
    Revocation,
    country=st.just("kh"),
    version=st.integers(1, 2**63 - 1),
    issued=times(),
    revoked=st.lists(
        st.builds(
            RevokedKey,
            node=nodes.filter(lambda n: n.startswith("kh")),
            key_id=st.none() | st.binary(min_size=8, max_size=8),
            at=times(),
            reason=text(0, 40),
        ),
        max_size=3,
    ).map(tuple),
)

any_body = st.one_of(alerts, incidents, bulletins, receipts, keysets, revocations)
