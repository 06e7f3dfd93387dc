"""bench/size.py runs and the reference alert's signed envelope is within 640 bytes.

A size is deterministic (the signature and ids have fixed lengths), so unlike a
timing it belongs in the test suite.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_size_bench_writes_the_agreed_keys(tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "size.py"), "--json", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    figures = json.loads(out.read_text())["reference_alert"]
    assert set(figures) == {
        "blo_signed",
        "json_signed",
        "cap_xml",
        "cap_xml_deflated",
        "cap_xml_signed",
    }
    assert figures["blo_signed"] <= 640
    # Sanity of the comparison: each rival carries the same content, so is larger.
    assert figures["blo_signed"] < figures["cap_xml_deflated"] < figures["cap_xml"]
    assert figures["cap_xml"] < figures["cap_xml_signed"]
    assert "blo-alert signed envelope" in run.stdout
