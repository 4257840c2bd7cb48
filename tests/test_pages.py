"""Pages sized by bytes (``read.PageSize``), and when values may pass through serialized: pure
logic."""

from __future__ import annotations

import datetime
import uuid

from transforms.read import PageSize, row_bytes, value_bytes


def _rows(count: int, text: str) -> list[dict]:
    return [{"id": index, "name": text, "at": datetime.datetime(2024, 1, 1), "u": uuid.uuid4(),
             "tags": {"a", "b"}, "none": None} for index in range(count)]


def test_values_are_sized_as_the_protocol_carries_them():
    assert value_bytes(None) == 4
    assert value_bytes(b"\x00" * 10) == value_bytes("x" * 10) == 14
    assert value_bytes(7) == value_bytes(datetime.datetime(2024, 1, 1)) == 12
    assert value_bytes(uuid.uuid4()) == 20
    assert value_bytes([1, 2]) == 8 + 12 + 12
    assert value_bytes({"k": b"vv"}) == 8 + 5 + 6
    row = _rows(1, "abc")[0]
    assert row_bytes(row) == 12 + 7 + 12 + 20 + (8 + 5 + 5) + 4


def test_small_rows_get_bigger_pages_and_big_rows_keep_the_fewest_rows():
    small, big = _rows(100, "x"), _rows(100, "x" * 100_000)
    size = PageSize(min_rows=100, page_bytes=256 * 1024)
    assert size.rows == 100  # the first page asks for the fewest
    assert size.learn(small) == 256 * 1024 // row_bytes(small[0])
    assert size.learn(big) == 256 * 1024 // row_bytes(small[0])  # learnt once
    assert PageSize(100, 256 * 1024).learn(big) == 100
    assert PageSize(1, 64 * 1024 * 1024).learn(small) == PageSize.MAX_ROWS


def test_the_size_is_learnt_from_a_page_with_enough_rows():
    size = PageSize(min_rows=100, page_bytes=256 * 1024)
    assert size.learn(_rows(3, "x")) == 100  # a partition's few rows: too few to tell
    assert size.learn(_rows(60, "x")) > 100


def test_values_pass_through_serialized_only_when_nothing_between_needs_them():
    from pipelines.config import TableMapping
    from pipelines.preflight import TablePlan
    from transforms.cells import VALUES_ONLY, CellOptions

    kept = CellOptions(writetime=True, ttl=True)

    def plan(mapping=None, **facts):
        return TablePlan(mapping or TableMapping("a", "b"), "ks.a", "ks.b", ("id", "v"), None,
                         **facts)

    assert plan().serialized(kept)
    assert plan(TableMapping("a", "b", columns=(("v", "w"),))).serialized(kept)  # a rename
    assert plan(multi_cell=("tags",)).serialized(VALUES_ONLY)  # no cells' writetimes read
    assert not plan(multi_cell=("tags",)).serialized(kept)
    assert not plan(counters=True).serialized(VALUES_ONLY)
    assert not plan(TableMapping("a", "b", constants=(("v", 1),))).serialized(kept)
    assert not plan(TableMapping("a", "b", writetime_from=1)).serialized(kept)
    assert not plan(TableMapping("a", "b", writetime_to=1)).serialized(VALUES_ONLY)


def test_a_page_decoded_after_all_is_not_taken_for_serialized_values():
    from types import SimpleNamespace

    from cassandra import cqltypes

    from transforms.read import _serialized

    assert _serialized(SimpleNamespace(column_types=[cqltypes.BytesType] * 3))
    assert _serialized(SimpleNamespace(column_types=None))  # no rows: nothing to bind
    assert not _serialized(SimpleNamespace(column_types=[cqltypes.BytesType,
                                                         cqltypes.Int32Type]))


def test_a_quoted_user_type_name_is_multi_cell():
    from transforms.cells import is_multi_cell

    assert is_multi_cell('"MyType"', {"MyType"})
    assert is_multi_cell("address", {"address"})
    assert not is_multi_cell('frozen<"MyType">', {"MyType"})
