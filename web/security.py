"""The web app's security rules, as pure functions: no sockets, no clock, no globals.

* **Bind policy.** Loopback only, unless the server has TLS *and* a way to know who
  is at the other end (a login file or client certificates): a tablet's page on a
  LAN without them would hand the node's inbox, and its signing, to anyone on it.
  ``check_bind`` refuses such a start with what to add.
* **Sessions and CSRF.** A session id in a signed cookie (HMAC-SHA256 with a secret
  drawn at start; ``HttpOnly``, ``SameSite=Strict``, ``Secure`` over TLS). Every form
  carries ``csrf_token(sid)``, an HMAC of the session id; a POST without the token
  of its own session is refused. The token is bound to the session, not stored.
* **Host check.** On loopback the ``Host`` header must name loopback: a page on
  another site that re-points its DNS name at 127.0.0.1 (DNS rebinding) would
  otherwise be same-origin with the node's pages.
* **Headers.** A content security policy with no inline script or style and
  nothing from elsewhere, so text from a message can never run even if an
  escaping bug let markup through; no framing, no referrer, no sniffing.
* **Passwords.** scrypt (hashlib), one ``user:scrypt$n$r$p$salt$hash`` line per
  user in the login file.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from dataclasses import dataclass
from pathlib import Path

from web.errors import BindRefused, LoginFileError

__all__ = [
    "CSP",
    "BindPolicy",
    "Sessions",
    "check_bind",
    "hash_password",
    "host_allowed",
    "is_loopback",
    "load_logins",
    "security_headers",
    "verify_password",
]

#: Nothing but this origin: no inline script or style (the pages have none), images
#: also from ``data:``/``blob:`` (the photo preview the officer picks), no plugins,
#: no framing, forms only to this origin.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name other than localhost may resolve anywhere


@dataclass(frozen=True, slots=True)
class BindPolicy:
    """Where the web app listens and what protects it."""

    host: str = "127.0.0.1"
    certfile: Path | None = None
    keyfile: Path | None = None
    #: ``user:scrypt$...`` lines; a login is then required.
    login_file: Path | None = None
    #: CA whose client certificates are accepted (and required).
    client_ca: Path | None = None

    @property
    def tls(self) -> bool:
        return self.certfile is not None and self.keyfile is not None

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)


def check_bind(policy: BindPolicy) -> None:
    """Refuse (``BindRefused``) a bind beyond loopback without TLS and a login or
    client certificates; say what to give instead."""
    if (policy.certfile is None) != (policy.keyfile is None):
        raise BindRefused(
            "--web-cert and --web-key go together: give both (a certificate and its key)"
        )
    if policy.client_ca is not None and not policy.tls:
        raise BindRefused("--web-client-ca needs TLS: give --web-cert and --web-key too")
    if policy.loopback:
        return
    missing = []
    if not policy.tls:
        missing.append("TLS (--web-cert and --web-key)")
    if policy.login_file is None and policy.client_ca is None:
        missing.append("a login (--web-login FILE) or client certificates (--web-client-ca)")
    if missing:
        raise BindRefused(
            f"the web app will not listen on {policy.host} without "
            + " and ".join(missing)
            + ": anyone who can reach it could read this node's inbox and send in its name; "
            "listen on 127.0.0.1 (the default) or add them"
        )


def host_allowed(host_header: str, policy: BindPolicy) -> bool:
    """Whether a request's ``Host`` header may be served (see the module note)."""
    if not policy.loopback:
        return True  # a login or client certificate guards it; names vary on a LAN
    name = host_header.rsplit(":", 1)[0] if not host_header.endswith("]") else host_header
    if host_header.startswith("["):
        name = host_header[1:].split("]", 1)[0]
    return is_loopback(name)


def security_headers(tls: bool) -> dict[str, str]:
    """Headers on every response."""
    headers = {
        "Content-Security-Policy": CSP,
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
        "Cross-Origin-Opener-Policy": "same-origin",
        "Cross-Origin-Resource-Policy": "same-origin",
        "Permissions-Policy": "geolocation=(self), camera=(self), microphone=()",
    }
    if tls:
        headers["Strict-Transport-Security"] = "max-age=31536000"
    return headers


class Sessions:
    """Signed session cookies and the CSRF tokens bound to them.

    A cookie is ``SID.USER.MAC``: a random session id, the logged-in user (empty
    before a login) and an HMAC of both; ``USER`` holds no dot (``load_logins``).
    """

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("a session secret needs at least 16 bytes")
        self._secret = secret

    def _mac(self, purpose: str, text: str) -> str:
        return hmac.new(self._secret, f"{purpose}:{text}".encode(), hashlib.sha256).hexdigest()

    @staticmethod
    def new_id() -> str:
        """A fresh random session id."""
        return secrets.token_urlsafe(18)

    def cookie(self, sid: str, user: str = "") -> str:
        """The cookie value for session ``sid`` of ``user``."""
        return f"{sid}.{user}.{self._mac('session', f'{sid}.{user}')}"

    def read(self, cookie: str | None) -> tuple[str, str] | None:
        """(session id, user) from a cookie value, or None if absent or forged."""
        if not cookie or cookie.count(".") != 2:
            return None
        sid, user, mac = cookie.split(".")
        if not sid or not hmac.compare_digest(mac, self._mac("session", f"{sid}.{user}")):
            return None
        return sid, user

    def csrf_token(self, sid: str) -> str:
        """The token every form of session ``sid`` carries."""
        return self._mac("csrf", sid)

    def csrf_ok(self, sid: str, token: str | None) -> bool:
        """Whether ``token`` is session ``sid``'s (constant time)."""
        return bool(token) and hmac.compare_digest(str(token), self.csrf_token(sid))


_SCRYPT = (2**14, 8, 1)


def hash_password(password: str, salt: bytes | None = None) -> str:
    """``scrypt$n$r$p$salt$hash`` for a login file."""
    salt = salt or secrets.token_bytes(16)
    n, r, p = _SCRYPT
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=32)
    return f"scrypt${n}${r}${p}${salt.hex()}${digest.hex()}"


def verify_password(stored: str, password: str) -> bool:
    """Whether ``password`` matches a ``hash_password`` string (constant time)."""
    try:
        name, n, r, p, salt, digest = stored.split("$")
        if name != "scrypt":
            return False
        got = hashlib.scrypt(
            password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p), dklen=32
        )
    except (ValueError, MemoryError):
        return False
    return hmac.compare_digest(got.hex(), digest)


def load_logins(path: Path) -> dict[str, str]:
    """``user -> hash`` from a login file; raises ``LoginFileError`` naming the line."""
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise LoginFileError(f"{path}: {exc.strerror}: give a file of user:hash lines") from None
    logins: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        user, _, stored = line.strip().partition(":")
        if not user or "." in user or not stored.startswith("scrypt$"):
            raise LoginFileError(
                f"{path}:{number}: not 'user:scrypt$...' (user without dots); "
                "make a line with: python -m web.login USER"
            )
        logins[user] = stored
    if not logins:
        raise LoginFileError(f"{path}: no users: add one with python -m web.login USER")
    return logins
