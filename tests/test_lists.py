"""Non-frozen lists are written once, whatever happens between the writer and the target: a
retry after a timeout whose write landed, the row-by-row fallback after a batch that landed,
a rerun from a source that cannot report list writetimes. Real target, injected failures."""

from __future__ import annotations

import pytest
from cassandra import InvalidRequest, OperationTimedOut

from tests.helpers import rows_of
from transforms.cells import CellOptions, writetime_key
from transforms.connection import CassandraConnection
from transforms.retry import RetryPolicy
from transforms.write import BatchMode, _WriteRowsFn

PLAYLISTS = ("CREATE TABLE {keyspace}.playlists (id int, pos int, songs list<text>, "
             "tags set<text>, PRIMARY KEY (id, pos))")
COLUMNS = ("id", "pos", "songs", "tags")
FAST_RETRIES = RetryPolicy(retries=3, initial_backoff=0.01, max_backoff=0.05)


def playlist_rows(count: int, list_writetimes: bool = True) -> list[dict]:
    """Rows as the reader emits them with writetimes (a collection's writetime is per element;
    a source older than Cassandra 5.0 reports none for non-frozen collections, and the writer
    then writes them with the row's other cells)."""
    rows = []
    for number in range(count):
        songs = [f"song-{number}-{index}" for index in range(1 + number % 4)]
        stamp = 1_700_000_000_000_000 + number
        row = {"id": number % 7, "pos": number, "songs": songs, "tags": {f"tag-{number % 3}"},
               writetime_key("tags"): [stamp]}
        if list_writetimes:
            row[writetime_key("songs")] = [stamp] * len(songs)
        rows.append(row)
    return rows


class _FutureOf:
    def __init__(self, error):
        self._error = error

    def result(self):
        raise self._error


class _LandsThenFails:
    """A session whose first ``failures`` requests of a kind reach Cassandra and are applied,
    after which the client reports ``error`` anyway: a lost response, as the writer sees it."""

    def __init__(self, failures: int, error: Exception, batches: bool):
        self._session = None  # the writer's, set when it is wrapped
        self.failures = failures
        self._error = error
        self._batches = batches

    def execute_async(self, statement, *args, **kwargs):
        future = self._session.execute_async(statement, *args, **kwargs)
        is_batch = type(statement).__name__ == "BatchStatement"
        query = getattr(getattr(statement, "prepared_statement", None), "query_string", "")
        hit = is_batch if self._batches else query.startswith("INSERT")
        if self.failures and hit:
            self.failures -= 1
            future.result()
            return _FutureOf(self._error)
        return future

    def __getattr__(self, name):
        return getattr(self._session, name)


def write(hosts, keyspace, rows, batch_mode, failing: _LandsThenFails | None = None) -> list:
    """Write ``rows`` with the row writer (writetimes kept), through ``failing`` if given;
    return what it emitted (dead letters and downgrades)."""
    writer = _WriteRowsFn(CassandraConnection(hosts=(hosts[1],)), keyspace, "playlists",
                          FAST_RETRIES, batch_mode, max_in_flight=4,
                          metrics_namespace=f"lists-{keyspace}", cells=CellOptions(writetime=True))
    writer.setup()
    session = writer._session
    try:
        if failing is not None:
            failing._session = session
            writer._session = failing
        writer.start_bundle()
        return list(writer.process(rows)) + list(writer.finish_bundle())
    finally:
        writer._session = session
        writer.teardown()


def expected(rows) -> list[tuple]:
    return sorted((row["id"], row["pos"], row["songs"], row["tags"]) for row in rows)


@pytest.mark.parametrize(("batch_mode", "failing"), [
    # Ten single-row INSERTs land, then time out: each is retried.
    (BatchMode.NONE, _LandsThenFails(10, OperationTimedOut(errors="injected"), batches=False)),
    # The bundle's one batch lands, then fails for good: its rows are written one by one.
    (BatchMode.BUNDLE, _LandsThenFails(1, InvalidRequest("injected"), batches=True)),
], ids=["retry after a timeout", "row fallback after a batch"])
def test_a_resend_after_a_write_that_landed_does_not_append_lists_again(
        keyspace, cassandra_hosts, target_session, batch_mode, failing):
    target_session.execute(PLAYLISTS.format(keyspace=keyspace))
    rows = playlist_rows(40)
    assert write(cassandra_hosts, keyspace, rows, batch_mode, failing) == []
    assert failing.failures == 0  # every injected failure happened
    assert rows_of(target_session, keyspace, "playlists", COLUMNS) == expected(rows)


def test_lists_without_source_writetimes_are_not_appended_by_a_rerun(
        keyspace, cassandra_hosts, target_session):
    """What a source older than Cassandra 5.0 gives: no writetime for a non-frozen list."""
    target_session.execute(PLAYLISTS.format(keyspace=keyspace))
    rows = playlist_rows(30, list_writetimes=False)
    for _ in range(3):
        assert write(cassandra_hosts, keyspace, rows, BatchMode.REPLICA_SET) == []
    assert rows_of(target_session, keyspace, "playlists", COLUMNS) == expected(rows)


def test_a_newer_list_on_the_target_wins(keyspace, cassandra_hosts, target_session):
    target_session.execute(PLAYLISTS.format(keyspace=keyspace))
    rows = playlist_rows(10)
    assert write(cassandra_hosts, keyspace, rows, BatchMode.REPLICA_SET) == []
    target_session.execute(f"UPDATE {keyspace}.playlists SET songs = ['newer'] "
                           "WHERE id = 3 AND pos = 3")
    assert write(cassandra_hosts, keyspace, rows, BatchMode.REPLICA_SET) == []
    copied = {(row[0], row[1]): row[2]
              for row in rows_of(target_session, keyspace, "playlists", COLUMNS)}
    assert copied.pop((3, 3)) == ["newer"]
    assert copied == {(row["id"], row["pos"]): row["songs"] for row in rows
                      if (row["id"], row["pos"]) != (3, 3)}
