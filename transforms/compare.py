"""Comparing a table's rows on two clusters: the merge of two token-ordered streams of rows, and
what a pair of rows is (valid, missing, extra, mismatched, newer on the target, changed while
the validation ran). Pure logic: ``transforms.validate`` reads the rows and acts on the kinds.

The merge needs no per-row lookup and no ordering of values. Cassandra returns a token range in
one order on every cluster of the same partitioner: by token, then by partition key bytes, then
by the table's clustering order (the same on both sides: ``pipelines.validate`` checks it).
Tokens are compared as numbers (each row carries its own, selected as ``token(pk)``). Inside one
token (one partition, or the rare partitions that share a token) the two streams are walked side
by side, and a row matches the row of the same primary key on the other side. That match is the
proof of order that Python's value comparison could not give (a timeuuid, a descending
clustering column, a frozen collection all order differently in Cassandra): everything either
stream passed before the matched key, and that did not match, is on one side only. So the
unmatched rows held are those between two matches, which stay few unless a long run of rows is
missing from the middle of a partition.
"""

from __future__ import annotations

import datetime
import decimal
import struct
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from transforms.cells import ttl_key, writetime_key
from transforms.mapping import newest_writetime

__all__ = ["Comparison", "KINDS", "hashable", "merge", "same_value"]

_DOUBLE = struct.Struct(">d")

VALID = "valid"
MISSING = "missing"
EXTRA = "extra"
MISMATCHED = "mismatched"
NEWER_ON_TARGET = "newer_on_target"
CHANGED_DURING_VALIDATION = "changed_during_validation"
OUT_OF_WINDOW = "out_of_window"  # a source row the writetime window leaves out: not compared
# Marks a mapped source row that the migration's writetime window left out.
OUT_OF_WINDOW_KEY = "\x00out_of_window"
KINDS = (VALID, MISSING, EXTRA, MISMATCHED, NEWER_ON_TARGET, CHANGED_DURING_VALIDATION)
# Kinds that mean the target does not hold what the source does.
DIFFERENCES = (MISSING, MISMATCHED)


def hashable(value):
    """A value usable in a dict key: lists, sets and maps (frozen collections can be key
    columns) as tuples and frozensets; a float as its bits, so that a NaN key matches the same
    NaN on the other side and -0.0 is not 0.0 (two clustering keys to Cassandra)."""
    if type(value) is float:
        return ("float", _DOUBLE.pack(value))
    if isinstance(value, (list, tuple)):
        return tuple(hashable(item) for item in value)
    if isinstance(value, Mapping):
        return tuple((hashable(key), hashable(item)) for key, item in value.items())
    if isinstance(value, (set, frozenset)) or type(value).__name__ == "SortedSet":
        return frozenset(hashable(item) for item in value)
    return value


def merge(source: Iterable[Mapping], target: Iterable[Mapping], token_of: Callable,
          key_of: Callable) -> Iterator[tuple[Mapping | None, Mapping | None]]:
    """Pairs (source row, target row) of the same primary key, (row, None) for a row only on the
    source and (None, row) for one only on the target. Both streams come in Cassandra's order
    of a token range; ``token_of(row)`` is a row's token, ``key_of(row)`` its hashable primary
    key."""
    sources, targets = iter(source), iter(target)
    s, t = next(sources, None), next(targets, None)
    while s is not None or t is not None:
        if t is None or (s is not None and token_of(s) < token_of(t)):
            yield s, None
            s = next(sources, None)
        elif s is None or token_of(t) < token_of(s):
            yield None, t
            t = next(targets, None)
        else:
            s, t = yield from _merge_token(token_of(s), s, t, sources, targets, token_of, key_of)


def _merge_token(token, s, t, sources, targets, token_of, key_of):
    """The rows of one token on both sides; returns the first row of each side after it."""
    held_source: OrderedDict = OrderedDict()  # unmatched so far, in stream order
    held_target: OrderedDict = OrderedDict()
    while True:
        s_here = s is not None and token_of(s) == token
        t_here = t is not None and token_of(t) == token
        if not s_here and not t_here:
            break
        if s_here and t_here and not held_source and not held_target:
            s_key, t_key = key_of(s), key_of(t)
            if s_key == t_key:  # the usual case: both sides in step
                yield s, t
                s, t = next(sources, None), next(targets, None)
                continue
        if s_here:
            yield from _take(s, key_of(s), held_source, held_target, source_side=True)
            s = next(sources, None)
        if t_here:
            yield from _take(t, key_of(t), held_target, held_source, source_side=False)
            t = next(targets, None)
    for row in held_source.values():
        yield row, None
    for row in held_target.values():
        yield None, row
    return s, t


def _take(row, key, held_here: OrderedDict, held_there: OrderedDict, source_side: bool):
    """A row arrives on one side: it matches a row held on the other side, or is held. A match
    settles every row held before it on the other side, and every row held on this side."""
    if key not in held_there:
        held_here[key] = row
        return
    while True:
        other_key, other = held_there.popitem(last=False)
        if other_key == key:
            break
        yield (None, other) if source_side else (other, None)
    for held in held_here.values():
        yield (held, None) if source_side else (None, held)
    held_here.clear()
    yield (row, other) if source_side else (other, row)


def _newest(value) -> int | None:
    """A cell's writetime: a collection's per-element list gives its newest element's."""
    if isinstance(value, list):
        present = [item for item in value if item is not None]
        return max(present) if present else None
    return value


def _remaining_ttl(value) -> int | None:
    """A cell's TTL: a collection expires whole only when its longest-lived element does, and
    never if an element has no TTL (as ``transforms.cells`` copies it)."""
    if isinstance(value, list):
        return None if not value or any(item is None for item in value) else max(value)
    return value


_PLAIN = (str, bytes, int, bool)


def same_value(a, b) -> bool:
    """Whether two values read from columns of one type are the same value as Cassandra holds
    it (the same serialized bytes), where Python's ``==`` is looser: the decimals 1.0 and 1.00
    (another scale), the doubles 0.0 and -0.0 differ; a NaN is the same as a NaN of the same
    bits; an empty value (the driver's EMPTY) is not a null. Collections, tuples and user
    types are compared element by element in the order the driver returns them (Cassandra's)."""
    if a is b:
        return True
    if type(a) in _PLAIN:
        return type(a) is type(b) and a == b
    if isinstance(a, float) and isinstance(b, float):
        return _DOUBLE.pack(a) == _DOUBLE.pack(b)
    if isinstance(a, decimal.Decimal) and isinstance(b, decimal.Decimal):
        return a.as_tuple() == b.as_tuple()
    if a is None or b is None:
        return False
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return len(a) == len(b) and all(
            same_value(key_a, key_b) and same_value(item_a, item_b)
            for (key_a, item_a), (key_b, item_b) in zip(a.items(), b.items(), strict=True))
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) or (
            _is_sorted_set(a) and _is_sorted_set(b)):
        return len(a) == len(b) and all(map(same_value, a, b))
    return a == b


# Types whose ``==`` is Cassandra's equality (no scale, no signed zero, no NaN).
_EXACT = frozenset({str, bytes, int, bool, type(None), datetime.datetime, uuid.UUID})


def _exactly_equal(source: Mapping, target: Mapping) -> bool:
    """For two rows that are ``==``: whether every value is also the same to Cassandra."""
    for name, value in source.items():
        if type(value) not in _EXACT and not same_value(value, target[name]):
            return False
    return True


def _is_sorted_set(value) -> bool:
    return type(value).__name__ == "SortedSet"


@dataclass(frozen=True)
class Difference:
    """What a pair of rows is, and the cells that differ (name -> (source, target) value,
    writetime and TTL), for the differences file."""

    kind: str
    columns: dict


_SAME = Difference(VALID, {})


@dataclass(frozen=True)
class Comparison:
    """How to compare the rows of a table, in the target's column names.

    ``columns``: the non-key columns to compare; ``writetime`` / ``ttl``: also compare the cells'
    writetimes (exactly) and TTLs (within ``ttl_tolerance`` seconds), as a copy that keeps them
    must have; ``started``: the validation's start, in microseconds since the epoch, after
    which a source writetime means the row changed while it ran; ``window``: the migration's
    writetime window [from, to) in microseconds, outside which a source row was not copied."""

    columns: Sequence[str]
    writetime: bool = False
    ttl: bool = False
    ttl_tolerance: int = 60
    started: int | None = None
    window: tuple[int | None, int | None] = (None, None)

    def classify(self, source: Mapping | None, target: Mapping | None) -> Difference:
        """What the pair is. A source row the migration's writetime window left out carries
        ``OUT_OF_WINDOW_KEY`` (``in_window`` is asked of the row as read, before mapping, as
        the migration asks it)."""
        if source is not None and source.get(OUT_OF_WINDOW_KEY):
            return Difference(OUT_OF_WINDOW, {})
        if source == target and _exactly_equal(source, target):
            return _SAME  # the usual case: every value, writetime and TTL the same
        if target is None:
            return Difference(CHANGED_DURING_VALIDATION if self._after_start(source)
                              else MISSING, {})
        if source is None:
            # A row written on the target while the validation ran may be on the source too
            # by now: read again, never deleted as extra on the first look.
            return Difference(CHANGED_DURING_VALIDATION if self._after_start(target)
                              else EXTRA, {})
        differing = {}
        for name in self.columns:
            cell = self._cell_difference(name, source, target)
            if cell is not None:
                differing[name] = cell
        if not differing:
            return Difference(VALID, {})
        source_newest = self._newest_of(source, differing)
        if self.started is not None and source_newest is not None and (
                source_newest >= self.started):
            return Difference(CHANGED_DURING_VALIDATION, differing)
        if all(self._target_newer(name, source, target) for name in differing):
            return Difference(NEWER_ON_TARGET, differing)
        return Difference(MISMATCHED, differing)

    def _cell_difference(self, name: str, source: Mapping, target: Mapping) -> dict | None:
        source_value, target_value = source.get(name), target.get(name)
        differs = not same_value(source_value, target_value)
        key = writetime_key(name)
        source_wt, target_wt = _newest(source.get(key)), _newest(target.get(key))
        if (self.writetime and not differs and key in source and key in target
                and source_value is not None and source_wt != target_wt):
            differs = True
        ttl = ttl_key(name)
        source_ttl, target_ttl = _remaining_ttl(source.get(ttl)), _remaining_ttl(target.get(ttl))
        if (self.ttl and not differs and ttl in source and ttl in target
                and source_value is not None and (
                    (source_ttl is None) != (target_ttl is None)
                    or (source_ttl is not None
                        and abs(source_ttl - target_ttl) > self.ttl_tolerance))):
            differs = True
        if not differs:
            return None
        cell = {"source": source_value, "target": target_value}
        if key in source or key in target:
            cell.update(source_writetime=source_wt, target_writetime=target_wt)
        if ttl in source or ttl in target:
            cell.update(source_ttl=source_ttl, target_ttl=target_ttl)
        return cell

    @staticmethod
    def _newest_of(row: Mapping, names: Iterable[str]) -> int | None:
        present = [wt for wt in (_newest(row.get(writetime_key(name))) for name in names)
                   if wt is not None]
        return max(present) if present else None

    def _after_start(self, row: Mapping) -> bool:
        newest = self._newest_of(row, self.columns)
        return self.started is not None and newest is not None and newest >= self.started

    def _target_newer(self, name: str, source: Mapping, target: Mapping) -> bool:
        """The target's cell was written after the source's: a live write there. Without the
        source's writetimes kept on the target (PRESERVE_WRITETIME false) every copied cell is
        newer, so only a write after the validation started counts. A source cell without a
        writetime is newer only when the source has no value (it may be a deletion, of unknown
        time: the row's newest cell stands in for it); a value of unknown time (a collection of
        a 4.x source, a constant) is a mismatch."""
        target_wt = _newest(target.get(writetime_key(name)))
        if target_wt is None:
            return False
        if not self.writetime:
            return self.started is not None and target_wt >= self.started
        source_wt = _newest(source.get(writetime_key(name)))
        if source_wt is not None:
            return target_wt > source_wt
        if source.get(name) is not None:
            return False
        row_newest = self._newest_of(source, self.columns)
        return row_newest is None or target_wt > row_newest

    def in_window(self, row: Mapping) -> bool:
        """Whether the migration's writetime window kept this source row (as read)."""
        since, until = self.window
        if since is None and until is None:
            return True
        newest = newest_writetime(row)
        if newest is None:
            return True  # key columns only: copied whatever the window
        return (since is None or newest >= since) and (until is None or newest < until)
