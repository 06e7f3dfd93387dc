"""The messages offices exchange: Alert, Incident, Bulletin and Receipt.

Alerts follow CAP 1.2's shape (status, msg_type, category, severity, urgency,
certainty, references, text per language); the envelope carries CAP's
``sent`` (issued) and ``expires``, the sender and the audience (scope), so the
body does not repeat them. Enum members are wire codes by position: append only.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import Field, model_validator

from schemas.base import Digest, MessageId, ShortText, Timestamp, WireModel
from schemas.ids import NodeId

__all__ = [
    "Agency",
    "Alert",
    "AlertText",
    "Attachment",
    "BlobRef",
    "Bulletin",
    "BulletinText",
    "Category",
    "Certainty",
    "Crime",
    "Incident",
    "IncidentSummary",
    "Item",
    "Lang",
    "MsgType",
    "Position",
    "PositionSource",
    "Receipt",
    "ReceiptStatus",
    "Severity",
    "Status",
    "Unit",
    "Urgency",
]


class Lang(StrEnum):
    """Languages of the programme: English, then the local languages (Khmer first)."""

    EN = "en"
    KM = "km"
    LO = "lo"
    TH = "th"
    VI = "vi"
    MY = "my"
    ZH = "zh"


class Status(StrEnum):
    """CAP status: whether to act on the alert."""

    ACTUAL = "actual"
    EXERCISE = "exercise"
    TEST = "test"


class MsgType(StrEnum):
    """CAP msgType: a new alert, or an update or cancellation of earlier ones."""

    ALERT = "alert"
    UPDATE = "update"
    CANCEL = "cancel"


class Category(StrEnum):
    """What an alert is about."""

    DRUG_SEIZURE = "drug_seizure"
    DRUG_TRAFFICKING = "drug_trafficking"
    MIGRANT_SMUGGLING = "migrant_smuggling"
    HUMAN_TRAFFICKING = "human_trafficking"
    WILDLIFE = "wildlife"
    WEAPONS = "weapons"
    COUNTERFEIT_GOODS = "counterfeit_goods"
    PRECURSORS = "precursors"
    WANTED_PERSON = "wanted_person"
    OTHER = "other"


class Severity(StrEnum):
    """CAP severity."""

    EXTREME = "extreme"
    SEVERE = "severe"
    MODERATE = "moderate"
    MINOR = "minor"
    UNKNOWN = "unknown"


class Urgency(StrEnum):
    """CAP urgency."""

    IMMEDIATE = "immediate"
    EXPECTED = "expected"
    FUTURE = "future"
    PAST = "past"
    UNKNOWN = "unknown"


class Certainty(StrEnum):
    """CAP certainty."""

    OBSERVED = "observed"
    LIKELY = "likely"
    POSSIBLE = "possible"
    UNLIKELY = "unlikely"
    UNKNOWN = "unknown"


class Crime(StrEnum):
    """The crime types officers record."""

    DRUG_TRAFFICKING = "drug_trafficking"
    MIGRANT_SMUGGLING = "migrant_smuggling"
    HUMAN_TRAFFICKING = "human_trafficking"
    WILDLIFE = "wildlife"
    WEAPONS = "weapons"
    COUNTERFEIT_GOODS = "counterfeit_goods"
    OTHER = "other"


class Agency(StrEnum):
    """Agencies staffing a BLO."""

    IMMIGRATION = "immigration"
    CUSTOMS = "customs"
    POLICE = "police"
    SPECIALISED_UNIT = "specialised_unit"


class Unit(StrEnum):
    """Units of seized quantities."""

    KG = "kg"
    G = "g"
    L = "l"
    ML = "ml"
    TABLET = "tablet"
    PIECE = "piece"
    HEAD = "head"
    CARTON = "carton"


class Position(WireModel):
    """A WGS-84 position; ``accuracy_m`` is the radius of uncertainty in metres."""

    lat: Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False)]
    lon: Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False)]
    accuracy_m: Annotated[int, Field(ge=0, le=100_000)] | None = None


class Item(WireModel):
    """One seized item: ``methamphetamine``, ``crystal``, 1.9 ``kg``."""

    substance: ShortText
    form: ShortText | None = None
    quantity: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    unit: Unit


_Items = Annotated[tuple[Item, ...], Field(max_length=64)]
_Count = Annotated[int, Field(ge=0, le=100_000)]
_Refs = Annotated[tuple[MessageId, ...], Field(max_length=32)]


class IncidentSummary(WireModel):
    """What an alert says of the incident behind it."""

    crime: Crime
    occurred: Timestamp
    position: Position | None = None
    place: ShortText | None = None
    reported_by: NodeId | None = None
    items: _Items = ()
    persons_detained: _Count | None = None


class AlertText(WireModel):
    """An alert's words in one language (CAP info: headline, description, instruction)."""

    headline: Annotated[str, Field(min_length=1, max_length=200)]
    description: Annotated[str, Field(max_length=4000)] = ""
    instruction: Annotated[str, Field(max_length=1000)] = ""


_AlertTexts = Annotated[dict[Lang, AlertText], Field(min_length=1)]


class Alert(WireModel):
    """A seizure or threat alert from an HQ or a regional coordinator."""

    msg_type: MsgType
    status: Status
    category: Category
    severity: Severity
    urgency: Urgency
    certainty: Certainty
    text: _AlertTexts
    incident: IncidentSummary | None = None
    references: _Refs = ()

    @model_validator(mode="after")
    def _chains_reference(self) -> Alert:
        if self.msg_type is not MsgType.ALERT and not self.references:
            raise ValueError(f"an {self.msg_type.value} must reference the alert it replaces")
        return self


class PositionSource(StrEnum):
    """Where a photo's position came from: the photo's own EXIF GPS, or the incident's."""

    EXIF = "exif"
    INCIDENT = "incident"


#: Chunk sizes a blob may be cut into: 1 KiB to 64 KiB (8 KiB by default, see photos/).
_ChunkSize = Annotated[int, Field(ge=1024, le=64 * 1024)]
_BlobSize = Annotated[int, Field(ge=1, le=64 * 1024 * 1024)]


class BlobRef(WireModel):
    """One file moved in chunks: its whole-file SHA-256 and size, its media type, the
    chunk size and the Merkle root over its chunks, so each chunk can be checked on its
    own with the proof it travels with (docs/design.md, "Photos")."""

    sha256: Digest
    size: _BlobSize
    media_type: ShortText
    chunk_size: _ChunkSize
    merkle_root: Digest


class Attachment(WireModel):
    """A reference to a photo or document sent in chunks alongside the incident.

    ``sha256``, ``size`` and ``media_type`` describe the file itself (for a photo,
    the full image). The fields after ``taken`` were appended for photos that travel:
    the full image's chunking (``chunk_size``, ``merkle_root``), its ``preview``
    and where ``position`` came from. An attachment without them is a bare
    reference, as before.
    """

    sha256: Digest
    size: Annotated[int, Field(ge=0, le=64 * 1024 * 1024)]
    media_type: ShortText
    position: Position | None = None
    taken: Timestamp | None = None
    chunk_size: _ChunkSize | None = None
    merkle_root: Digest | None = None
    preview: BlobRef | None = None
    position_source: PositionSource | None = None

    @model_validator(mode="after")
    def _chunked_whole(self) -> Attachment:
        if (self.chunk_size is None) != (self.merkle_root is None):
            raise ValueError("chunk_size and merkle_root go together")
        if self.chunk_size is not None and self.size == 0:
            raise ValueError("an empty file has no chunks")
        if self.position_source is not None and self.position is None:
            raise ValueError("position_source says where a position came from; none is given")
        return self

    @property
    def full(self) -> BlobRef | None:
        """The file as a chunked blob, or None for a bare reference."""
        if self.chunk_size is None or self.merkle_root is None:
            return None
        return BlobRef(
            sha256=self.sha256,
            size=self.size,
            media_type=self.media_type,
            chunk_size=self.chunk_size,
            merkle_root=self.merkle_root,
        )


_Narrative = dict[Lang, Annotated[str, Field(min_length=1, max_length=8000)]]


class Incident(WireModel):
    """An incident report from a BLO to its country's HQ."""

    crime: Crime
    occurred: Timestamp
    position: Position
    place: ShortText | None = None
    crossing: ShortText | None = None
    items: _Items = ()
    persons_detained: _Count = 0
    agencies: Annotated[tuple[Agency, ...], Field(max_length=8)] = ()
    narrative: _Narrative = Field(default_factory=dict)
    attachments: Annotated[tuple[Attachment, ...], Field(max_length=32)] = ()


class BulletinText(WireModel):
    """A bulletin's words in one language."""

    headline: Annotated[str, Field(min_length=1, max_length=200)]
    body: Annotated[str, Field(max_length=8000)] = ""


class Bulletin(WireModel):
    """A bulletin between counterpart offices across a border (recipients are the scope)."""

    category: Category
    text: Annotated[dict[Lang, BulletinText], Field(min_length=1)]
    incident: IncidentSummary | None = None
    references: _Refs = ()


class ReceiptStatus(StrEnum):
    """How far an alert has got at an office."""

    DELIVERED = "delivered"
    READ = "read"


class Receipt(WireModel):
    """An office's acknowledgement that a message was stored (delivered) or opened (read)."""

    of: MessageId
    status: ReceiptStatus
    at: Timestamp
