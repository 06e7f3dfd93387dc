"""scale: how many tablets one broker carries, each its own TLS connection and identity.

Simulated tablets share worker processes: each worker drives its paho clients
from one selector loop (no thread per client). A regional coordinator sends
one signed alert to ``blo/all``; every tablet must receive it and accept it
through the receiver core. The largest step where all connect (within the
time allowed) and all accept the alert is the figure.
"""

from __future__ import annotations

import multiprocessing
import selectors
import time
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from bench.harness import COORDINATOR, Fleet, broker
from bench.sender import reference_body
from certs import EnrolmentBundle
from schemas import Receiver, Scope, seal
from subscriber import node_client

TOPIC = "blo/all"


def _tablets(nodes: list[str], made: Fleet, port: int, conn: Connection, seconds: float) -> None:
    """Worker: connect ``nodes``, report, then wait for the alert and report who accepted it."""
    trust = made.trust()
    accepted: set[str] = set()
    subscribed: set[str] = set()
    receivers: dict[str, Receiver] = {}
    selector = selectors.DefaultSelector()
    clients: list[mqtt.Client] = []

    def on_connect(client: mqtt.Client, node: str, *_: Any) -> None:
        client.subscribe(TOPIC, 1)

    def on_subscribe(client: mqtt.Client, node: str, *_: Any) -> None:
        subscribed.add(node)

    def on_message(client: mqtt.Client, node: str, message: mqtt.MQTTMessage) -> None:
        receiver = receivers.setdefault(node, Receiver(trust, me=node))
        if receiver.receive(message.topic, bytes(message.payload), datetime.now(UTC)).ok:
            accepted.add(node)

    deadline = time.monotonic() + seconds
    for node in nodes:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=node, userdata=node, protocol=mqtt.MQTTv311
        )
        client.tls_set(*made.tls(node))
        client.on_connect = on_connect
        client.on_subscribe = on_subscribe
        client.on_message = on_message
        try:
            client.connect("127.0.0.1", port, keepalive=300)
        except OSError:
            continue
        selector.register(client.socket(), selectors.EVENT_READ, client)
        clients.append(client)
        _pump(selector, clients, 0)
        if time.monotonic() > deadline:
            break

    def wait(done: Any, until: float) -> None:
        while not done() and time.monotonic() < until:
            _pump(selector, clients, 0.05)

    wait(lambda: len(subscribed) == len(nodes), deadline)
    conn.send(len(subscribed))
    wait(lambda: conn.poll(), deadline + 60)  # the parent says when the alert is out
    conn.recv()
    wait(lambda: len(accepted) == len(subscribed), time.monotonic() + 30)
    conn.send(len(accepted))
    for client in clients:
        client.disconnect()
    _pump(selector, clients, 0)


def _pump(selector: selectors.BaseSelector, clients: list[mqtt.Client], timeout: float) -> None:
    # paho reads one packet a call, and TLS may already hold the next one decrypted,
    # where select() cannot see it: read those too, as paho's own loop does.
    held = [c for c in clients if (sock := c.socket()) is not None and _pending(sock)]
    for key, _ in selector.select(0 if held else timeout):
        if key.data not in held:
            key.data.loop_read()
    for client in held:
        client.loop_read()
    for client in clients:
        if client.want_write():
            client.loop_write()
        client.loop_misc()


def _pending(sock: Any) -> int:
    """Decrypted bytes a TLS socket holds that select() cannot see."""
    return int(sock.pending()) if hasattr(sock, "pending") else 0


def step(kind: str, made: Fleet, folder: Path, tablets: int, seconds: float) -> dict[str, Any]:
    """One step: ``tablets`` connect, one alert to all; counts of connected and accepted."""
    nodes = made.tablets[:tablets]
    ctx = multiprocessing.get_context("spawn")
    started = time.monotonic()
    with broker(kind, made, folder) as run:
        pipes, procs = [], []
        for part in (nodes[0::2], nodes[1::2]):
            parent, child = ctx.Pipe()
            proc = ctx.Process(
                target=_tablets, args=(part, made, run.port, child, seconds), daemon=True
            )
            proc.start()
            pipes.append(parent)
            procs.append(proc)
        connected = sum(p.recv() if p.poll(seconds + 90) else 0 for p in pipes)
        connect_s = time.monotonic() - started
        _send_alert(made, run.port)
        for pipe in pipes:
            pipe.send("sent")
        got = sum(p.recv() if p.poll(90) else 0 for p in pipes)
        broker_mib = run.peak_rss_mib()
        for proc in procs:
            proc.join(30)
            if proc.is_alive():
                proc.kill()
    return {
        "tablets": tablets,
        "connected": connected,
        "accepted": got,
        "connect_s": connect_s,
        "broker_mib": broker_mib,
        "ok": connected == tablets and got == tablets,
    }


def _send_alert(made: Fleet, port: int) -> None:
    bundle = EnrolmentBundle.load(made.bundle(COORDINATOR))
    now = datetime.now(UTC).replace(microsecond=0)
    wire = seal(
        bundle.signer(),
        reference_body(),
        seq=1,
        scope=Scope.all(),
        issued=now,
        expires=now + timedelta(days=1),
    )
    client = node_client(bundle)
    client.connect("127.0.0.1", port, keepalive=60)
    client.loop_start()
    client.publish(TOPIC, wire, qos=1).wait_for_publish(30)
    client.disconnect()
    client.loop_stop()
