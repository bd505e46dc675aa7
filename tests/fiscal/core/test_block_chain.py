"""``core.offline.BlockChain``: a returned void is final (the device signed that it would not use those
numbers), and a return takes the whole tail; an expired void can be reopened by an un-void."""
from __future__ import annotations

from stalela.fiscal.core import offline as core

ANCHOR, H1, H2, VOID = "a" * 64, "1" * 64, "2" * 64, "f" * 64


def _used_two() -> core.BlockChain:
    chain = core.BlockChain.open("blk_1", 1, 10, ANCHOR)
    for counter, device_hash, prev in ((1, H1, ANCHOR), (2, H2, H1)):
        assert chain.place(counter, prev) is None
        chain.advance(counter, device_hash)
    return chain


def test_a_returned_void_cannot_be_reopened_nor_used():
    chain = _used_two()
    assert chain.void(3, 10, H2, VOID, reason=core.RETURNED) is None
    assert chain.voids[0].reason == "returned"
    assert chain.place(3, H2) == "offline_number_returned"
    assert chain.unvoid(VOID, 3, 4, H2) == "offline_number_returned"
    assert chain.window is None


def test_an_expired_void_can_be_reopened():
    chain = _used_two()
    assert chain.void(3, 10, H2, VOID, reason=core.EXPIRED) is None
    assert chain.place(3, H2) == "offline_number_voided"
    assert chain.unvoid(VOID, 3, 4, H2) is None
    assert chain.place(3, H2) is None


def test_a_return_takes_the_whole_tail():
    chain = _used_two()
    assert chain.void(3, 5, H2, VOID, reason=core.RETURNED) == "offline_void_misplaced"
    assert (chain.next, chain.voids) == (3, [])
    # Nor part of it at expiry (the scheduler voids the whole tail): the same hazard.
    assert chain.void(3, 5, H2, VOID, reason=core.EXPIRED) == "offline_void_misplaced"
    assert chain.void(3, 10, H2, VOID, reason=core.EXPIRED) is None


def test_a_state_stored_before_void_reasons_reads_as_expired():
    chain = _used_two()
    chain.void(3, 10, H2, VOID, reason=core.EXPIRED)
    stored = chain.as_json()
    del stored["voids"][0]["reason"]
    again = core.BlockChain.from_json(stored)
    assert again.voids[0].reason == "expired" and again.unvoid(VOID, 3, 3, H2) is None
