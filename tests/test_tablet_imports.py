"""The running tablet loads at start only what it needs (issue 15, "Tablet footprint").

``blo-sub run`` is started in a process of its own (this one has loaded everything)
and linked to a broker; once it is connected, the modules it holds are listed. The
officer's commands, the web app, photo imaging, trend analysis, the export formats
and certificate issuing each cost the tablet's memory (bench/run.py memory) and
none of them runs in ``blo-sub run`` without ``--web``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from brokers import Network, embedded_broker

ROOT = Path(__file__).resolve().parents[1]

#: Packages (and their submodules) ``blo-sub run`` must not load, and why.
NOT_AT_START = {
    "rich": "the officer's tables (inbox/show/status): 1.8 MiB of the tablet's peak",
    "subscriber.views": "what blo-sub show draws (rich)",
    "web.app": "the web app: only with --web",
    "starlette": "the web app's framework: only with --web",
    "jinja2": "the web app's templates: only with --web",
    "PIL": "photo imaging (blo-pub prepares photos; the tablet only moves their bytes)",
    "photos.images": "photo imaging",
    "photos.map": "the incident map (blo-sub map)",
    "matplotlib": "the incident map",
    "trends": "trend analysis (HQ)",
    "interchange.export": "CAP/GeoJSON/KML/CoT export (blo-sub export)",
    "cryptography.x509": "issuing certificates (blo-certs)",
    "certs.pki": "issuing certificates (blo-certs)",
}

#: Started as blo-sub is (python -m subscriber.cli run ...), until its link is up.
_SCRIPT = """
import json, os, sys, threading
import subscriber.cli as cli

real_start = cli.NodeClient.start

def start(self):
    real_start(self)
    def report():
        up = self.connected.wait(30)
        print(json.dumps({"connected": up, "modules": sorted(sys.modules)}), flush=True)
        os._exit(0)
    threading.Thread(target=report, daemon=True).start()

cli.NodeClient.start = start
sys.exit(cli.main(sys.argv[1:]))
"""


def _loaded(module: str, modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m == module or m.startswith(module + "."))


def test_blo_sub_run_loads_no_officer_web_imaging_or_issuing_stack(tmp_path: Path) -> None:
    network = Network(tmp_path)
    with embedded_broker(network) as broker:
        args = ["run", "--bundle", str(network.bundle("kh-blo-bavet"))]
        args += ["--data", str(tmp_path / "tablet"), "-h", "127.0.0.1", "-p", str(broker.port)]
        out = subprocess.run(
            [sys.executable, "-c", _SCRIPT, *args],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=60,
            check=False,
        )
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["connected"], out.stderr
    modules = set(report["modules"])
    # Positive control: the list is the running client's (its link and its core are in).
    for needed in ("subscriber.client", "paho.mqtt.client", "schemas.receiver", "ssl"):
        assert needed in modules
    loaded = {name: _loaded(name, modules) for name in NOT_AT_START}
    assert not any(loaded.values()), {
        name: f"{found[:3]}: {NOT_AT_START[name]}" for name, found in loaded.items() if found
    }
