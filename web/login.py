"""``python -m web.login USER``: print a login-file line for USER (asks the password twice).

python -m web.login officer >> web-logins.txt
blo-sub run ... --web --web-host 0.0.0.0 --web-cert c.pem --web-key k.pem --web-login web-logins.txt
"""

from __future__ import annotations

import getpass
import sys

from web.security import hash_password


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or "." in args[0] or ":" in args[0]:
        print("usage: python -m web.login USER   (a user name without dots or colons)")
        return 2
    first = getpass.getpass(f"password for {args[0]}: ")
    if len(first) < 10 or first != getpass.getpass("again: "):
        print("not the same twice, or shorter than 10 characters", file=sys.stderr)
        return 1
    print(f"{args[0]}:{hash_password(first)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
