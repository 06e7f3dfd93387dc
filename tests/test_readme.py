"""README.md as a script: every ```sh block runs as written, in order, and says what it promises.

The test reads README.md, takes each ```sh block in the order a reader meets it,
and runs its commands one by one in one temporary folder, with the venv's
``bin`` (and ``/usr/sbin``, for ``mosquitto``) on ``PATH``. The README is not
edited for the test; the test substitutes only what cannot be real here:

* ``8883`` becomes a free port, ``broker.example.org`` ``localhost`` and
  ``0.0.0.0`` ``127.0.0.1``; ``/media/tablet`` and ``/etc/mosquitto/blo``
  become folders under the temporary one;
* ``3fa2c1``, the README's example message id, becomes the id the last
  ``blo-pub alert`` printed.

Conventions, all in the tables below so the README stays plain for a reader:

* ``SERVICES``: commands that keep running (``blo-broker``, ``blo-sub run``,
  ``mosquitto``). The test starts them in the background and waits, bounded, for
  the line that says they are up; they run until the end of the test (or of their
  block, for a block with its own ``CONTEXTS`` entry), then get SIGTERM, and
  ``blo-broker`` must exit 0 ("Ctrl-C or SIGTERM stops it cleanly").
* ``EXPECT``: what a command's output must say, where the README promises it;
  read-only commands (inbox, show, status, receipts) are retried for a bounded
  time, since a message travels while they run.
* ``SKIP_BLOCKS`` / ``SKIP_COMMANDS``: what cannot run here, each with its reason.
  Every other command must exit 0.

After a change of flags, rerun ``.venv/bin/python -m pytest tests/test_readme.py``:
it fails with the README line, the command as run, its exit status and output.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
BIN = Path(sys.executable).parent

#: Blocks not run, keyed by a piece of their first command, with the reason.
SKIP_BLOCKS = {
    "python3 -m venv .venv": "installs from the network; .ci/run does exactly this and "
    "tests/test_demo.py runs blo-demo",
    ".venv/bin/python -m pytest": "the test suite itself",
    ".venv/bin/ruff check": "the suite, lint and the 6-minute benchmarks; .ci/run runs them",
}
#: Single commands not run, with the reason (the rest of their block runs).
SKIP_COMMANDS = {
    "apt-get install": "installs a system package as root; the test needs Mosquitto "
    "installed already (.ci/run installs it)",
}
#: Long-running commands: a regex on the command -> a regex on its output meaning "up".
SERVICES = {
    r"^blo-broker( run)?( -|$)": r"listening on",  # the embedded broker, whatever its flags
    r"^blo-broker archive": r"archive kh-archive connected",
    r"^mosquitto -c": r"mosquitto version .* running",
    r"^blo-sub run": r" connected to ",
}
#: A regex on the command -> texts its output must contain (retried if read-only).
EXPECT: dict[str, list[str]] = {
    r"^blo-certs init .*--country kh": ["root of kh created", "kh-nacd"],
    r"^blo-certs revoke": ["kh-blo-bavet revoked"],
    r"^blo-certs list": ["kh-blo-bavet", "kh-nacd", "active"],
    r"^blo-certs import-root --dir pki vn-pki": ["root of vn pinned", "re-written"],
    r"^blo-certs import-root --dir pki th-pki": ["root of th pinned"],
    r"^blo-broker mosquitto-config": ["mosquitto.conf"],
    r"^blo-pub alert": ["queued as #1", "country:kh"],
    r"^blo-pub receipts": ["kh-blo-bavet"],
    r"^blo-sub inbox +--bundle kh-blo-poipet.json --lang km": ["រឹបអូសមេតំហ្វេតាមីន"],
    r"^blo-sub show": ["1.9 kg methamphetamine seized at Dong Kralor"],
    r"^blo-sub status": ["kh-blo-poipet"],
    r"^blo-pub bulletin": ["queued", "kh-blo-bavet"],
    r"^blo-sub inbox --bundle pki/bundles/kh-blo-bavet.json": ["Courier on a red motorbike"],
}
READ_ONLY = re.compile(r"^blo-(sub (inbox|show|status)|pub receipts)\b")
#: Blocks that run beside the others, in their own folder and on their own port,
#: their services stopped at the block's end: heading -> folder name.
CONTEXTS = {"Production on Mosquitto": "mosquitto-host"}
UP_WITHIN = 45.0  # seconds for a service to say it is up
RETRY_WITHIN = 45.0  # seconds for a read-only command to show what it promises
COMMAND_TIMEOUT = 120.0


@dataclass(frozen=True)
class Block:
    """One ```sh block: the heading it sits under, its first line, its commands."""

    heading: str
    line: int
    commands: tuple[tuple[int, str], ...]


def blocks(text: str) -> list[Block]:
    """Every ```sh block of ``text`` with its commands (continuations joined)."""
    found, heading, lines = [], "", text.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].startswith("#") and not lines[i].startswith("#!"):
            heading = lines[i].lstrip("#").strip()
        if lines[i].strip() == "```sh":
            start, body = i + 1, []
            i += 1
            while lines[i].strip() != "```":
                body.append((i + 1, lines[i]))
                i += 1
            found.append(Block(heading, start, tuple(_commands(body))))
        i += 1
    return found


def _commands(body: list[tuple[int, str]]) -> Iterator[tuple[int, str]]:
    pending: tuple[int, str] | None = None
    for number, line in body:
        if pending is None and (not line.strip() or line.lstrip().startswith("#")):
            continue  # a blank line or a comment that continues the previous one
        if pending is not None:
            pending = (pending[0], pending[1] + " " + line.strip())
        else:
            pending = (number, line.strip())
        if pending[1].endswith("\\"):
            pending = (pending[0], pending[1][:-1].rstrip())
        else:
            yield pending
            pending = None
    assert pending is None, f"README line {pending[0]}: a block ends in a continuation"


def skip_reason(block: Block) -> str | None:
    first = block.commands[0][1] if block.commands else ""
    return next((why for key, why in SKIP_BLOCKS.items() if key in first), None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Service:
    command: str
    process: subprocess.Popen[bytes]
    log: Path
    must_exit_0: bool

    def output(self) -> str:
        return self.log.read_text("utf-8", errors="replace")


@dataclass
class Session:
    """The state a reader's terminal would hold: folder, last alert id, what runs."""

    tmp: Path
    env: dict[str, str]
    cwd: Path = field(init=False)
    alert_id: str | None = None
    services: list[Service] = field(default_factory=list)
    ran: int = 0

    def __post_init__(self) -> None:
        self.cwd = self.tmp

    def substitute(self, command: str, port: int, home: Path) -> str:
        if "3fa2c1" in command:
            assert self.alert_id, "the README uses an alert id before any blo-pub alert"
            command = command.replace("3fa2c1", self.alert_id[:6])
        command = command.replace("/media/tablet", str(self.tmp / "media" / "tablet"))
        command = command.replace("/etc/mosquitto/blo", str(home / "etc" / "mosquitto" / "blo"))
        command = command.replace("broker.example.org", "localhost")
        command = command.replace("0.0.0.0", "127.0.0.1")
        return re.sub(r"\b8883\b", str(port), command)

    def run(self, line: int, written: str, command: str) -> None:
        where = f"README.md:{line}: {written}\n  ran as: {command} (in {self.cwd})"
        if cd := re.fullmatch(r"cd (\S+)(\s+#.*)?", command):
            self.cwd = (self.cwd / cd.group(1)).resolve()
            assert self.cwd.is_dir(), where
            return
        for pattern, ready in SERVICES.items():
            if re.search(pattern, written):
                self.start(where, command, ready)
                return
        wanted = next((w for p, w in EXPECT.items() if re.search(p, written)), [])
        deadline = time.monotonic() + (RETRY_WITHIN if READ_ONLY.search(written) else 0)
        while True:
            try:
                done = subprocess.run(
                    ["bash", "-c", command],
                    cwd=self.cwd,
                    env=self.env,
                    capture_output=True,
                    text=True,
                    timeout=COMMAND_TIMEOUT,
                    check=False,
                )
            except subprocess.TimeoutExpired as exc:
                raise AssertionError(
                    f"{where}\n  still running after {COMMAND_TIMEOUT:.0f} s; if it is meant to"
                    f" keep running, add it to SERVICES:\n{exc.output!r}"
                ) from None
            out = done.stdout + done.stderr
            missing = [w for w in wanted if w not in out]
            if (done.returncode == 0 and not missing) or time.monotonic() > deadline:
                break
            time.sleep(1.0)
        assert done.returncode == 0, f"{where}\n  exit {done.returncode}:\n{out}"
        assert not missing, f"{where}\n  the output does not say {missing}:\n{out}"
        if match := re.search(r"\balert ([0-9a-f]{32}) queued", out):
            self.alert_id = match.group(1)
        self.ran += 1

    def start(self, where: str, command: str, ready: str) -> None:
        log = self.tmp / f"service-{len(self.services)}.log"
        with log.open("wb") as sink:
            process = subprocess.Popen(
                ["bash", "-c", f"exec {command}"],
                cwd=self.cwd,
                env=self.env,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        service = Service(command, process, log, command.startswith("blo-broker"))
        self.services.append(service)
        deadline = time.monotonic() + UP_WITHIN
        while not re.search(ready, service.output()):
            assert process.poll() is None, f"{where}\n  exited {process.returncode}:\n" + (
                service.output()
            )
            assert time.monotonic() < deadline, (
                f"{where}\n  not up within {UP_WITHIN:.0f} s (no {ready!r}):\n{service.output()}"
            )
            time.sleep(0.2)
        self.ran += 1

    def stop(self, services: list[Service]) -> list[str]:
        """SIGTERM each (newest first); return what did not stop cleanly."""
        faults = []
        for service in reversed(services):
            if service.process.poll() is None:
                service.process.send_signal(signal.SIGTERM)
            try:
                code = service.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(service.process.pid, signal.SIGKILL)
                service.process.wait(timeout=10)
                faults.append(f"{service.command}: did not stop within 20 s of SIGTERM")
                continue
            if service.must_exit_0 and code != 0:
                faults.append(f"{service.command}: exit {code} after SIGTERM\n{service.output()}")
            self.services.remove(service)
        return faults


@contextmanager
def session(tmp: Path) -> Iterator[Session]:
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(BIN), "/usr/sbin", "/sbin", env.get("PATH", "")])
    env["COLUMNS"] = "200"  # rich wraps to this width when not on a terminal
    env.pop("BLO_BROKER_PORT", None)
    state = Session(tmp, env)
    try:
        yield state
    finally:
        faults = state.stop(list(state.services))
        assert not faults, "\n".join(faults)


@contextmanager
def _removed(folders: list[Path]) -> Iterator[None]:
    try:
        yield
    finally:
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)


def test_every_sh_block_is_found_and_run_or_skipped_with_a_reason() -> None:
    """Positive control of the parser: the blocks the README is known to have are seen."""
    found = blocks(README.read_text("utf-8"))
    assert len(found) >= 8
    firsts = [b.commands[0][1] for b in found]
    assert any(c.startswith("blo-certs init") for c in firsts)
    joined = [c for b in found for _, c in b.commands]
    # Continuations are joined: the alert's headline flags are one command.
    assert any(c.startswith("blo-pub alert") and "--headline-km" in c for c in joined)
    for block in found:
        assert block.commands, f"README.md:{block.line}: an empty ```sh block"
    for key in SKIP_BLOCKS:
        assert any(key in b.commands[0][1] for b in found), f"stale SKIP_BLOCKS entry {key!r}"
    for pattern in EXPECT:
        assert any(re.search(pattern, c) for c in joined), f"stale EXPECT entry {pattern!r}"


def test_readme_command_sequences_run_as_written(tmp_path: Path) -> None:
    text = README.read_text("utf-8")
    mosquitto = shutil.which("mosquitto", path="/usr/sbin:/usr/bin:/sbin")
    port = free_port()
    (tmp_path / "media" / "tablet").mkdir(parents=True)  # the tablet's storage, mounted
    skipped: list[str] = []
    cleanup: list[Path] = []
    with session(tmp_path) as state, _removed(cleanup):
        for block in blocks(text):
            if why := skip_reason(block):
                skipped.append(f"README.md:{block.line} ({block.heading}): {why}")
                continue
            own = CONTEXTS.get(block.heading)
            if own and mosquitto is None:
                if os.environ.get("CI"):
                    pytest.fail("mosquitto is not installed: .ci/run installs it with apt-get")
                skipped.append(f"README.md:{block.line}: Mosquitto is not installed")
                continue
            home, block_port, before = state.tmp, port, list(state.services)
            if own:
                # Beside the embedded broker: its own folder (the same PKI) and port.
                # Outside pytest's 0700 folder: Mosquitto started as root drops to the
                # user `mosquitto`, which must reach the files the generator chowns.
                home = Path(tempfile.mkdtemp(prefix=f"blo-readme-{own}-"))
                cleanup.append(home)
                home.chmod(0o755)
                block_port = free_port()
                (home / "pki").symlink_to(state.tmp / "pki")
            state.cwd = home
            for line, written in block.commands:
                if any(written.startswith(k) for k in SKIP_COMMANDS):
                    continue
                state.run(line, written, state.substitute(written, block_port, home))
            if own:
                faults = state.stop([s for s in state.services if s not in before])
                assert not faults, "\n".join(faults)
    assert state.ran >= 25, f"only {state.ran} commands ran; skipped: {skipped}"
    print("\n".join(["skipped:", *skipped]))
