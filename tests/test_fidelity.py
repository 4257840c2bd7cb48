"""Data fidelity against the real clusters: every CQL type, writetime and TTL, column mapping,
whole keyspaces. Source 127.0.0.1 -> target 127.0.0.2, compared cell by cell."""

from __future__ import annotations

import datetime
import decimal
import ipaddress
import time
import uuid

import pytest
from cassandra.util import Date, Duration, Time, uuid_from_time

from tests.helpers import rows_of, run_migration, run_validation, write_settings


def tuuid(seconds):
    """A timeuuid that is the same at every call (uuid_from_time picks a random clock)."""
    return uuid_from_time(seconds, node=0x0102030405, clock_seq=7)


TYPES = [
    "CREATE TYPE {ks}.address (street text, zip int, tags frozen<set<text>>)",
    "CREATE TYPE {ks}.person (name text, home frozen<address>)",
]
ALL_TYPES = """CREATE TABLE {ks}.all_types (
    p1 int, p2 text, c1 int, c2 timeuuid,
    st text static,
    a ascii, t text, vc varchar, b blob, bo boolean, ti tinyint, si smallint, i int, bi bigint,
    vi varint, f float, d double, de decimal, dt date, tm time, ts timestamp, du duration,
    u uuid, tu timeuuid, ip inet,
    l list<int>, s set<text>, m map<text, int>,
    fl frozen<list<int>>, fs frozen<set<int>>, fm frozen<map<int, text>>,
    nested map<text, frozen<list<int>>>,
    tup tuple<int, text, double>,
    addr address, faddr frozen<address>, per frozen<person>,
    vec vector<float, 3>,
    PRIMARY KEY ((p1, p2), c1, c2)
) WITH CLUSTERING ORDER BY (c1 DESC, c2 ASC)"""
SINGLE_CELL = ["st", "a", "t", "vc", "b", "bo", "ti", "si", "i", "bi", "vi", "f", "d", "de",
               "dt", "tm", "ts", "du", "u", "tu", "ip", "fl", "fs", "fm", "tup", "faddr", "per",
               "vec"]
MULTI_CELL = ["l", "s", "m", "nested", "addr"]
# Cassandra 4.x has every type of the table but vector (tests/test_versions.py).
VECTOR_COLUMN = "    vec vector<float, 3>,\n"


def _schema(session, keyspace, vector=True):
    for statement in TYPES:
        session.execute(statement.format(ks=keyspace))
    table = ALL_TYPES if vector else ALL_TYPES.replace(VECTOR_COLUMN, "")
    session.execute(table.format(ks=keyspace))


def _full_row(session, keyspace, index, vector=True):
    row = _every_value(index)
    if not vector:
        del row["vec"]
    return row


def _every_value(index):
    return {
        "p1": index, "p2": f"ключ-{index}", "c1": index * 10,
        "c2": tuuid(1_700_000_000 + index),
        "st": f"static {index}", "a": "ascii only", "t": "text ✓ 日本語 🎉", "vc": "varchar",
        "b": bytes(range(256)) * 4, "bo": index % 2 == 0, "ti": -128, "si": 32767,
        "i": -2**31, "bi": 2**63 - 1, "vi": 10**40 + index, "f": 1.5, "d": 3.141592653589793,
        "de": decimal.Decimal("12345678901234567890.000000001"),
        "dt": Date(datetime.date(1969, 7, 20)), "tm": Time(datetime.time(23, 59, 59, 999999)),
        "ts": datetime.datetime(2024, 2, 29, 12, 0, 0, 123000),
        "du": Duration(months=1, days=2, nanoseconds=3_000_000_004),
        "u": uuid.UUID(int=index + 1), "tu": tuuid(1_600_000_000),
        "ip": ipaddress.ip_address("2001:db8::1") if index % 2 else "192.168.0.1",
        "l": [3, 1, 2, 1], "s": {"b", "a"}, "m": {"x": 1, "y": -1},
        "fl": [1, 2], "fs": {5, 6}, "fm": {1: "one"},
        "nested": {"k": [1, 2, 3]},
        "tup": (1, "two", 3.0),
        # User types as tuples in field order (the driver's form for unregistered types).
        "addr": ("Main St", 12345, {"home"}),
        "faddr": ("Frozen Rd", 1, None),
        "per": ("Ada", ("Nested Way", 2, {"x", "y"})),
        "vec": [0.5, -1.25, 3.0],
    }


def _fill_all_types(session, keyspace, vector=True):
    """Rows with every type, written at known timestamps and TTLs, plus the awkward cases."""
    now = int(time.time() * 1_000_000)
    columns = list(_full_row(session, keyspace, 0, vector))
    insert = session.prepare(
        f"INSERT INTO {keyspace}.all_types ({', '.join(columns)}) "
        f"VALUES ({', '.join('?' for _ in columns)}) USING TIMESTAMP ? AND TTL ?")
    for index in range(6):
        row = _full_row(session, keyspace, index, vector)
        session.execute(insert, [*row.values(), now - 10_000_000 + index, 3600 * (index + 1)])
    # Cells of one row written later, at other timestamps and TTLs (or none).
    session.execute(f"UPDATE {keyspace}.all_types USING TIMESTAMP {now - 5_000_000} "
                    "SET t = 'updated later', i = 7 "
                    "WHERE p1 = 1 AND p2 = 'ключ-1' AND c1 = 10 AND c2 = %s",
                    (tuuid(1_700_000_001),))
    session.execute(f"UPDATE {keyspace}.all_types USING TIMESTAMP {now - 4_000_000} AND TTL 900 "
                    "SET l = l + [99], m['z'] = 26, bo = false "
                    "WHERE p1 = 2 AND p2 = 'ключ-2' AND c1 = 20 AND c2 = %s",
                    (tuuid(1_700_000_002),))
    # Nulls and empty values; empty collections are nulls in Cassandra.
    session.execute(f"INSERT INTO {keyspace}.all_types (p1, p2, c1, c2, t, b, l) "
                    "VALUES (100, '', -1, %s, '', 0x, [])", (tuuid(1_500_000_000),))
    # A row with its key only, and a partition that holds static cells only.
    session.execute(f"INSERT INTO {keyspace}.all_types (p1, p2, c1, c2) VALUES (101, 'k', 0, %s)",
                    (tuuid(1_500_000_001),))
    session.execute(f"INSERT INTO {keyspace}.all_types (p1, p2, st) VALUES (102, 's', 'alone')")
    # A large blob.
    session.execute(f"INSERT INTO {keyspace}.all_types (p1, p2, c1, c2, b) "
                    "VALUES (103, 'big', 0, %s, %s)",
                    (tuuid(1_500_000_002), bytes(range(256)) * 4096))


def _cells(session, keyspace, table="all_types", vector=True, element_writetimes=True):
    """Every row with the writetime and TTL of every regular cell, keyed by primary key.

    Without ``element_writetimes`` (a Cassandra 4.x server), non-frozen collections and user
    types come with their values only."""
    single = [name for name in SINGLE_CELL if vector or name != "vec"]
    selectors = ["p1", "p2", "c1", "c2", *single, *MULTI_CELL]
    for name in single:
        selectors += [f"writetime({name}) AS wt_{name}", f"ttl({name}) AS ttl_{name}"]
    for name in MULTI_CELL if element_writetimes else ():
        selectors.append(f"maxwritetime({name}) AS wt_{name}")
    rows = session.execute(f"SELECT {', '.join(selectors)} FROM {keyspace}.{table}")
    rows = [row._asdict() for row in rows]
    return {(row["p1"], row["p2"], row["c1"], row["c2"]): row for row in rows}


def _assert_same_cells(source, target):
    assert source.keys() == target.keys()
    for key, source_row in source.items():
        target_row = target[key]
        for name, value in source_row.items():
            if name.startswith("ttl_"):
                if value is None:
                    assert target_row[name] is None, (key, name)
                else:
                    assert target_row[name] is not None and abs(target_row[name] - value) <= 5, (
                        key, name, value, target_row[name])
            else:
                assert target_row[name] == value, (key, name, value, target_row[name])


def test_every_cql_type_writetime_and_ttl_round_trip(tmp_path, keyspace, cassandra_hosts,
                                                     source_session, target_session):
    for session in (source_session, target_session):
        _schema(session, keyspace)
    _fill_all_types(source_session, keyspace)
    settings = write_settings(tmp_path, *cassandra_hosts[:2], keyspace, ["all_types"])

    code, summary = run_migration(settings)

    assert code == 0, summary
    source = _cells(source_session, keyspace)
    assert len(source) == 10
    assert source[(102, "s", None, None)]["st"] == "alone"
    assert source[(2, "ключ-2", 20, tuuid(1_700_000_002))]["l"] == [3, 1, 2, 1, 99]
    _assert_same_cells(source, _cells(target_session, keyspace))
    assert summary["tables"][0]["rows_written"] == 10

    # A rerun changes nothing, and a newer write made on the target meanwhile survives it.
    key = "p1 = 3 AND p2 = 'ключ-3' AND c1 = 30 AND c2 = %s"
    target_session.execute(f"UPDATE {keyspace}.all_types SET t = 'newer on target' WHERE {key}",
                           (tuuid(1_700_000_003),))
    code, _ = run_migration(settings)
    assert code == 0
    after = _cells(target_session, keyspace)
    newer = after[(3, "ключ-3", 30, tuuid(1_700_000_003))]
    assert newer["t"] == "newer on target"
    newer["t"], newer["wt_t"], newer["ttl_t"] = (
        source[(3, "ключ-3", 30, tuuid(1_700_000_003))][name]
        for name in ("t", "wt_t", "ttl_t"))
    _assert_same_cells(source, after)


def test_single_cell_types_pass_through_serialized_with_writetime_ttl_and_empty_values(
        tmp_path, keyspace, cassandra_hosts, source_session, target_session, caplog):
    """Without collections that carry their own cells' writetimes, the values go from reader to
    writer as the protocol carries them: every single-cell type arrives equal, with its
    writetime and TTL, and an empty value (which no Python value stands for) stays empty."""
    table = ALL_TYPES.replace("all_types", "single_cells").replace(
        "    l list<int>, s set<text>, m map<text, int>,\n", "").replace(
        "    nested map<text, frozen<list<int>>>,\n", "").replace("addr address, ", "")
    for session in (source_session, target_session):
        for statement in TYPES:
            session.execute(statement.format(ks=keyspace))
        session.execute(table.format(ks=keyspace))
    now = int(time.time() * 1_000_000)
    columns = ["p1", "p2", "c1", "c2", *SINGLE_CELL]
    insert = source_session.prepare(
        f"INSERT INTO {keyspace}.single_cells ({', '.join(columns)}) "
        f"VALUES ({', '.join('?' for _ in columns)}) USING TIMESTAMP ? AND TTL ?")
    for index in range(6):
        row = _every_value(index)
        source_session.execute(insert, [*(row[name] for name in columns),
                                        now - 10_000_000 + index, 3600 * (index + 1)])
    source_session.execute(f"UPDATE {keyspace}.single_cells USING TIMESTAMP {now - 5_000_000} "
                           "SET t = 'updated later', i = 7 "
                           "WHERE p1 = 1 AND p2 = 'ключ-1' AND c1 = 10 AND c2 = %s",
                           (tuuid(1_700_000_001),))
    # Empty values: an int and a timestamp with no bytes at all, an empty text and blob.
    source_session.execute(f"INSERT INTO {keyspace}.single_cells (p1, p2, c1, c2, i, ts, t, b) "
                           "VALUES (100, '', -1, %s, blobAsInt(0x), blobAsTimestamp(0x), '', 0x)",
                           (tuuid(1_500_000_000),))
    source_session.execute(f"INSERT INTO {keyspace}.single_cells (p1, p2, st) "
                           "VALUES (102, 's', 'alone')")
    settings = write_settings(tmp_path, *cassandra_hosts[:2], keyspace, ["single_cells"])

    code, summary = run_migration(settings)

    assert code == 0, summary
    assert f"{keyspace}.single_cells: values pass through as read" in caplog.text
    assert summary["tables"][0]["rows_written"] == 8
    query = (f"SELECT {', '.join(columns)}, "
             + ", ".join(f"writetime({name}) AS wt_{name}, ttl({name}) AS ttl_{name}"
                         for name in SINGLE_CELL)
             + ", intAsBlob(i) AS raw_i, timestampAsBlob(ts) AS raw_ts "
             + f"FROM {keyspace}.single_cells")
    source = {tuple(row[:4]): row._asdict() for row in source_session.execute(query)}
    target = {tuple(row[:4]): row._asdict() for row in target_session.execute(query)}
    assert len(source) == 8
    _assert_same_cells(source, target)
    empty = target[(100, "", -1, tuuid(1_500_000_000))]
    assert (empty["raw_i"], empty["raw_ts"], empty["t"], empty["b"]) == (b"", b"", "", b"")


def test_a_list_only_the_target_has_leaves_values_serialized(
        tmp_path, keyspace, cassandra_hosts, source_session, target_session, caplog):
    """The target's own non-frozen list (not written by the copy) needs no list guard: the
    rows still pass through serialized, with their writetimes."""
    source_session.execute(f"CREATE TABLE {keyspace}.notes (id int PRIMARY KEY, body text)")
    target_session.execute(f"CREATE TABLE {keyspace}.notes (id int PRIMARY KEY, body text, "
                           "tags list<text>)")
    for index in range(100):
        source_session.execute(f"INSERT INTO {keyspace}.notes (id, body) VALUES (%s, %s) "
                               f"USING TIMESTAMP {1_000_000 + index}", (index, f"note {index}"))
    settings = write_settings(tmp_path, *cassandra_hosts[:2], keyspace, ["notes"])

    code, summary = run_migration(settings)

    assert code == 0, summary
    assert f"{keyspace}.notes: values pass through as read" in caplog.text
    query = f"SELECT id, body, writetime(body) AS wt FROM {keyspace}.notes"
    assert sorted(target_session.execute(query)) == sorted(source_session.execute(query))


def test_without_preservation_cells_get_new_timestamps(tmp_path, keyspace, cassandra_hosts,
                                                       source_session, target_session):
    for session in (source_session, target_session):
        _schema(session, keyspace)
    _fill_all_types(source_session, keyspace)
    settings = write_settings(tmp_path, *cassandra_hosts[:2], keyspace, ["all_types"],
                              PRESERVE_WRITETIME=False, PRESERVE_TTL=False)
    started = int(time.time() * 1_000_000)
    assert run_migration(settings)[0] == 0
    target = _cells(target_session, keyspace)
    source = _cells(source_session, keyspace)
    row = target[(0, "ключ-0", 0, tuuid(1_700_000_000))]
    assert row["wt_t"] >= started and row["ttl_t"] is None
    assert {key: {k: v for k, v in r.items() if not k.startswith(("wt_", "ttl_"))}
            for key, r in target.items()} == {
        key: {k: v for k, v in r.items() if not k.startswith(("wt_", "ttl_"))}
        for key, r in source.items()}


def test_rename_skip_constant_where_and_writetime_window(tmp_path, keyspace, cassandra_hosts,
                                                         source_session, target_session):
    source_session.execute(f"CREATE TABLE {keyspace}.users (id int PRIMARY KEY, name text, "
                           "email text, region text, secret text)")
    target_session.execute(f"CREATE TABLE {keyspace}.customers (id int PRIMARY KEY, "
                           "full_name text, email text, region text, origin text)")
    old, new = 1_000_000, 2_000_000_000_000_000
    for index in range(40):
        stamp = old + index if index % 2 else new + index
        source_session.execute(
            f"INSERT INTO {keyspace}.users (id, name, email, region, secret) "
            f"VALUES (%s, %s, %s, %s, 'pw') USING TIMESTAMP {stamp}",
            (index, f"user {index}", f"u{index}@example.com", "eu" if index < 30 else "us"))
    settings = write_settings(tmp_path, *cassandra_hosts[:2], keyspace, [{
        "SOURCE": "users", "TARGET": "customers",
        "COLUMNS": {"name": "full_name", "secret": None},
        "CONSTANTS": {"origin": "legacy-cluster"},
        "WHERE": "region = 'eu'",
        "WRITETIME_FROM": new}])

    code, summary = run_migration(settings)

    assert code == 0, summary
    copied = rows_of(target_session, keyspace, "customers",
                     ("id", "full_name", "email", "region", "origin"))
    assert copied == [(i, f"user {i}", f"u{i}@example.com", "eu", "legacy-cluster")
                      for i in range(0, 30, 2)]
    table = summary["tables"][0]
    assert (table["rows_read"], table["rows_written"], table["rows_filtered"]) == (30, 15, 15)
    wt = target_session.execute(f"SELECT writetime(full_name), writetime(origin) FROM "
                                f"{keyspace}.customers WHERE id = 4").one()
    assert tuple(wt) == (new + 4, new + 4)


def test_whole_keyspace_with_created_target_tables(tmp_path, keyspace, cassandra_hosts,
                                                   source_session, target_session):
    from tools import sample_data

    _schema(source_session, keyspace)
    _fill_all_types(source_session, keyspace)
    sample_data.fill_table(source_session, keyspace, "events", 3_000, "mixed")
    source_session.execute(f'CREATE TABLE {keyspace}."MixedCase" ("Key" text PRIMARY KEY, '
                           '"Value" int)')
    source_session.execute(f'INSERT INTO {keyspace}."MixedCase" ("Key", "Value") VALUES (\'a\', 1)')
    settings = write_settings(tmp_path, *cassandra_hosts[:2], keyspace, "*",
                              CREATE_TARGET_TABLES=True)

    code, summary = run_migration(settings)

    assert code == 0, summary
    assert sorted(table["source"] for table in summary["tables"]) == sorted(
        f"{keyspace}.{name}" for name in ("MixedCase", "all_types", "events"))
    _assert_same_cells(_cells(source_session, keyspace), _cells(target_session, keyspace))
    assert rows_of(target_session, keyspace, "events", sample_data.COLUMNS) == rows_of(
        source_session, keyspace, "events", sample_data.COLUMNS)
    assert [tuple(row) for row in target_session.execute(
        f'SELECT "Key", "Value" FROM {keyspace}."MixedCase"')] == [("a", 1)]


@pytest.mark.parametrize(("table", "message"), [
    ({"SOURCE": "users", "TARGET": "customers", "COLUMNS": {"nope": "x"}},
     "TABLES[0].COLUMNS: {ks}.users has no column nope"),
    ({"SOURCE": "users", "TARGET": "customers", "COLUMNS": {"id": None}},
     "primary key column id cannot be skipped"),
    ({"SOURCE": "users", "TARGET": "customers", "CONSTANTS": {"origin": 5}},
     "TABLES[0].CONSTANTS: 5 is not a valid text for {ks}.customers.origin"),
    ({"SOURCE": "users", "TARGET": "customers", "WHERE": "no_such_column = 1"},
     "TABLES[0].WHERE: the source rejects"),
    # A condition on the partition key cannot go with a token range: PARTITIONS is the way.
    ({"SOURCE": "users", "TARGET": "customers", "COLUMNS": {"name": "full_name"},
      "WHERE": "id = 1"},
     "TABLES[0].WHERE: 'id = 1' restricts the partition key (id), which a read by token range "
     "cannot also restrict; name those partitions in TABLES[0].PARTITIONS instead"),
    ({"SOURCE": "users", "TARGET": "customers"}, "{ks}.customers has no column name"),
])
def test_mapping_problems_exit_2(tmp_path, keyspace, cassandra_hosts, source_session,
                                 target_session, table, message, caplog):
    source_session.execute(f"CREATE TABLE {keyspace}.users (id int PRIMARY KEY, name text)")
    source_session.execute(f"INSERT INTO {keyspace}.users (id, name) VALUES (1, 'a')")
    target_session.execute(f"CREATE TABLE {keyspace}.customers (id int PRIMARY KEY, "
                           "full_name text, origin text)")
    settings = write_settings(tmp_path, *cassandra_hosts[:2], keyspace, [table])
    assert run_migration(settings)[0] == 2
    assert message.format(ks=keyspace) in caplog.text
    assert rows_of(target_session, keyspace, "customers", ("id",)) == []


def test_a_writetime_window_without_preservation_copies_the_rows(
        tmp_path, keyspace, cassandra_hosts, source_session, target_session):
    """The window needs writetimes that the writer is not asked to keep: they are read for the
    filter and left out of the rows written, so no row is taken for a column named
    writetime(...)."""
    for session in (source_session, target_session):
        session.execute(f"CREATE TABLE {keyspace}.users (id int PRIMARY KEY, name text)")
    old, new = 1_000_000, 2_000_000_000_000_000
    for index in range(20):
        source_session.execute(
            f"INSERT INTO {keyspace}.users (id, name) VALUES (%s, %s) USING TIMESTAMP "
            f"{new + index if index % 2 else old + index}", (index, f"user {index}"))
    settings = write_settings(tmp_path, *cassandra_hosts[:2], keyspace,
                              [{"SOURCE": "users", "WRITETIME_FROM": new}],
                              PRESERVE_WRITETIME=False, PRESERVE_TTL=False)
    started = int(time.time() * 1_000_000)

    code, summary = run_migration(settings)

    assert code == 0, summary
    assert rows_of(target_session, keyspace, "users", ("id", "name")) == [
        (index, f"user {index}") for index in range(1, 20, 2)]
    (table,) = summary["tables"]
    assert (table["rows_written"], table["rows_filtered"], table["rows_failed"]) == (10, 10, 0)
    stamp = target_session.execute(f"SELECT writetime(name) FROM {keyspace}.users "
                                   "WHERE id = 1").one()[0]
    assert stamp >= started  # not preserved, as asked


def test_a_column_name_with_a_double_quote_keeps_its_writetime(
        tmp_path, keyspace, cassandra_hosts, source_session, target_session):
    for session in (source_session, target_session):
        session.execute(f'CREATE TABLE {keyspace}.odd (id int PRIMARY KEY, "say ""hi""" text)')
    source_session.execute(f'INSERT INTO {keyspace}.odd (id, "say ""hi""") VALUES (1, \'x\') '
                           "USING TIMESTAMP 1234567")
    settings = write_settings(tmp_path, *cassandra_hosts[:2], keyspace, ["odd"])

    code, summary = run_migration(settings)

    assert code == 0, summary
    row = target_session.execute(f'SELECT "say ""hi""", writetime("say ""hi""") '
                                 f"FROM {keyspace}.odd WHERE id = 1").one()
    assert tuple(row) == ("x", 1234567)


def test_a_static_column_mapped_onto_a_regular_one_is_refused(
        tmp_path, keyspace, cassandra_hosts, source_session, target_session, caplog):
    """A static holds one value per partition, a regular column one per row: mapped onto
    each other, values would collapse. Refused before anything is written."""
    source_session.execute(f"CREATE TABLE {keyspace}.t (pk int, ck int, s text static, "
                           "v text, PRIMARY KEY (pk, ck))")
    target_session.execute(f"CREATE TABLE {keyspace}.t (pk int, ck int, s text, "
                           "v text static, PRIMARY KEY (pk, ck))")
    for ck in range(3):
        source_session.execute(f"INSERT INTO {keyspace}.t (pk, ck, s, v) "
                               "VALUES (1, %s, 'one', %s)", (ck, f"row {ck}"))
    settings = write_settings(tmp_path, *cassandra_hosts[:2], keyspace, ["t"])
    assert run_migration(settings)[0] == 2
    assert (f"TABLES[0]: column s is static in {keyspace}.t but s is regular in {keyspace}.t"
            in caplog.text)
    assert f"v is regular in {keyspace}.t but v is static in {keyspace}.t" in caplog.text
    assert rows_of(target_session, keyspace, "t", ("pk",)) == []


def test_case_sensitive_and_quoted_names_are_copied_and_validated(
        tmp_path, keyspace, cassandra_hosts, source_session, target_session):
    """A table whose name keeps its upper case, columns that need quotes (a reserved word, a
    dash, upper case beside the same name in lower case), a column renamed by its quoted
    name: copied cell for cell (writetimes too) and validated."""
    table = ('CREATE TABLE {ks}."Names" ("Key-Name" text, "order" int, "UserId" int, '
             'userid int, "Note" text, PRIMARY KEY ("Key-Name", "order"))')
    source_session.execute(table.format(ks=keyspace))
    target_session.execute(table.format(ks=keyspace).replace('"Note"', '"Remark"'))
    insert = source_session.prepare(
        f'INSERT INTO {keyspace}."Names" ("Key-Name", "order", "UserId", userid, "Note") '
        "VALUES (?, ?, ?, ?, ?) USING TIMESTAMP ?")
    for index in range(200):
        source_session.execute(insert, (f"key {index % 20}", index, index, -index,
                                        f"note {index}", 1_000_000 + index))
    settings = write_settings(tmp_path, *cassandra_hosts[:2], keyspace, [
        {"SOURCE": '"Names"', "TARGET": '"Names"', "COLUMNS": {'"Note"': '"Remark"'}}])

    code, summary = run_migration(settings)

    assert code == 0, summary
    assert summary["tables"][0]["rows_written"] == 200
    columns = '"Key-Name", "order", "UserId", userid, {note}, writetime({note})'
    source = sorted(source_session.execute(
        f'SELECT {columns.format(note=chr(34) + "Note" + chr(34))} FROM {keyspace}."Names"'))
    target = sorted(target_session.execute(
        f'SELECT {columns.format(note=chr(34) + "Remark" + chr(34))} FROM {keyspace}."Names"'))
    assert len(source) == 200 and target == source
    code, validation = run_validation(settings)
    assert code == 0 and validation["tables"][0]["valid"] == 200, validation


def test_an_unquoted_name_of_a_case_sensitive_table_says_how_to_quote_it(
        tmp_path, keyspace, cassandra_hosts, source_session, target_session, caplog):
    for session in (source_session, target_session):
        session.execute(f'CREATE TABLE {keyspace}."Orders" (id int PRIMARY KEY)')
    settings = write_settings(tmp_path, *cassandra_hosts[:2], keyspace, ["Orders"])
    assert run_migration(settings)[0] == 2
    assert (f"TABLES[0].SOURCE: table {keyspace}.orders does not exist (there is a table "
            "'Orders': a name that keeps upper case goes in double quotes, '\"Orders\"')"
            in caplog.text)
