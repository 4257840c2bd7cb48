"""Split a Cassandra token ring into work items: contiguous token ranges with no gap and no overlap.

A range ``(start, end]`` selects the partitions whose token is greater than ``start`` and at most
``end``. The ring's primary ranges follow node ownership (the range ending at a node's token
belongs to that node's replica set); the wrap-around range, from the last ring token to the end
of the token space and from its start to the first ring token, belongs to the first token's
owner and is cut at the edge of the token space. Each primary range is then cut into pieces in
proportion to its width, so every piece lies on a single replica set.

``ReplicaSets`` answers the writer's question on the same ring: which replicas own a routing key.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from itertools import pairwise

from cassandra.metadata import Murmur3Token

MURMUR3 = "org.apache.cassandra.dht.Murmur3Partitioner"
RANDOM = "org.apache.cassandra.dht.RandomPartitioner"

# (lowest, highest) token of each supported partitioner. Murmur3 never assigns its lowest token
# to a key, and RandomPartitioner's tokens are in [0, 2**127], so "> lowest" selects them all.
TOKEN_SPACES = {
    MURMUR3: (-(2**63), 2**63 - 1),
    RANDOM: (-1, 2**127),
}


@dataclass(frozen=True, order=True)
class TokenRange:
    """Partitions with ``start < token <= end``, and the addresses of the replicas that own them."""

    start: int
    end: int
    replicas: tuple[str, ...] = ()

    @property
    def width(self) -> int:
        return self.end - self.start


def token_space(partitioner: str) -> tuple[int, int]:
    try:
        return TOKEN_SPACES[partitioner]
    except KeyError:
        raise ValueError(f"partitioner {partitioner} is not supported: token ranges can be split "
                         f"only for {', '.join(sorted(TOKEN_SPACES))}") from None


def primary_ranges(ring_tokens: list[int], lowest: int, highest: int) -> list[tuple[int, int]]:
    """The ring's ranges as (start, end] pairs in token order, cut at the edge of the space."""
    tokens = sorted(set(ring_tokens))
    if not tokens:
        return [(lowest, highest)]
    ranges = [(lowest, tokens[0])]
    ranges += list(pairwise(tokens))
    ranges.append((tokens[-1], highest))
    return [(start, end) for start, end in ranges if end > start]


def split_range(start: int, end: int, pieces: int) -> list[tuple[int, int]]:
    """Cut (start, end] into ``pieces`` adjacent ranges of (nearly) equal width."""
    width = end - start
    pieces = max(1, min(pieces, width))
    bounds = [start + (width * index) // pieces for index in range(pieces + 1)]
    return list(pairwise(bounds))


def split_ring(ring_tokens: list[int], splits: int, lowest: int, highest: int
               ) -> list[tuple[int, int]]:
    """About ``splits`` ranges covering (lowest, highest], never crossing a ring token."""
    primaries = primary_ranges(ring_tokens, lowest, highest)
    total = highest - lowest
    result = []
    for start, end in primaries:
        share = round(splits * (end - start) / total)
        result.extend(split_range(start, end, max(1, share)))
    return result


class ReplicaSets:
    """The replicas of a routing key, as a hashable set to group rows by.

    With Murmur3 (Cassandra's default partitioner) the ring's tokens are kept as plain integers
    with the replica set of each, so a lookup is one hash and one C bisect; the driver's own
    lookup bisects Token objects compared in Python (measured 2.0 against 0.5 µs a row). Other
    partitioners use the driver's lookup. Like the driver's token map, it is a snapshot: after
    a topology change a batch may span replica sets, which costs speed, never correctness."""

    def __init__(self, token_map, keyspace: str):
        self._token_map = token_map
        self._keyspace = keyspace
        self._tokens: list[int] = []
        if token_map.token_class is Murmur3Token and token_map.ring:
            self._tokens = [token.value for token in token_map.ring]
            self._replicas = [frozenset(token_map.get_replicas(keyspace, token))
                              for token in token_map.ring]

    def of(self, routing_key: bytes) -> frozenset:
        if not self._tokens:
            token = self._token_map.token_class.from_key(routing_key)
            return frozenset(self._token_map.get_replicas(self._keyspace, token))
        position = bisect.bisect_left(self._tokens, Murmur3Token.hash_fn(routing_key))
        return self._replicas[position if position < len(self._tokens) else 0]
