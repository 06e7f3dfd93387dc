"""Tablets for the benchmarks, in worker processes: the project's client or raw paho.

``project``: the real ``NodeClient`` (mTLS, receiver core, SQLite inbox,
manual ack after commit), receipts off, timing each commit via ``on_stored``.
``raw``: a paho client with the same certificate that only notes each message's
arrival (the payload's first 8 bytes are its number). Times are
``time.monotonic()``, which is system-wide on Linux, so the parent can compare
them with its send times.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from dataclasses import dataclass, replace
from datetime import timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from bench.harness import Fleet, peak_rss_mib
from certs import EnrolmentBundle
from subscriber import NodeClient

TOPIC = "blo/country/kh"


@dataclass(frozen=True)
class Spec:
    """What a worker runs."""

    mode: str  # "raw" or "project"
    nodes: tuple[str, ...]
    fleet: Fleet
    port: int
    expect: int  # messages each tablet should receive
    data: Path
    timeout: float = 60.0
    prime_only: bool = False  # connect, subscribe, leave (a persistent session to fill)


class _Raw:
    def __init__(self, node: str, spec: Spec) -> None:
        self.times: list[tuple[int, float]] = []
        self.ready = threading.Event()
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=node, clean_session=False, protocol=mqtt.MQTTv311
        )
        client.tls_set(*spec.fleet.tls(node))
        client.on_connect = lambda c, *_: c.subscribe(TOPIC, 1)
        client.on_subscribe = lambda *_: self.ready.set()
        client.on_message = self._message
        client.connect_async("127.0.0.1", spec.port, keepalive=60)
        client.loop_start()
        self.client = client

    def _message(self, client: Any, userdata: Any, message: mqtt.MQTTMessage) -> None:
        self.times.append((int.from_bytes(message.payload[:8], "big"), time.monotonic()))

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class _Project:
    def __init__(self, node: str, spec: Spec) -> None:
        self.times: list[tuple[int, float]] = []
        self.client = NodeClient(
            EnrolmentBundle.load(spec.fleet.bundle(node)),
            "127.0.0.1",
            spec.port,
            spec.data / node,
            gap_grace=timedelta(seconds=30),
            tick=0.5,
            catch_up_every=3600,
            receipts=False,
            on_stored=lambda accepted: self.times.append((accepted.header.seq, time.monotonic())),
        )
        self.client.start()
        self.ready = self.client.connected

    def stop(self) -> None:
        self.client.stop()


def _worker(spec: Spec, conn: Connection) -> None:
    started = time.monotonic()
    kind = _Raw if spec.mode == "raw" else _Project
    tablets = {node: kind(node, spec) for node in spec.nodes}
    deadline = started + spec.timeout
    while not all(t.ready.is_set() for t in tablets.values()) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # the project client subscribes after CONNACK without waiting for SUBACK
    conn.send(("ready", sum(t.ready.is_set() for t in tablets.values())))
    if not spec.prime_only:
        while time.monotonic() < deadline and not conn.poll(0.05):
            if all(len({s for s, _ in t.times}) >= spec.expect for t in tablets.values()):
                break
    times = {node: t.times for node, t in tablets.items()}
    for tablet in tablets.values():
        tablet.stop()
    conn.send(("done", started, times, peak_rss_mib(multiprocessing.current_process().pid or 0)))


#: Worker processes for a fleet. A real tablet is a process of its own; 37 tablets
#: in one interpreter (one worker per core) measured their GIL contention, which no
#: tablet has: 74 tablets at 10 alerts/s on Mosquitto, p50 / p99 55-169 / 115-1,080 ms
#: in 2 workers against 30 / 60-64 ms in 8, same hour; raw paho 6-7 / 15-22 ms in
#: both. Beyond 16 the interpreters' own start and scheduling cost more than they save.
FLEET_PROCESSES = 8
TABLETS_PER_WORKER = 10


class Workers:
    """Tablets spread over worker processes (``FLEET_PROCESSES`` by default)."""

    def __init__(self, spec: Spec, processes: int = FLEET_PROCESSES) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.pipes: list[Connection] = []
        self.procs = []
        # At least one worker per 10 tablets, at most ``processes``: no more workers
        # than that needs (a small fleet in one: each worker's start costs a second).
        processes = max(1, min(processes, -(-len(spec.nodes) // TABLETS_PER_WORKER)))
        chunks = [spec.nodes[i::processes] for i in range(processes)]
        for chunk in (c for c in chunks if c):
            parent, child = ctx.Pipe()
            proc = ctx.Process(
                target=_worker, args=(replace(spec, nodes=chunk), child), daemon=True
            )
            proc.start()
            self.pipes.append(parent)
            self.procs.append(proc)

    def ready(self, timeout: float = 120.0) -> int:
        """Wait for every worker's tablets to connect; returns how many did."""
        count = 0
        for pipe in self.pipes:
            if not pipe.poll(timeout):
                raise RuntimeError("a tablet worker did not report within the time allowed")
            count += pipe.recv()[1]
        return count

    def results(self, timeout: float) -> tuple[float, dict[str, list[tuple[int, float]]], float]:
        """(earliest start, times per tablet, largest worker peak RSS) once all are done."""
        starts, times, rss = [], {}, 0.0
        for pipe in self.pipes:
            if not pipe.poll(timeout):
                raise RuntimeError("a tablet worker did not finish within the time allowed")
            _, started, got, peak = pipe.recv()
            starts.append(started)
            times.update(got)
            rss = max(rss, peak)
        for proc in self.procs:
            proc.join(30)
        return min(starts), times, rss

    def stop(self) -> None:
        """Ask the workers to finish now."""
        for pipe in self.pipes:
            pipe.send("stop")
