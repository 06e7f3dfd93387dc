"""memory: peak RSS of one tablet (``blo-sub run``, its own process) after a catch-up.

The tablet's session is primed, 1,000 alerts are queued for it while it is
offline, and ``blo-sub run`` is started again; once its inbox holds them all,
its VmHWM is read from /proc. The broker's figure comes from the fan-out round
with 74 tablets connected (fanout.py).
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from bench.harness import ROOT, Fleet, broker, peak_rss_mib, stop_process
from bench.sender import Sender


def _run_tablet(
    made: Fleet, node: str, port: int, data: Path, log: Path
) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "subscriber.cli", "run", "--bundle", str(made.bundle(node))]
    cmd += ["--data", str(data), "-h", "127.0.0.1", "-p", str(port)]
    with log.open("ab") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=out, cwd=ROOT)


def _held(inbox: Path) -> int:
    if not inbox.exists():
        return 0
    with sqlite3.connect(f"file:{inbox}?mode=ro", uri=True) as db:
        try:
            return int(db.execute("SELECT count(*) FROM messages").fetchone()[0])
        except sqlite3.Error:
            return 0


def tablet_round(kind: str, made: Fleet, folder: Path, *, count: int) -> dict[str, float]:
    """Peak RSS (MiB) of ``blo-sub run`` after catching up on ``count`` queued alerts."""
    node = made.tablets[0]
    data = folder / "tablet"
    inbox = data / "inbox.sqlite3"
    log = folder / "blo-sub.log"
    with broker(kind, made, folder / "broker") as run:
        first = _run_tablet(made, node, run.port, data, log)
        deadline = time.monotonic() + 60
        while '"up"' not in _state(inbox) and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1.0)  # its subscriptions are sent right after CONNACK
        stop_process(first)
        sender = Sender("project", made, run.port, folder)
        for seq in range(1, count + 1):
            sender.publish(sender.payload(seq))
        sender.flush(120)
        sender.close()
        tablet = _run_tablet(made, node, run.port, data, log)
        started = time.monotonic()
        while _held(inbox) < count and time.monotonic() < started + 120:
            time.sleep(0.1)
        held = _held(inbox)
        mib = peak_rss_mib(tablet.pid)
        stop_process(tablet)
    return {"tablet_mib": mib, "held": held, "seconds": time.monotonic() - started}


def _state(inbox: Path) -> str:
    if not inbox.exists():
        return ""
    with sqlite3.connect(f"file:{inbox}?mode=ro", uri=True) as db:
        try:
            row = db.execute("SELECT value FROM state WHERE key = 'link'").fetchone()
        except sqlite3.Error:
            return ""
    return str(row[0]) if row else ""
