"""``Receiver.receive_many``: signatures checked ahead on a pool, the same answers as
``receive`` one by one, and never a signature checked with a key no longer held."""

from __future__ import annotations

from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import Any

from netsim import ALERT, Net

from schemas import Kind, Reason, Scope, trust_topic

TOPIC = "blo/country/kh"


def _batch(net: Net) -> list[tuple[str, bytes]]:
    good = [net.send("kh-nacd", ALERT, Scope.country("kh")) for _ in range(20)]
    tampered = bytearray(net.send("kh-nacd", ALERT, Scope.country("kh")))
    tampered[-1] ^= 1
    return [(TOPIC, w) for w in [*good[:9], bytes(tampered), good[3], b"\x00junk", *good[9:]]]


def _verdicts(results: list[Any]) -> list[str]:
    return ["ok" if r.ok else r.reason.value for r in results]


def test_same_answers_as_one_by_one(net: Net) -> None:
    batch = _batch(net)
    single = net.receiver("kh-blo-bavet")
    alone = [single.receive(t, w, net.now) for t, w in batch]
    one_by_one = _verdicts(alone)
    with ThreadPoolExecutor(1) as pool:
        together = _verdicts(net.receiver("kh-blo-bavet").receive_many(batch, net.now, pool))
    assert together == one_by_one
    assert one_by_one.count("ok") == 20
    assert {"bad_signature", "duplicate", "malformed"} <= set(one_by_one)


class Lying(Executor):
    """A pool whose signature checks all say 'good' (to see what the receiver trusts)."""

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        future.set_result([True] * len(args[0]))
        return future


def test_a_signature_checked_ahead_counts_only_for_the_key_still_held(net: Net) -> None:
    receiver = net.receiver("kh-blo-bavet")
    tampered = bytearray(net.send("kh-nacd", ALERT, Scope.country("kh")))
    tampered[-1] ^= 1
    # A newer keyset in the same batch: the keys are loaded again, so what was
    # checked ahead (here: wrongly, by a lying pool) is checked again.
    keyset = net.trust_message(net.keyset("kh", version=net.version + 1))
    batch = [(trust_topic(Kind.KEYSET, "kh"), keyset), (TOPIC, bytes(tampered))]
    results = receiver.receive_many(batch, net.now, Lying())
    assert results[0].ok, results[0]
    assert not results[1].ok
    assert results[1].reason is Reason.BAD_SIGNATURE
    # Positive control: without a keyset in between, the lying pool is believed,
    # so the test above saw the re-check, not some other refusal.
    control = bytearray(net.send("kh-nacd", ALERT, Scope.country("kh")))
    control[-1] ^= 1
    late = receiver.receive_many(
        [(TOPIC, bytes(control)), (TOPIC, bytes(control))], net.now, Lying()
    )
    assert late[0].ok
