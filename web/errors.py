"""The web app's errors, under the project's one root (``schemas.errors.BloError``)."""

from __future__ import annotations

from schemas import BloError

__all__ = ["BindRefused", "LoginFileError", "WebError"]


class WebError(BloError):
    """The web app could not start or serve as asked; the message says what to do."""


class BindRefused(WebError):
    """A bind beyond loopback without TLS and a login (or client certificates)."""


class LoginFileError(WebError):
    """The login file is missing, unreadable or not in the ``user:scrypt$...`` form."""
