"""``blo-sub run --web``: the flags and the server they make (imported by subscriber/cli.py).

    blo-sub run --bundle kh-blo-bavet.json -h broker.example.org -p 8883 --web [--web-port 8080]

Loopback (127.0.0.1) by default. ``--web-host`` beyond loopback needs ``--web-cert``
and ``--web-key`` and either ``--web-login FILE`` (lines made by ``python -m
web.login USER``) or ``--web-client-ca`` (client certificates); without them the
command stops at once, saying what is missing.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from certs import EnrolmentBundle
from web.security import BindPolicy

if TYPE_CHECKING:
    from web.server import WebServer

__all__ = ["add_web_flags", "policy_of", "web_server"]


def add_web_flags(parser: argparse.ArgumentParser) -> None:
    """The ``--web*`` options of ``blo-sub run``."""
    parser.add_argument(
        "--web", action="store_true", help="also serve the officer's or HQ's page (web app)"
    )
    parser.add_argument("--web-port", type=int, default=8080, help="its port (default %(default)s)")
    parser.add_argument(
        "--web-host",
        default="127.0.0.1",
        help="its address (default %(default)s; others need TLS and a login)",
    )
    parser.add_argument("--web-cert", type=Path, help="TLS certificate (PEM) for the page")
    parser.add_argument("--web-key", type=Path, help="its private key (PEM)")
    parser.add_argument(
        "--web-login", type=Path, help="login file: user:hash lines (python -m web.login USER)"
    )
    parser.add_argument(
        "--web-client-ca", type=Path, help="require client certificates issued by this CA"
    )


def policy_of(args: argparse.Namespace) -> BindPolicy:
    """The bind policy the flags ask for."""
    return BindPolicy(
        host=args.web_host,
        certfile=args.web_cert,
        keyfile=args.web_key,
        login_file=args.web_login,
        client_ca=args.web_client_ca,
    )


def web_server(bundle: EnrolmentBundle, folder: Path, args: argparse.Namespace) -> WebServer | None:
    """The web server ``--web`` asks for (not started), or None. Raises ``BindRefused``
    (a ``BloError``) for a bind beyond loopback without TLS and a login."""
    if not args.web:
        return None
    from web.server import WebServer

    return WebServer(bundle, folder, policy_of(args), args.web_port)
