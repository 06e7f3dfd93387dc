"""Federation of national brokers: Mosquitto bridges written from a sharing-rules file.

Each country runs its own broker and its own PKI. A border between two
countries is **one** TLS connection, dialed by the first country's Mosquitto
to the second's, carrying exactly the topics the rules let cross, each in its
direction. The same rules file goes to every country's broker; each writes its
own part (``blo-broker federation-config``): the bridge sections of the borders
it dials, and ACL entries for the bridges that dial it.

    # federation.toml
    [brokers]                          # where each broker listens, as its neighbours reach it
    kh = "broker.kh.example.org:8883"
    vn = "broker.vn.example.org:8883"

    [[border]]
    countries = ["kh", "vn"]           # kh's broker dials vn's
    bulletins = ["kh>vn", "vn>kh"]     # counterpart bulletins, per direction
    regions = { kh-vn-bavet = ["kh>vn", "vn>kh"] }   # border-region alerts

    [[coordinator]]
    node = "la-unodc-rc"               # a regional coordinator's alerts to all (blo/all)
    to = ["kh", "vn"]                  # reach these countries; receipts come back

What crosses, topic by topic (schemas/topics.py spells them):

* counterpart bulletins ``x>y``: ``blo/bulletin/PEER/OFFICE`` for every office of
  x whose keyset entry names a counterpart PEER in y (one exact topic per pair:
  MQTT cannot match "any vn- office", and ``blo/bulletin/+/+`` would carry x's
  bulletins to third countries too);
* border-region alerts ``x>y``: ``blo/region/REGION``;
* a coordinator's alerts: ``blo/all`` from its country to each ``to`` (every
  regional coordinator homed at that broker: the topic does not name its sender);
* receipts for a crossing alert, ``blo/receipt/SENDER/OFFICE``, back to its
  sender, for each office of the far side that reads it;
* what repairs a bridge's losses: for every node that reads a crossing topic,
  its catch-up requests ``blo/request/NODE`` to the sending side and that
  side's archive's replays ``blo/replay/NODE`` back (the sender's own archive
  holds whatever the sender's broker accepted); for every node that may
  publish one, its resend topic ``blo/resend/NODE`` the other way (the far
  archive asks the sender's outbox for what it lacks). A bridge's queue is
  thus never the only copy: Mosquitto 2.0.11 does not persist it when the
  bridge has ``cleansession true`` (#2604, fixed in 2.0.15; we set both
  sessions false, which it persists) and a killed broker loses whatever its
  last autosave missed.

Loops: Mosquitto sends nothing back over the bridge it came by (a bridge's
subscriptions are no-local on both sides), so a topic shared both ways over
one border is safe; a topic that goes round three or more borders would
circle for ever, and is refused.

The ACL: Mosquitto 2.0.11 exempts its own outgoing bridge from its ACL
(security.c), so on the dialing side the limit is the generated ``topic``
lines; on the dialed side the bridge is an ordinary client named by its
certificate (``bridge-CC-NN``, certs/bridge.py) whose ACL entry holds exactly
the crossing topics: write what comes in, read what goes out.

Messages stay signed end to end: a bridge, or whoever runs the other broker,
can drop or delay but not forge, and receivers verify with the roots their
bundles pin (each side imports the other's root).

The core (``parse_rules``, ``plan``, ``federation_config``) is pure: rules and
node entries in, configuration text out. ``write_federation`` and
``add_federation`` do the file work.
"""

from __future__ import annotations

import os
import pwd
import shutil
import tomllib
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from broker.errors import ConfigError
from schemas import Action, NodeEntry, Role, rules_for
from schemas.ids import CountryCode, NodeId, RegionName, country_of
from schemas.topics import ROOT, replay_topic, request_topic, resend_topic

__all__ = [
    "Border",
    "BridgeConfig",
    "Coordinator",
    "FederationError",
    "Flow",
    "SharingRules",
    "add_federation",
    "federation_config",
    "load_rules",
    "parse_rules",
    "plan",
    "write_federation",
]

Direction = Annotated[str, StringConstraints(pattern=r"^[a-z]{2}>[a-z]{2}$")]
Address = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9.\-]+:[0-9]{1,5}$")]


class FederationError(ConfigError):
    """A sharing-rules file is wrong; the message names the file and the rule."""


class Border(BaseModel):
    """One border: the first country's broker dials the second's."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    countries: tuple[CountryCode, CountryCode]
    #: counterpart bulletins, per direction ("kh>vn")
    bulletins: tuple[Direction, ...] = ()
    #: border-region alerts: region -> directions
    regions: Mapping[RegionName, tuple[Direction, ...]] = Field(default_factory=dict)

    @property
    def label(self) -> str:
        """``kh-vn``: how errors and comments name this border."""
        return "-".join(self.countries)


class Coordinator(BaseModel):
    """A regional coordinator whose alerts to every office cross to ``to``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    node: NodeId
    to: tuple[CountryCode, ...] = Field(min_length=1)


class SharingRules(BaseModel):
    """The whole sharing-rules file."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    brokers: Mapping[CountryCode, Address]
    border: tuple[Border, ...] = ()
    coordinator: tuple[Coordinator, ...] = ()


@dataclass(frozen=True, slots=True)
class Flow:
    """One topic (or filter) crossing from country ``src`` to ``dst``, and why."""

    topic: str
    src: str
    dst: str
    why: str


@dataclass(frozen=True, slots=True)
class BridgeConfig:
    """One country's share of the federation: bridge sections and ACL entries."""

    #: ``connection`` sections for mosquitto.conf (the borders this country dials)
    conf: str
    #: ``user bridge-...`` entries for the ACL file (the bridges that dial it)
    acl: str
    #: neighbours this country dials (their CA and this country's bridge certificate needed)
    dials: tuple[str, ...]
    #: neighbours that dial this country (their CA must be trusted for client certificates)
    dialed_by: tuple[str, ...]


# -- reading the rules ------------------------------------------------------------------


def _rule_name(loc: Sequence[Any], data: Mapping[str, Any]) -> str:
    """``[[border]] #2 (la-vn)`` for a pydantic location inside the file's data."""
    if not loc:
        return "top level"
    table = str(loc[0])
    if table in ("border", "coordinator") and len(loc) > 1 and isinstance(loc[1], int):
        name = f"[[{table}]] #{loc[1] + 1}"
        try:
            entry = data[table][loc[1]]
            hint = "-".join(entry["countries"]) if table == "border" else entry["node"]
            name += f" ({hint})"
        except (KeyError, IndexError, TypeError):
            pass
        rest = ".".join(str(p) for p in loc[2:])
        return f"{name}: {rest}" if rest else name
    if table == "brokers":
        return "[brokers]" + (f" {loc[1]}" if len(loc) > 1 else "")
    return ".".join(str(p) for p in loc)


def parse_rules(text: str, source: str = "sharing rules") -> SharingRules:
    """Parse and check the shape of a rules file's text (``source`` names it in errors).

    Raises ``FederationError`` naming ``source`` and the rule at fault.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise FederationError(f"{source}: not valid TOML: {exc}") from None
    try:
        rules = SharingRules.model_validate(data)
    except ValidationError as exc:
        problems = [f"{_rule_name(e['loc'], data)}: {e['msg']}" for e in exc.errors()]
        raise FederationError(f"{source}: " + "; ".join(problems)) from None
    return rules


def load_rules(path: Path) -> SharingRules:
    """Read and parse a rules file; errors name ``path``."""
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        raise FederationError(f"{path}: no such sharing-rules file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise FederationError(f"{path}: cannot be read: {exc}") from None
    return parse_rules(text, str(path))


# -- from rules to flows (pure) -------------------------------------------------------------


def _directions(border: Border, directions: Iterable[str], what: str) -> list[tuple[str, str]]:
    """``[(src, dst)]`` of ``directions``; raises naming the rule if one is off this border."""
    out = []
    for text in directions:
        src, dst = text.split(">")
        if {src, dst} != set(border.countries):
            raise ValueError(
                f"{what} direction {text!r} is not across this border "
                f"(write {border.countries[0]}>{border.countries[1]} or "
                f"{border.countries[1]}>{border.countries[0]})"
            )
        out.append((src, dst))
    return out


def _border_flows(
    border: Border, keysets: Mapping[str, Sequence[NodeEntry]], why: str
) -> list[Flow]:
    flows = []
    for src, dst in _directions(border, border.bulletins, "bulletins"):
        for entry in keysets.get(src, ()):
            if entry.role is not Role.BLO or entry.revoked is not None:
                continue
            for peer in entry.counterparts:
                if country_of(peer) == dst:
                    topic = f"{ROOT}/bulletin/{peer}/{entry.node}"
                    flows.append(Flow(topic, src, dst, f"{why}: bulletins {src}>{dst}"))
    for region, directions in border.regions.items():
        holders = {c for c in border.countries for n in keysets.get(c, ()) if region in n.regions}
        if not holders:
            raise ValueError(
                f"region {region!r} has no office on either side in the keysets held "
                "(a typo, or import the neighbour's root again for its newer keyset)"
            )
        for src, dst in _directions(border, directions, f"region {region}"):
            flows.append(Flow(f"{ROOT}/region/{region}", src, dst, f"{why}: region {region}"))
    return flows


def _coordinator_flows(
    rule: Coordinator,
    borders: Mapping[frozenset[str], Border],
    keysets: Mapping[str, Sequence[NodeEntry]],
    why: str,
) -> list[Flow]:
    home = country_of(rule.node)
    entry = next((n for n in keysets.get(home, ()) if n.node == rule.node), None)
    if entry is None or entry.role is not Role.REGIONAL:
        found = "not in the keysets held" if entry is None else f"a {entry.role.value} node"
        raise ValueError(f"{rule.node} is {found}, not a regional coordinator")
    flows = []
    for dst in rule.to:
        if dst == home:
            raise ValueError(f"{rule.node}'s own country {home} is not a destination")
        if frozenset((home, dst)) not in borders:
            raise ValueError(
                f"no [[border]] between {home} and {dst}: add one (alerts cross one border, "
                "not through a third country)"
            )
        flows.append(Flow(f"{ROOT}/all", home, dst, f"{why}: alerts of {rule.node}"))
    return flows


def _receipt_flows(flows: Sequence[Flow], keysets: Mapping[str, Sequence[NodeEntry]]) -> list[Flow]:
    """Receipts for a crossing alert go back to its sender (``blo-pub receipts`` counts
    every office of the alert's audience, the far side's too)."""
    out = []
    for flow in flows:
        if not flow.topic.startswith((f"{ROOT}/region/", f"{ROOT}/all")):
            continue
        # Exact topics, sender by receiver: an office outside the alert's audience
        # has no receipt to send across.
        far = keysets.get(flow.dst, ())
        for sender in _senders(flow, keysets):
            for receiver in _receivers(flow, keysets):
                topic = f"{ROOT}/receipt/{sender}/{receiver}"
                entry = next(e for e in far if e.node == receiver)
                if rules_for(entry, far).allows(Action.PUBLISH, topic):  # BLOs answer
                    out.append(Flow(topic, flow.dst, flow.src, f"{flow.why}: receipts back"))
    return out


def _senders(flow: Flow, keysets: Mapping[str, Sequence[NodeEntry]]) -> list[str]:
    """Nodes of ``flow.src`` that may publish on ``flow.topic``."""
    nodes = keysets.get(flow.src, ())
    return [
        e.node
        for e in nodes
        if e.revoked is None and rules_for(e, nodes).allows(Action.PUBLISH, flow.topic)
    ]


def _receivers(flow: Flow, keysets: Mapping[str, Sequence[NodeEntry]]) -> list[str]:
    """Nodes of ``flow.dst`` (archives aside) that read ``flow.topic``."""
    nodes = keysets.get(flow.dst, ())
    return [
        e.node
        for e in nodes
        if e.revoked is None
        and e.role is not Role.ARCHIVE
        and rules_for(e, nodes).allows(Action.RECEIVE, flow.topic)
    ]


def _resend_flows(flows: Sequence[Flow], keysets: Mapping[str, Sequence[NodeEntry]]) -> list[Flow]:
    """The resend topic of every node that may publish a crossing topic, back the other way."""
    out = []
    for flow in flows:
        for sender in _senders(flow, keysets):
            why = f"{flow.why}: {sender} resends what the far side lacks"
            out.append(Flow(resend_topic(sender), flow.dst, flow.src, why))
    return out


def _replay_flows(flows: Sequence[Flow], keysets: Mapping[str, Sequence[NodeEntry]]) -> list[Flow]:
    """Catch-up requests of every node that reads a crossing topic, to the sender's side,
    and the replays of that side's archive back (exact topics: each names one node)."""
    out = []
    for flow in flows:
        for receiver in _receivers(flow, keysets):
            why = f"{flow.why}: {receiver} catches up from {flow.src}'s archive"
            out.append(Flow(request_topic(receiver), flow.dst, flow.src, why))
            out.append(Flow(replay_topic(receiver), flow.src, flow.dst, why))
    return out


def _overlap(a: str, b: str) -> bool:
    """True if some topic matches both filters ``a`` and ``b``."""
    x, y = a.split("/"), b.split("/")
    for p, q in zip(x, y, strict=False):
        if "#" in (p, q):
            return True
        if p != q and "+" not in (p, q):
            return False
    return len(x) == len(y)


def _cycle(edges: set[tuple[str, str]]) -> list[str] | None:
    """A directed cycle over three or more countries, or None.

    Two countries exchanging a topic both ways share one bridge, which never
    sends a message back the way it came; a longer round has no such guard.
    """
    graph: dict[str, set[str]] = defaultdict(set)
    for src, dst in edges:
        graph[src].add(dst)

    def walk(path: list[str]) -> list[str] | None:
        for nxt in sorted(graph[path[-1]]):
            if nxt == path[0] and len(path) >= 3:
                return [*path, nxt]
            if nxt not in path:
                found = walk([*path, nxt])
                if found:
                    return found
        return None

    for start in sorted(graph):
        found = walk([start])
        if found:
            return found
    return None


def plan(
    rules: SharingRules,
    keysets: Mapping[str, Sequence[NodeEntry]],
    source: str = "sharing rules",
) -> list[Flow]:
    """Every topic that crosses a border, with its direction.

    ``keysets`` maps each country to its nodes (this country's keyset and the
    imported ones). Raises ``FederationError`` naming ``source`` and the rule.
    """
    borders: dict[frozenset[str], Border] = {}
    flows: list[Flow] = []
    for i, border in enumerate(rules.border):
        name = f"[[border]] #{i + 1} ({border.label})"
        pair = frozenset(border.countries)
        try:
            if len(pair) != 2:
                raise ValueError("a border is between two different countries")
            if pair in borders:
                raise ValueError(f"a second border between {border.label}: one per pair")
            if border.countries[1] not in rules.brokers:
                raise ValueError(
                    f"{border.countries[0]} dials {border.countries[1]}, whose address is not "
                    f'in [brokers]: add {border.countries[1]} = "HOST:PORT"'
                )
            borders[pair] = border
            flows += _border_flows(border, keysets, name)
        except ValueError as exc:
            raise FederationError(f"{source}: {name}: {exc}") from None
    for i, rule in enumerate(rules.coordinator):
        name = f"[[coordinator]] #{i + 1} ({rule.node})"
        try:
            flows += _coordinator_flows(rule, borders, keysets, name)
        except ValueError as exc:
            raise FederationError(f"{source}: {name}: {exc}") from None
    flows += _receipt_flows(flows, keysets)
    flows += _resend_flows(flows, keysets) + _replay_flows(flows, keysets)
    # One flow per (topic, direction); the first reason stands.
    unique = list({(f.topic, f.src, f.dst): f for f in reversed(flows)}.values())[::-1]
    for flow in unique:
        edges = {(f.src, f.dst) for f in unique if _overlap(f.topic, flow.topic)}
        cycle = _cycle(edges)
        if cycle:
            raise FederationError(
                f"{source}: {flow.why}: {flow.topic} would go round "
                f"{' > '.join(cycle)} for ever; share it along fewer borders"
            )
    return unique


# -- from flows to Mosquitto's configuration (pure) -------------------------------------------


def federation_config(
    rules: SharingRules,
    me: str,
    keysets: Mapping[str, Sequence[NodeEntry]],
    folder: Path,
    *,
    source: str = "sharing rules",
    restart: tuple[int, int] = (5, 60),
) -> BridgeConfig:
    """Country ``me``'s bridge sections and ACL entries, for a Mosquitto run from ``folder``.

    The files named (``bridge-NN.crt``, ``bridge-NN.key``, ``bridge-NN-ca.pem``) are
    ``folder``'s; ``add_federation`` puts them there. ``restart`` is Mosquitto's
    ``restart_timeout`` (base and cap of its back-off, in seconds).
    """
    flows = plan(rules, keysets, source)
    from certs.bridge import bridge_name  # pure: a name, no key material

    dials, dialed_by, conf, acl = [], [], [], []
    for border in rules.border:
        dialer, dialed = border.countries
        if me not in border.countries:
            continue
        other = dialed if me == dialer else dialer
        crossing = [f for f in flows if {f.src, f.dst} == {dialer, dialed}]
        out = sorted({f.topic for f in crossing if f.src == dialer})
        into = sorted({f.topic for f in crossing if f.src == dialed})
        name = bridge_name(dialer, dialed)
        if me == dialer:
            dials.append(other)
            conf += [
                f"# border {border.label}: {me} dials {other} (generated from {source})",
                f"connection {name}",
                f"address {rules.brokers[dialed]}",
                "bridge_protocol_version mqttv311",
                # Marks us as a bridge: the far broker sends nothing back that we sent.
                "try_private true",
                f"remote_clientid {name}",
                # Both sessions kept over a cut and a restart (2.0.11 drops the bridge's
                # queue at restart when cleansession is true, #2604); what a killed broker
                # loses is brought back by the repair topics, from archives and outboxes.
                "cleansession false",
                "local_cleansession false",
                "notifications false",
                "start_type automatic",
                f"restart_timeout {restart[0]} {restart[1]}",
                "keepalive_interval 30",
                f"bridge_cafile {folder / f'bridge-{other}-ca.pem'}",
                f"bridge_certfile {folder / f'bridge-{other}.crt'}",
                f"bridge_keyfile {folder / f'bridge-{other}.key'}",
                "bridge_tls_version tlsv1.2",
                "bridge_insecure false",
            ]
            for topic in sorted({*out, *into}):
                way = "both" if topic in out and topic in into else "out" if topic in out else "in"
                conf.append(f"topic {topic} {way} 1")
            conf.append("")
        else:
            dialed_by.append(other)
            acl += [f"# border {border.label}: {other}'s bridge (generated from {source})"]
            acl.append(f"user {name}")
            acl += [f"topic read {t}" for t in into]  # what it takes to its side
            acl += [f"topic write {t}" for t in out]  # what it brings to ours
            acl.append("")
    if not dials and not dialed_by:
        raise FederationError(f"{source}: no [[border]] names {me}: nothing to bridge")
    return BridgeConfig("\n".join(conf), "\n".join(acl), tuple(dials), tuple(dialed_by))


# -- the files ---------------------------------------------------------------------------------


def _prepare(
    pki: Path, rules_path: Path, out: Path, restart: tuple[int, int], now: datetime | None
) -> BridgeConfig:
    """Read and check everything the federation needs; writes nothing."""
    from broker.registry import Registry
    from certs.bridge import bridge_files
    from certs.folder import own_country

    rules = load_rules(rules_path)
    me = own_country(pki)
    registry = Registry.load(pki, now or datetime.now(UTC))
    keysets: dict[str, list[NodeEntry]] = defaultdict(list)
    for entry in registry.nodes.values():
        keysets[entry.country].append(entry)
    config = federation_config(
        rules, me, keysets, out.resolve(), source=str(rules_path), restart=restart
    )
    for other in (*config.dials, *config.dialed_by):
        if not (pki / "roots" / f"{other}.crt").exists():
            raise FederationError(
                f"{rules_path}: {me} shares a border with {other}, whose root is not imported: "
                f"blo-certs import-root --dir {pki} {other.upper()}-PKI-FOLDER"
            )
    for other in config.dials:
        key, cert = bridge_files(pki, other)
        if not key.exists() or not cert.exists():
            raise FederationError(
                f"{rules_path}: {me} dials {other} but {cert.parent} holds no bridge "
                f"certificate: blo-certs bridge --dir {pki} {other}"
            )
    return config


def _apply(pki: Path, out: Path, config: BridgeConfig, user: str) -> None:
    """Copy the bridge's files into ``out`` and append to its conf and ACL."""
    from certs.bridge import bridge_files

    for other in config.dials:
        key, cert = bridge_files(pki, other)
        shutil.copyfile(cert, out / f"bridge-{other}.crt")
        shutil.copyfile(key, out / f"bridge-{other}.key")
        (out / f"bridge-{other}.key").chmod(0o600)
        # Only the neighbour's CA vouches for its broker, not every imported one.
        shutil.copyfile(pki / "roots" / f"{other}.crt", out / f"bridge-{other}-ca.pem")
    conf, acl = out / "mosquitto.conf", out / "acl"
    conf.write_text(conf.read_text() + "\n# federation: bridges by rule\n" + config.conf)
    acl.write_text(acl.read_text() + "\n" + config.acl)
    if os.geteuid() == 0 and user != "root":
        # Started as root, Mosquitto drops to ``user`` before it reads the bridge's key.
        try:
            record = pwd.getpwnam(user)
        except KeyError:
            raise FederationError(f"user {user!r} does not exist: pass --user") from None
        for other in config.dials:
            for name in (f"bridge-{other}.crt", f"bridge-{other}.key", f"bridge-{other}-ca.pem"):
                os.chown(out / name, record.pw_uid, record.pw_gid)


def add_federation(
    pki: Path,
    rules_path: Path,
    out: Path,
    *,
    restart: tuple[int, int] = (5, 60),
    user: str = "mosquitto",
    now: datetime | None = None,
) -> BridgeConfig:
    """Add the federation to a folder ``write_mosquitto`` wrote (its conf and ACL).

    Copies this country's bridge certificates and each neighbour's CA next to
    them. Raises ``FederationError`` naming the file and what to do, before
    anything is written.
    """
    config = _prepare(pki, rules_path, out, restart, now)
    _apply(pki, out, config, user)
    return config


def write_federation(
    pki: Path,
    rules_path: Path,
    out: Path,
    *,
    restart: tuple[int, int] = (5, 60),
    **mosquitto: Any,
) -> tuple[Path, BridgeConfig]:
    """What ``mosquitto-config`` writes, plus the federation; returns mosquitto.conf's path."""
    from broker.mosquitto import write_mosquitto

    # Everything is checked before anything is written: a bad rules file, a missing
    # root or bridge certificate leaves a running broker's folder as it was.
    config = _prepare(pki, Path(rules_path), out, restart, None)
    conf = write_mosquitto(pki, out, **mosquitto)
    _apply(pki, out, config, mosquitto.get("user", "mosquitto"))
    return conf, config
