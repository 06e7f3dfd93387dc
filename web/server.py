"""Serving the web app: uvicorn on a thread of the node's process, on a socket bound here.

The socket is bound before uvicorn starts (port 0 gives a free port, which ``url``
then names), after ``check_bind`` has accepted the policy. TLS (and client
certificates) are uvicorn's ``ssl_*`` options. ``stop`` ends open event streams at
once (they look at the app's stopping flag) and waits at most a few seconds.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import uvicorn

from certs import EnrolmentBundle
from web.app import WebApp
from web.errors import WebError
from web.node import WebNode
from web.security import BindPolicy, check_bind, load_logins

__all__ = ["WebServer"]

log = logging.getLogger("blo.web")


class WebServer:
    """The node's web app, served in the background: ``start()``, ``url``, ``stop()``."""

    def __init__(
        self,
        bundle: EnrolmentBundle,
        folder: Path,
        policy: BindPolicy | None = None,
        port: int = 8080,
        *,
        watch_period: float = 0.3,
    ) -> None:
        self.policy = policy or BindPolicy()
        check_bind(self.policy)  # refused before anything listens
        logins = load_logins(self.policy.login_file) if self.policy.login_file else {}
        self.node = WebNode(bundle, folder, lambda: datetime.now(UTC))
        self.web = WebApp(self.node, self.policy, logins=logins, watch_period=watch_period)
        self.port = port
        self._sock: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        scheme = "https" if self.policy.tls else "http"
        host = self.policy.host
        host = f"[{host}]" if ":" in host else host
        return f"{scheme}://{host}:{self.port}/"

    def start(self, wait: float = 10.0) -> str:
        """Bind, serve on a thread, wait until it answers; returns the page's address."""
        family = socket.AF_INET6 if ":" in self.policy.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.policy.host, self.port))
        except OSError as exc:
            sock.close()
            raise WebError(
                f"the web app cannot listen on {self.policy.host}:{self.port}: {exc.strerror}; "
                "give another --web-port"
            ) from None
        sock.listen(64)
        self._sock = sock
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.web.app,
            log_level="warning",
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=2,
            ssl_certfile=str(self.policy.certfile) if self.policy.certfile else None,
            ssl_keyfile=str(self.policy.keyfile) if self.policy.keyfile else None,
            ssl_ca_certs=str(self.policy.client_ca) if self.policy.client_ca else None,
            ssl_cert_reqs=ssl.CERT_REQUIRED if self.policy.client_ca else ssl.CERT_NONE,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="blo-web", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + wait
        while not self._server.started and time.monotonic() < deadline:
            if not self._thread.is_alive():
                raise WebError("the web app stopped while starting: see the log above")
            time.sleep(0.05)
        if not self._server.started:
            raise WebError(f"the web app did not start within {wait:g} s")
        log.info("%s: web app at %s", self.node.node, self.url)
        return self.url

    def stop(self) -> None:
        """Stop serving (event streams end at once); close the node's files."""
        self.web._stopping = True
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
        if self._sock is not None:
            self._sock.close()
        self.node.close()
