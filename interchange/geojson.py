"""Incidents as an RFC 7946 GeoJSON FeatureCollection: Point geometry in [lon, lat]."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from interchange.spots import Spot

__all__ = ["feature_collection"]


def _feature(spot: Spot) -> dict[str, Any]:
    pos = spot.position
    properties: dict[str, Any] = {
        "id": spot.msg_id,
        "kind": spot.kind,
        "office": spot.office,
        "sent": spot.sent.isoformat(),
        "occurred": spot.occurred.isoformat(),
        "crime": spot.crime,
        "title": spot.title,
        **spot.facts,
    }
    if pos.accuracy_m is not None:
        properties["accuracy_m"] = pos.accuracy_m
    return {
        "type": "Feature",
        "id": spot.msg_id,
        # RFC 7946 section 3.1.1: longitude first, then latitude (WGS 84).
        "geometry": {"type": "Point", "coordinates": [pos.lon, pos.lat]},
        "properties": properties,
    }


def feature_collection(found: Iterable[Spot]) -> dict[str, Any]:
    """The spots as a FeatureCollection, ready for ``json.dumps``."""
    return {"type": "FeatureCollection", "features": [_feature(s) for s in found]}
