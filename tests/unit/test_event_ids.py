import random

from ulid import ULID

from analytics.writer import clock, ulid_text


def test_ulid_text_writes_what_python_ulid_writes():
    rng = random.Random(14)
    values = [0, 1, 2**128 - 1, 2**80, *(rng.getrandbits(128) for _ in range(2000))]
    for value in values:
        assert ulid_text(value) == str(ULID.from_int(value))


def test_ids_sort_in_the_order_they_were_made():
    ids = [clock.tick()[0] for _ in range(5000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert ULID.from_str(ids[0]).timestamp > 0
