"""The merge of two token-ordered row streams and the classification of a pair (pure logic: the
rows are made here; tests/test_validate.py runs the same against the real clusters)."""

from __future__ import annotations

import random

import pytest

from transforms.compare import (
    CHANGED_DURING_VALIDATION,
    EXTRA,
    MISMATCHED,
    MISSING,
    NEWER_ON_TARGET,
    OUT_OF_WINDOW,
    OUT_OF_WINDOW_KEY,
    VALID,
    Comparison,
    hashable,
    merge,
)


def _stream(order: list[tuple], present: set) -> list[dict]:
    """The rows of ``present`` in the cluster's order ``order``: (token, key) each."""
    return [{"token": token, "key": key} for token, key in order if (token, key) in present]


def _pairs(source, target):
    return [(s and (s["token"], s["key"]), t and (t["token"], t["key"]))
            for s, t in merge(source, target, lambda row: row["token"], lambda row: row["key"])]


@pytest.mark.parametrize("seed", range(30))
def test_the_merge_pairs_every_key_once_whatever_order_cassandra_keeps_inside_a_token(seed):
    generator = random.Random(seed)
    # Keys inside a token come in an order Python cannot know (shuffled here); some tokens
    # hold several partitions (a collision) or a wide partition.
    order = []
    for token in sorted(generator.sample(range(-1000, 1000), 40)):
        keys = [f"k{token}-{index}" for index in range(generator.choice([1, 1, 3, 50]))]
        generator.shuffle(keys)
        order += [(token, key) for key in keys]
    everything = set(order)
    source = {row for row in everything if generator.random() < 0.8}
    target = {row for row in everything if generator.random() < 0.8}
    # A long run missing from the middle of a wide partition on one side.
    if seed % 3 == 0:
        wide = [row for row in order if row[0] == order[len(order) // 2][0]]
        target -= set(wide[len(wide) // 4: 3 * len(wide) // 4])

    pairs = _pairs(_stream(order, source), _stream(order, target))

    assert sorted(s for s, t in pairs if s and t) == sorted(
        s for s, t in pairs if s and t and s == t) == sorted(source & target)
    assert sorted(s for s, t in pairs if t is None) == sorted(source - target)
    assert sorted(t for s, t in pairs if s is None) == sorted(target - source)


def test_the_merge_holds_no_row_while_both_sides_agree():
    order = [(1, f"k{index}") for index in range(10_000)]
    consumed = []

    def source():
        for row in _stream(order, set(order)):
            consumed.append(row["key"])
            yield row

    merged = merge(source(), iter(_stream(order, set(order))), lambda row: row["token"],
                   lambda row: row["key"])
    for index, (s, t) in enumerate(merged):
        assert s["key"] == t["key"] == f"k{index}"
        assert len(consumed) == index + 1  # one row read ahead at most, none held


def _row(value=None, writetime=None, ttl=None, left_out=False):
    row = {"v": value, "writetime(v)": writetime, "ttl(v)": ttl}
    return {**row, OUT_OF_WINDOW_KEY: True} if left_out else row


STARTED = 10_000


@pytest.mark.parametrize("source, target, options, kind", [
    (_row(1, 5), _row(1, 5), {}, VALID),
    (_row(1, 5), None, {}, MISSING),
    (None, _row(1, 5), {}, EXTRA),
    (_row(1, 5), _row(2, 5), {}, MISMATCHED),
    (_row(2, 7), _row(1, 5), {}, MISMATCHED),  # the source moved on
    (_row(1, 5), _row(2, 9), {"writetime": True}, NEWER_ON_TARGET),  # a later target write
    (_row(None, None), _row(2, 9), {"writetime": True}, NEWER_ON_TARGET),
    # A value of unknown time (a 4.x collection, a constant) is no proof of a later write.
    (_row(1, None), _row(2, 9), {"writetime": True}, MISMATCHED),
    # Without kept writetimes every copied cell is newer: only a write after the start counts.
    (_row(1, 5), _row(2, 9), {}, MISMATCHED),
    (_row(1, 5), _row(2, STARTED + 5), {}, NEWER_ON_TARGET),
    # A target-only row written while the validation ran is read again, never called extra.
    (None, _row(1, STARTED + 5), {}, CHANGED_DURING_VALIDATION),
    (_row(2, STARTED + 1), _row(1, 5), {}, CHANGED_DURING_VALIDATION),
    (_row(2, STARTED + 1), None, {}, CHANGED_DURING_VALIDATION),
    # The same value at another writetime: a difference only when writetimes are kept.
    (_row(1, 7), _row(1, 5), {"writetime": True}, MISMATCHED),
    (_row(1, 7), _row(1, 5), {}, VALID),
    # TTLs count down between the two reads: within the tolerance they agree.
    (_row(1, 5, 100), _row(1, 5, 95), {"ttl": True, "ttl_tolerance": 10}, VALID),
    (_row(1, 5, 100), _row(1, 5, 50), {"ttl": True, "ttl_tolerance": 10}, MISMATCHED),
    (_row(1, 5, 100), _row(1, 5, None), {"ttl": True}, MISMATCHED),
    # A collection's per-element writetimes: its newest element's is the cell's.
    (_row([1, 2], [3, 5]), _row([1, 2], [5, 5]), {"writetime": True}, VALID),
    (_row(float("nan"), 5), _row(float("nan"), 5), {}, VALID),
    (_row(1, 5, left_out=True), _row(1, 5), {}, OUT_OF_WINDOW),  # by the migration's window
])
def test_a_pair_of_rows_is_classified_by_values_then_writetimes(source, target, options, kind):
    comparison = Comparison(columns=("v",), started=STARTED, **options)
    assert comparison.classify(source, target).kind == kind


@pytest.mark.parametrize("newest, kept", [(None, True), (5, False), (6, True), (9, False)])
def test_the_writetime_window_is_the_migrations(newest, kept):
    row = {"k": 1, "writetime(v)": newest}
    assert Comparison(columns=("v",), window=(6, 9)).in_window(row) is kept


def test_a_mismatch_names_each_differing_cell_with_both_values_and_writetimes():
    comparison = Comparison(columns=("v", "w"), writetime=True)
    source = {**_row(1, 5), "w": "same", "writetime(w)": 5}
    target = {**_row(2, 4), "w": "same", "writetime(w)": 5}
    found = comparison.classify(source, target)
    assert found.kind == MISMATCHED
    assert found.columns == {"v": {"source": 1, "target": 2, "source_writetime": 5,
                                   "target_writetime": 4, "source_ttl": None,
                                   "target_ttl": None}}


def test_frozen_collections_in_keys_are_hashable_and_equal_when_equal():
    assert hashable([1, {"a": [2]}]) == hashable([1, {"a": [2]}])
    assert hash(hashable({frozenset({1}): [1, 2]})) == hash(hashable({frozenset({1}): [1, 2]}))


def test_a_nan_key_matches_the_same_nan_and_signed_zeros_are_two_keys():
    nan = float("nan")
    source = [{"token": 1, "k": nan}, {"token": 1, "k": -0.0}, {"token": 1, "k": 0.0}]
    target = [{"token": 1, "k": float("nan")}, {"token": 1, "k": 0.0}]
    pairs = list(merge(source, target, lambda row: row["token"],
                       lambda row: (hashable(row["k"]),)))
    matched = [(s["k"], t["k"]) for s, t in pairs if s is not None and t is not None]
    assert len(matched) == 2 and all(str(a) == str(b) for a, b in matched)
    assert [str(s["k"]) for s, t in pairs if t is None] == ["-0.0"]
    assert hashable(nan) == hashable(float("nan")) and hashable(-0.0) != hashable(0.0)
