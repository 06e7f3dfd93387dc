"""blo-broker from the command line: configuration, errors, clean shutdown, Mosquitto files."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from brokers import Network, free_port
from mqttc import TestClient

from broker.cli import main
from broker.config import load_settings
from broker.errors import ConfigError


def test_settings_merge_file_env_and_flags(tmp_path: Path) -> None:
    conf = tmp_path / "broker.toml"
    conf.write_text('[broker]\nport = 9000\nhost = "0.0.0.0"\nmax_packet = 65536\n')
    settings = load_settings(conf, {"BLO_BROKER_PORT": "9100"}, {"host": None, "port": None})
    assert (settings.port, settings.host, settings.max_packet) == (9100, "0.0.0.0", 65536)
    settings = load_settings(conf, {"BLO_BROKER_PORT": "9100"}, {"port": 9200})
    assert settings.port == 9200


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("[broker]\nport = 70000\n", "port"),
        ("[broker]\nprot = 1\n", "prot"),
        ("[broker\n", "not valid TOML"),
    ],
)
def test_bad_settings_name_the_file_and_field(tmp_path: Path, text: str, complaint: str) -> None:
    conf = tmp_path / "broker.toml"
    conf.write_text(text)
    with pytest.raises(ConfigError, match=complaint) as info:
        load_settings(conf, {}, {})
    assert str(conf) in str(info.value)


def test_missing_server_certificate_says_what_to_run(
    network: Network, capsys: pytest.CaptureFixture[str]
) -> None:
    data = str(network.root / "data")  # nothing written to the working folder
    assert (
        main(["run", "--pki", str(network.kh), "--server", "nosuch", "-p", "0", "--data", data])
        == 1
    )
    err = capsys.readouterr().err
    assert "blo-certs server" in err
    assert "nosuch" in err


def test_help_is_readable() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "broker.cli", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for word in ("run", "archive", "mosquitto-config"):
        assert word in out


def test_run_serves_and_stops_cleanly_on_sigterm(network: Network) -> None:
    port = free_port()
    log = network.root / "broker.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "broker.cli",
                "-p",
                str(port),
                "--pki",
                str(network.kh),
                "--data",
                str(network.root / "data"),
            ],
            stdout=sink,
            stderr=sink,
            env={**os.environ, "COLUMNS": "200"},
        )
    try:
        deadline = time.monotonic() + 15
        while "archive kh-archive connected" not in log.read_text():
            assert time.monotonic() < deadline, log.read_text()
            assert proc.poll() is None, log.read_text()
            time.sleep(0.1)
        client = TestClient(network.bundle("kh-blo-bavet"), port, clean=True)
        assert client.connect()
        client.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    text = log.read_text()
    assert re.search(rf"listening on 127\.0\.0\.1:{port}", text)
    assert "connected kh-blo-bavet" in text
    assert "broker stopped" in text
    assert (network.root / "data" / "archive.sqlite3").exists()


def test_mosquitto_config_files(network: Network, tmp_path: Path) -> None:
    out = tmp_path / "mosq"
    user = "root" if os.geteuid() == 0 else os.environ.get("USER", "nobody")
    assert (
        main(
            [
                "mosquitto-config",
                "--pki",
                str(network.kh),
                "--out",
                str(out),
                "-p",
                "8883",
                "--user",
                user,
            ]
        )
        == 0
    )
    conf = (out / "mosquitto.conf").read_text()
    for line in (
        "require_certificate true",
        "use_identity_as_username true",
        "use_username_as_clientid true",
        "autosave_interval 5",
        "persistence true",
        "max_queued_messages 1000000",
        "message_size_limit",
        "allow_anonymous false",
        f"acl_file {out / 'acl'}",
        "crlfile",
    ):
        assert line in conf, line
    acl = (out / "acl").read_text()
    block = acl.split("user kh-blo-bavet\n")[1].split("\n\n")[0]
    assert "topic write blo/incident/kh/kh-blo-bavet" in block
    assert "topic write blo/bulletin/vn-blo-mocbai/kh-blo-bavet" in block
    assert "topic read blo/region/kh-vn-bavet" in block
    assert "#" not in block.replace("topic read", "").split()  # no bare wildcard grants
