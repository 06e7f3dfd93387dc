"""The operator is told why a link does not come up, and gets errors, not tracebacks
(issue 9.13, 9.14, 9.15).

Every wait is bounded; each "nothing happened" check has a positive control.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from brokers import Network, embedded_broker, mosquitto_broker
from nodekit import wait_for

from broker.cli import lock_archive
from broker.errors import BrokerError
from broker.local import free_port
from certs import BundleError, EnrolmentBundle, Pki
from publisher.cli import EXIT_QUEUED
from publisher.cli import main as pub_main
from subscriber import NodeClient
from subscriber.cli import main as sub_main

BIN = Path(sys.executable).parent


def reason_of(network: Network, node: str, host: str, port: int, folder: Path) -> str | None:
    """Start ``node``'s client against ``host:port``; the reason it gives for no link."""
    client = NodeClient(EnrolmentBundle.load(network.bundle(node)), host, port, folder)
    client.start()
    try:
        wait_for(lambda: client.link.last is not None or client.connected.is_set(), 20)
        return client.link.last
    finally:
        client.stop()


@pytest.mark.parametrize(
    ("host", "says"),
    [("127.0.0.1", "nothing listens on 127.0.0.1"), ("no-such-host.invalid", "not found")],
)
def test_no_broker_and_a_bad_host_name_are_said_once(
    network: Network,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    host: str,
    says: str,
) -> None:
    caplog.set_level(logging.WARNING, logger="blo.sub")
    port = free_port()  # nothing listens there
    client = NodeClient(EnrolmentBundle.load(network.bundle("kh-blo-bavet")), host, port, tmp_path)
    client.start()
    try:
        assert wait_for(lambda: client.link.last is not None, 15)
        time.sleep(3.5)  # paho retries after 1 s and 2 s: the reason does not change
    finally:
        client.stop()
    said = [r.message for r in caplog.records if says in r.message]
    assert len(said) == 1, [r.message for r in caplog.records]
    # ... and 'blo-sub status' shows it, for people and for scripts.
    bundle = str(network.bundle("kh-blo-bavet"))
    assert sub_main(["status", "--bundle", bundle, "--data", str(tmp_path), "--json"]) == 0
    state = json.loads(capsys.readouterr().out)
    assert says in state["last_error"]
    assert state["link"] in ("down", "stopped")
    assert sub_main(["status", "--bundle", bundle, "--data", str(tmp_path)]) == 0
    assert says in " ".join(capsys.readouterr().out.split())


def test_a_broker_of_another_pki_is_named_untrusted(network: Network, tmp_path: Path) -> None:
    other = Network(tmp_path / "other")
    with embedded_broker(other) as foreign:
        why = reason_of(network, "kh-blo-bavet", "127.0.0.1", foreign.port, tmp_path / "a")
    assert why is not None
    assert "not trusted" in why
    # Positive control: the same client with its own broker connects and says nothing.
    with embedded_broker(network) as own:
        assert reason_of(network, "kh-blo-bavet", "127.0.0.1", own.port, tmp_path / "b") is None


@pytest.mark.parametrize("kind", ["amqtt", "mosquitto"])
def test_a_revoked_tablet_is_told_why(network: Network, tmp_path: Path, kind: str) -> None:
    Pki(network.kh).revoke("kh-blo-poipet", datetime.now(UTC), reason="tablet lost")
    start = embedded_broker if kind == "amqtt" else mosquitto_broker
    with start(network) as handle:
        why = reason_of(network, "kh-blo-poipet", "127.0.0.1", handle.port, tmp_path)
    assert why is not None
    assert "certificate refused" in why, why


def test_send_now_exits_3_and_says_why_when_still_queued(
    network: Network, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    Pki(network.kh).write_bundle("kh-nacd")
    argv = ["alert", "--bundle", str(network.bundle("kh-nacd")), "--data", str(tmp_path)]
    argv += ["--scope", "country:kh", "--category", "other", "--severity", "minor"]
    argv += ["--headline", "x", "--send", "-h", "127.0.0.1", "-p", str(free_port())]
    assert pub_main([*argv, "--wait", "3"]) == EXIT_QUEUED
    err = " ".join(capsys.readouterr().err.split())
    assert "1 message(s) still queued" in err
    assert "nothing listens" in err


# -- tracebacks instead of errors (9.14) ------------------------------------------------


def test_a_bundle_that_is_a_folder_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert sub_main(["status", "--bundle", str(tmp_path)]) == 1
    assert "is a folder" in capsys.readouterr().err
    assert pub_main(["receipts", "--bundle", str(tmp_path), "abc"]) == 1
    assert "is a folder" in capsys.readouterr().err


def test_a_corrupt_certificate_in_a_bundle_is_an_error(
    network: Network, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = json.loads(network.bundle("kh-blo-bavet").read_text())
    doc["tls_cert"] = doc["tls_cert"].replace("\n", "\nAAAA", 3)
    path = tmp_path / "bavet.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(BundleError, match="TLS certificate or key is unreadable"):
        EnrolmentBundle.load(path).tls_context()
    argv = ["--bundle", str(path), "--data", str(tmp_path), "-p", str(free_port())]
    assert sub_main(["run", *argv]) == 1
    assert "unreadable" in capsys.readouterr().err
    # Positive control: the intact bundle gives a context.
    assert EnrolmentBundle.load(network.bundle("kh-blo-bavet")).tls_context() is not None


def test_ctrl_c_during_send_exits_130_and_keeps_the_message(
    network: Network, tmp_path: Path
) -> None:
    Pki(network.kh).write_bundle("kh-nacd")
    argv = ["alert", "--bundle", str(network.bundle("kh-nacd")), "--data", str(tmp_path)]
    argv += ["--scope", "country:kh", "--category", "other", "--severity", "minor"]
    argv += ["--headline", "x", "--send", "-p", str(free_port()), "--wait", "60"]
    proc = subprocess.Popen(
        [str(BIN / "blo-pub"), *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert wait_for(lambda: (tmp_path / "outbox.sqlite3").exists(), 20)
        time.sleep(2.0)  # into the wait for the link
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert "interrupted" in err
    assert "still queued" in err


def test_the_archive_refuses_a_bundle_that_is_not_an_archive(
    network: Network, tmp_path: Path
) -> None:
    argv = [str(BIN / "blo-broker"), "archive", "--bundle", str(network.bundle("kh-blo-bavet"))]
    argv += ["--data", str(tmp_path), "-p", str(free_port())]
    # A subprocess with a bound: without the check, the archive would start and run on.
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1, done.stderr
    assert "runs only as an archive" in " ".join(done.stderr.split())
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "archive.sqlite3").exists()


@pytest.fixture
def archive_process(network: Network, tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """``blo-broker archive`` with no broker to reach: it holds its lock and retries."""
    argv = [str(BIN / "blo-broker"), "archive", "--bundle", str(network.bundle("kh-archive"))]
    argv += ["--data", str(tmp_path / "arc"), "-h", "127.0.0.1", "-p", str(free_port())]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


def test_two_archives_on_one_file_refused_and_the_first_says_why_it_has_no_link(
    network: Network,
    tmp_path: Path,
    archive_process: subprocess.Popen[str],
) -> None:
    lock = tmp_path / "arc" / "archive.sqlite3.lock"
    assert wait_for(lambda: lock.exists() and "(pid " in lock.read_text(), 20)
    argv = [str(BIN / "blo-broker"), "archive", "--bundle", str(network.bundle("kh-archive"))]
    argv += ["--data", str(tmp_path / "arc"), "-p", str(free_port())]
    # Bounded: without the lock the second archive would start and run on.
    second = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert second.returncode == 1, second.stderr
    err = " ".join(second.stderr.split())
    assert "is in use by blo-broker archive" in err
    assert str(archive_process.pid) in err
    with pytest.raises(BrokerError):
        lock_archive(tmp_path / "arc" / "archive.sqlite3")
    archive_process.terminate()
    out, _ = archive_process.communicate(timeout=10)
    assert "nothing listens" in out, out  # 9.13: the archive said why it has no link
    assert out.count("nothing listens") == 1, out
    # Positive control: once the first archive is gone, the file is free.
    lock_archive(tmp_path / "arc" / "archive.sqlite3").release()


# -- private TLS keys (9.15) ---------------------------------------------------------------


@pytest.mark.parametrize("memfd", [True, False])
def test_no_private_key_is_left_in_a_file(
    network: Network, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, memfd: bool
) -> None:
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    if not memfd:  # where there is no memfd: a 0600 file in a private folder, removed at once
        monkeypatch.delattr(os, "memfd_create")
    data = tmp_path / "data"
    bundle = EnrolmentBundle.load(network.bundle("kh-blo-bavet"))
    for _ in range(3):  # every start
        client = NodeClient(bundle, "127.0.0.1", free_port(), data)
        client.start()
        client.stop()
    written = [p for p in (*data.rglob("*"), *temp.rglob("*")) if p.is_file()]
    assert [p for p in written if b"PRIVATE KEY" in p.read_bytes()] == []
    assert list(temp.iterdir()) == []
    stores = ("inbox", "outbox", "blobs")
    assert {p.name for p in written} <= {f"{n}.sqlite3" for n in stores} | {"link.lock"} | {
        f"{n}.sqlite3-{x}" for n in stores for x in ("wal", "shm")
    }


def test_a_data_folder_that_is_a_file_is_an_error(
    network: Network, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x")
    bundle = str(network.bundle("kh-blo-bavet"))
    assert sub_main(["status", "--bundle", bundle, "--data", str(afile)]) == 1
    assert "is a file" in capsys.readouterr().err
    incident = ["--crime", "drug_trafficking", "--lat", "11.08", "--lon", "106.18"]
    assert pub_main(["incident", "--bundle", bundle, "--data", str(afile), *incident]) == 1
    assert "is a file" in capsys.readouterr().err
