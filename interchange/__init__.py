"""Interchange: blo-alert messages in and out of other systems' formats.

CAP 1.2 (cap.py, both ways), GeoJSON (geojson.py), KML (kml.py) and Cursor on
Target (cot.py) out; ``export.py`` picks messages from an inbox and writes one
format. Sans-I/O like schemas/: the caller reads files and gives ``now``.
"""

from __future__ import annotations

from interchange.errors import (
    CapError,
    ExportError,
    InterchangeError,
    UnmappableError,
    UnsafeXmlError,
)

__all__ = ["CapError", "ExportError", "InterchangeError", "UnmappableError", "UnsafeXmlError"]
