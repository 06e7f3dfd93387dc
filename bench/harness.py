"""What every benchmark shares: a PKI for a fleet of tablets, the broker under test, statistics.

The broker runs in a process of its own (``blo-broker run`` for the embedded
broker, Mosquitto from the generated configuration), so its CPU and memory are
its own and can be read from /proc.
"""

from __future__ import annotations

import contextlib
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from broker import MosquittoProcess, free_port
from certs import NodeSpec, Pki
from schemas import Role, TrustStore

ROOT = Path(__file__).resolve().parents[1]
HQ = "kh-nacd"
COORDINATOR = "kh-rc"
ARCHIVE = "kh-archive"
#: A keyset holds at most 2,000 nodes: a larger fleet is spread over countries,
#: as on a regional hub that carries several countries' offices.
PER_COUNTRY = 1500
COUNTRIES = ["kh", "th", "vn", "la", "mm", "cn"]


@dataclass
class Fleet:
    """Tablets ``kh-t0001``, ``th-t1501``, ... and the PKI folders that issued them."""

    root: Path
    tablets: list[str]
    pkis: dict[str, Path] = field(default_factory=dict)

    @property
    def kh(self) -> Path:
        return self.pkis["kh"]

    def bundle(self, node: str) -> Path:
        return self.pkis[node[:2]] / "bundles" / f"{node}.json"

    def tls(self, node: str) -> tuple[str, str, str]:
        """(CA file with every country's CA, certificate, key) of ``node``."""
        folder = self.pkis[node[:2]] / "nodes" / node
        return str(self.root / "cas.pem"), str(folder / "tls.crt"), str(folder / "tls.key")

    def trust(self) -> TrustStore:
        """Every country's roots and keysets, verified (what a tablet holds)."""
        return Pki(self.kh).trust_store(datetime.now(UTC))


def fleet(root: Path, tablets: int, *, bundled: int = 74) -> Fleet:
    """Issue ``tablets`` BLO identities (plus NACD and a regional coordinator).

    Only the first ``bundled`` tablets get an enrolment bundle (each holds every
    keyset, so thousands would take minutes); the rest use their TLS files.
    """
    now = datetime.now(UTC)
    names = [f"{COUNTRIES[i // PER_COUNTRY]}-t{i + 1:04d}" for i in range(tablets)]
    made = Fleet(root, names)
    for cc in dict.fromkeys(n[:2] for n in ["kh-x", *names]):
        pki = Pki(root / f"pki-{cc}")
        pki.init(cc, f"{cc}-hq" if cc != "kh" else HQ, now)
        specs = [NodeSpec(n, Role.BLO, (f"{cc}-border",)) for n in names if n[:2] == cc]
        if cc == "kh":
            specs.append(NodeSpec(COORDINATOR, Role.REGIONAL))
            specs.append(NodeSpec(ARCHIVE, Role.ARCHIVE))
        pki.issue_many(specs, now, bundles=False)
        made.pkis[cc] = pki.dir
    kh = Pki(made.kh)
    for cc, folder in made.pkis.items():
        if cc != "kh":
            kh.import_root(folder)
    kh.server("broker", ["localhost", "127.0.0.1"], now)
    for node in [HQ, COORDINATOR, ARCHIVE, *(n for n in names[:bundled] if n[:2] == "kh")]:
        kh.write_bundle(node)
    cas = [folder / "root" / "ca.crt" for folder in made.pkis.values()]
    (root / "cas.pem").write_text("".join(p.read_text() for p in cas))
    return made


@dataclass
class BrokerRun:
    """A running broker under test: its kind, port and process id."""

    kind: str
    port: int
    pid: int

    def peak_rss_mib(self) -> float:
        return peak_rss_mib(self.pid)


def peak_rss_mib(pid: int) -> float:
    """The peak resident set (VmHWM) of process ``pid``, in MiB."""
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmHWM:\s+(\d+) kB", status)
    return int(match.group(1)) / 1024 if match else float("nan")


@contextlib.contextmanager
def broker(kind: str, made: Fleet, folder: Path, *, archive: bool = False) -> Iterator[BrokerRun]:
    """Start the broker under test on a free loopback port; stop it afterwards.

    With ``archive``, the archive runs too (beside the embedded broker, as
    ``blo-broker run`` does; as its own process for Mosquitto)."""
    folder.mkdir(parents=True, exist_ok=True)
    if kind == "mosquitto":
        process = MosquittoProcess(made.kh, folder / "mosquitto", free_port())
        process.start()
        assert process.proc is not None
        beside = _archive(made, process.port, folder) if archive else None
        try:
            yield BrokerRun(kind, process.port, process.proc.pid)
        finally:
            if beside is not None:
                stop_process(beside)
            process.stop()
        return
    port = free_port()
    log = folder / "blo-broker.log"
    cmd = [sys.executable, "-m", "broker.cli", "run", "-p", str(port), "--pki", str(made.kh)]
    cmd += [
        *([] if archive else ["--no-archive"]),
        "--data",
        str(folder),
        *(["-v"] if os.environ.get("BENCH_BROKER_VERBOSE") else []),
    ]
    with log.open("ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=out, cwd=ROOT, env=_env())
    try:
        deadline = time.monotonic() + 60
        while "listening on" not in log.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"blo-broker did not start: {log}")
            time.sleep(0.1)
        yield BrokerRun(kind, port, proc.pid)
    finally:
        stop_process(proc)


def _archive(made: Fleet, port: int, folder: Path) -> subprocess.Popen[bytes]:
    """``blo-broker archive`` connected to the broker on ``port``."""
    cmd = [sys.executable, "-m", "broker.cli", "archive", "--bundle", str(made.bundle(ARCHIVE))]
    cmd += ["-h", "127.0.0.1", "-p", str(port), "--data", str(folder / "archive")]
    cmd += ["--pki", str(made.kh)]
    with (folder / "archive.log").open("ab") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=out, cwd=ROOT, env=_env())


def stop_process(proc: subprocess.Popen[bytes], grace: float = 20.0) -> None:
    """SIGTERM, then SIGKILL if it has not exited within ``grace`` seconds."""
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def _env() -> dict[str, str]:
    return {**os.environ, "COLUMNS": "200", "PYTHONPATH": str(ROOT)}


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) by nearest rank; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def spread(values: list[float]) -> tuple[float, float, float]:
    """(median, min, max) of a benchmark's rounds."""
    return statistics.median(values), min(values), max(values)
