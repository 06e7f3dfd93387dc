"""How the web app's browser tests and its benchmark start Debian's Chromium.

Playwright drives the system's ``chromium`` (apt) through ``executable_path``, so no
browser is downloaded. The flags keep it off the network: without the background
networking ones, Chromium's own connections are refused by a closed network, many at
a time, and it looks up Google's hosts at every start.
"""

from __future__ import annotations

__all__ = ["CHROMIUM", "CHROMIUM_ARGS"]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
