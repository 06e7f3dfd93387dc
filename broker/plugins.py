"""amqtt plugins: certificate identity as authentication, and the registry's topic ACL.

Loaded by amqtt from the broker configuration (``plugins``). The connection
guard (guard.py) has already checked the certificate and the client id by
the time these run; the plugins make amqtt treat the session as the
authenticated node (amqtt 0.12.1 keeps no offline queue for anonymous
sessions) and enforce the ACL on every subscribe, publish and delivery.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from amqtt.contexts import Action as AmqttAction
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin
from amqtt.session import Session

from schemas.access import Action, Rules

__all__ = ["AclPlugin", "CertAuthPlugin"]

log = logging.getLogger("blo.broker")


class CertAuthPlugin(BaseAuthPlugin):  # type: ignore[misc]  # amqtt is untyped
    """A session is its certificate's node, never anonymous."""

    @dataclass
    class Config:
        """No options: identity comes from the TLS client certificate."""

    async def authenticate(self, *, session: Session) -> bool | None:
        ssl_object = session.ssl_object
        # The listener requires and verifies the certificate, so ssl's parsed form exists.
        cert = ssl_object.getpeercert() if ssl_object else None
        if not cert:
            return False
        names = [v for rdn in cert.get("subject", ()) for k, v in rdn if k == "commonName"]
        node = names[0] if names else None
        if node != session.client_id:
            return False
        session.username = node
        session.is_anonymous = False
        return True


class AclPlugin(BaseTopicPlugin):  # type: ignore[misc]  # amqtt is untyped
    """The registry's per-node rules on subscribe, publish and receive."""

    @dataclass
    class Config:
        """``rules``: node -> {"read": [...], "write": [...], "retain": [...]}."""

        rules: dict[str, dict[str, list[str]]] = field(default_factory=dict)

    def __init__(self, context):  # type: ignore[no-untyped-def]
        super().__init__(context)
        self.update(self.config.rules)

    def update(self, rules: dict[str, dict[str, list[str]]]) -> None:
        """Replace the rules (after a keyset change)."""
        self._rules = {
            node: Rules(node, tuple(r["read"]), tuple(r["write"]), tuple(r["retain"]))
            for node, r in rules.items()
        }

    async def topic_filtering(
        self,
        *,
        session: Session | None = None,
        topic: str | None = None,
        action: AmqttAction | None = None,
    ) -> bool | None:
        node = session.client_id if session else None
        rules = self._rules.get(node or "")
        if rules is None or topic is None or action is None:
            return False
        allowed = rules.allows(Action(action.value), topic)
        if not allowed and action is not AmqttAction.RECEIVE:
            log.warning("denied %s %s %s: not in its ACL", node, action.value, topic)
        return allowed
