"""The field scenario, run for real: one broker, the archive, and every office's client.

Each office runs the same ``NodeClient`` a tablet runs (its own SQLite inbox
and outbox, mTLS with its own certificate) against a broker on loopback; one
of them reaches the broker through a proxy that cuts its link every few
seconds. The story goes forward in steps (``Demo.step``) and a caller (the
live view, or a test) watches ``Demo.snapshot()`` until every office holds what
it should or the time runs out.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from broker import ArchiveService, BrokerSettings, EmbeddedThread, MosquittoProcess, free_port
from certs import EnrolmentBundle, Pki
from demo import story
from demo.attacker import Attack, attack
from demo.config import DemoSettings
from demo.flaky import FaultProxy
from demo.network import ARCHIVE, ATTACKER, DemoPki, provision
from demo.offices import HQ, VN_COUNTERPART, Office, offices
from photos.errors import MapError
from publisher.compose import keep_photos
from schemas import Alert, Bulletin, Incident, Kind, Lang, open_envelope
from subscriber import NodeClient

__all__ = ["Demo", "Event", "OfficeStatus", "Outcome"]

log = logging.getLogger("blo.demo")
# Officers' local time in the story (Indochina Time).
ICT = timezone(timedelta(hours=7))
FLAKY = "kh-blo-dongkralor"

if TYPE_CHECKING:
    from web.server import WebServer


@dataclass(frozen=True, slots=True)
class Event:
    """One line of the story, with the seconds since the start."""

    at: float
    text: str


@dataclass(frozen=True, slots=True)
class OfficeStatus:
    """What one office holds now, and whether that is everything it should."""

    node: str
    name: str
    role: str  # "hq", "blo" or "counterpart"
    link: str  # "up", "down"
    cuts: int
    alert: bool  # holds NACD's alert (HQ: receipts are counted instead)
    read: bool
    headline: str
    bulletins: int
    incidents: int
    delivered_receipts: int
    read_receipts: int
    rejected: dict[str, int]
    forged_accepted: int
    done: bool
    waiting_for: str


@dataclass
class Outcome:
    """The end of a run."""

    ok: bool
    seconds: float
    offices: list[OfficeStatus]
    events: list[Event]
    cuts: int
    problems: list[str] = field(default_factory=list)
    #: the incident's map HQ wrote once Bavet's photos arrived (None: not written)
    map_file: Path | None = None
    #: False when the run's folder is a temporary one, removed at exit (no ``--dir``)
    map_kept: bool = True


class Demo:
    """Provision, start, tell the story, watch; ``run()`` does it all."""

    def __init__(self, settings: DemoSettings, folder: Path) -> None:
        self.settings = settings
        self.folder = folder
        self.offices: list[Office] = offices(settings.offices)
        self.lang = Lang(settings.lang)
        self.events: list[Event] = []
        self.clients: dict[str, NodeClient] = {}
        self.started = time.monotonic()
        self.random = random.Random(settings.seed)  # noqa: S311 - officers' reading delays
        self._broker: EmbeddedThread | MosquittoProcess | None = None
        self._archive: ArchiveService | None = None
        self._proxy: FaultProxy | None = None
        self._alert_id: bytes | None = None
        self._bulletin_id: bytes | None = None
        self._reply_id: bytes | None = None
        self._incident_id: bytes | None = None
        self._attack: Attack | None = None
        self._read_at: dict[str, float] = {}
        self._next_step = 0.0
        self._outage_ends = 0.0
        self.pki: DemoPki | None = None
        self.port = 0
        self.map_file: Path | None = None
        self.web: WebServer | None = None  # with --web

    # -- the story ----------------------------------------------------------------------

    def say(self, text: str) -> None:
        """Add a line to the story."""
        self.events.append(Event(time.monotonic() - self.started, text))
        log.info("%s", text)

    def start(self) -> None:
        """Provision the PKI, start the broker, the archive and every office's client."""
        now = datetime.now(UTC)
        self.pki = provision(self.folder, self.offices, now)
        self.say(
            f"PKI: NACD, {len(self.offices) - 1} Cambodian BLOs, Viet Nam's Moc Bai, "
            f"the archive ({self.folder})"
        )
        self.port = self._start_broker()
        self._archive = ArchiveService(
            EnrolmentBundle.load(self.pki.bundle(ARCHIVE)),
            "127.0.0.1",
            self.port,
            self.folder / "archive" / "archive.sqlite3",
            trust_source=Pki(self.pki.kh).trust_messages,
            gap_grace=timedelta(seconds=2),
            probe_every=10.0,
        )
        self._archive.start()
        self._proxy = FaultProxy(
            self.port, seed=self.settings.seed, mean_life=self.settings.cut_every
        )
        flaky_port = self._proxy.start()
        for node in [HQ, *(o.node for o in self.offices)]:
            port = flaky_port if node == FLAKY else self.port
            client = NodeClient(
                EnrolmentBundle.load(self.pki.bundle(node)),
                "127.0.0.1",
                port,
                self.folder / "offices" / node,
                gap_grace=timedelta(seconds=2),
                tick=self.settings.tick,
                catch_up_every=5.0,
            )
            client.start()
            self.clients[node] = client
        if self.settings.web:  # blo-demo --web: HQ's page while the story plays (web/)
            from web.server import WebServer

            hq = EnrolmentBundle.load(self.pki.bundle(HQ))
            self.web = WebServer(hq, self.folder / "offices" / HQ, port=self.settings.web_port)
            self.say(f"HQ's page (NACD): open {self.web.start()} in a browser")
        self.say(
            f"{len(self.clients)} clients connecting over TLS; "
            f"{self._name(FLAKY)} is on a link cut every ~{self.settings.cut_every:g} s"
        )

    def _start_broker(self) -> int:
        assert self.pki is not None
        if self.settings.broker == "mosquitto":
            process = MosquittoProcess(self.pki.kh, self.folder / "mosquitto", free_port())
            process.start()
            self._broker = process
            self.say(f"Mosquitto listening on 127.0.0.1:{process.port} (generated config)")
            return process.port
        settings = BrokerSettings(
            pki=self.pki.kh, port=0, data=self.folder / "broker", archive=False
        )
        runner = EmbeddedThread(settings)
        self._broker = runner
        port = runner.start()
        self.say(f"embedded broker listening on 127.0.0.1:{port}, client certificates required")
        return port

    def stop(self) -> None:
        """Stop every client, the archive, the proxy and the broker."""
        if self.web is not None:
            self.web.stop()
            self.web = None  # the page is gone: the summary does not point at it
        for client in self.clients.values():
            client.stop()
        if self._archive:
            self._archive.stop()
        if self._proxy:
            self._proxy.stop()
        if self._broker:
            self._broker.stop()

    def step(self) -> None:
        """Move the story on by whatever is due now; call it every few hundred ms."""
        self._end_outage()
        if time.monotonic() < self._next_step:
            self._officers_read()
            return
        now = datetime.now(ICT).replace(microsecond=0)
        nacd, bavet = self.clients[HQ], self.clients[story.BAVET]
        mocbai = self.clients[VN_COUNTERPART]
        ready = all(c.connected.is_set() for n, c in self.clients.items() if n != FLAKY)
        if self._alert_id is None:
            if not ready:
                return
            self._outage(self.settings.outage)
            draft = story.alert(now)
            self._alert_id = nacd.send(draft.body, draft.scope, days=7)
            self.say(f"NACD sends the alert to all BLOs: {self._headline(draft.body)}")
            self._next_step = time.monotonic() + self.settings.pace
            return
        if self._incident_id is None:
            photos = story.geo_photos(self.folder / "photos", now)
            draft = story.incident(now, photos)
            self._incident_id = bavet.send(draft.body, draft.scope, days=30)
            assert isinstance(draft.body, Incident)
            # Bavet's blob store serves them to whoever asks (HQ, the archive).
            keep_photos(
                bavet.photos.store,
                photos,
                draft.body.attachments,
                office=story.BAVET,
                msg_id=self._incident_id,
                now=now,
            )
            self.say(
                "BLO Bavet reports a seizure at the Viet Nam border (position, items, 2 photos)"
            )
            self._next_step = time.monotonic() + self.settings.pace
            return
        if self._bulletin_id is None:
            draft = story.bulletin(now)
            self._bulletin_id = bavet.send(draft.body, draft.scope, days=7)
            self.say("Bavet sends a bulletin to Moc Bai, across the border")
            self._next_step = time.monotonic() + self.settings.pace
            return
        if self._reply_id is None and self._holds(mocbai, self._bulletin_id):
            draft = story.reply(now)
            self._reply_id = mocbai.send(draft.body, draft.scope, days=7)
            self.say("Moc Bai answers Bavet; no other office can read either bulletin")
            self._next_step = time.monotonic() + self.settings.pace
            return
        if self._attack is None and self._holds(bavet, self._alert_id):
            self._attack = self._launch_attack(bavet)
        self._officers_read()

    def _outage(self, seconds: float) -> None:
        """Take the flaky office off the air (as when its 3G drops) for ``seconds``."""
        if self._proxy is None or seconds <= 0:
            return
        self._proxy.set_down(True)
        self._outage_ends = time.monotonic() + seconds
        self.say(f"{self._name(FLAKY)} loses its link for {seconds:g} s")

    def _end_outage(self) -> None:
        if self._proxy is not None and self._outage_ends and time.monotonic() >= self._outage_ends:
            self._proxy.set_down(False)
            self._outage_ends = 0.0
            self.say(f"{self._name(FLAKY)}'s link is back; it catches up on its own")

    def _launch_attack(self, bavet: NodeClient) -> Attack:
        assert self.pki is not None
        assert self._alert_id is not None
        genuine = next(s for s in bavet.inbox.find(self._alert_id.hex()))
        wire = genuine.sealed.signed + genuine.sealed.signature
        sent = attack(self.pki.bundle(ATTACKER), "127.0.0.1", self.port, wire, datetime.now(ICT))
        self.say(
            "an attacker with a valid connection (a copied TLS credential) publishes "
            "a forged NACD alert, a tampered copy and a misdirected replay on blo/all"
        )
        return sent

    def _officers_read(self) -> None:
        """Officers open the alert a few seconds after it arrives (a read receipt goes back)."""
        for office in self.offices:
            client = self.clients[office.node]
            if office.country != "kh" or self._alert_id is None:
                continue
            if office.node not in self._read_at:
                if self._holds(client, self._alert_id):
                    self._read_at[office.node] = time.monotonic() + self.random.uniform(0.5, 3)
            elif self._read_at[office.node] <= time.monotonic():
                client.mark_read(self._alert_id)
                self._read_at[office.node] = float("inf")

    # -- watching -----------------------------------------------------------------------

    def snapshot(self) -> list[OfficeStatus]:
        """Every office's state now (HQ first)."""
        return [self._status(node) for node in [HQ, *(o.node for o in self.offices)]]

    def _status(self, node: str) -> OfficeStatus:
        client = self.clients[node]
        held = client.inbox.messages()
        alerts = [s for s in held if isinstance(s.body, Alert)]
        bulletins = [s for s in held if isinstance(s.body, Bulletin)]
        incidents = [s for s in held if isinstance(s.body, Incident)]
        forged = self._attack.forged_ids if self._attack else set()
        rejected = {r: n for r, n in client.inbox.rejections().items() if r != "duplicate"}
        receipts = client.inbox.receipts(self._alert_id) if self._alert_id else {}
        role = "hq" if node == HQ else "counterpart" if node == VN_COUNTERPART else "blo"
        alert = next((s for s in alerts if s.msg_id == self._alert_id), None)
        ids = {s.msg_id for s in held}
        missing = []
        if role == "hq":
            if self._incident_id not in ids:
                missing.append("Bavet's incident")
            else:
                # Complete means re-hashed to the signed SHA-256: byte for byte.
                blobs = client.photos.store.blobs_of(self._incident_id)
                if len(blobs) != 4 or not all(b.is_complete for b in blobs):
                    missing.append("Bavet's photos")
                elif self.map_file is None:
                    missing.append("the incident's map")
            unread = [o.node for o in self.offices if o.country == "kh" and o.node not in receipts]
            unread += [n for n, r in receipts.items() if "read" not in r]
            if unread:
                missing.append(f"{len(unread)} read receipt(s)")
        elif role == "blo" and alert is None:
            missing.append("the alert")
        elif role == "blo" and alert is not None and alert.read_at is None:
            missing.append("its officer to read the alert")
        bulletin = {story.BAVET: self._reply_id, VN_COUNTERPART: self._bulletin_id}
        if node in bulletin and bulletin[node] not in ids:
            missing.append("the bulletin")
        if self._attack is None or sum(rejected.values()) < len(self._attack.sent):
            missing.append("the forgeries")
        mine = {bulletin.get(node)}
        # Anything held that this office should not hold: a forgery, another alert,
        # a bulletin between other offices.
        wrong = [s for s in held if s.msg_id in forged]
        wrong += [s for s in alerts if s.msg_id != self._alert_id]
        wrong += [s for s in bulletins if s.msg_id not in mine and s.sealed.header.sender != node]
        return OfficeStatus(
            node=node,
            name=self._name(node),
            role=role,
            link="up" if client.connected.is_set() else "down",
            cuts=self._proxy.stats.cuts if self._proxy and node == FLAKY else 0,
            alert=alert is not None,
            read=bool(alert and alert.read_at),
            headline=self._headline(alert.body) if alert else "",
            bulletins=len(bulletins),
            incidents=len(incidents),
            delivered_receipts=sum(1 for r in receipts.values() if "delivered" in r),
            read_receipts=sum(1 for r in receipts.values() if "read" in r),
            rejected=rejected,
            forged_accepted=len(wrong),
            done=not missing and not wrong,
            waiting_for=", ".join(missing),
        )

    def _holds(self, client: NodeClient, msg_id: bytes | None) -> bool:
        return msg_id is not None and any(
            s.msg_id == msg_id for s in client.inbox.find(msg_id.hex())
        )

    def _name(self, node: str) -> str:
        if node == HQ:
            return "NACD (HQ)" if self.lang is not Lang.KM else "អាជ្ញាធរជាតិ (NACD)"
        office = next(o for o in self.offices if o.node == node)
        return office.label(self.lang.value)

    def _headline(self, body: object) -> str:
        if not isinstance(body, Alert):
            return ""
        text = body.text.get(self.lang) or next(iter(body.text.values()))
        return text.headline

    # -- all of it ----------------------------------------------------------------------

    def run(self, watch: Callable[[Demo, list[OfficeStatus]], None] | None = None) -> Outcome:
        """Run the scenario to its end (or the timeout) and return what happened."""
        self.started = time.monotonic()
        problems: list[str] = []
        try:
            self.start()
            deadline = self.started + self.settings.timeout
            while True:
                self.step()
                snapshot = self.snapshot()
                if self.map_file is None and "the incident's map" in snapshot[0].waiting_for:
                    self._write_map()
                    snapshot = self.snapshot()
                if watch:
                    watch(self, snapshot)
                if all(s.done for s in snapshot) and self._reply_id and self._attack:
                    self.say("every office holds what it should; nothing forged was accepted")
                    break
                if time.monotonic() > deadline:
                    late = [f"{s.name}: {s.waiting_for}" for s in snapshot if not s.done]
                    problems.append(
                        f"timed out after {self.settings.timeout:g} s; " + "; ".join(late)
                    )
                    self.say(problems[-1])
                    break
                time.sleep(0.25)
            snapshot = self.snapshot()
            problems += self._archive_problems()
        finally:
            self.stop()
        cuts = self._proxy.stats.cuts if self._proxy else 0
        ok = not problems and all(s.done for s in snapshot)
        seconds = time.monotonic() - self.started
        kept = self.settings.dir is not None
        return Outcome(ok, seconds, snapshot, self.events, cuts, problems, self.map_file, kept)

    def _write_map(self) -> None:
        """HQ draws the incident's map (what ``blo-sub map`` draws) into the demo's folder."""
        from photos.map import Office as MapOffice  # matplotlib: loaded only when drawing
        from photos.map import photo_marks, render_map

        hq = self.clients[HQ]
        found = [s for s in hq.inbox.messages((Kind.INCIDENT,)) if s.msg_id == self._incident_id]
        if not found or not isinstance(found[0].body, Incident):
            return
        incident, sender = found[0].body, found[0].sealed.header.sender
        out = self.folder / "incident-map.png"
        try:
            image = render_map(
                incident.position,
                photos=photo_marks(incident.attachments, incident.position),
                office=MapOffice(sender),
                title=f"incident {found[0].msg_id.hex()[:8]} from {sender}",
            )
            out.write_bytes(image.png)
        except (MapError, OSError) as exc:
            # Not written: HQ keeps waiting for its map, and the run times out saying so.
            self.say(f"NACD could not write the incident's map to {out}: {exc}")
            return
        self.map_file = out
        self.say(f"NACD has Bavet's 2 photos and writes the incident's map: {out}")

    def _archive_problems(self) -> list[str]:
        if self._archive is None or self._attack is None:
            return []
        held = {
            open_envelope(item.data).header.msg_id
            for sender in {sender for sender, _, _ in self._archive.store.sequences()}
            for epoch in self._archive.store.epochs(sender)
            for item in self._archive.store.range(sender, epoch, 1, None, 10_000)
        }
        forged = self._attack.forged_ids & held
        return [f"the archive stored {len(forged)} forged message(s)"] if forged else []
