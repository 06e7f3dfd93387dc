"""One host/port spelling in every command, defaults in --help, and --json for scripts
(issue 9.17)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from brokers import Network
from nodekit import stored_alert

from broker.cli import main as broker_main
from publisher.cli import main as pub_main
from subscriber.cli import main as sub_main

Main = Callable[[Sequence[str] | None], int]


@pytest.fixture(autouse=True)
def _root_logging() -> Iterator[None]:
    """blo-broker's main sets up the root logger on the captured stderr: put it back,
    or later tests log into a closed stream."""
    handlers, level = logging.root.handlers[:], logging.root.level
    yield
    logging.root.handlers[:] = handlers
    logging.root.setLevel(level)


CONNECTING: list[tuple[Main, list[str]]] = [
    (pub_main, ["alert"]),
    (pub_main, ["incident"]),
    (pub_main, ["bulletin"]),
    (sub_main, ["run"]),
    (broker_main, ["run"]),
    (broker_main, ["archive"]),
    (broker_main, ["mosquitto-config"]),
]


def help_of(main: Main, argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exit_:
        main([*argv, "--help"])
    assert exit_.value.code == 0
    return " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize(("main", "argv"), CONNECTING)
def test_host_and_port_are_spelt_as_mosquittos_tools(
    main: Main, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    text = help_of(main, argv, capsys)
    assert "-h HOST, --host HOST" in text
    assert "-p PORT, --port PORT" in text
    assert "(default 8883)" in text
    assert "--help" in text


def test_broker_run_takes_h_for_its_address(capsys: pytest.CaptureFixture[str]) -> None:
    """``blo-broker -h ADDR`` runs the broker on ADDR ('run' is the default command)."""
    assert broker_main(["-h", "127.0.0.1", "--pki", "/nonexistent-pki", "-p", "0"]) == 1
    assert "nonexistent-pki" in capsys.readouterr().err
    assert "run" in help_of(broker_main, [], capsys)


def fill(folder: Path) -> bytes:
    """An inbox holding one alert to Cambodia, as the running client would store it."""
    return stored_alert(folder)


def test_inbox_and_show_as_json(
    network: Network, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    msg_id = fill(tmp_path)
    args = ["--bundle", str(network.bundle("kh-blo-bavet")), "--data", str(tmp_path)]
    assert sub_main(["inbox", *args, "--json", "--lang", "km"]) == 0
    (item,) = json.loads(capsys.readouterr().out)
    assert item["id"] == msg_id.hex()
    assert item["sender"] == "kh-nacd"
    assert item["headline"] == "រឹបអូសហេរ៉ូអ៊ីននៅប៉ោយប៉ែត"
    assert item["read"] is None
    assert sub_main(["show", *args, msg_id.hex()[:6], "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["text"]["en"]["headline"] == "Heroin seized at Poipet"
    assert shown["read"] is None  # a script is not a person: not marked read
    # The person's 'show' marks it read (positive control of the line above).
    assert sub_main(["show", *args, msg_id.hex()[:6]]) == 0
    capsys.readouterr()
    assert sub_main(["show", *args, msg_id.hex()[:6], "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["read"] is not None


def test_status_as_json_before_any_run(
    network: Network, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--bundle", str(network.bundle("kh-blo-bavet")), "--data", str(tmp_path)]
    assert sub_main(["status", *args, "--json"]) == 0
    state = json.loads(capsys.readouterr().out)
    assert state["node"] == "kh-blo-bavet"
    assert state["link"] == "never started"
    assert state["outbox"] == {"waiting": 0, "sent": 0}
