"""A reconnect on a metered link: TLS resumed, neither the trust subscriptions (their
retained messages) nor the trust request again while the kept session holds them, and
delivery goes on (issue 15, bytes on the link)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from brokers import BrokerHandle
from netsim import ALERT
from nodekit import Nodes, wait_for

from demo.flaky import FaultProxy
from schemas import Scope, request_topic
from schemas.access import is_trust_topic


def test_a_reconnect_resumes_tls_and_resends_nothing_the_session_holds(
    broker: BrokerHandle, tmp_path: Path
) -> None:
    proxy = FaultProxy(broker.port)
    port = proxy.start()
    group = Nodes(broker.network, broker.port, tmp_path)
    try:
        hq = group.start("kh-nacd")
        tablet = group.start("kh-blo-bavet", port=port)
        subscribes: list[Any] = []
        requests: list[str] = []
        subscribe, publish = tablet.client.subscribe, tablet.client.publish

        def counted_subscribe(*args: Any, **kwargs: Any) -> Any:
            subscribes.append(args)
            return subscribe(*args, **kwargs)

        def counted_publish(topic: str, *args: Any, **kwargs: Any) -> Any:
            if topic == request_topic("kh-blo-bavet"):
                requests.append(topic)
            return publish(topic, *args, **kwargs)

        tablet.client.subscribe = counted_subscribe  # type: ignore[method-assign]
        tablet.client.publish = counted_publish  # type: ignore[method-assign]
        assert hq.connected.wait(10)
        assert tablet.connected.wait(10)
        assert wait_for(lambda: tablet._subscribed != ())  # the SUBACK came
        first = [pattern for pattern, _ in subscribes[0][0]]
        assert any(is_trust_topic(p) for p in first)  # positive control
        assert not tablet.tls_resumed  # positive control: the first link is a full handshake
        hq.send(ALERT, Scope.country("kh"))
        assert wait_for(lambda: tablet.inbox.count() == 1)
        subscribes.clear()
        requests.clear()
        tablet.connected.clear()
        proxy.cut_all()
        assert wait_for(lambda: tablet.connected.is_set(), 30)
        assert tablet.tls_resumed
        hq.send(ALERT, Scope.country("kh"))
        assert wait_for(lambda: tablet.inbox.count() == 2), "the kept subscription delivers"
        again = [pattern for args in subscribes for pattern, _ in args[0]]
        assert again  # the message topics, in case the kept session lost them
        assert not any(is_trust_topic(p) for p in again)  # not the retained trust again
        assert requests == []  # no trust request within TRUST_ASK_EVERY of the last
    finally:
        group.stop_all()
        proxy.stop()


def test_the_periodic_catch_up_backs_off_while_the_link_stays_up(
    broker: BrokerHandle, tmp_path: Path
) -> None:
    from datetime import timedelta

    from certs import EnrolmentBundle
    from subscriber import NodeClient
    from subscriber.client import CATCH_UP_BACKOFF

    tablet = NodeClient(
        EnrolmentBundle.load(broker.network.bundle("kh-blo-bavet")),
        "127.0.0.1",
        broker.port,
        tmp_path / "tablet",
        tick=0.05,
        catch_up_every=0.25,
        gap_grace=timedelta(seconds=30),
    )
    rounds: list[float] = []
    catch_up = tablet._catch_up

    def counted() -> None:
        rounds.append(time.monotonic())
        catch_up()

    tablet._catch_up = counted  # type: ignore[method-assign]
    tablet.start()
    try:
        assert tablet.connected.wait(10)
        time.sleep(4.0)
    finally:
        tablet.stop()
    # Every 0.25 s that is about 16 rounds; doubling from 0.25 s (0.5, 1, 2, then 2 s
    # each at CATCH_UP_BACKOFF = 8): about 5 or 6.
    assert CATCH_UP_BACKOFF == 8
    assert 3 <= len(rounds) <= 8, rounds  # positive control: it does go on
