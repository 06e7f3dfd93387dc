"""blo-alert's local web app: the officer's and HQ's pages, served by the node itself.

``blo-sub run --web`` serves it beside the node's client, on 127.0.0.1 by default.
Its role decides what it shows: a BLO officer's inbox, alert and incident forms, or
HQ's delivery matrix, offices, incident map, trends and alert form. Messages are
composed, signed and queued by the node through the same code as ``blo-pub``
(publisher/submit.py); the browser never holds a key.

Pure parts, testable without sockets: ``security`` (bind policy, sessions, CSRF,
headers, passwords), ``views`` (view models), ``svgmap`` (the border map), ``live``
(what changed, for server-sent events). ``app`` wires them into Starlette routes;
``server`` runs uvicorn on a thread.
"""

from web.errors import BindRefused, LoginFileError, WebError
from web.security import BindPolicy, check_bind

__all__ = ["BindPolicy", "BindRefused", "LoginFileError", "WebError", "check_bind"]
