"""The node as the web app sees it: its files read, and its actions taken, by the code
the command line uses.

* opening a message is ``blo-sub show``'s path: ``Inbox.mark_read`` (owing a
  ``read`` receipt on a BLO) and ``subscriber.receipts.settle`` into the outbox;
* reporting an incident, sending a bulletin and composing an alert build the
  document ``blo-pub`` builds from its flags (``parse_item``, ``prepare_photos``,
  ``photo_attachment``) and end in ``publisher.submit.submit_document``: the same
  refusals, the node's own signature and sequence number, the same outbox;
* the running ``blo-sub run`` (in this process with ``--web``, or beside it) sends.

Everything here is synchronous; the routes call it on Starlette's thread pool.
"""

from __future__ import annotations

import logging
import sqlite3
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from certs import EnrolmentBundle
from photos.store import BlobStore
from publisher.compose import parse_duration, parse_item, photo_attachment, prepare_photos
from publisher.errors import ComposeError
from publisher.outbox import Outbox, Queued
from publisher.submit import Submitted, addressed_offices, node_trust, submit_document
from schemas import Alert, BloError, Incident, Kind, Lang, Role, Scope, country_of, open_envelope
from subscriber.inbox import Inbox, Stored
from subscriber.photos import BLOB_FILE, photo_file, photo_states
from subscriber.receipts import settle
from web.views import (
    IncidentRow,
    Matrix,
    OfficeRow,
    headline,
    incident_rows,
    matrix,
    office_rows,
)

__all__ = ["PhotoUpload", "TrendsView", "WebNode"]

log = logging.getLogger("blo.web")

#: What an officer's inbox lists (receipts are HQ's business; trend summaries included).
INBOX_KINDS = (Kind.ALERT, Kind.BULLETIN, Kind.INCIDENT, Kind.TREND)


@dataclass(frozen=True, slots=True)
class PhotoUpload:
    """A photo from the officer's camera or files: its name (only the suffix is kept)."""

    name: str
    data: bytes


@dataclass(frozen=True, slots=True)
class TrendsView:
    """``blo-trends`` for the page: the week, its signals explained, each crossing's level."""

    week: str
    incidents: int
    signals: list[str]
    levels: list[tuple[str, str, int, float, float, str]]
    plots: list[str]


def _text(form: Mapping[str, str], key: str) -> str:
    return str(form.get(key, "")).strip()


class WebNode:
    """One node's folder, read and written for the web app."""

    def __init__(
        self,
        bundle: EnrolmentBundle,
        folder: Path,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.bundle = bundle
        self.folder = folder
        self.node = bundle.node
        self.role = bundle.role
        self.clock = clock
        # The node's own keys open what was sealed for it (bulletins, confidential).
        self.inbox = Inbox(folder / "inbox.sqlite3", opener=bundle.opener())
        self._trends: tuple[tuple[int, int], TrendsView | None] | None = None

    @property
    def hq_view(self) -> bool:
        """HQ, regional coordinators and observers see HQ's page; a BLO the officer's."""
        return self.role is not Role.BLO

    def close(self) -> None:
        self.inbox.close()

    # -- reading ---------------------------------------------------------------------------

    def messages(self, kinds: Sequence[Kind] = INBOX_KINDS) -> list[Stored]:
        return self.inbox.messages(tuple(kinds))

    def find(self, hex_id: str) -> Stored | None:
        """The message with exactly this id (hex), or None."""
        hex_id = hex_id.lower()
        if len(hex_id) != 32 or any(c not in "0123456789abcdef" for c in hex_id):
            return None
        found = [s for s in self.inbox.find(hex_id) if s.msg_id.hex() == hex_id]
        return found[0] if found else None

    def open(self, hex_id: str) -> Stored | None:
        """Show a message as ``blo-sub show`` does: the first opening marks it read and, on
        a BLO, queues the ``read`` receipt (one inbox transaction, then ``settle``)."""
        item = self.find(hex_id)
        if item is None or item.read_at is not None:
            return item
        now = self.clock().replace(microsecond=0)
        if self.inbox.mark_read(item.msg_id, now, owe_receipt=self.role is Role.BLO):
            outbox = Outbox(self.folder / "outbox.sqlite3", self.bundle.signer())
            try:
                settle(self.inbox, outbox, self.node, now)
            finally:
                outbox.close()
        return self.find(hex_id)

    def status(self) -> dict[str, Any]:
        """The link's state, its last error, and the outbox's counts (``blo-sub status``)."""
        outbox = Outbox(self.folder / "outbox.sqlite3", self.bundle.signer())
        try:
            sent, waiting = outbox.counts()
        finally:
            outbox.close()
        state = self.inbox.state()
        return {
            "link": state.get("link", "never started"),
            "last_error": state.get("last_error"),
            "last_contact": state.get("last_contact"),
            "waiting": waiting,
            "sent": sent,
        }

    def _read(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        # Read-only, beside the client's own connections: a page never writes here.
        db = sqlite3.connect(f"file:{self.folder / 'inbox.sqlite3'}?mode=ro", uri=True)
        try:
            return db.execute(sql, args).fetchall()
        finally:
            db.close()

    def replaced_by(self, msg_id: bytes) -> list[tuple[str, str]]:
        """The later alerts that updated or cancelled this one: (id, "updated"/"cancelled")."""
        rows = self._read("SELECT by, kind FROM cancels WHERE target = ?", (msg_id,))
        return [(bytes(by).hex(), "cancelled" if kind == 2 else "updated") for by, kind in rows]

    def counterparts(self) -> list[str]:
        """The offices across the border this office may write bulletins to."""
        store = node_trust(self.bundle, self.folder, self.clock())
        entry = store.node(self.node)
        return list(entry.counterparts) if entry else []

    # -- HQ --------------------------------------------------------------------------------

    def sent_alerts(self) -> list[tuple[Queued, Alert]]:
        """The alerts this node has queued or sent, newest first."""
        outbox = Outbox(self.folder / "outbox.sqlite3", self.bundle.signer())
        try:
            queued = [q for q in outbox.range(1, None) if q.kind is Kind.ALERT]
        finally:
            outbox.close()
        out = []
        for q in reversed(queued):
            body = open_envelope(q.data).decode_body()
            if isinstance(body, Alert):
                out.append((q, body))
        return out

    def offices(self) -> list[str]:
        """The offices this node's alerts can address: its country's BLOs (every BLO the
        keysets know, for a regional coordinator)."""
        store = node_trust(self.bundle, self.folder, self.clock())
        if self.role is Role.REGIONAL:
            return addressed_offices(store, Scope.all())
        return addressed_offices(store, Scope.country(country_of(self.node)))

    def matrices(self, lang: Lang, shown: str = "", limit: int = 200) -> list[Matrix]:
        """Each sent alert's totals over the offices its scope addresses, with the rows of
        the alert ``shown`` (its id; the newest if none matches)."""
        store = node_trust(self.bundle, self.folder, self.clock())
        out = []
        alerts = self.sent_alerts()[:limit]
        if shown not in {q.msg_id.hex() for q, _ in alerts}:
            shown = alerts[0][0].msg_id.hex() if alerts else ""
        for q, body in alerts:
            sealed = open_envelope(q.data)
            scope = Scope.parse(q.scope)
            out.append(
                matrix(
                    q.msg_id,
                    headline(body, lang),
                    q.scope,
                    sealed.header.issued,
                    addressed_offices(store, scope),
                    self.inbox.receipts(q.msg_id),
                    rows=q.msg_id.hex() == shown,
                )
            )
        return out

    def office_rows(self) -> list[OfficeRow]:
        heard = {
            sender: datetime.fromtimestamp(at, UTC)
            for sender, at in self._read(
                "SELECT sender, max(received) FROM messages GROUP BY sender"
            )
        }
        return office_rows(self.offices(), heard, self.clock())

    def incidents(self, lang: Lang, limit: int = 200) -> list[IncidentRow]:
        items = []
        for item in self.messages((Kind.INCIDENT,))[:limit]:
            body = item.body
            states = photo_states(body, self.folder) if isinstance(body, Incident) else []
            items.append(
                (item, [(s.number, s.state, s.complete, s.path is not None) for s in states])
            )
        return incident_rows(items, lang)

    def photo_file(self, hex_id: str, number: int, *, preview: bool = False) -> Path | None:
        """The file of photo ``number`` of an incident here: the full image (else the
        preview), or with ``preview`` the preview only (small, for lists on slow links)."""
        item = self.find(hex_id)
        body = item.body if item else None
        if not isinstance(body, Incident) or not 0 < number <= len(body.attachments):
            return None
        if preview:
            ref = body.attachments[number - 1].preview
            store_file = self.folder / BLOB_FILE
            if ref is None or not store_file.exists():
                return None
            store = BlobStore(store_file)
            try:
                status = store.status(ref.merkle_root)
            except BloError:
                return None
            finally:
                store.close()
            path = photo_file(self.folder / "photos", status)
            return path if status.is_complete and path.is_file() else None
        for state in photo_states(body, self.folder):
            if state.number == number and state.path is not None and state.path.is_file():
                return state.path
        return None

    def trends(self, lang: str) -> TrendsView | None:
        """The week's analysis of the incidents held (``blo-trends --bundle``), with plots.

        Recomputed only when the incidents held change (the plots take seconds)."""
        from trends.report import analyse
        from trends.sources import newest, read_inbox
        from trends.weeks import week_of

        path = self.folder / "inbox.sqlite3"
        count = int(
            self._read("SELECT count(*) FROM messages WHERE kind = ?", (int(Kind.INCIDENT),))[0][0]
        )
        last = newest(path, False)
        key = (count, last or 0)
        if self._trends is not None and self._trends[0] == key:
            return self._trends[1]
        view = None
        if last is not None:
            latest = week_of(datetime.fromtimestamp(last, UTC))
            week = min(week_of(self.clock()) - 1, latest)
            a = analyse(read_inbox(path), week)
            plots: list[str] = []
            if a.counts.keys:  # plot_all needs a series (not so when all is this week's)
                from trends.plots import plot_all

                try:
                    plots = [p.name for p in plot_all(a, self.folder / "web-trends")]
                except (ValueError, OSError) as exc:  # the table still shows; say why not
                    log.warning("web: trend plots not drawn: %s", exc)
            view = TrendsView(
                a.week_label,
                a.incidents,
                [s.explain(lang) for s in a.signals],
                [
                    (lv.crossing, lv.country, lv.this_week, lv.usual, lv.country_usual, lv.top)
                    for lv in a.levels
                ],
                plots,
            )
        self._trends = (key, view)
        return view

    def trend_plot(self, name: str) -> Path | None:
        path = self.folder / "web-trends" / name
        ok = name.endswith(".png") and "/" not in name and not name.startswith(".")
        return path if ok and path.is_file() else None

    # -- sending ---------------------------------------------------------------------------

    def _now(self) -> datetime:
        # The sender's local time and offset, as blo-pub signs it.
        return self.clock().astimezone().replace(microsecond=0)

    def report_incident(
        self,
        form: Mapping[str, str],
        items: Sequence[Mapping[str, str]],
        agencies: Sequence[str],
        photos: Sequence[PhotoUpload],
    ) -> Submitted:
        """An incident from the officer's form: ``blo-pub incident``'s document and path."""
        now = self._now()
        doc: dict[str, Any] = {
            "kind": "incident",
            "scope": f"country:{country_of(self.node)}",
            "occurred": now.isoformat(),
            "crime": _text(form, "crime"),
        }
        try:
            position: dict[str, Any] = {
                "lat": float(_text(form, "lat")),
                "lon": float(_text(form, "lon")),
            }
            if _text(form, "accuracy"):
                position["accuracy_m"] = round(float(_text(form, "accuracy")))
        except ValueError:
            raise ComposeError(
                "the position is not two numbers: use the location button or type "
                "latitude and longitude in degrees (11.0791, 106.1846)"
            ) from None
        doc["position"] = position
        for key, name in (("place", "place"), ("crossing", "crossing")):
            if _text(form, key):
                doc[name] = _text(form, key)
        if _text(form, "detained"):
            try:
                doc["persons_detained"] = int(_text(form, "detained"))
            except ValueError:
                raise ComposeError("persons detained is not a whole number") from None
        parsed = []
        for row in items:
            parts = [str(row.get(k, "")).strip() for k in ("substance", "quantity", "unit", "form")]
            if not parts[0] and not parts[1]:
                continue  # an empty row (its unit list always has a value)
            parsed.append(parse_item(":".join(parts if parts[3] else parts[:3])))
        if parsed:
            doc["items"] = parsed
        if agencies:
            doc["agencies"] = list(agencies)
        narrative = {lang: _text(form, f"narrative_{lang}") for lang in ("en", "km")}
        if any(narrative.values()):
            doc["narrative"] = {k: v for k, v in narrative.items() if v}
        prepared = []
        if photos:
            with tempfile.TemporaryDirectory(prefix="blo-web-") as tmp:
                paths = []
                for n, photo in enumerate(photos, 1):
                    suffix = Path(photo.name).suffix.lower()
                    # Only the suffix is kept: the browser's file name is not a path here.
                    safe = suffix if suffix in (".jpg", ".jpeg", ".png", ".heic", ".heif") else ""
                    path = Path(tmp) / f"photo-{n}{safe}"
                    path.write_bytes(photo.data)
                    paths.append(path)
                prepared = prepare_photos(paths, position)
            doc["attachments"] = [photo_attachment(p) for p in prepared]
        return submit_document(
            self.bundle,
            self.folder,
            doc,
            now=now,
            expires_in=parse_duration("30d"),
            photos=prepared,
        )

    def send_bulletin(self, form: Mapping[str, str]) -> Submitted:
        """A bulletin to a counterpart office (``blo-pub bulletin``)."""
        texts = {
            lang: {"headline": _text(form, f"headline_{lang}"), "body": _text(form, f"body_{lang}")}
            for lang in ("en", "km")
            if _text(form, f"headline_{lang}")
        }
        doc: dict[str, Any] = {
            "kind": "bulletin",
            "scope": f"bulletin:{_text(form, 'to')}",
            "category": _text(form, "category") or "other",
            "text": {k: {f: v for f, v in t.items() if v} for k, t in texts.items()},
        }
        now = self._now()
        return submit_document(
            self.bundle, self.folder, doc, now=now, expires_in=parse_duration("7d")
        )

    def compose_alert(self, form: Mapping[str, str]) -> Submitted:
        """An alert in English and Khmer from HQ's form (``blo-pub alert``)."""
        texts = {}
        for lang in ("en", "km"):
            block = {
                f: _text(form, f"{f}_{lang}")
                for f in ("headline", "description", "instruction")
                if _text(form, f"{f}_{lang}")
            }
            if block:
                texts[lang] = block
        if not texts:
            raise ComposeError("an alert needs a headline, in English or Khmer or both")
        doc: dict[str, Any] = {
            "kind": "alert",
            "msg_type": "alert",
            "status": _text(form, "status") or "actual",
            "urgency": _text(form, "urgency") or "immediate",
            "certainty": _text(form, "certainty") or "observed",
            "text": texts,
        }
        for key in ("scope", "category", "severity"):
            if _text(form, key):
                doc[key] = _text(form, key)
        chain = _text(form, "chain")  # "update:ID" or "cancel:ID" of an alert sent here
        if chain:
            what, _, ref = chain.partition(":")
            if what not in ("update", "cancel") or ref not in {
                q.msg_id.hex() for q, _ in self.sent_alerts()
            }:
                raise ComposeError(f"{chain!r} is not an update or cancel of an alert sent here")
            doc["msg_type"], doc["references"] = what, [ref]
        return submit_document(
            self.bundle,
            self.folder,
            doc,
            now=self._now(),
            expires_in=parse_duration(_text(form, "expires_in") or "7d"),
        )

    def alert_scopes(self) -> list[str]:
        """The audiences this node may alert, by the rules ``blo-pub`` applies."""
        from publisher.compose import valid_scopes

        store = node_trust(self.bundle, self.folder, self.clock())
        entry = store.node(self.node)
        keyset = store.keyset(country_of(self.node))
        if entry is None or keyset is None:
            return []
        return valid_scopes(Kind.ALERT, entry, keyset, store)
