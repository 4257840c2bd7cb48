"""PARTITIONS against the real clusters: each listed partition is read once, whatever the list."""

from __future__ import annotations

import uuid

from tests.helpers import rows_of, run_migration, write_settings


def test_a_counter_partition_listed_twice_is_copied_once(tmp_path, keyspace, cassandra_hosts,
                                                         source_session, target_session):
    """Two work items for one partition would both read the target before either update, and
    both add the same delta."""
    for session in (source_session, target_session):
        session.execute(f"CREATE TABLE {keyspace}.views (page text, day int, hits counter, "
                        "PRIMARY KEY (page, day))")
    for page, day, hits in (("home", 1, 7), ("home", 2, 5), ("faq", 1, 11), ("about", 1, 3)):
        source_session.execute(f"UPDATE {keyspace}.views SET hits = hits + %s "
                               "WHERE page = %s AND day = %s", (hits, page, day))
    settings = write_settings(tmp_path, *cassandra_hosts[:2], keyspace, [
        {"SOURCE": "views", "PARTITIONS": ["home", "faq", "home", ["home"], "faq"]}])

    code, summary = run_migration(settings)

    assert code == 0, summary
    assert summary["tables"][0]["rows_read"] == 3
    columns = ("page", "day", "hits")
    assert rows_of(target_session, keyspace, "views", columns) == [
        row for row in rows_of(source_session, keyspace, "views", columns) if row[0] != "about"]


def test_uuid_partitions_are_written_as_strings(tmp_path, keyspace, cassandra_hosts,
                                                source_session, target_session):
    """YAML has no UUID: a string that parses as one is taken for a uuid or timeuuid key, in
    any spelling, and two spellings of one UUID are one partition."""
    for session in (source_session, target_session):
        session.execute(f"CREATE TABLE {keyspace}.sessions (user uuid, started timeuuid, "
                        "device text, PRIMARY KEY ((user, started), device))")
    users = [uuid.UUID(int=number + 1, version=4) for number in range(3)]
    started = uuid.uuid1()
    for user in users:
        for device in ("phone", "laptop"):
            source_session.execute(f"INSERT INTO {keyspace}.sessions (user, started, device) "
                                   "VALUES (%s, %s, %s)", (user, started, device))
    settings = write_settings(tmp_path, *cassandra_hosts[:2], keyspace, [
        {"SOURCE": "sessions", "PARTITIONS": [[str(users[0]), str(started)],
                                              [str(users[2]).upper(), str(started)],
                                              [f"{{{users[0]}}}", str(started).upper()]]}])

    code, summary = run_migration(settings)

    assert code == 0, summary
    assert summary["tables"][0]["rows_read"] == 4
    assert rows_of(target_session, keyspace, "sessions", ("user", "started", "device")) == sorted(
        (user, started, device) for user in (users[0], users[2]) for device in ("phone", "laptop"))
