"""A fault-injecting TCP proxy on loopback, between clients and a broker (blo-demo, tests).

It cuts connections at random moments in both directions, including in the
middle of a packet (it forwards part of a chunk, then closes), can take the
link down (open connections closed, new ones refused) and can stall or slow
it. Everything is bounded: it runs until ``stop()``, on 127.0.0.1 only, and
its randomness is seeded so a failing run can be repeated.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
from dataclasses import dataclass, field

__all__ = ["FaultProxy", "Stats"]


@dataclass
class Stats:
    connections: int = 0
    cuts: int = 0
    mid_chunk_cuts: int = 0
    refused: int = 0
    #: bytes forwarded client -> broker and broker -> client (what crossed the link)
    up_bytes: int = 0
    down_bytes: int = 0


@dataclass
class FaultProxy:
    """Forward 127.0.0.1:<port> to 127.0.0.1:<target>, with faults."""

    target: int
    seed: int = 1
    #: mean seconds a connection lives before a random cut (None: never cut)
    mean_life: float | None = None
    #: extra delay per forwarded chunk, in seconds (a slow link)
    delay: float = 0.0
    #: bytes per second in each direction of each connection (None: as fast as loopback)
    rate: float | None = None
    stats: Stats = field(default_factory=Stats)

    def __post_init__(self) -> None:
        self.random = random.Random(self.seed)  # noqa: S311 - seeded faults, not secrets
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.port = 0
        self._down = False
        self._stalled = False
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None

    # -- control, from the test's thread ---------------------------------------------

    def start(self) -> int:
        self.thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._accept, "127.0.0.1", 0), self.loop
        ).result(5)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    def stop(self) -> None:
        async def close() -> None:
            assert self._server is not None
            self._server.close()
            for writer in list(self._writers):
                writer.close()

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    def set_down(self, down: bool) -> None:
        """Take the link down (cutting every connection) or bring it back."""
        self._down = down
        if down:
            self.cut_all()

    def set_stalled(self, stalled: bool) -> None:
        """Hold every byte in both directions (connections stay open)."""
        self._stalled = stalled

    def cut_all(self) -> None:
        def close() -> None:
            for writer in list(self._writers):
                self.stats.cuts += 1
                writer.close()

        self.loop.call_soon_threadsafe(close)

    # -- the proxy ----------------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._down:
            self.stats.refused += 1
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            writer.close()
            return
        self.stats.connections += 1
        self._writers.update((writer, up_writer))
        deadline = None
        if self.mean_life is not None:
            deadline = self.loop.time() + self.random.expovariate(1 / self.mean_life)
        pumps = [
            asyncio.create_task(self._pump(reader, up_writer, deadline, up=True)),
            asyncio.create_task(self._pump(up_reader, writer, deadline, up=False)),
        ]
        await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        if deadline is not None and self.loop.time() >= deadline:
            self.stats.cuts += 1
        for task in pumps:
            task.cancel()
        for w in (writer, up_writer):
            w.close()
            self._writers.discard(w)
            with contextlib.suppress(Exception):
                await w.wait_closed()

    async def _pump(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        deadline: float | None,
        *,
        up: bool = True,
    ) -> None:
        """Forward until EOF or the connection's deadline; then cut, often mid-chunk."""
        free_at = self.loop.time()  # the rate limit: when the link is free to send again
        with contextlib.suppress(ConnectionError, asyncio.CancelledError, TimeoutError):
            while True:
                timeout = None if deadline is None else max(deadline - self.loop.time(), 0)
                data = await asyncio.wait_for(reader.read(4096), timeout)
                if not data:
                    return
                while self._stalled:
                    await asyncio.sleep(0.05)
                if self.delay:
                    await asyncio.sleep(self.delay)
                if self.rate:
                    free_at = max(free_at, self.loop.time()) + len(data) / self.rate
                    await asyncio.sleep(free_at - self.loop.time())
                if deadline is not None and self.loop.time() >= deadline:
                    # Cut in the middle of what is passing through.
                    part = data[: self.random.randrange(len(data))]
                    self._count(len(part), up)
                    writer.write(part)
                    self.stats.mid_chunk_cuts += 1
                    break
                self._count(len(data), up)
                writer.write(data)
                await writer.drain()

    def _count(self, n: int, up: bool) -> None:
        if up:
            self.stats.up_bytes += n
        else:
            self.stats.down_bytes += n
