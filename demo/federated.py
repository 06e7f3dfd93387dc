"""``blo-demo --federated``: two countries, two brokers, the bulletin exchange across them.

Cambodia and Viet Nam each run their own PKI and their own Mosquitto, generated
by ``blo-broker federation-config`` from one sharing-rules file: one border,
kh dialing vn over TLS with a bridge certificate Cambodia's PKI issued, each
side having imported the other's root. Bavet (on Cambodia's broker) and Moc Bai
(on Viet Nam's) exchange bulletins across the bridge, NACD's alert to the
Bavet border region crosses, and NACD's national alert does not: Viet Nam's
archive, which stores everything that reaches Viet Nam's broker, is asked at
the end what it holds. Exit status 0 only if all of that is so.
"""

from __future__ import annotations

import getpass
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rich.console import Console
from rich.table import Table

from broker import ArchiveService
from broker.federation import add_federation
from broker.local import MosquittoProcess, free_port, mosquitto_binary
from certs import EnrolmentBundle, NodeSpec, Pki
from certs.bridge import issue_bridge
from demo import story
from demo.config import DemoError, DemoSettings
from schemas import Role, Scope, open_envelope
from subscriber import NodeClient

__all__ = ["run_federated"]

BAVET, MOCBAI, NACD = "kh-blo-bavet", "vn-blo-mocbai", "kh-nacd"
REGION = "kh-vn-bavet"
RULES = """# The sharing rules both brokers were generated from (blo-broker federation-config)
[brokers]
vn = "127.0.0.1:{vn}"

[[border]]
countries = ["kh", "vn"]            # Cambodia's broker dials Viet Nam's
bulletins = ["kh>vn", "vn>kh"]      # counterpart bulletins, both ways
regions = {{ kh-vn-bavet = ["kh>vn", "vn>kh"] }}   # alerts to the Bavet border region
"""


class _Federation:
    """Both countries' PKIs, brokers, archives and the three offices' clients."""

    def __init__(self, folder: Path, console: Console, settings: DemoSettings) -> None:
        self.folder, self.console, self.settings = folder, console, settings
        self.started = time.monotonic()
        self.pki = {cc: folder / f"pki-{cc}" for cc in ("kh", "vn")}
        self.ports = {cc: free_port() for cc in ("kh", "vn")}
        self.brokers: dict[str, MosquittoProcess] = {}
        self.archives: dict[str, ArchiveService] = {}
        self.clients: dict[str, NodeClient] = {}

    def say(self, text: str) -> None:
        self.console.print(f"[dim]{time.monotonic() - self.started:5.1f} s[/dim]  {text}")

    def provision(self) -> None:
        now = datetime.now(UTC)
        offices = {
            "kh": ("kh-nacd", NodeSpec(BAVET, Role.BLO, (REGION,), (MOCBAI,))),
            "vn": ("vn-sodc", NodeSpec(MOCBAI, Role.BLO, (REGION,), (BAVET,))),
        }
        for cc, (hq, office) in offices.items():
            pki = Pki(self.pki[cc])
            pki.init(cc, hq, now)
            pki.issue_many([office, NodeSpec(f"{cc}-archive", Role.ARCHIVE)], now, bundles=False)
            pki.server("broker", ["localhost", "127.0.0.1"], now)
        Pki(self.pki["kh"]).import_root(self.pki["vn"])
        Pki(self.pki["vn"]).import_root(self.pki["kh"])
        issue_bridge(self.pki["kh"], "vn", now)
        for cc in ("kh", "vn"):
            pki = Pki(self.pki[cc])
            for entry in pki.keyset().nodes:
                pki.write_bundle(entry.node)
        self.say(
            "two PKIs: Cambodia's (NACD, Bavet, its archive) and Viet Nam's (Moc Bai, its "
            "archive), each with the other's root; Cambodia issued the bridge certificate "
            "bridge-kh-vn"
        )

    def start_brokers(self) -> None:
        rules = self.folder / "federation.toml"
        rules.write_text(RULES.format(vn=self.ports["vn"]))
        for cc in ("vn", "kh"):  # the dialed one first: the bridge connects at once
            out = self.folder / f"mosquitto-{cc}"
            process = MosquittoProcess(self.pki[cc], out, self.ports[cc])
            add_federation(self.pki[cc], rules, out, restart=(1, 5), user=getpass.getuser())
            process.start()
            self.brokers[cc] = process
        log = self.brokers["vn"].log
        deadline = time.monotonic() + 20
        while "as bridge-kh-vn " not in log.read_text(errors="replace"):
            if time.monotonic() > deadline:
                raise DemoError(f"the bridge kh -> vn did not connect within 20 s: see {log}")
            time.sleep(0.1)
        self.say(
            f"Mosquitto for Cambodia on :{self.ports['kh']} and for Viet Nam on "
            f":{self.ports['vn']}; Cambodia's dials Viet Nam's over TLS (rules: {rules})"
        )

    def start_nodes(self) -> None:
        for cc in ("kh", "vn"):
            node = f"{cc}-archive"
            archive = ArchiveService(
                EnrolmentBundle.load(self.pki[cc] / "bundles" / f"{node}.json"),
                "127.0.0.1",
                self.ports[cc],
                self.folder / f"archive-{cc}" / "archive.sqlite3",
                trust_source=Pki(self.pki[cc]).trust_messages,
                gap_grace=timedelta(seconds=2),
                probe_every=10.0,
            )
            archive.start()
            self.archives[cc] = archive
        for node in (NACD, BAVET, MOCBAI):
            client = NodeClient(
                EnrolmentBundle.load(self.pki[node[:2]] / "bundles" / f"{node}.json"),
                "127.0.0.1",
                self.ports[node[:2]],
                self.folder / "offices" / node,
                gap_grace=timedelta(seconds=2),
                tick=self.settings.tick,
                catch_up_every=5.0,
            )
            client.start()
            self.clients[node] = client

    def wait(self, what: str, done: object) -> bool:
        deadline = self.started + self.settings.timeout
        while time.monotonic() < deadline:
            if done():  # type: ignore[operator]
                return True
            time.sleep(0.1)
        self.say(f"[red]timed out waiting for {what}[/red]")
        return False

    def holds(self, node: str, msg_id: bytes) -> bool:
        return bool(self.clients[node].inbox.find(msg_id.hex()))

    def story(self) -> list[str]:
        """Tell the story; returns what went wrong (nothing, when all is well)."""
        problems: list[str] = []
        if not self.wait(
            "the offices' links", lambda: all(c.connected.is_set() for c in self.clients.values())
        ):
            return ["the offices did not connect"]
        now = datetime.now(UTC).replace(microsecond=0)
        bavet, mocbai, nacd = (self.clients[n] for n in (BAVET, MOCBAI, NACD))
        draft = story.bulletin(now)
        sent = bavet.send(draft.body, draft.scope, days=7)
        self.say("Bavet (Cambodia's broker) sends a bulletin to Moc Bai (Viet Nam's broker)")
        if not self.wait("the bulletin at Moc Bai", lambda: self.holds(MOCBAI, sent)):
            return ["Moc Bai never got Bavet's bulletin"]
        self.say("Moc Bai holds it, verified with Cambodia's root; it answers")
        draft = story.reply(now)
        reply = mocbai.send(draft.body, draft.scope, days=7)
        if not self.wait("the answer at Bavet", lambda: self.holds(BAVET, reply)):
            return ["Bavet never got Moc Bai's answer"]
        self.say("Bavet holds Moc Bai's answer: the exchange crossed the border both ways")
        alert = story.alert(now).body
        national = nacd.send(alert, Scope.country("kh"), days=7)
        regional = nacd.send(alert, Scope.region(REGION), days=7)
        self.say("NACD alerts Cambodia (national) and the Bavet border region (shared)")
        if not self.wait("the region alert at Moc Bai", lambda: self.holds(MOCBAI, regional)):
            problems.append("the border-region alert did not reach Moc Bai")
        if not self.wait("the national alert at Bavet", lambda: self.holds(BAVET, national)):
            problems.append("the national alert did not reach Bavet")
        if not self.wait(
            "Moc Bai's receipt at NACD", lambda: MOCBAI in nacd.inbox.receipts(regional)
        ):
            problems.append("Moc Bai's receipt did not come back to NACD")
        held = self._held("vn")
        if national in held:
            problems.append("Cambodia's national alert reached Viet Nam's broker")
        for wanted, name in ((sent, "bulletin"), (reply, "answer"), (regional, "region alert")):
            if wanted not in held:
                problems.append(f"Viet Nam's archive lacks the {name}")
        self.say(
            f"Viet Nam's archive holds {len(held)} messages (the bulletins, the region alert, "
            "Moc Bai's receipt), not Cambodia's national alert"
            if not problems
            else f"[red]{'; '.join(problems)}[/red]"
        )
        return problems

    def _held(self, country: str) -> set[bytes]:
        store = self.archives[country].store
        return {
            open_envelope(item.data).header.msg_id
            for sender in {sender for sender, _, _ in store.sequences()}
            for epoch in store.epochs(sender)
            for item in store.range(sender, epoch, 1, None, 10_000)
        }

    def summary(self) -> Table:
        table = Table(title="blo-demo --federated", title_justify="left")
        for name in ("office", "broker", "bulletins", "alerts", "refused"):
            table.add_column(name)
        for node, client in self.clients.items():
            held = client.inbox.messages()
            kinds = [type(s.body).__name__ for s in held]
            refused = sum(n for r, n in client.inbox.rejections().items() if r != "duplicate")
            table.add_row(
                node,
                "Cambodia" if node.startswith("kh-") else "Viet Nam",
                str(kinds.count("Bulletin")),
                str(kinds.count("Alert")),
                str(refused),
            )
        return table

    def stop(self) -> None:
        for client in self.clients.values():
            client.stop()
        for archive in self.archives.values():
            archive.stop()
        for process in self.brokers.values():
            process.stop()


def run_federated(settings: DemoSettings, folder: Path, console: Console) -> int:
    """Run the two-country story in ``folder``; returns the exit status."""
    if mosquitto_binary() is None:
        raise DemoError(
            "blo-demo --federated runs two Mosquitto brokers: apt-get install mosquitto"
        )
    demo = _Federation(folder, console, settings)
    try:
        demo.provision()
        demo.start_brokers()
        demo.start_nodes()
        problems = demo.story()
        console.print(demo.summary())
    finally:
        demo.stop()
    console.print(
        "[green]every office holds what it should; nothing crossed that the rules do not "
        "allow[/green]"
        if not problems
        else f"[red]{len(problems)} problem(s)[/red]"
    )
    return 0 if not problems else 1
