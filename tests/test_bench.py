"""bench/run.py --quick: every benchmark still runs and writes every agreed key.

Benchmarks are not tests: nothing here asserts a timing or a goal. This only
checks that the figures exist, are numbers, and that nothing was lost.

It takes 2-3 minutes, a fifth of the suite, so it runs with ``BLO_BENCH_QUICK=1``:
``.ci/run`` runs it in its own step (where a skip counts as a failure).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from brokers import require_mosquitto

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(not os.environ.get("BLO_BENCH_QUICK"), reason="~2.5 min: BLO_BENCH_QUICK=1")
def test_every_benchmark_runs_and_writes_every_key(tmp_path: Path) -> None:
    require_mosquitto()
    out = tmp_path / "out.json"
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--json", str(out)],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    figures = json.loads(out.read_text())

    def number(value: object) -> bool:
        return isinstance(value, int | float) and math.isfinite(value) and value > 0

    assert figures["size"]["blo_signed"] <= 640
    for broker in ("amqtt", "mosquitto"):
        fan = figures["fanout"][broker]
        for key in ("p50_ms", "p99_ms", "raw_p50_ms", "raw_p99_ms", "p99_ratio"):
            assert number(fan[key]), (broker, key, fan[key])
        assert fan["lost"] == 0
        assert fan["raw_flat_rate"] > 0  # raw paho keeps up with the lowest rate tried
        assert fan["flat_rate"] >= 0
        wire = figures["link"][broker]
        assert number(wire["bytes_per_alert_ratio"]), wire
        assert wire["bytes_per_alert_ratio"] >= 1  # every envelope crossed, and more
        assert wire["receipts_sent"] == wire["alerts"]
        assert math.isfinite(wire["idle_kb_per_day"]), wire  # 0 in a quick run: no keepalive yet
        assert number(figures["receive"][broker]["ratio"])
        assert number(figures["catchup"][broker]["ratio"])
        scale = figures["scale"][broker]
        assert scale["tablets"] == 40, (broker, scale["steps"])  # both quick steps: all got it
        photo = figures["photo"][broker]
        for key in ("seconds", "raw_seconds", "ratio", "wire_ratio"):
            assert number(photo[key]), (broker, key, photo[key])
    assert number(figures["memory"]["tablet_mib"])
    assert number(figures["memory"]["broker_mib"])
    assert number(figures["trends"]["seconds"])
    assert figures["trends"]["records"] > 0
    assert number(figures["web"]["hq_page_kb"])
    assert number(figures["web"]["hq_load_ms"])
    assert {"python", "amqtt", "paho-mqtt", "mosquitto", "cryptography"} <= set(figures["versions"])
    assert {"fanout p99 ratio at the sustained rate", "receive ratio"} <= set(
        figures["goals"]["amqtt"]
    )
    for title in (
        "fanout:",
        "receive:",
        "catchup:",
        "scale:",
        "memory:",
        "trends:",
        "photo:",
        "link:",
        "issue 15:",
    ):
        assert title in run.stdout
