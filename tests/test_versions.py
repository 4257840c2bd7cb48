"""Copies between Cassandra releases, against real nodes: 4.1 -> 5.0, 5.0 -> 4.1, 4.0 -> 5.0.

The session's two 5.0 clusters (``cassandra_hosts``) are the 5.0 source and target; this module
starts one Cassandra 4.0 node (127.0.0.10) and one 4.1 node (127.0.0.11) at once, on Java 11,
and stops them at its end. Each pair copies every CQL type the older release has (non-frozen
lists, sets, maps and user types, static columns, a counter table), compares cell by cell with
writetime and TTL where the releases can report them, and runs the same command twice more.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass

import pytest

from tests.conftest import connect, create_keyspace
from tests.helpers import rows_of, run_migration, write_settings
from tests.test_counters import COLUMNS as HITS_COLUMNS
from tests.test_counters import HITS, fill_hits
from tests.test_fidelity import (
    MULTI_CELL,
    SINGLE_CELL,
    _cells,
    _fill_all_types,
    _schema,
    tuuid,
)
from tools import local_cassandra
from tools.local_cassandra import launcher

_LOG = logging.getLogger(__name__)

OLD_NODES = {"4.0": 10, "4.1": 11}  # release -> index of 127.0.0.<index>


@pytest.fixture(scope="module")
def hosts_by_release(cassandra_hosts):
    """{"5.0 source", "5.0 target", "4.0", "4.1"} -> contact point. The 4.x nodes start at
    the same time (independent clusters) and are stopped at the end, if this fixture started
    them."""
    nodes = [node for release, index in OLD_NODES.items()
             for node in local_cassandra.plan_nodes(1, "clusters", auth=False, tls=False,
                                                   heap="1G", num_tokens=1, extra={},
                                                   first=index, version=release)]
    started_at = time.monotonic()
    report = local_cassandra.start(nodes)
    _LOG.info("Cassandra 4.0 and 4.1 nodes ready in %.1fs: %s", time.monotonic() - started_at,
              [(node["version"], node["state"]) for node in report])
    started = [node["address"] for node in report if node["state"] != "reused"]
    try:
        yield {"5.0 source": cassandra_hosts[0], "5.0 target": cassandra_hosts[1],
               **{release: launcher.node_address(index) for release, index in OLD_NODES.items()}}
    finally:
        if started:
            local_cassandra.stop(started)


@pytest.fixture(scope="module")
def sessions(hosts_by_release):
    """One driver session per node, opened when first asked for."""
    clusters, opened = [], {}

    def session_of(host):
        if host not in opened:
            clusters.append(connect(host))
            opened[host] = clusters[-1].connect()
        return opened[host]

    yield session_of
    for cluster in clusters:
        cluster.shutdown()


@dataclass(frozen=True)
class Pair:
    source_host: str
    target_host: str
    source: object  # driver sessions
    target: object
    keyspace: str


@pytest.fixture
def pair(request, sessions, hosts_by_release):
    """``pair(source, target)`` (names of ``hosts_by_release``): the two nodes, their sessions
    and a fresh keyspace created on both; dropped from every node at the end."""
    name = f"v_{request.node.name[:16].lower()}_{uuid.uuid4().hex[:8]}"
    name = "".join(ch if ch.isalnum() else "_" for ch in name)

    def open_pair(source_name: str, target_name: str) -> Pair:
        hosts = hosts_by_release[source_name], hosts_by_release[target_name]
        opened = Pair(*hosts, *map(sessions, hosts), name)
        for session in (opened.source, opened.target):
            create_keyspace(session, name)
        return opened

    yield open_pair
    for host in hosts_by_release.values():
        sessions(host).execute(f"DROP KEYSPACE IF EXISTS {name}")


def _release(name: str) -> tuple[int, int]:
    major, minor = name.split()[0].split(".")
    return int(major), int(minor)


def _comparable(cells: dict, drop_element_writetimes: bool) -> dict:
    """Cells without the writetimes of non-frozen collections and user types if one side
    cannot report them."""
    dropped = {f"wt_{name}" for name in MULTI_CELL} if drop_element_writetimes else set()
    return {key: {name: value for name, value in row.items() if name not in dropped}
            for key, row in cells.items()}


def _assert_same(source: dict, target: dict) -> None:
    """Every cell of every row equal; expiry times within 5 s."""
    assert source.keys() == target.keys()
    for key, source_row in source.items():
        for name, value in source_row.items():
            copied = target[key][name]
            if name.startswith("ttl_") and value is not None:
                assert copied is not None and abs(copied - value) <= 5, (key, name, value, copied)
            else:
                assert copied == value, (key, name, value, copied)


COLLECTIONS_ONLY_KEY = (104, "collections only", 0, tuuid(1_500_000_003))


def _fill(source, keyspace: str, vector: bool) -> None:
    """The fidelity test's rows, a row whose only regular cells are non-frozen collections and
    a user type, and a 200-row counter table."""
    _fill_all_types(source, keyspace, vector)
    source.execute(f"INSERT INTO {keyspace}.all_types (p1, p2, c1, c2, l, s, m, addr) "
                   "VALUES (%s, %s, %s, %s, [5, 5, 6], {'z'}, {'k': 1}, "
                   "{street: 'Only St', zip: 1}) "
                   f"USING TIMESTAMP {int(time.time() * 1e6) - 3_000_000}",
                   COLLECTIONS_ONLY_KEY)
    source.execute(HITS.format(keyspace=keyspace))
    fill_hits(source, keyspace, 200)


@pytest.mark.parametrize(("source_name", "target_name"), [
    ("4.1", "5.0 target"), ("5.0 source", "4.1"), ("4.0", "5.0 target")],
    ids=["4.1 to 5.0", "5.0 to 4.1", "4.0 to 5.0"])
def test_every_type_of_the_older_release_is_copied_and_reruns_change_nothing(
        tmp_path, pair, source_name, target_name, caplog):
    source_release, target_release = _release(source_name), _release(target_name)
    opened = pair(source_name, target_name)
    source_host, target_host = opened.source_host, opened.target_host
    source, target, keyspace = opened.source, opened.target, opened.keyspace
    vector = min(source_release, target_release) >= (5, 0)
    _schema(source, keyspace, vector)
    _fill(source, keyspace, vector)
    # The 5.0 -> 4.1 copy creates the target's user types and tables from the source's schema.
    creates = target_release < (5, 0)
    if not creates:
        _schema(target, keyspace, vector)
        target.execute(HITS.format(keyspace=keyspace))
    settings = write_settings(tmp_path, source_host, target_host, keyspace,
                              ["all_types", "hits"], CREATE_TARGET_TABLES=creates)
    source_reports = source_release >= (5, 0)
    target_reports = target_release >= (5, 0)

    def snapshot(session, reports):
        """Cells (a TTL as the second it expires at, so snapshots taken at different times
        compare) and counters."""
        now = time.time()
        cells = _cells(session, keyspace, vector=vector, element_writetimes=reports)
        for row in cells.values():
            for name, value in row.items():
                if name.startswith("ttl_") and value is not None:
                    row[name] = round(now + value)
        return cells, rows_of(session, keyspace, "hits", HITS_COLUMNS)

    before = int(time.time() * 1e6)
    code, summary = run_migration(settings)
    after = int(time.time() * 1e6)

    assert code == 0, summary
    assert [table["rows_written"] for table in summary["tables"]] == [11, 200]
    source_cells, source_hits = snapshot(source, source_reports)
    first_cells, first_hits = snapshot(target, target_reports)
    assert len(source_cells) == 11 and len(source_hits) == 200
    # Cell for cell: values, writetimes and TTLs where both releases can report them.
    _assert_same(_comparable(source_cells, drop_element_writetimes=True),
                 _comparable(first_cells, drop_element_writetimes=True))
    assert first_hits == source_hits
    if target_reports:
        # The README's rule for a 4.x source: non-frozen collections and user types take the
        # writetime of their row's newest other cell; in a row without one, the copy's time.
        for key, row in first_cells.items():
            newest = max((row[f"wt_{name}"] for name in SINGLE_CELL
                          if f"wt_{name}" in row and row[f"wt_{name}"] is not None), default=None)
            for name in MULTI_CELL:
                if row[name] is None:
                    continue
                if key == COLLECTIONS_ONLY_KEY:
                    assert before <= row[f"wt_{name}"] <= after, (key, name)
                else:
                    assert row[f"wt_{name}"] == newest, (key, name)
    text = caplog.text
    assert (f"SOURCE runs Cassandra {'.'.join(map(str, source_release))}, TARGET runs "
            f"Cassandra {'.'.join(map(str, target_release))}") in text
    if not source_reports:
        assert "cannot report writetimes or TTLs of non-frozen collections" in text
    assert "the non-frozen lists l are left alone on the target when it holds the same list" in text

    # The same command twice more: every list, counter and row stays as after the first run.
    for _ in range(2):
        before = int(time.time() * 1e6)
        code, summary = run_migration(settings)
        after = int(time.time() * 1e6)
        assert code == 0, summary
        assert summary["tables"][1]["rows_unchanged"] == 200  # no counter written again
        cells, hits = snapshot(target, target_reports)
        assert hits == first_hits
        if target_reports and not source_reports:
            # In the row without other cells, the set, map and user type are written again at
            # the rerun's time, with the same values (the README says so); the list is left
            # alone by the list guard and keeps the first run's writetime.
            row = cells[COLLECTIONS_ONLY_KEY]
            for name in ("s", "m", "addr"):
                assert before <= row[f"wt_{name}"] <= after, name
                row[f"wt_{name}"] = first_cells[COLLECTIONS_ONLY_KEY][f"wt_{name}"]
        _assert_same(_comparable(first_cells, drop_element_writetimes=False),
                     _comparable(cells, drop_element_writetimes=False))
    assert cells[(2, "ключ-2", 20, tuuid(1_700_000_002))]["l"] == [3, 1, 2, 1, 99]
    assert cells[COLLECTIONS_ONLY_KEY]["l"] == [5, 5, 6]


def test_a_vector_column_towards_4_1_exits_2_before_anything_is_written(
        tmp_path, pair, caplog):
    opened = pair("5.0 source", "4.1")
    source_host, target_host = opened.source_host, opened.target_host
    source, target, keyspace = opened.source, opened.target, opened.keyspace
    source.execute(f"CREATE TYPE {keyspace}.chunk (text text, embedding vector<float, 2>)")
    source.execute(f"CREATE TABLE {keyspace}.docs (id int PRIMARY KEY, body text, "
                   "embedding vector<float, 3>)")
    source.execute(f"CREATE TABLE {keyspace}.chunks (id int PRIMARY KEY, part frozen<chunk>)")
    source.execute(f"INSERT INTO {keyspace}.docs (id, body, embedding) VALUES (1, 'a', "
                   "[0.1, 0.2, 0.3])")
    target.execute(f"CREATE TABLE {keyspace}.docs (id int PRIMARY KEY, body text)")

    # The target table exists without the column, or would be created from the source's.
    for table, create, named in (
            ("docs", False, f"column embedding of {keyspace}.docs is vector<float, 3>: "),
            ("chunks", True, f"column part of {keyspace}.chunks is frozen<chunk> (field "
                             "embedding of user type chunk is vector<float, 2>): ")):
        caplog.clear()
        settings = write_settings(tmp_path, source_host, target_host, keyspace, [table],
                                  CREATE_TARGET_TABLES=create)
        assert run_migration(settings)[0] == 2
        assert (f"TABLES[0]: {named}the target runs Cassandra 4.1, which has no vector type"
                in caplog.text)
    assert rows_of(target, keyspace, "docs", ("id", "body")) == []
    assert target.cluster.metadata.keyspaces[keyspace].tables.keys() == {"docs"}
    assert not target.cluster.metadata.keyspaces[keyspace].user_types

    # Skipped, as the message says, the column no longer stops the copy.
    settings = write_settings(tmp_path, source_host, target_host, keyspace,
                              [{"SOURCE": "docs", "COLUMNS": {"embedding": None}}])
    assert run_migration(settings)[0] == 0
    assert rows_of(target, keyspace, "docs", ("id", "body")) == [(1, "a")]


def test_a_writetime_window_on_a_4_x_source_with_collections_exits_2(
        tmp_path, pair, caplog):
    opened = pair("4.1", "5.0 target")
    source_host, target_host = opened.source_host, opened.target_host
    source, target, keyspace = opened.source, opened.target, opened.keyspace
    for session in (source, target):
        session.execute(f"CREATE TABLE {keyspace}.users (id int PRIMARY KEY, name text, "
                        "tags set<text>)")
    source.execute(f"INSERT INTO {keyspace}.users (id, name, tags) VALUES (1, 'a', {{'x'}})")
    settings = write_settings(tmp_path, source_host, target_host, keyspace,
                              [{"SOURCE": "users", "WRITETIME_FROM": 1}])
    assert run_migration(settings)[0] == 2
    assert ("TABLES[0].WRITETIME_FROM: the source runs Cassandra 4.1, which cannot tell when "
            f"the non-frozen collections and user types of {keyspace}.users (tags) were "
            "written") in caplog.text
    assert rows_of(target, keyspace, "users", ("id",)) == []

    # A protocol version the source's release does not speak is named as such.
    caplog.clear()
    settings = write_settings(tmp_path, source_host, target_host, keyspace, ["users"],
                              SOURCE={"PROTOCOL_VERSION": 6})
    assert run_migration(settings)[0] == 2
    assert "SOURCE.PROTOCOL_VERSION: " in caplog.text
    assert "does not accept protocol version 6" in caplog.text

    # Without the collection the window works as on 5.0.
    settings = write_settings(tmp_path, source_host, target_host, keyspace, [{
        "SOURCE": "users", "WRITETIME_FROM": 1, "COLUMNS": {"tags": None}}])
    assert run_migration(settings)[0] == 0
    assert rows_of(target, keyspace, "users", ("id", "name", "tags")) == [(1, "a", None)]


@pytest.mark.parametrize(("source_name", "target_name"), [
    ("4.1", "5.0 target"), ("5.0 source", "4.1")], ids=["4.1 to 5.0", "5.0 to 4.1"])
def test_lists_changed_between_runs_are_never_appended_twice(
        tmp_path, pair, source_name, target_name):
    """A list appended to or shortened on the source, or appended to on the target, between
    two runs: where one side cannot report list writetimes, the guard cannot tell which list
    is newer, and writing the source's at its old writetime would add its elements to the
    target's. Such a list is written at the time of the copy instead, replacing the target's."""
    opened = pair(source_name, target_name)
    source_host, target_host = opened.source_host, opened.target_host
    source, target, keyspace = opened.source, opened.target, opened.keyspace
    for session in (source, target):
        session.execute(f"CREATE TABLE {keyspace}.songs (id int PRIMARY KEY, title text, "
                        "plays list<int>)")
    for key in range(3):
        source.execute(f"INSERT INTO {keyspace}.songs (id, title, plays) VALUES (%s, 'x', "
                       "[1, 2, 3]) USING TIMESTAMP 1000", (key,))
    settings = write_settings(tmp_path, source_host, target_host, keyspace, ["songs"])
    assert run_migration(settings)[0] == 0
    source.execute(f"UPDATE {keyspace}.songs SET plays = plays + [4] WHERE id = 0")
    source.execute(f"UPDATE {keyspace}.songs SET plays = plays - [2] WHERE id = 1")
    target.execute(f"UPDATE {keyspace}.songs SET plays = plays + [9] WHERE id = 2")
    expected = {0: [1, 2, 3, 4], 1: [1, 3], 2: [1, 2, 3]}
    for _ in range(2):
        assert run_migration(settings)[0] == 0
        assert dict(rows_of(source, keyspace, "songs", ("id", "plays"))) == expected
        assert dict(rows_of(target, keyspace, "songs", ("id", "plays"))) == expected
