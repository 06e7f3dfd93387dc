"""``blo-certs``: run a country's PKI (init, issue, rotate, revoke, list, ...)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

from certs.errors import PkiInputError
from certs.pki import Pki
from schemas import BloError, Role

__all__ = ["main"]

_EPILOG = """examples:
  blo-certs init   --dir pki --country kh --hq kh-nacd
  blo-certs issue  --dir pki kh-blo-bavet --role blo --region kh-vn-bavet \\
                   --counterpart vn-blo-mocbai
  blo-certs server --dir pki broker --host localhost --host 127.0.0.1
  blo-certs revoke --dir pki kh-blo-bavet --reason "tablet lost"
  blo-certs list   --dir pki
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="blo-certs",
        description="Run a country's blo-alert PKI: root, node identities, keyset, bundles.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--dir", type=Path, required=True, help="the PKI folder")
        return p

    p = command("init", "create a country root and its HQ node")
    p.add_argument("--country", required=True, help="two-letter country code, e.g. kh")
    p.add_argument("--hq", required=True, help="the HQ node id, e.g. kh-nacd")
    p.add_argument("--days", type=int, default=3650, help="root validity in days")

    p = command("issue", "issue a node: signing key, TLS certificate, keyset entry, bundle")
    p.add_argument("node", help="node id, e.g. kh-blo-bavet")
    p.add_argument("--role", required=True, choices=[r.value for r in Role])
    p.add_argument("--region", action="append", default=[], help="border region (repeatable)")
    p.add_argument(
        "--counterpart", action="append", default=[], help="cross-border office (repeatable)"
    )
    p.add_argument("--days", type=int, default=730, help="key and certificate validity")
    p.add_argument(
        "--replace", action="store_true", help="issue a replacement tablet (old keys revoked)"
    )

    p = command(
        "rotate", "give a node new signing and encryption keys; the old ones overlap for a while"
    )
    p.add_argument("node")
    p.add_argument("--overlap-days", type=int, default=14)

    p = command("revoke", "revoke a node (lost or compromised tablet)")
    p.add_argument("node")
    p.add_argument("--reason", default="", help="shown to operators and in logs")
    p.add_argument("--key", metavar="ID", help="revoke only this key (hex id; the node stays)")

    command("list", "show nodes, roles, scopes, validity and revocation")

    p = command("server", "issue a broker's TLS server certificate")
    p.add_argument("name", help="e.g. broker")
    p.add_argument("--host", action="append", required=True, help="DNS name or IP (repeatable)")

    p = command("import-root", "pin another country's root so its offices can be verified")
    p.add_argument("other", type=Path, help="the other country's PKI folder (public parts)")

    p = command("bridge", "issue this country's bridge certificate to a neighbour's broker")
    p.add_argument("neighbour", help="the neighbour's country code, e.g. vn (root imported)")
    p.add_argument("--days", type=int, default=730, help="certificate validity")
    return parser


def _key_id(text: str) -> bytes:
    try:
        key_id = bytes.fromhex(text)
    except ValueError:
        key_id = b""
    if len(key_id) != 8:
        raise PkiInputError(f"--key {text!r} is not a key id (16 hex digits)")
    return key_id


def _list(pki: Pki, console: Console, now: datetime) -> None:
    keyset = pki.keyset()
    table = Table(
        title=f"keyset {keyset.country} v{keyset.version}, expires {keyset.expires:%Y-%m-%d}",
        title_justify="left",
    )
    # Fits 80 columns: names and lists fold, one region or counterpart per line.
    table.add_column("node", overflow="fold", min_width=10, style="bold")
    table.add_column("role", no_wrap=True)
    table.add_column("regions", overflow="fold", min_width=12)
    table.add_column("counterparts", overflow="fold", min_width=12)
    table.add_column("key", no_wrap=True)
    table.add_column("state", overflow="fold", min_width=10)
    for entry in keyset.nodes:
        key = entry.keys[-1] if entry.keys else None
        if entry.revoked is not None:
            state = f"[red]revoked {entry.revoked:%Y-%m-%d}[/red]"
        elif key is None or not key.valid_at(now):
            state = "[yellow]no valid key[/yellow]"
        else:
            state = f"[green]active[/green] to {key.not_after:%Y-%m-%d}"
        table.add_row(
            entry.node,
            entry.role.value,
            "\n".join(entry.regions) or "-",
            "\n".join(entry.counterparts) or "-",
            key.key_id.hex()[:8] if key else "-",
            state,
        )
    console.print(table)


def _refresh_hq(pki: Pki, console: Console) -> None:
    """Re-write the HQ bundles with the keyset just published.

    ``blo-pub`` judges offices and regions by the keysets its node holds; an HQ
    bundle written at ``init`` knows none of the offices issued since.
    """
    keyset = pki.keyset()
    for entry in keyset.nodes:
        if entry.role is Role.HQ and entry.revoked is None:
            pki.write_bundle(entry.node)
            console.print(
                f"[dim]{entry.node}'s bundle refreshed with keyset v{keyset.version}[/dim]"
            )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``blo-certs``; returns the exit status."""
    args = _parser().parse_args(argv)
    console = Console(soft_wrap=True)
    pki = Pki(args.dir)
    now = datetime.now(UTC).replace(microsecond=0)
    try:
        if args.command == "init":
            entry = pki.init(args.country, args.hq, now, days=args.days)
            console.print(f"root of [bold]{args.country}[/bold] created in {args.dir}/root")
            console.print(f"HQ {entry.node} issued; bundle: {args.dir}/bundles/{entry.node}.json")
            console.print("[yellow]keep root/ca.key and root/trust.key offline[/yellow]")
        elif args.command == "issue":
            entry = pki.issue(
                args.node,
                Role(args.role),
                now,
                regions=args.region,
                counterparts=args.counterpart,
                days=args.days,
                replace=args.replace,
            )
            console.print(
                f"{entry.node} ({entry.role.value}) issued, key {entry.keys[0].key_id.hex()}; "
                f"keyset v{pki.keyset().version}; bundle: {args.dir}/bundles/{entry.node}.json"
            )
        elif args.command == "rotate":
            key = pki.rotate(args.node, now, overlap_days=args.overlap_days)
            rotated = pki.keyset().node(args.node)
            sealing = rotated.seal_keys[-1].key_id.hex() if rotated and rotated.seal_keys else "-"
            console.print(
                f"{args.node}: new key {key.key_id.hex()}, encryption key {sealing}; "
                f"keyset v{pki.keyset().version}"
            )
        elif args.command == "revoke":
            key_id = _key_id(args.key) if args.key else None
            keyset = pki.revoke(args.node, now, reason=args.reason, key_id=key_id)
            what = f"{args.node} key {args.key}" if args.key else args.node
            console.print(
                f"{what} revoked; keyset and revocation list v{keyset.version} written to "
                f"{args.dir}/trust/ (publish them to the broker)"
            )
        elif args.command == "list":
            _list(pki, console, now)
        elif args.command == "server":
            out = pki.server(args.name, args.host, now)
            console.print(f"server certificate for {', '.join(args.host)} in {out}")
        elif args.command == "import-root":
            country = pki.import_root(args.other)
            # Roots are pinned through the bundles: one written before the import
            # would hold the other country's messages in quarantine for ever.
            nodes = [n.node for n in pki.keyset().nodes if n.revoked is None]
            for node in nodes:
                pki.write_bundle(node)
            console.print(
                f"root of {country} pinned; {len(nodes)} bundles in {args.dir}/bundles/ "
                "re-written to carry it: copy them to the nodes again"
            )
        elif args.command == "bridge":
            from certs.bridge import bridge_name, issue_bridge

            out = issue_bridge(args.dir, args.neighbour, now, days=args.days)
            name = bridge_name(pki.country, args.neighbour)
            console.print(f"bridge certificate {name} in {out} (for federation-config)")
        if args.command in ("issue", "rotate", "revoke"):
            _refresh_hq(pki, console)
    except BloError as exc:
        Console(stderr=True, soft_wrap=True).print(
            f"[red]blo-certs: error:[/red] {exc}", highlight=False
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
