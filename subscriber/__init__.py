"""blo-alert subscriber: this package is built by its own issue (see the project's issue list).

It stands above `schemas` (wire contract) and `certs` (identity and trust) and imports
only their public API.
"""

__all__: list[str] = []
