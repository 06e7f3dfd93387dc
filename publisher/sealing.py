"""Which messages a sender seals, and for whom (schemas/seal.py does the sealing).

Bulletins are always sealed, for the offices they name; an alert or incident
is sealed when it is marked confidential, for every node that may read it
(never the archive or the broker). A message that should be sealed but cannot
be (a recipient without a current encryption key, or revoked) is refused
before it is queued, never sent in clear.
"""

from __future__ import annotations

from datetime import datetime

from publisher.errors import ComposeError
from schemas import Kind, Scope, TrustStore, WireModel
from schemas.envelope import BODY_TYPES
from schemas.recipients import seal_recipients
from schemas.seal import RecipientKey

__all__ = ["kind_of", "seal_for"]


def kind_of(body: WireModel) -> Kind:
    """The message kind a body travels as. Raises ``ComposeError`` for anything else."""
    for kind, model in BODY_TYPES.items():
        if isinstance(body, model):
            return kind
    raise ComposeError(f"{type(body).__name__} is not a message kind")


def seal_for(
    kind: Kind,
    scope: Scope,
    sender: str,
    trust: TrustStore,
    now: datetime,
    *,
    confidential: bool = False,
) -> list[RecipientKey] | None:
    """The recipients to seal for, or None to send unsealed. Raises ``ComposeError``."""
    if kind is not Kind.BULLETIN and not confidential:
        return None
    if kind not in (Kind.ALERT, Kind.INCIDENT, Kind.BULLETIN):
        raise ComposeError(f"a {kind.label} cannot be marked confidential")
    recipients = seal_recipients(kind, scope, sender, trust, now)
    if isinstance(recipients, str):
        raise ComposeError(f"not queued: cannot seal the {kind.label}: {recipients}")
    return recipients
