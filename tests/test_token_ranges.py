"""Token ring splitting: the whole ring, no gap, no overlap, never across a ring token."""

from __future__ import annotations

import random

import pytest

from transforms import token_ranges

LOWEST, HIGHEST = token_ranges.token_space(token_ranges.MURMUR3)


def assert_covers_ring(ranges, lowest=LOWEST, highest=HIGHEST):
    assert ranges[0][0] == lowest and ranges[-1][1] == highest
    for (_, end), (start, _) in zip(ranges, ranges[1:], strict=False):
        assert end == start  # (a, b] then (b, c]: no gap, no overlap
    assert all(end > start for start, end in ranges)


@pytest.mark.parametrize("splits", [1, 2, 7, 80, 1000])
def test_one_node_ring_is_cut_into_the_requested_number_of_ranges(splits):
    ranges = token_ranges.split_ring([LOWEST], splits, LOWEST, HIGHEST)
    assert_covers_ring(ranges)
    assert len(ranges) == splits
    widths = [end - start for start, end in ranges]
    assert max(widths) - min(widths) <= 1


def test_wrap_around_range_is_split_at_the_edge_of_the_token_space():
    ring = [-(2**62), 0, 2**62]
    ranges = token_ranges.split_ring(ring, 4, LOWEST, HIGHEST)
    assert_covers_ring(ranges)
    # The wrap-around range (2**62, HIGHEST] + (LOWEST, -(2**62)] appears as two pieces.
    assert ranges[0] == (LOWEST, -(2**62)) and ranges[-1] == (2**62, HIGHEST)


def test_no_range_crosses_a_ring_token_so_each_lies_on_one_replica_set():
    generator = random.Random(3)
    ring = sorted(generator.randrange(LOWEST, HIGHEST) for _ in range(48))
    ranges = token_ranges.split_ring(ring, 500, LOWEST, HIGHEST)
    assert_covers_ring(ranges)
    for token in ring:
        assert not any(start < token < end for start, end in ranges)
    assert 450 <= len(ranges) <= 600


def test_empty_ring_and_duplicates():
    assert token_ranges.split_ring([], 3, LOWEST, HIGHEST) == token_ranges.split_range(
        LOWEST, HIGHEST, 3)
    assert_covers_ring(token_ranges.split_ring([5, 5, 5], 10, LOWEST, HIGHEST))


def test_random_partitioner_space_and_unknown_partitioner():
    lowest, highest = token_ranges.token_space(token_ranges.RANDOM)
    assert_covers_ring(token_ranges.split_ring([0, 2**126], 9, lowest, highest), lowest, highest)
    with pytest.raises(ValueError, match="ByteOrderedPartitioner is not supported"):
        token_ranges.token_space("org.apache.cassandra.dht.ByteOrderedPartitioner")


def test_a_range_narrower_than_the_pieces_asked_for():
    assert token_ranges.split_range(10, 13, 100) == [(10, 11), (11, 12), (12, 13)]
