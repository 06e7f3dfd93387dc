"""``blo-broker``: run the embedded broker, the archive, or write Mosquitto's configuration.

blo-broker [run] [-c broker.toml] [-h ADDR] [-p PORT] [--pki DIR] [--no-archive]
blo-broker archive --bundle pki/bundles/kh-archive.json [-h HOST] [-p PORT] [--data DIR]
blo-broker mosquitto-config --pki DIR --out DIR [-h ADDR] [-p PORT]
blo-broker federation-config --pki DIR --rules federation.toml --out DIR [-h ADDR] [-p PORT]

Host and port are ``-h/--host`` and ``-p/--port`` everywhere, as in mosquitto's
tools (so help is ``--help`` only). One archive per SQLite file: a second one
on the same file is refused (a lock file beside it, held while it runs).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from broker.config import BrokerSettings, load_settings
from broker.embedded import EmbeddedBroker
from broker.errors import BrokerError
from broker.mosquitto import write_mosquitto
from certs import EnrolmentBundle
from certs.folder import own_country, trust_messages
from schemas import BloError, Role

if TYPE_CHECKING:
    from subscriber.lock import FolderLock

__all__ = ["main"]

log = logging.getLogger("blo.broker")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="blo-broker",
        add_help=False,
        description="The blo-alert broker: embedded MQTT over TLS with the node ACL, and the "
        "archive that replays what a broker lost.",
        epilog="'blo-broker COMMAND --help' for each command; 'run' is the default.",
    )
    parser.add_argument("--help", action="help", help="show this help and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=text, description=text, add_help=False)
        p.add_argument("--help", action="help", help="show this help and exit")
        return p

    run = command("run", "run the embedded broker (and the archive)")
    # Flags default to None so a TOML file or BLO_BROKER_* can set them; shown: the built-in.
    default = BrokerSettings()
    run.add_argument("-c", "--config", type=Path, help="TOML file with a [broker] table")
    run.add_argument("-h", "--host", help=f"address to listen on (default {default.host})")
    run.add_argument(
        "-p", "--port", type=int, help=f"TLS port, 0 picks a free one (default {default.port})"
    )
    run.add_argument(
        "--pki", type=Path, help=f"the PKI folder blo-certs manages (default {default.pki})"
    )
    run.add_argument(
        "--server", help=f"server certificate name in PKI/servers/ (default {default.server})"
    )
    run.add_argument(
        "--data", type=Path, help=f"folder for the archive's SQLite file (default {default.data})"
    )
    run.add_argument(
        "--max-packet",
        type=int,
        help=f"largest MQTT packet in bytes (default {default.max_packet})",
    )
    run.add_argument(
        "--no-archive",
        dest="archive",
        action="store_const",
        const=False,
        help="run the broker without the archive beside it",
    )
    run.add_argument("-v", "--verbose", action="store_true", help="log amqtt's own messages")

    arc = command("archive", "run the archive on its own, beside any broker")
    arc.add_argument("--bundle", type=Path, required=True, help="the archive's enrolment bundle")
    arc.add_argument("-h", "--host", default="127.0.0.1", help="broker host (default %(default)s)")
    arc.add_argument(
        "-p", "--port", type=int, default=8883, help="broker TLS port (default %(default)s)"
    )
    arc.add_argument(
        "--data",
        type=Path,
        default=Path("broker-data"),
        help="folder of archive.sqlite3 (default %(default)s)",
    )
    arc.add_argument("--pki", type=Path, help="publish this PKI folder's trust messages")

    mos = command("mosquitto-config", "write Mosquitto 2.0 files from the registry")
    mos.add_argument("--pki", type=Path, required=True, help="the PKI folder blo-certs manages")
    mos.add_argument("--out", type=Path, required=True, help="folder to write the files to")
    mos.add_argument(
        "-h",
        "--host",
        default="0.0.0.0",  # noqa: S104 - production default
        help="address Mosquitto listens on (default %(default)s)",
    )
    mos.add_argument("-p", "--port", type=int, default=8883, help="TLS port (default %(default)s)")
    mos.add_argument(
        "--server", default="broker", help="certificate in PKI/servers/ (default %(default)s)"
    )
    mos.add_argument("--data", type=Path, help="persistence folder (default OUT/data)")
    mos.add_argument(
        "--max-packet",
        type=int,
        default=512 * 1024,
        help="largest MQTT packet in bytes (default %(default)s)",
    )
    mos.add_argument(
        "--user", default="mosquitto", help="user Mosquitto drops to as root (default %(default)s)"
    )

    fed = command(
        "federation-config",
        "write Mosquitto 2.0 files (as mosquitto-config) plus the bridges a sharing-rules file "
        "sets between national brokers",
    )
    fed.add_argument("--rules", type=Path, required=True, help="the sharing-rules TOML file")
    for action in mos._actions:  # the same options as mosquitto-config
        if action.dest != "help":
            fed._add_action(action)
    return parser


def _logging(verbose: bool) -> None:
    handler: logging.Handler
    if sys.stderr.isatty():
        from rich.console import Console  # an operator at a terminal
        from rich.logging import RichHandler

        handler = RichHandler(console=Console(stderr=True), show_path=False, markup=False)
    else:
        # A service's log (journald, a file): plain lines, and no rich renderer in memory.
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logging.basicConfig(level=logging.INFO, format="%(message)s", handlers=[handler], force=True)
    if not verbose:
        for noisy in ("amqtt", "transitions"):
            logging.getLogger(noisy).setLevel(logging.WARNING)


def _archive_only(bundle: EnrolmentBundle, path: Path) -> EnrolmentBundle:
    """``bundle``, if it is an archive's: any other identity lacks the archive's rights."""
    if bundle.role is not Role.ARCHIVE:
        raise BrokerError(
            f"{path} is the bundle of {bundle.node}, a {bundle.role.value} node: the archive "
            f"runs only as an archive (blo-certs issue --dir PKI {bundle.node[:2]}-archive "
            "--role archive)"
        )
    return bundle


def lock_archive(db: Path) -> FolderLock:
    """Lock ``db`` for this process's life (a lock file beside it); refuse if taken.

    Two archives on one SQLite file would each keep their own replay window and
    acknowledge what the other one stored. The lock is the kernel's (flock), so
    it is released when the process ends, however it ends.
    """
    # Imported here: the archive loads the client stack anyway, a bare broker never.
    from subscriber.lock import FolderLock

    lock = FolderLock(db.with_name(db.name + ".lock"), "blo-broker archive")
    try:
        lock.acquire()
    except BloError as exc:
        raise BrokerError(f"{db}: {exc}; run one archive per file") from None
    return lock


def _archive_bundle(pki: Path) -> EnrolmentBundle:
    country = own_country(pki)
    node = f"{country}-archive"
    path = pki / "bundles" / f"{node}.json"
    if not path.exists():
        raise BrokerError(
            f"{path} is missing: issue the archive's identity with "
            f"'blo-certs issue --dir {pki} {node} --role archive', or run with --no-archive"
        )
    return _archive_only(EnrolmentBundle.load(path), path)


async def _run(settings: BrokerSettings) -> None:
    bundle = _archive_bundle(settings.pki) if settings.archive else None
    broker = EmbeddedBroker(settings)  # checks the PKI and certificate first
    lock = lock_archive(settings.archive_db) if bundle is not None else None
    await broker.start()
    archive = None
    if bundle is not None:
        # Imported here: without an archive the broker never loads the client stack.
        from broker.archive_service import ArchiveService

        archive = ArchiveService(
            bundle,
            "127.0.0.1",
            broker.port,
            settings.archive_db,
            trust_source=lambda: trust_messages(settings.pki),
        )
        archive.start()
        log.info("archive %s -> %s", archive.bundle.node, settings.archive_db)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down")
    if archive:
        await asyncio.to_thread(archive.stop)
    await broker.stop()
    if lock is not None:
        lock.release()


def _archive_alone(args: argparse.Namespace) -> None:
    from broker.archive_service import ArchiveService

    bundle = _archive_only(EnrolmentBundle.load(args.bundle), args.bundle)
    lock = lock_archive(args.data / "archive.sqlite3")
    pki: Path | None = args.pki
    source = (lambda: trust_messages(pki)) if pki else None
    service = ArchiveService(
        bundle, args.host, args.port, args.data / "archive.sqlite3", trust_source=source
    )
    service.start()
    log.info("archive %s -> %s:%d", bundle.node, args.host, args.port)
    done = asyncio.Event()

    async def wait() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, done.set)
        await done.wait()

    asyncio.run(wait())
    service.stop()
    lock.release()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``blo-broker``; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0].startswith("-") and argv[0] != "--help"):
        argv.insert(0, "run")
    args = _parser().parse_args(argv)
    _logging(getattr(args, "verbose", False))
    try:
        if args.command == "run":
            flags = {
                k: getattr(args, k)
                for k in ("host", "port", "pki", "server", "data", "max_packet", "archive")
            }
            settings = load_settings(args.config, os.environ, flags)
            with contextlib.suppress(KeyboardInterrupt):
                asyncio.run(_run(settings))
        elif args.command == "archive":
            _archive_alone(args)
        elif args.command == "mosquitto-config":
            conf = write_mosquitto(
                args.pki,
                args.out,
                host=args.host,
                port=args.port,
                server=args.server,
                data=args.data,
                max_packet=args.max_packet,
                user=args.user,
            )
            from rich.console import Console

            Console().print(
                f"wrote {conf}, {args.out / 'acl'} and {args.out / 'crl.pem'}\n"
                f"run: mosquitto -c {conf}",
                soft_wrap=True,
            )
        elif args.command == "federation-config":
            from rich.console import Console
            from rich.markup import escape

            from broker.federation import FederationError, write_federation

            try:
                conf, bridges = write_federation(
                    args.pki,
                    args.rules,
                    args.out,
                    host=args.host,
                    port=args.port,
                    server=args.server,
                    data=args.data,
                    max_packet=args.max_packet,
                    user=args.user,
                )
            except FederationError as exc:  # its rule names ([[border]]) are not markup
                raise FederationError(escape(str(exc))) from None

            dials = ", ".join(bridges.dials) or "none"
            dialed = ", ".join(bridges.dialed_by) or "none"
            Console().print(
                f"wrote {conf} with bridges to {dials} and {args.out / 'acl'} with the bridges "
                f"of {dialed}\nrun: mosquitto -c {conf}",
                soft_wrap=True,
            )
    except BloError as exc:
        from rich.console import Console

        Console(stderr=True, soft_wrap=True).print(
            f"[red]blo-broker: error:[/red] {exc}", highlight=False
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
