"""Geo-coded photos for incidents: the sans-I/O core.

- ``photos.images``: read a JPEG/PNG, take its EXIF GPS and time, strip the rest, make
  the preview and the full image.
- ``photos.metadata``: find metadata in a JPEG/PNG, cut it out without re-encoding.
- ``photos.exif``: write a GPS position and time into a JPEG (the demo's geo-coded photos).
- ``photos.chunks``: cut a blob into 8 KiB chunks checkable on their own (Merkle proofs),
  the need map a receiver asks with, reassembly with a whole-file re-hash.
- ``photos.store``: the SQLite blob store (only described blobs, quotas, resume).
- ``photos.map``: the offline incident map (matplotlib, Natural Earth borders).

The network transfer is wired in elsewhere (see README.md, "Photos and the map").
"""
