"""blo-alert identity and trust: a country's PKI, its keyset, and enrolment bundles.

Import from this package, not its modules. ``blo-certs`` (certs.cli) is the
operator's command-line face of ``Pki``.
"""

from certs.bundle import BUNDLE_FORMAT, EnrolmentBundle, load_trust
from certs.errors import BundleError, CertsError, PkiExistsError, PkiInputError, PkiMissingError
from certs.pki import KEYSET_DAYS, NodeSpec, Pki

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
