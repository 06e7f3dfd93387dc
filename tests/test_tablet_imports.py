"""The running tablet loads at start only what it needs (issue 15, "Tablet footprint").

``blo-sub run`` is started in a process of its own (this one has loaded everything)
and linked to a broker; once it has received, opened and stored alerts in clear and
a sealed one, the modules it holds are listed. The
officer's commands, the web app, photo imaging, trend analysis, the export formats
and certificate issuing each cost the tablet's memory (bench/run.py memory) and
none of them runs in ``blo-sub run`` without ``--web``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from brokers import Network, embedded_broker
from netsim import ALERT
from nodekit import Nodes, wait_for

from broker.archive_service import ArchiveService
from certs import EnrolmentBundle, Pki
from publisher import ComposeError
from schemas import Scope, Severity
from subscriber import NodeClient

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

#: Started as blo-sub is (python -m subscriber.cli run ...). It says when its link is
#: up, then lists its modules once it holds ``BLO_EXPECT`` messages: a module loaded
#: lazily on the first message received, opened or stored counts too.
_SCRIPT = """
import json, os, sys, threading, time
import subscriber.cli as cli

real_start = cli.NodeClient.start

def start(self):
    real_start(self)
    def report():
        up = self.connected.wait(30)
        print(json.dumps({"connected": up}), flush=True)
        deadline = time.monotonic() + 60
        while self.inbox.count() < int(os.environ["BLO_EXPECT"]) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # the receipts owed for them are queued and sent
        report = {"held": self.inbox.count(), "modules": sorted(sys.modules)}
        print(json.dumps(report), flush=True)
        os._exit(0)
    threading.Thread(target=report, daemon=True).start()

cli.NodeClient.start = start
sys.exit(cli.main(sys.argv[1:]))
"""


def sealed_sent(hq: NodeClient) -> bool:
    """Queue a confidential alert once the archive's keysets (with the offices'
    sealing keys) have reached HQ; False while they have not."""
    try:
        hq.send(ALERT, Scope.country("kh"), confidential=True)
    except ComposeError:
        return False
    return True


def _loaded(module: str, modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m == module or m.startswith(module + "."))


def test_blo_sub_run_loads_no_officer_web_imaging_or_issuing_stack(tmp_path: Path) -> None:
    network = Network(tmp_path)
    with embedded_broker(network) as broker:
        args = ["run", "--bundle", str(network.bundle("kh-blo-bavet"))]
        args += ["--data", str(tmp_path / "tablet"), "-h", "127.0.0.1", "-p", str(broker.port)]
        tablet = subprocess.Popen(
            [sys.executable, "-c", _SCRIPT, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=os.environ | {"BLO_EXPECT": "3"},
        )
        archive = ArchiveService(
            EnrolmentBundle.load(network.bundle("kh-archive")),
            "127.0.0.1",
            broker.port,
            tmp_path / "archive.sqlite3",
            trust_source=Pki(network.kh).trust_messages,  # the keysets with sealing keys
        )
        archive.start()
        group = Nodes(network, broker.port, tmp_path / "senders")
        try:
            assert archive.connected.wait(10)
            assert tablet.stdout is not None
            assert json.loads(tablet.stdout.readline() or "{}").get("connected"), "no link"
            hq = group.start("kh-nacd")
            assert hq.connected.wait(10)
            # What a tablet receives: alerts in clear (it owes each a receipt) and sealed.
            hq.send(ALERT, Scope.country("kh"))
            hq.send(ALERT.model_copy(update={"severity": Severity.EXTREME}), Scope.country("kh"))
            assert wait_for(lambda: sealed_sent(hq), 20), "HQ never held the sealing keys"
            out, err = tablet.communicate(timeout=90)
        finally:
            group.stop_all()
            archive.stop()
            if tablet.poll() is None:
                tablet.kill()
    assert tablet.returncode == 0, err
    report = json.loads(out.strip().splitlines()[-1])
    assert report["held"] == 3, err
    modules = set(report["modules"])
    # Positive control: the list is the running client's after it received (its link,
    # its core, and the sealing it opened the confidential alert with are in).
    for needed in ("subscriber.client", "paho.mqtt.client", "schemas.receiver", "schemas.seal"):
        assert needed in modules
    loaded = {name: _loaded(name, modules) for name in NOT_AT_START}
    assert not any(loaded.values()), {
        name: f"{found[:3]}: {NOT_AT_START[name]}" for name, found in loaded.items() if found
    }
