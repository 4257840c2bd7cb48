"""RowLayout's one-INSERT path against cell_groups, the general grouping (pure logic)."""

from __future__ import annotations

import random

import pytest
from cassandra.query import UNSET_VALUE

from transforms.cells import CellOptions, RowLayout, cell_groups, ttl_key, writetime_key

KEYS = ("k", "c")


def _row(values: dict, writetimes: dict, ttls: dict) -> dict:
    row = dict(values)
    for name in values:
        if name not in KEYS:
            row[writetime_key(name)] = writetimes.get(name)
            row[ttl_key(name)] = ttls.get(name)
    return row


def _layout(row: dict, keep_writetime: bool = True, keep_ttl: bool = True) -> RowLayout:
    return RowLayout(tuple(row), KEYS, CellOptions(writetime=keep_writetime, ttl=keep_ttl))


def test_a_row_whose_cells_share_writetime_and_ttl_is_one_insert_with_unset_nulls():
    row = _row({"k": 1, "c": 2, "a": "x", "b": None, "d": 7},
               {"a": 100, "d": 100}, {"a": 60, "d": 60})
    layout = _layout(row)
    assert layout.columns == ("k", "c", "a", "b", "d")
    assert layout.uniform(row) == ([1, 2, "x", UNSET_VALUE, 7], 100, 60)


def test_cells_that_differ_in_writetime_or_ttl_need_the_general_grouping():
    by_writetime = _row({"k": 1, "c": 2, "a": "x", "d": 7}, {"a": 100, "d": 101},
                        {"a": None, "d": None})
    by_ttl = _row({"k": 1, "c": 2, "a": "x", "d": 7}, {"a": 100, "d": 100},
                  {"a": None, "d": 60})
    assert _layout(by_writetime).uniform(by_writetime) is None
    assert _layout(by_ttl).uniform(by_ttl) is None
    # Not kept, a differing TTL does not matter.
    assert _layout(by_ttl, keep_ttl=False).uniform(by_ttl) == ([1, 2, "x", 7], 100, None)


def test_a_null_key_column_needs_the_general_grouping():
    static_only = _row({"k": 1, "c": None, "s": "static"}, {"s": 5}, {})
    assert _layout(static_only).uniform(static_only) is None


def test_a_group_of_static_cells_only_is_written_with_the_partition_key_alone():
    kept = CellOptions(writetime=True, ttl=True)
    static = frozenset({"s"})
    # Regular cells with a TTL, the static later without: apart, the static without "c".
    row = _row({"k": 1, "c": 2, "a": "x", "s": "st"}, {"a": 100, "s": 200}, {"a": 20})
    assert cell_groups(row, KEYS, kept, static, ("k",)) == [
        ({"k": 1, "c": 2, "a": "x"}, 100, 20), ({"k": 1, "s": "st"}, 200, None)]
    # A static that shares the regular cells' writetime and TTL goes with them.
    row = _row({"k": 1, "c": 2, "a": "x", "s": "st"}, {"a": 100, "s": 100}, {})
    assert cell_groups(row, KEYS, kept, static, ("k",)) == [
        ({"k": 1, "c": 2, "a": "x", "s": "st"}, 100, None)]
    # A row that lives by its marker only: its key columns alone, and the static apart.
    row = _row({"k": 1, "c": 2, "a": None, "s": "st"}, {"s": 200}, {"s": 50})
    assert cell_groups(row, KEYS, kept, static, ("k",)) == [
        ({"k": 1, "s": "st"}, 200, 50), ({"k": 1, "c": 2}, None, None)]
    # A partition of statics only (no clustering row): the partition key and the statics.
    row = _row({"k": 1, "c": None, "s": "st"}, {"s": 200}, {})
    assert cell_groups(row, KEYS, kept, static, ("k",)) == [({"k": 1, "s": "st"}, 200, None)]
    # Without statics named, the grouping is as before.
    row = _row({"k": 1, "c": 2, "a": "x", "s": "st"}, {"a": 100, "s": 200}, {"a": 20})
    assert cell_groups(row, KEYS, kept) == [({"k": 1, "c": 2, "a": "x"}, 100, 20),
                                            ({"k": 1, "c": 2, "s": "st"}, 200, None)]


def test_per_element_writetimes_take_the_newest_and_ttls_the_longest():
    row = _row({"k": 1, "c": 2, "tags": ["a", "b"], "a": "x"},
               {"tags": [90, 100], "a": 100}, {"tags": [30, 60], "a": 60})
    assert _layout(row).uniform(row) == ([1, 2, ["a", "b"], "x"], 100, 60)


@pytest.mark.parametrize("seed", range(200))
def test_uniform_agrees_with_cell_groups(seed):
    generator = random.Random(seed)
    columns = ["a", "b", "d", "e"]
    values = {"k": generator.randint(0, 9), "c": generator.randint(0, 9)}
    writetimes, ttls = {}, {}
    for name in columns:
        values[name] = None if generator.random() < 0.3 else generator.randint(0, 99)
        if values[name] is not None:
            writetimes[name] = generator.choice((100, 100, 100, 101))
            ttls[name] = generator.choice((None, None, None, 60))
    row = _row(values, writetimes, ttls)
    keep_writetime, keep_ttl = generator.random() < 0.8, generator.random() < 0.8
    groups = cell_groups(row, KEYS, CellOptions(writetime=keep_writetime, ttl=keep_ttl))
    uniform = _layout(row, keep_writetime, keep_ttl).uniform(row)
    if len(groups) > 1:
        assert uniform is None
        return
    assert uniform is not None
    (cells, writetime, ttl), = groups
    bound, uniform_writetime, uniform_ttl = uniform
    written = {name: value for name, value in zip(("k", "c", *columns), bound, strict=True)
               if value is not UNSET_VALUE}
    assert (written, uniform_writetime, uniform_ttl) == (cells, writetime, ttl)
