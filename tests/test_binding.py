"""Binder gives the bytes the driver's own bind gives, and the driver's errors, on a real table."""

from __future__ import annotations

import datetime
import uuid
from decimal import Decimal

import pytest
from cassandra.query import UNSET_VALUE

from transforms.binding import Binder

UTC = datetime.timezone.utc
TIMESTAMPS = [
    datetime.datetime(2024, 5, 1, 12, 30, 45, 123000),                       # naive = UTC
    datetime.datetime(2024, 5, 1, 12, 30, 45, 123000, tzinfo=UTC),
    datetime.datetime(2024, 5, 1, 14, 30, 45, 123000,
                      tzinfo=datetime.timezone(datetime.timedelta(hours=2))),
    datetime.datetime(1969, 7, 20, 20, 17, 40),                               # before the epoch
    datetime.datetime(1900, 1, 1, 0, 0, 0, 1000),
    datetime.datetime(2024, 5, 1, 12, 30, 45, 123456),                       # sub-millisecond
    datetime.datetime(1969, 12, 31, 23, 59, 59, 999999),
    datetime.date(2024, 5, 1),
    1714566645123,                                                           # milliseconds
]


@pytest.fixture
def insert(keyspace, target_session):
    target_session.execute(
        f"CREATE TABLE {keyspace}.typed (k int, c timestamp, t text, d decimal, u uuid, "
        "l list<int>, m map<text, int>, b blob, PRIMARY KEY (k, c))")
    return target_session.prepare(
        f"INSERT INTO {keyspace}.typed (k, c, t, d, u, l, m, b) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
        "USING TIMESTAMP ? AND TTL ?")


@pytest.mark.parametrize("timestamp", TIMESTAMPS, ids=repr)
def test_values_serialize_exactly_as_the_driver_does(insert, timestamp):
    values = [7, timestamp, "text ✓", Decimal("-12.345"), uuid.UUID(int=42), [1, 2],
              {"a": 1}, b"\x00\xff", 1_714_566_645_123_000, 3600]
    bound = Binder(insert).bind(values)
    assert bound.values == insert.bind(values).values
    assert bound.routing_key == insert.bind(values).routing_key


def test_nulls_and_unset_pass_through(insert):
    values = [7, TIMESTAMPS[0], None, UNSET_VALUE, None, UNSET_VALUE, None, UNSET_VALUE, 1, 0]
    assert Binder(insert).bind(values).values == insert.bind(values).values


def test_written_rows_read_back_equal(keyspace, insert, target_session):
    binder = Binder(insert)
    for index, timestamp in enumerate(TIMESTAMPS[:5]):
        target_session.execute(binder.bind([index, timestamp, "x", None, None, None, None, None,
                                            1_714_566_645_123_000, 0]))
    read = {row.k: row.c for row in target_session.execute(f"SELECT k, c FROM {keyspace}.typed")}
    expected = {index: timestamp.astimezone(UTC).replace(tzinfo=None) if timestamp.tzinfo
                else timestamp for index, timestamp in enumerate(TIMESTAMPS[:5])}
    assert read == expected


def test_the_drivers_errors_are_kept(insert):
    wrong_type = [7, TIMESTAMPS[0], 12345, None, None, None, None, None, 1, 0]
    with pytest.raises(Exception) as from_driver:  # noqa: PT011 - whatever the driver raises
        insert.bind(wrong_type)
    with pytest.raises(Exception) as from_binder:  # noqa: PT011
        Binder(insert).bind(wrong_type)
    assert type(from_binder.value) is type(from_driver.value)
    assert str(from_binder.value) == str(from_driver.value)
    with pytest.raises(ValueError, match="routing key 'k'"):
        Binder(insert).bind([UNSET_VALUE, TIMESTAMPS[0], "x", None, None, None, None, None, 1, 0])
    with pytest.raises(ValueError, match="Too many arguments"):
        Binder(insert).bind([7] * 11)
