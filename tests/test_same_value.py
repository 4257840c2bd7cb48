""""The same value" as Cassandra decides it (serialized bytes), against the real clusters: an
empty value survives a copy that decodes its rows and is not a null to the validator; values
Python calls equal but Cassandra stores differently (decimal scale, a double's sign of zero)
are mismatched."""

from __future__ import annotations

import decimal

from cassandra.cqltypes import EMPTY
from cassandra.util import SortedSet

from tests.helpers import differences, run_migration, run_validation, write_settings
from transforms.compare import same_value

EMPTIES = "intAsBlob(i) AS i, timestampAsBlob(ts) AS ts, uuidAsBlob(u) AS u, " \
          "booleanAsBlob(b) AS b, decimalAsBlob(d) AS d, inetAsBlob(ip) AS ip"


def _raw(session, keyspace):
    return {row.k: row._asdict() for row in session.execute(
        f"SELECT k, {EMPTIES} FROM {keyspace}.t")}


def test_empty_values_survive_a_decoded_copy_and_are_not_nulls_to_the_validator(
        tmp_path, keyspace, cassandra_hosts, source_session, target_session, caplog):
    # A non-frozen list kept with its writetimes makes the rows go the decoded way.
    table = ("CREATE TABLE {ks}.t (k int PRIMARY KEY, i int, ts timestamp, u uuid, b boolean, "
             "d decimal, ip inet, l list<int>)")
    for session in (source_session, target_session):
        session.execute(table.format(ks=keyspace))
    for k in range(20):
        if k % 2:
            source_session.execute(
                f"INSERT INTO {keyspace}.t (k, i, ts, u, b, d, ip, l) VALUES (%s, blobAsInt(0x), "
                "blobAsTimestamp(0x), blobAsUuid(0x), blobAsBoolean(0x), blobAsDecimal(0x), "
                "blobAsInet(0x), [1, 2])", (k,))
        else:
            source_session.execute(f"INSERT INTO {keyspace}.t (k, i, l) VALUES (%s, %s, [3])",
                                   (k, k))
    settings = write_settings(tmp_path, *cassandra_hosts[:2], keyspace, ["t"])

    code, summary = run_migration(settings)

    assert code == 0, summary
    assert f"{keyspace}.t: values pass through as read" not in caplog.text  # decoded
    source, target = _raw(source_session, keyspace), _raw(target_session, keyspace)
    assert target == source
    for k in range(1, 20, 2):
        assert set(target[k].values()) == {k, b""}, target[k]  # empty, not null
    assert target[2]["ts"] is None  # a null stays a null

    code, validation = run_validation(settings)
    assert code == 0, validation
    assert validation["tables"][0]["valid"] == 20

    # A null where the source holds an empty value is a difference.
    target_session.execute(f"DELETE i FROM {keyspace}.t WHERE k = 1")
    code, validation = run_validation(settings)
    assert code == 1, validation
    assert validation["tables"][0]["mismatched"] == 1
    (record,) = differences(validation)
    assert record["kind"] == "mismatched" and record["partition_key"] == {"k": 1}
    assert set(record["columns"]) == {"i"}
    assert (record["columns"]["i"]["source"], record["columns"]["i"]["target"]) == ("", None)


def test_values_python_calls_equal_are_different_values_to_the_validator(
        tmp_path, keyspace, cassandra_hosts, source_session, target_session):
    table = "CREATE TABLE {ks}.t (k int PRIMARY KEY, de decimal, do double, l list<decimal>)"
    for session in (source_session, target_session):
        session.execute(table.format(ks=keyspace))
    # Prepared: the driver serializes a Decimal with its scale (a literal would lose it).
    insert = "INSERT INTO {ks}.t (k, de, do, l) VALUES (?, ?, ?, ?) USING TIMESTAMP 1000"
    source_insert = source_session.prepare(insert.format(ks=keyspace))
    target_insert = target_session.prepare(insert.format(ks=keyspace))
    for k in range(10):
        source_session.execute(source_insert,
                               (k, decimal.Decimal("1.0"), 0.0, [decimal.Decimal("2.5")]))
        target_value = (k, decimal.Decimal("1.0"), 0.0, [decimal.Decimal("2.5")])
        if k < 3:
            target_value = (k, decimal.Decimal("1.00"), 0.0, [decimal.Decimal("2.5")])
        elif k < 5:
            target_value = (k, decimal.Decimal("1.0"), -0.0, [decimal.Decimal("2.5")])
        elif k < 6:
            target_value = (k, decimal.Decimal("1.0"), 0.0, [decimal.Decimal("2.50")])
        target_session.execute(target_insert, target_value)
    settings = write_settings(tmp_path, *cassandra_hosts[:2], keyspace, ["t"])

    code, validation = run_validation(settings)

    assert code == 1, validation
    (table,) = validation["tables"]
    assert (table["valid"], table["mismatched"]) == (4, 6), table
    found = {record["partition_key"]["k"]: set(record["columns"])
             for record in differences(validation)}
    assert found == {0: {"de"}, 1: {"de"}, 2: {"de"}, 3: {"do"}, 4: {"do"}, 5: {"l"}}


def test_same_value_is_cassandras_equality():
    d = decimal.Decimal
    assert same_value(d("1.0"), d("1.0")) and not same_value(d("1.0"), d("1.00"))
    assert not same_value(0.0, -0.0) and same_value(float("nan"), float("nan"))
    assert same_value(EMPTY, EMPTY) and not same_value(EMPTY, None)
    assert not same_value(None, 0) and same_value(None, None)
    assert not same_value([d("1.0")], [d("1.00")]) and not same_value([1, 2], [2, 1])
    assert not same_value({"a": -0.0}, {"a": 0.0}) and same_value({"a": 1}, {"a": 1})
    assert same_value(SortedSet([1, 2]), SortedSet([2, 1]))
    assert not same_value(SortedSet([1]), SortedSet([1, 2]))
    assert not same_value(True, 1) and same_value(b"", b"")


def test_timestamps_outside_pythons_datetime_range_are_copied_and_compared(
        tmp_path, keyspace, cassandra_hosts, source_session, target_session):
    """Cassandra holds any 64-bit millisecond count; a datetime only years 1 to 9999. The
    values outside are read as their milliseconds and written back as the same value, in a
    column, a non-frozen list (the decoded way) and a frozen map; the rows around them too."""
    table = ("CREATE TABLE {ks}.t (k int PRIMARY KEY, ts timestamp, l list<timestamp>, "
             "m frozen<map<text, timestamp>>)")
    for session in (source_session, target_session):
        session.execute(table.format(ks=keyspace))
    far = 253_402_300_800_000 + 86_400_000 * 365  # year 10001
    before = -62_135_596_800_000 - 86_400_000 * 400  # before year 1
    for k in range(40):
        if k % 4 == 0:
            source_session.execute(
                f"INSERT INTO {keyspace}.t (k, ts, l, m) VALUES (%s, {far + k}, "
                f"[{before}, 0, {far}], {{'far': {far}, 'before': {before}}})", (k,))
        else:
            source_session.execute(f"INSERT INTO {keyspace}.t (k, ts, l) VALUES (%s, {k}, [1])",
                                   (k,))
    settings = write_settings(tmp_path, *cassandra_hosts[:2], keyspace, ["t"],
                              OUTAGE_WAIT_SECONDS=30)

    code, summary = run_migration(settings)

    assert code == 0, summary
    assert summary["tables"][0]["rows_written"] == 40
    query = f"SELECT k, timestampAsBlob(ts) AS raw, ts, l, m FROM {keyspace}.t"
    source = sorted(tuple(row) for row in source_session.execute(query))
    target = sorted(tuple(row) for row in target_session.execute(query))
    assert target == source
    far_row = next(row for row in target if row[0] == 4)
    assert far_row[1] == (far + 4).to_bytes(8, "big") and far_row[2] == far + 4
    code, validation = run_validation(settings)
    assert code == 0 and validation["tables"][0]["valid"] == 40, validation
