"""Errors of the PKI tools, under the library's one base error::

    BloError                    (schemas.errors)
    └── CertsError              anything wrong with PKI files or bundles
        ├── PkiExistsError      refusing to overwrite a key or certificate
        ├── PkiMissingError     a file the operation needs is not there
        ├── PkiInputError       a bad node id, role, region or option
        └── BundleError         an enrolment bundle that cannot be read

Every message names the file or node at fault and what to do about it.
"""

from __future__ import annotations

from schemas.errors import BloError

__all__ = ["BundleError", "CertsError", "PkiExistsError", "PkiInputError", "PkiMissingError"]


class CertsError(BloError):
    """Base of the PKI tools' errors."""


class PkiExistsError(CertsError):
    """A key or certificate is already there; keys are never overwritten silently."""


class PkiMissingError(CertsError):
    """A file the operation needs is missing."""


class PkiInputError(CertsError):
    """A node id, role, region or option is not valid."""


class BundleError(CertsError):
    """An enrolment bundle is unreadable or inconsistent."""
