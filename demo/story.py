"""What the offices say in the demo, as the documents an officer would fill in.

The alert is the field report's: NACD forwards a 1.9 kg methamphetamine
seizure at the Cambodia-Lao PDR border to every BLO, in English and Khmer.
Bavet then reports a similar seizure at the Viet Nam border with exact
coordinates, items and two geo-coded photos, and exchanges a bulletin with Moc
Bai across the border. Names, places and figures other than the report's are
illustrative.
"""

from __future__ import annotations

import io
import struct
import zlib
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from PIL import Image

from demo.offices import HQ, VN_COUNTERPART
from photos.exif import with_gps
from photos.images import PreparedPhoto, load_photo
from publisher import compose
from publisher.compose import photo_attachment
from schemas import Draft
from schemas.messages import Position

__all__ = ["BAVET", "alert", "bulletin", "geo_photos", "incident", "photo", "reply"]

BAVET = "kh-blo-bavet"
# Where Bavet's seizure happened (illustrative): beside the Bavet checkpoint.
SEIZURE = {"lat": 11.0735, "lon": 106.1542, "accuracy_m": 8}

_ALERT: dict[str, Any] = {
    "kind": "alert",
    "scope": "country:kh",
    "msg_type": "alert",
    "status": "actual",
    "category": "drug_seizure",
    "severity": "severe",
    "urgency": "immediate",
    "certainty": "observed",
    "incident": {
        "crime": "drug_trafficking",
        "position": {"lat": 14.3312, "lon": 105.4618, "accuracy_m": 15},
        "place": "Cambodia-Lao PDR border, Stung Treng, near the KH-LA-TH tri-border area",
        "reported_by": "kh-blo-dongkralor",
        "items": [
            {"substance": "methamphetamine", "form": "crystal", "quantity": 1.9, "unit": "kg"}
        ],
        "persons_detained": 2,
    },
    "text": {
        "en": {
            "headline": "1.9 kg methamphetamine seized at Cambodia-Lao PDR border",
            "description": "Border police intercepted a motorbike courier carrying 1.9 kg of "
            "crystal methamphetamine on a trail near the tri-border area. Two suspects were "
            "detained. Check vehicles on routes toward the tri-border area.",
            "instruction": "Report similar couriers to NACD at once.",
        },
        "km": {
            "headline": "រឹបអូសមេតំហ្វេតាមីន ១.៩ គីឡូក្រាម នៅព្រំដែនកម្ពុជា-ឡាវ",
            "description": "ប៉ូលិសព្រំដែនបានស្ទាក់ចាប់អ្នកដឹកជញ្ជូនម៉ូតូម្នាក់ "
            "ដែលដឹកមេតំហ្វេតាមីនគ្រីស្តាល់ ១.៩ គីឡូក្រាម នៅតាមផ្លូវលំក្បែរតំបន់ព្រំដែនបីប្រទេស។ "
            "ជនសង្ស័យពីរនាក់ត្រូវបានឃាត់ខ្លួន។",
            "instruction": "សូមរាយការណ៍ពីអ្នកដឹកជញ្ជូនស្រដៀងគ្នាទៅ អាជ្ញាធរជាតិប្រយុទ្ធប្រឆាំងគ្រឿងញៀន ភ្លាមៗ។",
        },
    },
}


def alert(now: datetime) -> Draft:
    """NACD's seizure alert to every Cambodian BLO."""
    doc = {**_ALERT, "incident": {**_ALERT["incident"], "occurred": _ago(now, 3)}}
    return compose(doc, sender=HQ, now=now, expires_in=timedelta(days=7))


def geo_photos(folder: Path, now: datetime) -> list[PreparedPhoto]:
    """Two photos of the find as a phone writes them (JPEG, GPS and time in EXIF), a few
    metres apart, prepared for sending (photos.images: position read, metadata stripped)."""
    out = []
    for number, (dlat, dlon) in enumerate(((0.00021, -0.00034), (-0.00015, 0.00027)), 1):
        image = Image.effect_mandelbrot((1280, 960), (-2.2 + number * 0.3, -1.2, 0.8, 1.2), 64)
        data = io.BytesIO()
        image.convert("RGB").save(data, "JPEG", quality=85)
        where = Position(lat=SEIZURE["lat"] + dlat, lon=SEIZURE["lon"] + dlon, accuracy_m=5)
        jpeg = with_gps(data.getvalue(), where, taken=now - timedelta(hours=1))
        path = folder / f"bavet-seizure-{number}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(jpeg)
        incident = Position(lat=SEIZURE["lat"], lon=SEIZURE["lon"], accuracy_m=8)
        out.append(load_photo(path, incident_position=incident))
    return out


def incident(now: datetime, photos: list[PreparedPhoto]) -> Draft:
    """Bavet's report of a seizure at the Viet Nam border, with its photos' descriptions."""
    doc = {
        "kind": "incident",
        "scope": "country:kh",
        "crime": "drug_trafficking",
        "occurred": _ago(now, 1),
        "position": SEIZURE,
        "place": "Bavet, Svay Rieng, Cambodia-Viet Nam border",
        "crossing": "Bavet - Moc Bai",
        "items": [
            {"substance": "methamphetamine", "form": "crystal", "quantity": 2.4, "unit": "kg"},
            {"substance": "methamphetamine", "form": "yaba", "quantity": 6000, "unit": "tablet"},
        ],
        "persons_detained": 1,
        "agencies": ["police", "customs"],
        "narrative": {
            "en": "Car searched at the Bavet checkpoint; 2.4 kg of crystal methamphetamine and "
            "6,000 tablets in a spare tyre. Driver detained. Photos of the find attached.",
            "km": "ឡានត្រូវបានឆែកនៅប៉ុស្តិ៍បាវិត។ រកឃើញមេតំហ្វេតាមីន ២.៤ គីឡូក្រាម "
            "និងថ្នាំគ្រាប់ ៦០០០ គ្រាប់ ក្នុងកង់ឡានបម្រុង។ អ្នកបើកបរត្រូវបានឃាត់ខ្លួន។",
        },
        "attachments": [photo_attachment(p) for p in photos],
    }
    return compose(doc, sender=BAVET, now=now, expires_in=timedelta(days=30))


def bulletin(now: datetime) -> Draft:
    """Bavet tells Moc Bai what it found, for the other side of the crossing to watch for."""
    return _bulletin(
        now,
        BAVET,
        VN_COUNTERPART,
        "Bavet: methamphetamine in a spare tyre, car crossed from Moc Bai",
        "Silver sedan, spare tyre hid 2.4 kg crystal and 6,000 tablets. "
        "Please check its route on your side.",
    )


def reply(now: datetime) -> Draft:
    """Moc Bai answers Bavet, and only Bavet."""
    return _bulletin(
        now,
        VN_COUNTERPART,
        BAVET,
        "Moc Bai: the car entered from Tay Ninh at 04:10; checking its route",
        "Same plates seen twice last week. We share what we find.",
    )


def _bulletin(now: datetime, sender: str, to: str, headline: str, body: str) -> Draft:
    doc = {
        "kind": "bulletin",
        "scope": f"bulletin:{to}",
        "category": "drug_seizure",
        "text": {"en": {"headline": headline, "body": body}},
    }
    return compose(doc, sender=sender, now=now, expires_in=timedelta(days=7))


def photo(path: Path, width: int = 64, height: int = 48) -> Path:
    """Write a small real PNG (a stand-in for the officer's photo) and return its path."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(
        b"\x00" + b"".join(bytes((x * 4 % 256, y * 5 % 256, 96)) for x in range(width))
        for y in range(height)
    )
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
    png += chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png)
    return path


def _ago(now: datetime, hours: float) -> str:
    return (now - timedelta(hours=hours)).isoformat()
