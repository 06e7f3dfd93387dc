"""Named mutants of the critical modules, and the tests that must kill them.

    .venv/bin/python tests/mutants.py              # every mutant
    .venv/bin/python tests/mutants.py NAME ...     # some (see --list)
    .venv/bin/python tests/mutants.py --list

Each mutant is one deliberate bug: an exact snippet of a source file, its
replacement, and the pytest selections that should fail because of it. The
runner applies one mutant at a time *in place* (the venv's editable install
imports the worktree, so a copy would not be the code under test), runs the
selections one after another until one fails, and always restores the file
(try/finally; SIGTERM is turned into an exception; the file's bytes are
compared afterwards, and ``git status`` must be what it was before the run).
``PYTHONDONTWRITEBYTECODE`` keeps a mutant's bytecode out of ``__pycache__``.

A snippet that is not found exactly once is an error, before anything runs:
a mutant that cannot be applied is never counted as killed. Each selection is
first run on the unmutated tree (a selection that fails already kills
nothing). Results: ``killed`` (a selection failed; the table says which test),
``timeout`` (a selection ran past ``--timeout``: counted as killed, shown
apart), ``survived`` (every selection passed with the bug in place: a missing
test), ``no baseline`` (a selection fails or selects nothing without the
mutant: fix the selection). Score = killed / mutants run.

Not collected by pytest (the name does not start with ``test_``) and not in
CI: a full run takes many minutes on real brokers.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutant:
    """One bug: ``original`` (found exactly once in ``file``) becomes ``replacement``."""

    name: str
    file: str
    original: str
    replacement: str
    #: pytest argument strings, run one after another until one fails.
    kill: tuple[str, ...]


def m(name: str, file: str, original: str, replacement: str, *kill: str) -> Mutant:
    return Mutant(name, file, original, replacement, kill)


RECEIVER = "tests/test_receiver.py"
ON_AMQTT = "-k amqtt"

MUTANTS: tuple[Mutant, ...] = (
    # -- the receiver core: authority, audience, signature, topic, window, trust ----------
    m(
        "audience-region-always-true",
        "schemas/authority.py",
        "        return scope.target in me.regions\n",
        "        return True\n",
        "tests/test_audience.py",
        RECEIVER,
    ),
    m(
        "audience-country-always-true",
        "schemas/authority.py",
        "        return scope.target == me.country\n",
        "        return True\n",
        "tests/test_audience.py",
        RECEIVER,
    ),
    m(
        "authority-hq-any-region",
        "schemas/authority.py",
        "if sk is ScopeKind.REGION and any(scope.target in n.regions for n in keyset.nodes):",
        "if sk is ScopeKind.REGION:",
        RECEIVER,
    ),
    m(
        "authority-bulletin-any-office",
        "schemas/authority.py",
        "strangers = [t for t in scope.targets if t not in entry.counterparts]",
        "strangers: list[str] = []",
        RECEIVER,
    ),
    m(
        "authority-check-skipped",
        "schemas/receiver.py",
        "        if denied:\n",
        "        if False:\n",
        RECEIVER,
    ),
    m(
        "signature-check-skipped",
        "schemas/receiver.py",
        "        if not good:\n",
        "        if False:\n",
        RECEIVER,
        "tests/test_envelope.py",
        "tests/test_receive_many.py",
    ),
    m(
        "trust-signature-check-skipped",
        "schemas/receiver.py",
        "        if not sealed.verify(root):\n",
        "        if False:\n",
        RECEIVER,
    ),
    m(
        "wrong-topic-check-skipped",
        "schemas/receiver.py",
        "        if topic not in expected and not on_replay:\n",
        "        if False:\n",
        RECEIVER,
    ),
    m(
        "replay-accepted-on-any-topic",
        "schemas/receiver.py",
        "        on_replay = self.me is not None and topic == replay_topic(self.me)\n"
        "        expected = topics_for(h.kind, h.scope, h.sender)\n",
        "        on_replay = self.me is not None\n"
        "        expected = topics_for(h.kind, h.scope, h.sender)\n",
        RECEIVER,
    ),
    m(
        "trust-topic-check-skipped",
        "schemas/receiver.py",
        "        if topic not in topics_for(h.kind, h.scope, h.sender) and not on_replay:\n",
        "        if False:\n",
        RECEIVER,
    ),
    m(
        "revocation-ignored",
        "schemas/receiver.py",
        "        if revoked:\n",
        "        if False:\n",
        RECEIVER,
    ),
    m(
        "key-validity-ignored",
        "schemas/receiver.py",
        "        if not found.key.valid_at(h.issued):\n",
        "        if False:\n",
        RECEIVER,
    ),
    m(
        "message-id-duplicate-check-dropped",
        "schemas/receiver.py",
        "if verdict is SeqVerdict.DUPLICATE or h.msg_id in self._ids:",
        "if verdict is SeqVerdict.DUPLICATE:",
        RECEIVER,
    ),
    m(
        "window-duplicate-check",
        "schemas/window.py",
        "return SeqVerdict.NEW if self._find(state, seq) is not None else SeqVerdict.DUPLICATE",
        "return SeqVerdict.NEW",
        "tests/test_window.py",
        RECEIVER,
    ),
    m(
        "window-jump-unbounded",
        "schemas/window.py",
        "return SeqVerdict.JUMP if seq - state.top > self.span else SeqVerdict.NEW",
        "return SeqVerdict.NEW",
        "tests/test_window.py",
        RECEIVER,
    ),
    m(
        "keyset-rollback-accepted",
        "schemas/truststore.py",
        "if held is not None and keyset.version < held.version:",
        "if False:",
        RECEIVER,
    ),
    m(
        "revocation-rollback-accepted",
        "schemas/truststore.py",
        "if held is not None and revocation.version < held.version:",
        "if False:",
        RECEIVER,
    ),
    m(
        "acl-retain-anywhere",
        "schemas/access.py",
        "if retain and not any(matches(topic, pattern) for pattern in self.retain):",
        "if False:",
        "tests/test_acl_matrix.py::test_rules_match_the_design",
        "tests/test_amqtt_facts.py -k retained",
    ),
    # -- node files: inbox and outbox ------------------------------------------------------
    m(
        "inbox-unique-sender-seq-dropped",
        "subscriber/inbox.py",
        "    owed     INTEGER NOT NULL DEFAULT 0,\n    UNIQUE (sender, epoch, seq)\n);",
        "    owed     INTEGER NOT NULL DEFAULT 0\n);",
        "tests/test_inbox.py",
    ),
    m(
        "outbox-sequence-cached-per-instance",
        "publisher/outbox.py",
        "                    seq += 1\n                    queued.append(",
        '                    seq = self.__dict__.get("_seq", seq) + 1\n'
        '                    self.__dict__["_seq"] = seq\n'
        "                    queued.append(",
        "tests/test_outbox.py",
        "tests/test_publisher.py -k sequence",
    ),
    m(
        "node-files-synchronous-off",
        "publisher/outbox.py",
        'db.execute("PRAGMA synchronous=FULL")',
        'db.execute("PRAGMA synchronous=OFF")',
        "tests/test_outbox.py",
        "tests/test_inbox.py",
    ),
    # -- the embedded broker: guard and amqtt plugins --------------------------------------
    m(
        "guard-retained-check-removed",
        "broker/guard.py",
        "    if retain and not rules.allows(Action.PUBLISH, topic, retain=True):\n",
        "    if False:\n",
        "tests/test_bad_clients.py -k 'retained and amqtt'",
        "tests/test_amqtt_facts.py -k retained",
    ),
    m(
        "guard-publish-checks-off",
        "broker/guard.py",
        "        if frame.kind == PUBLISH:\n            return _publish(frame, rules)\n",
        "        if frame.kind == PUBLISH:\n            return None\n",
        "tests/test_bad_clients.py -k 'malformed and amqtt'",
    ),
    m(
        "guard-client-id-not-checked",
        "broker/guard.py",
        "    if client_id != identity:\n",
        "    if False:\n",
        "tests/test_bad_clients.py -k 'takeover and amqtt'",
    ),
    m(
        "guard-will-allowed",
        "broker/guard.py",
        "    if flags & 0x04:\n",
        "    if False:\n",
        "tests/test_bad_clients.py -k connect_with_a_will",
    ),
    m(
        "guard-packet-size-unchecked",
        "broker/embedded.py",
        "            if length > self._max:\n",
        "            if False:\n",
        "tests/test_bad_clients.py -k 'oversized or (huge and amqtt)'",
    ),
    m(
        "acl-plugin-allows-any-receive",
        "broker/plugins.py",
        "        allowed = rules.allows(Action(action.value), topic)\n",
        "        allowed = action is AmqttAction.RECEIVE"
        " or rules.allows(Action(action.value), topic)\n",
        "tests/test_bad_clients.py -k acl_plugin_refuses_receive",
        f"tests/test_acl_matrix.py {ON_AMQTT}",
    ),
    m(
        "acl-plugin-allows-any-publish",
        "broker/plugins.py",
        "        allowed = rules.allows(Action(action.value), topic)\n",
        "        allowed = action is AmqttAction.PUBLISH"
        " or rules.allows(Action(action.value), topic)\n",
        f"tests/test_acl_matrix.py {ON_AMQTT}",
    ),
    # -- the archive -----------------------------------------------------------------------
    m(
        "archive-acks-before-storing",
        "broker/archive_service.py",
        "            # Stored, then acknowledged, on the committer thread.\n",
        "            client.ack(message.mid, message.qos)\n",
        "tests/test_archive.py",
    ),
    m(
        "archive-synchronous-off",
        "broker/archive.py",
        'self._db.execute("PRAGMA synchronous=FULL")',
        'self._db.execute("PRAGMA synchronous=OFF")',
        "tests/test_archive.py",
    ),
    m(
        "archive-serves-any-audience",
        "broker/archive.py",
        "return addressed_to(scope, node) and rules.allows(Action.RECEIVE, item.topic)",
        "return rules.allows(Action.RECEIVE, item.topic)",
        "tests/test_archive.py -k 'entitlement or (serves and amqtt)'",
    ),
    # -- the tablet's client ---------------------------------------------------------------
    m(
        "tablet-acks-before-commit",
        "subscriber/client.py",
        "        self._incoming.put(\n            Incoming(self._link,",
        "        client.ack(message.mid, message.qos)\n        self._incoming.put(\n"
        "            Incoming(self._link,",
        "tests/test_faults.py -k 'failed_inbox_commit and mosquitto'",
        f"tests/test_nodes.py {ON_AMQTT}",
        "tests/test_faults.py -k killed",
    ),
    m(
        "quarantine-never-retried",
        "subscriber/client.py",
        "    def _retry_quarantine(self, now: datetime) -> None:\n",
        "    def _retry_quarantine(self, now: datetime) -> None:\n        return\n",
        "tests/test_trust_quarantine.py -k newer_keyset",
        f"tests/test_nodes.py {ON_AMQTT}",
        f"tests/test_faults.py {ON_AMQTT}",
    ),
    m(
        "outbox-marked-sent-before-ack",
        "subscriber/client.py",
        "done = all(info.is_published() for info in infos)",
        "done = True",
        "tests/test_faults.py -k 'marks_sent_only and amqtt'",
    ),
    # -- outbox epochs, the folder lock, owed receipts (issue 9, items 1 and 3) -------------
    m(
        "window-ignores-epoch",
        "schemas/receiver.py",
        "self.window.check(h.sender, h.seq, epoch=h.epoch)",
        "self.window.check(h.sender, h.seq)",
        "tests/test_epochs.py -k 'not second_client'",
    ),
    m(
        "outbox-epoch-fixed",
        "publisher/outbox.py",
        "row = (1 + secrets.randbelow(MAX_EPOCH),)",
        "row = (1,)",
        "tests/test_epochs.py -k 'own_epoch or (reinstalled and amqtt)'",
    ),
    m(
        "folder-lock-not-taken",
        "subscriber/client.py",
        "        self._lock.acquire()\n",
        "        pass\n",
        "tests/test_epochs.py -k 'second_client and amqtt'",
    ),
    m(
        "owed-receipts-not-settled-at-start",
        "subscriber/client.py",
        "        self._lock.acquire()\n        self._settle_receipts()\n",
        "        self._lock.acquire()\n",
        "tests/test_receipts_owed.py",
    ),
    m(
        "receipt-id-random",
        "subscriber/receipts.py",
        "    return hashlib.sha256(seed).digest()[:16]",
        "    return __import__('os').urandom(16)",
        "tests/test_receipts_owed.py",
    ),
    # -- the web app (web/): CSRF, escaping, bind policy, Host check, live updates, reading --
    m(
        "web-csrf-skipped",
        "web/app.py",
        'if visit.cookie is not None or not self.sessions.csrf_ok(visit.sid, str(token or "")):',
        "if False:",
        "tests/test_web.py -k csrf",
    ),
    m(
        "web-autoescape-off",
        "web/app.py",
        "autoescape=select_autoescape(default=True, default_for_string=True),",
        "autoescape=False,",
        "tests/test_web.py -k escaped",
        "tests/test_web_browser.py -k escaped",
    ),
    m(
        "web-lan-bind-open",
        "web/security.py",
        "    if policy.loopback:\n        return\n",
        "    return\n",
        "tests/test_web.py -k bind",
    ),
    m(
        "web-live-silent",
        "web/app.py",
        "                if moved:\n",
        "                if False:\n",
        "tests/test_web_browser.py -k read_live",
    ),
    m(
        "web-open-does-not-read",
        "web/app.py",
        "opener = self.node.open if reading else self.node.find",
        "opener = self.node.find",
        "tests/test_web_browser.py -k read_live",
    ),
)


class MutantError(Exception):
    """A mutant that cannot be applied, or a tree the runner did not leave as it found it."""


@dataclass
class Outcome:
    name: str
    file: str
    result: str  # killed, timeout, survived, no baseline
    by: str
    seconds: float


def _check(mutant: Mutant) -> None:
    path = ROOT / mutant.file
    if not path.is_file():
        raise MutantError(f"{mutant.name}: {mutant.file} does not exist")
    found = path.read_text("utf-8").count(mutant.original)
    if found != 1:
        raise MutantError(
            f"{mutant.name}: the snippet is found {found} times in {mutant.file} (must be once); "
            f"the code changed, update the mutant:\n{mutant.original}"
        )


def _pytest(spec: str, timeout: float) -> tuple[str, str, float]:
    """Run one selection: ('pass' | 'fail' | 'timeout' | 'empty', first failing test, s)."""
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    args = [sys.executable, "-m", "pytest", "-x", "-q", "-rfE", "-p", "no:cacheprovider"]
    started = time.monotonic()
    process = subprocess.Popen(
        [*args, *shlex.split(spec)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        return "timeout", spec, time.monotonic() - started
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    took = time.monotonic() - started
    if process.returncode == 0:
        return "pass", "", took
    if process.returncode == 5:
        return "empty", spec, took
    failed = re.search(r"^(?:FAILED|ERROR) (\S+)", out, re.M)
    return "fail", failed.group(1) if failed else f"{spec} (exit {process.returncode})", took


def _git_status() -> str:
    return subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def _run(mutant: Mutant, timeout: float, baseline: dict[str, str]) -> Outcome:
    path = ROOT / mutant.file
    original = path.read_bytes()
    digest = hashlib.sha256(original).hexdigest()
    started = time.monotonic()
    try:
        path.write_bytes(original.replace(mutant.original.encode(), mutant.replacement.encode()))
        for spec in mutant.kill:
            if baseline.get(spec, "pass") != "pass":
                return Outcome(mutant.name, mutant.file, "no baseline", spec, 0.0)
            verdict, by, _ = _pytest(spec, timeout)
            if verdict in ("fail", "timeout"):
                result = "killed" if verdict == "fail" else "timeout"
                return Outcome(mutant.name, mutant.file, result, by, time.monotonic() - started)
            if verdict == "empty":
                return Outcome(mutant.name, mutant.file, "no baseline", spec, 0.0)
        return Outcome(mutant.name, mutant.file, "survived", "", time.monotonic() - started)
    finally:
        path.write_bytes(original)
        if hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            raise MutantError(f"{mutant.file} was not restored: check it with git diff")


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="mutants to run (default: all)")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per selection")
    parser.add_argument("--no-baseline", action="store_true", help="skip the unmutated runs")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    # Wide enough for the table in a log file too (rich uses 80 columns off a terminal).
    console = Console() if sys.stdout.isatty() else Console(width=160)
    by_name = {mutant.name: mutant for mutant in MUTANTS}
    if args.list:
        for mutant in MUTANTS:
            print(f"{mutant.name:38} {mutant.file:26} {' | '.join(mutant.kill)}")
        return 0
    unknown = [n for n in args.names if n not in by_name]
    if unknown:
        console.print(f"[red]unknown mutants: {', '.join(unknown)}[/red] (see --list)")
        return 2
    chosen = [by_name[n] for n in args.names] if args.names else list(MUTANTS)
    try:
        for mutant in chosen:
            _check(mutant)
    except MutantError as exc:
        console.print(f"[red]mutants.py: {exc}[/red]")
        return 2
    signal.signal(signal.SIGTERM, _terminate)
    before = _git_status()
    baseline: dict[str, str] = {}
    if not args.no_baseline:
        for spec in dict.fromkeys(s for mutant in chosen for s in mutant.kill):
            verdict, by, took = _pytest(spec, args.timeout)
            baseline[spec] = verdict
            style = "green" if verdict == "pass" else "red"
            console.print(f"baseline [{style}]{verdict}[/{style}] {took:5.1f} s  {spec} {by}")
    outcomes: list[Outcome] = []
    try:
        for mutant in chosen:
            outcome = _run(mutant, args.timeout, baseline)
            outcomes.append(outcome)
            console.print(f"{outcome.result:11} {outcome.seconds:6.1f} s  {mutant.name}")
    finally:
        after = _git_status()
        if after != before:
            console.print(f"[red]the tree changed during the run:[/red]\n{before}\n->\n{after}")
    if after != before:
        return 3
    table = Table(title="mutants", title_justify="left")
    for column in ("mutant", "file", "result", "killed by", "s"):
        table.add_column(column, justify="right" if column == "s" else "left")
    colours = {"killed": "green", "timeout": "yellow", "survived": "red", "no baseline": "red"}
    for o in outcomes:
        colour = colours[o.result]
        table.add_row(o.name, o.file, f"[{colour}]{o.result}[/{colour}]", o.by, f"{o.seconds:.1f}")
    console.print(table)
    killed = sum(o.result in ("killed", "timeout") for o in outcomes)
    console.print(f"score: {killed}/{len(outcomes)} killed ({100 * killed / len(outcomes):.0f}%)")
    if args.json:
        args.json.write_text(json.dumps([o.__dict__ for o in outcomes], indent=2) + "\n")
    return 0 if killed == len(outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
