"""gateway.pacing: setups spread over turns of the event loop while a stream waits for
its first byte, and not otherwise."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from gateway import pacing


async def setups_by_turn(count: int, *, streams_waiting: int, cancel: int | None = None):
    """Start `count` setups in one turn of the loop; the turn each one started in (None:
    cancelled while it waited)."""
    pacer = pacing.pacer()
    pacer.unanswered = streams_waiting
    turn = 0
    ticking = True

    def tick() -> None:  # runs once per turn of the loop
        nonlocal turn
        turn += 1
        if ticking:
            asyncio.get_running_loop().call_soon(tick)

    asyncio.get_running_loop().call_soon(tick)
    started: list[int | None] = [None] * count

    async def setup(index: int) -> None:
        await pacer.turn()
        started[index] = turn

    tasks = [asyncio.create_task(setup(i)) for i in range(count)]
    if cancel is not None:
        await asyncio.sleep(0)  # every setup has asked for its turn
        tasks[cancel].cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    ticking = False
    return started


def test_with_no_stream_waiting_every_setup_starts_at_once():
    started = asyncio.run(setups_by_turn(10, streams_waiting=0))
    assert len(set(started)) == 1


def test_while_a_stream_waits_setups_start_a_few_per_turn_in_arrival_order():
    started = asyncio.run(setups_by_turn(10, streams_waiting=1))
    per_turn = [started.count(turn) for turn in sorted(set(started))]
    assert per_turn == [4, 4, 2]
    assert started == sorted(started)  # first come, first set up


def test_a_setup_cancelled_while_waiting_gives_its_place_to_the_next():
    started = asyncio.run(setups_by_turn(10, streams_waiting=1, cancel=5))
    assert started[5] is None
    turns = [turn for turn in started if turn is not None]
    assert [turns.count(turn) for turn in sorted(set(turns))] == [4, 4, 1]


def test_a_stream_is_counted_until_its_first_byte_or_its_end():
    async def scenario() -> list[int]:
        pacer = pacing.pacer()
        first, second = SimpleNamespace(pacer=None), SimpleNamespace(pacer=None)
        counts = [pacer.unanswered]
        pacing.stream_sent(first)
        pacing.stream_sent(second)
        counts.append(pacer.unanswered)
        pacing.answered(first)  # its first byte went out
        pacing.answered(first)  # then it ended: counted once
        counts.append(pacer.unanswered)
        pacing.answered(second)  # it ended before any byte
        counts.append(pacer.unanswered)
        return counts

    assert asyncio.run(scenario()) == [0, 2, 1, 0]


def test_each_event_loop_has_its_own_pacer():
    async def which() -> pacing.Pacer:
        assert pacing.pacer() is pacing.pacer()
        return pacing.pacer()

    assert asyncio.run(which()) is not asyncio.run(which())
