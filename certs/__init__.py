"""blo-alert identity and trust: a country's PKI, its keyset, and enrolment bundles.

Import from this package, not its modules. ``blo-certs`` (certs.cli) is the
operator's command-line face of ``Pki``. Names are imported on first use, so a
tablet or a broker that never issues certificates does not load cryptography's
X.509 builders (about 8 MiB; bench/run.py memory).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from certs.bundle import BUNDLE_FORMAT, EnrolmentBundle, load_trust
    from certs.errors import (
        BundleError,
        CertsError,
        PkiExistsError,
        PkiInputError,
        PkiMissingError,
    )
    from certs.pki import KEYSET_DAYS, NodeSpec, Pki

_WHERE = {
    "BUNDLE_FORMAT": "certs.bundle",
    "EnrolmentBundle": "certs.bundle",
    "load_trust": "certs.bundle",
    "BundleError": "certs.errors",
    "CertsError": "certs.errors",
    "PkiExistsError": "certs.errors",
    "PkiInputError": "certs.errors",
    "PkiMissingError": "certs.errors",
    "KEYSET_DAYS": "certs.pki",
    "NodeSpec": "certs.pki",
    "Pki": "certs.pki",
}

__all__ = [
    "BUNDLE_FORMAT",
    "KEYSET_DAYS",
    "BundleError",
    "CertsError",
    "EnrolmentBundle",
    "NodeSpec",
    "Pki",
    "PkiExistsError",
    "PkiInputError",
    "PkiMissingError",
    "load_trust",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'certs' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
