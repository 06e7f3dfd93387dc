"""The full-size soak under faults, out of CI: 2,000 alerts to 12 flapping tablets, then
100 incidents from each of 12 BLOs written offline and sent over flapping links.

    python bench/soak.py [--brokers amqtt,mosquitto] [--alerts 2000] [--incidents 100]

It runs tests/test_soak.py (the same code the suite runs at a small size) once per
broker, one broker after the other (never in parallel: the figures are timings on
a shared machine), and prints the ``SOAK`` lines the tests report: link cuts,
lost (must be 0), duplicates dropped, receipts, seconds. Exit status: 0 only if
every run passed. It takes several minutes per broker.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(broker: str, alerts: int, incidents: int, log: Path | None) -> tuple[bool, list[str]]:
    """One broker's soak; returns (passed, the SOAK lines it printed); all output to ``log``."""
    env = {**os.environ, "BLO_SOAK_ALERTS": str(alerts), "BLO_SOAK_INCIDENTS": str(incidents)}
    command = [sys.executable, "-m", "pytest", "tests/test_soak.py", "-s", "-q", "-k", broker]
    started = time.monotonic()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("SOAK ")]
    if log is not None:
        log.write_text(done.stdout + done.stderr)
    if done.returncode != 0:  # what failed and why, without the captured log lines
        why = [ln for ln in done.stdout.splitlines() if ln.startswith(("E ", "FAILED", "ERROR"))]
        print("\n".join(why[-40:]), done.stderr[-2000:], sep="\n", file=sys.stderr)
    lines.append(f"SOAK {broker} total: {round(time.monotonic() - started)} s")
    return done.returncode == 0, lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--brokers", default="amqtt,mosquitto", help="default: %(default)s")
    parser.add_argument("--alerts", type=int, default=2000, help="default: %(default)s")
    parser.add_argument("--incidents", type=int, default=100, help="per BLO; default: %(default)s")
    parser.add_argument("--log", type=Path, help="folder for each broker's full pytest output")
    args = parser.parse_args(argv)
    ok = True
    for broker in args.brokers.split(","):
        log = args.log / f"soak-{broker}.log" if args.log else None
        if args.log:
            args.log.mkdir(parents=True, exist_ok=True)
        passed, lines = run(broker, args.alerts, args.incidents, log)
        print("\n".join(lines), flush=True)
        print(f"SOAK {broker}: {'passed' if passed else 'FAILED'}", flush=True)
        ok = ok and passed
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
