"""Preflight checks that need the clusters, beyond those of test_config: user types are
compared field by field, since Cassandra matches them between keyspaces by name only."""

from __future__ import annotations

import pytest

from tests.helpers import rows_of, run_migration, write_settings

GEO = 'CREATE TYPE {ks}."Geo" ({fields})'
ADDRESS = 'CREATE TYPE {ks}.address ({fields})'
PEOPLE = ('CREATE TABLE {ks}.people (id int PRIMARY KEY, home frozen<address>, '
          'visits map<text, frozen<"Geo">>, spot frozen<tuple<int, frozen<"Geo">>>)')
SOURCE_TYPES = [GEO.format(ks="{ks}", fields="lat double, lon double"),
                ADDRESS.format(ks="{ks}", fields='street text, city text, geo frozen<"Geo">')]


def create_people(session, keyspace, types):
    for statement in [*types, PEOPLE]:
        session.execute(statement.format(ks=keyspace))


def fill_people(session, keyspace):
    session.execute(
        f"INSERT INTO {keyspace}.people (id, home, visits, spot) VALUES (1, "
        "{street: 'Rue Haute 1', city: 'Brussels', geo: {lat: 50.8, lon: 4.3}}, "
        "{'home': {lat: 50.8, lon: 4.3}}, (7, {lat: 1.5, lon: 2.5}))")


# Same type names on the target, other fields: (target types, message).
USER_TYPE_PROBLEMS = [
    ("fields swapped", [SOURCE_TYPES[0], ADDRESS.format(
        ks="{ks}", fields='city text, street text, geo frozen<"Geo">')],
     "TABLES[0]: column home of {ks}.people uses user type address, whose fields differ on the "
     "target: field 1 is street text in {ks}.address but city text in {ks}.address; field 2 is "
     "city text in {ks}.address but street text in {ks}.address"),
    ("nested type swapped", [GEO.format(ks="{ks}", fields="lon double, lat double"),
                             SOURCE_TYPES[1]],
     'TABLES[0]: columns home, spot, visits of {ks}.people use user type Geo, whose fields '
     'differ on the target: field 1 is lat double in {ks}."Geo" but lon double in {ks}."Geo"'),
    ("field type differs", [GEO.format(ks="{ks}", fields="lat double, lon float"),
                            SOURCE_TYPES[1]],
     'field 2 is lon double in {ks}."Geo" but lon float in {ks}."Geo"'),
    ("field renamed", [GEO.format(ks="{ks}", fields="latitude double, lon double"),
                       SOURCE_TYPES[1]],
     'field 1 is lat double in {ks}."Geo" but latitude double in {ks}."Geo"'),
    ("field added", [GEO.format(ks="{ks}", fields="lat double, lon double, alt double"),
                     SOURCE_TYPES[1]],
     'field 3 is absent in {ks}."Geo" but alt double in {ks}."Geo"'),
]


@pytest.mark.parametrize(("target_types", "message"), [case[1:] for case in USER_TYPE_PROBLEMS],
                         ids=[case[0] for case in USER_TYPE_PROBLEMS])
def test_user_types_that_differ_on_the_target_exit_2(tmp_path, keyspace, cassandra_hosts,
                                                      source_session, target_session,
                                                      target_types, message, caplog):
    create_people(source_session, keyspace, SOURCE_TYPES)
    fill_people(source_session, keyspace)
    create_people(target_session, keyspace, target_types)
    settings = write_settings(tmp_path, *cassandra_hosts[:2], keyspace, ["people"])

    code, summary = run_migration(settings)

    assert code == 2, summary
    assert message.format(ks=keyspace) in caplog.text
    assert f"{settings}: " in caplog.text and summary is None
    assert rows_of(target_session, keyspace, "people", ("id",)) == []


def test_equal_user_types_are_copied(tmp_path, keyspace, cassandra_hosts, source_session,
                                     target_session):
    for session in (source_session, target_session):
        create_people(session, keyspace, SOURCE_TYPES)
    fill_people(source_session, keyspace)
    settings = write_settings(tmp_path, *cassandra_hosts[:2], keyspace, ["people"])

    code, summary = run_migration(settings)

    assert code == 0, summary
    columns = ("id", "home", "visits", "spot")
    assert rows_of(target_session, keyspace, "people", columns) == rows_of(
        source_session, keyspace, "people", columns)


def test_the_partition_key_columns_a_where_names_are_found_outside_literals():
    from pipelines.preflight import _columns_named

    assert _columns_named("region = 'eu'", ["region"]) == ["region"]
    assert _columns_named("REGION IN ('eu', 'us')", ["region"]) == ["region"]  # folded
    assert _columns_named("note = 'region = 1' AND $$region$$ = note", ["region"]) == []
    assert _columns_named('"Region" = 1 AND x > 2', ["Region", "x", "y"]) == ["Region", "x"]
    assert _columns_named("regions = 1", ["region"]) == []


def test_contains_key_is_an_operator_not_the_column_key():
    from pipelines.preflight import _columns_named

    assert _columns_named("attrs CONTAINS KEY 'c'", ["key"]) == []
    assert _columns_named("key = 'c'", ["key"]) == ["key"]
