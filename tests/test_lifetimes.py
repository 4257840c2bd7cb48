"""How long a copied cell lives, against the real clusters: a target table's default TTL must
not shorten what the source keeps. Read back with ttl() from the target node."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from tests.helpers import run_migration, write_settings
from transforms.cells import VALUES_ONLY, CellOptions
from transforms.dead_letters import failed_row_record
from transforms.inserts import InsertStatements

KEEP = 100_000  # a TTL long enough not to pass during a test


def _lifetimes(session, keyspace):
    return {row.k: (row.tv, row.tn) for row in session.execute(
        f"SELECT k, ttl(v) AS tv, ttl(n) AS tn FROM {keyspace}.t")}


@pytest.mark.parametrize("preserve_ttl", [True, False], ids=["ttl-kept", "ttl-not-kept"])
@pytest.mark.parametrize("path", ["serialized", "decoded"])
def test_a_targets_default_ttl_expires_nothing_the_source_keeps(
        tmp_path, keyspace, cassandra_hosts, source_session, target_session, caplog, path,
        preserve_ttl):
    # A non-frozen list kept with its writetimes sends the rows the decoded way.
    columns = "k int PRIMARY KEY, v text, n int" + (", l list<int>" if path == "decoded" else "")
    source_session.execute(f"CREATE TABLE {keyspace}.t ({columns})")
    target_session.execute(f"CREATE TABLE {keyspace}.t ({columns}) "
                           "WITH default_time_to_live = 3600")
    for k in range(30):
        using = f" USING TTL {KEEP}" if 10 <= k < 20 else ""
        source_session.execute(f"INSERT INTO {keyspace}.t (k, v, n) VALUES (%s, %s, %s){using}",
                               (k, f"value {k}", k))
        if path == "decoded":
            source_session.execute(f"UPDATE {keyspace}.t SET l = l + [1] WHERE k = %s", (k,))
        if k >= 20:  # cells of one row with and without a TTL: written apart
            source_session.execute(f"UPDATE {keyspace}.t USING TTL {KEEP} SET n = %s "
                                   "WHERE k = %s", (k + 1, k))
    settings = write_settings(tmp_path, *cassandra_hosts[:2], keyspace, ["t"],
                              PRESERVE_TTL=preserve_ttl)

    code, summary = run_migration(settings)

    assert code == 0, summary
    assert summary["tables"][0]["rows_written"] == 30
    if path == "serialized" and preserve_ttl:
        assert f"{keyspace}.t: values pass through as read" in caplog.text
    source, target = _lifetimes(source_session, keyspace), _lifetimes(target_session, keyspace)
    assert set(target) == set(range(30))
    for k, (source_v, source_n) in source.items():
        target_v, target_n = target[k]
        for source_ttl, target_ttl in ((source_v, target_v), (source_n, target_n)):
            if not preserve_ttl:  # TTLs not carried: the target's default applies, as chosen
                assert 3600 - 120 <= target_ttl <= 3600, (k, source[k], target[k])
            elif source_ttl is None:
                assert target_ttl is None, (k, source[k], target[k])  # lives as on the source
            else:
                # The remaining TTL at the copy: within seconds of the source's (both tick).
                assert source_ttl - 120 <= target_ttl <= source_ttl + 2, (k, source[k], target[k])
    assert [row.n for row in target_session.execute(
        f"SELECT n FROM {keyspace}.t WHERE k = 25")] == [26]


def _inserts(default_ttl: int, cells: CellOptions) -> InsertStatements:
    table = SimpleNamespace(options={"default_time_to_live": default_ttl}, columns={})
    keyspace = SimpleNamespace(tables={"t": table})
    session = SimpleNamespace(cluster=SimpleNamespace(metadata=SimpleNamespace(
        keyspaces={"ks": keyspace})))
    return InsertStatements(session, "ks", "t", ("k",), (), cells)


def test_a_dead_letters_cql_writes_ttl_0_where_the_target_has_a_default():
    row = {"k": 1, "v": "one", "n": None, "writetime(v)": 5, "ttl(v)": None,
           "writetime(n)": None, "ttl(n)": None}
    kept = CellOptions(writetime=True, ttl=True)
    assert _inserts(3600, kept).groups(row) == [({"k": 1, "v": "one"}, 5, 0)]
    assert _inserts(0, kept).groups(row) == [({"k": 1, "v": "one"}, 5, None)]
    values = {"k": 1, "v": "one", "n": None}
    ttl_only = CellOptions(ttl=True)
    values = {"k": 1, "v": "one", "n": None, "ttl(v)": None, "ttl(n)": None}
    assert _inserts(3600, ttl_only).groups(values) == [({"k": 1, "v": "one"}, None, 0)]
    assert _inserts(0, VALUES_ONLY).groups(values) is None
    # Without kept TTLs, the target's default applies: no TTL clause.
    assert _inserts(3600, VALUES_ONLY).groups({"k": 1, "v": "one"}) is None
    record = failed_row_record("ks", "t", {}, values, SimpleNamespace(
        error=ValueError("refused"), attempts=1), _inserts(3600, ttl_only).groups(values))
    assert record["cql"] == "INSERT INTO ks.t (k, v) VALUES (1, 'one') USING TTL 0;"


def test_a_static_written_later_does_not_keep_an_expired_row_alive(
        tmp_path, keyspace, cassandra_hosts, source_session, target_session):
    """A clustering row inserted with a TTL and a static set later without one: when the row
    expires on the source only the static remains, and so it must on the target."""
    for session in (source_session, target_session):
        session.execute(f"CREATE TABLE {keyspace}.t (pk int, ck int, v text, s text static, "
                        "PRIMARY KEY (pk, ck))")
    for pk in range(10):
        source_session.execute(f"INSERT INTO {keyspace}.t (pk, ck, v) VALUES (%s, 1, 'short') "
                               "USING TTL 20", (pk,))
        source_session.execute(f"INSERT INTO {keyspace}.t (pk, ck, v) VALUES (%s, 2, 'long')",
                               (pk,))
        if pk % 2:  # a row that lives by its row marker only, its cells null
            source_session.execute(f"INSERT INTO {keyspace}.t (pk, ck) VALUES (%s, 3)", (pk,))
        source_session.execute(f"UPDATE {keyspace}.t SET s = 'static' WHERE pk = %s", (pk,))
    written = time.monotonic()
    settings = write_settings(tmp_path, *cassandra_hosts[:2], keyspace, ["t"])

    code, summary = run_migration(settings)

    assert code == 0, summary
    assert time.monotonic() - written < 18, "the copy took longer than the rows' TTL"
    query = f"SELECT pk, ck, v, s FROM {keyspace}.t"
    assert sorted(target_session.execute(query)) == sorted(source_session.execute(query))
    time.sleep(max(0.0, 21 - (time.monotonic() - written)))
    source = sorted(source_session.execute(query))
    assert len(source) == 15 and all(row.ck != 1 for row in source)  # the TTL'd rows expired
    assert sorted(target_session.execute(query)) == source


def test_a_replay_takes_the_time_since_the_failure_off_each_ttl():
    """Days between a failure and its replay: a cell must not outlive its source copy."""
    import datetime

    from pipelines.replay import _cql_now

    failed_at = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    groups = [({"k": 1, "a": "x"}, 10, 1_000), ({"k": 1, "b": "y"}, 20, 50),
              ({"k": 1, "c": "z"}, 30, 0), ({"k": 1, "d": "w"}, 40, None)]
    values = {"k": 1, "a": "x", "b": "y", "c": "z", "d": "w"}
    record = failed_row_record("ks", "t", {}, values, SimpleNamespace(
        error=ValueError("refused"), attempts=1), groups)
    record["failed_at"] = failed_at.isoformat()
    assert _cql_now(record, failed_at.timestamp()) == record["cql"]  # nothing elapsed
    later = failed_at.timestamp() + 99.5  # 100 whole seconds taken off
    assert _cql_now(record, later) == (
        "INSERT INTO ks.t (k, a) VALUES (1, 'x') USING TIMESTAMP 10 AND TTL 900; "
        "INSERT INTO ks.t (k, c) VALUES (1, 'z') USING TIMESTAMP 30 AND TTL 0; "
        "INSERT INTO ks.t (k, d) VALUES (1, 'w') USING TIMESTAMP 40;")
    assert _cql_now(record, failed_at.timestamp() + 10_000) == (
        "INSERT INTO ks.t (k, c) VALUES (1, 'z') USING TIMESTAMP 30 AND TTL 0; "
        "INSERT INTO ks.t (k, d) VALUES (1, 'w') USING TIMESTAMP 40;")
    expiring_only = failed_row_record("ks", "t", {}, {"k": 1, "a": "x"}, SimpleNamespace(
        error=ValueError("refused"), attempts=1), groups[:1])
    assert _cql_now(expiring_only, datetime.datetime.fromisoformat(
        expiring_only["failed_at"]).timestamp() + 5_000) is None  # expired on the source
