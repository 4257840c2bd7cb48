"""Validation against the real clusters (source 127.0.0.1, target 127.0.0.2): a clean copy is
valid row for row; every kind of difference is found with its keys; auto-correct repairs what
it should and nothing else; counters are reconciled, not doubled; a killed validation resumes."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from tests.helpers import differences, rows_of, run_migration, run_validation, write_settings
from tests.test_fidelity import _fill_all_types, _schema
from tools import sample_data

COLUMNS = sample_data.COLUMNS


def _by_kind(summary) -> dict[str, set]:
    """Difference records as kind -> set of (account_id, seq)."""
    found: dict[str, set] = {}
    for record in differences(summary):
        key = (record["partition_key"]["account_id"], record["clustering"]["seq"])
        found.setdefault(record["kind"], set()).add(key)
    return found


def _copied(tmp_path, hosts, keyspace, source_session, rows: int, shape: str, **settings):
    """``events`` filled on the source and migrated; the settings of the copy."""
    sample_data.fill_table(source_session, keyspace, "events", rows, shape)
    path = write_settings(tmp_path, *hosts[:2], keyspace, ["events"], CREATE_TARGET_TABLES=True,
                          **settings)
    assert run_migration(path)[0] == 0
    return path


def _table(summary) -> dict:
    (table,) = summary["tables"]
    return table


def test_a_clean_copy_of_every_shape_is_valid_row_for_row(
        tmp_path, keyspace, cassandra_hosts, source_session, target_session):
    _schema(source_session, keyspace)
    _fill_all_types(source_session, keyspace)
    sample_data.fill_table(source_session, keyspace, "narrow", 3_000, "narrow")
    sample_data.fill_table(source_session, keyspace, "wide", 6_000, "wide")
    settings = write_settings(tmp_path, *cassandra_hosts[:2], keyspace,
                              ["all_types", "narrow", "wide"], CREATE_TARGET_TABLES=True)
    code, _ = run_migration(settings)
    assert code == 0

    code, summary = run_validation(settings)

    assert code == 0, summary
    tables = {table["source"].split(".")[1]: table for table in summary["tables"]}
    source_rows = {name: len(rows_of(source_session, keyspace, name, ("*",)))
                   for name in tables}
    for name, table in tables.items():
        assert table["status"] == "valid", table
        assert table["valid"] == table["rows_read_source"] == table["rows_read_target"] \
            == source_rows[name] > 0
        for kind in ("missing", "extra", "mismatched", "newer_on_target",
                     "changed_during_validation"):
            assert table[kind] == 0, (name, kind, table)
    assert differences(summary) == []
    assert summary["totals"]["valid"] == sum(source_rows.values())


def test_every_kind_of_difference_is_found_and_auto_correct_repairs_only_what_it_should(
        tmp_path, keyspace, cassandra_hosts, source_session, target_session):
    settings = _copied(tmp_path, cassandra_hosts, keyspace, source_session, 2_000, "mixed")
    keys = sorted(rows_of(source_session, keyspace, "events", ("account_id", "seq")))
    table = f"{keyspace}.events"
    # The source moves on: 100 new rows, 100 values changed, 50 cells written again with the
    # same value at a newer writetime.
    added = {(100_000 + index, 1) for index in range(100)}
    for account, seq in added:
        source_session.execute(f"INSERT INTO {table} (account_id, seq, kind, note) "
                               "VALUES (%s, %s, 'new', 'added later')", (account, seq))
    changed = set(keys[0:100])
    for account, seq in changed:
        source_session.execute(f"UPDATE {table} SET note = 'changed' WHERE account_id = %s "
                               "AND seq = %s", (account, seq))
    rewritten = set(keys[100:150])
    for account, seq in rewritten:
        (kind,) = source_session.execute(f"SELECT kind FROM {table} WHERE account_id = %s "
                                         "AND seq = %s", (account, seq)).one()
        source_session.execute(f"UPDATE {table} SET kind = %s WHERE account_id = %s "
                               "AND seq = %s", (kind, account, seq))
    # The target gets 100 rows of its own and 20 newer writes.
    extra = {(200_000 + index, 1) for index in range(100)}
    for account, seq in extra:
        target_session.execute(f"INSERT INTO {table} (account_id, seq, kind) "
                               "VALUES (%s, %s, 'target only')", (account, seq))
    newer = set(keys[200:220])
    time.sleep(0.01)
    for account, seq in newer:
        target_session.execute(f"UPDATE {table} SET note = 'written on the target' "
                               "WHERE account_id = %s AND seq = %s", (account, seq))

    code, summary = run_validation(settings)

    assert code == 1
    found = _table(summary)
    assert (found["missing"], found["mismatched"], found["extra"], found["newer_on_target"],
            found["changed_during_validation"]) == (100, 150, 100, 20, 0), found
    assert found["valid"] == len(keys) - 150 - 20
    assert found["status"] == "differences" and found["corrected"] == 0
    by_kind = _by_kind(summary)
    assert by_kind == {"missing": added, "mismatched": changed | rewritten, "extra": extra,
                       "newer_on_target": newer}
    mismatched = [record for record in differences(summary) if record["kind"] == "mismatched"]
    changed_note = [record["columns"]["note"] for record in mismatched
                    if (record["partition_key"]["account_id"],
                        record["clustering"]["seq"]) in changed]
    assert len(changed_note) == 100
    assert all(cell["source"] == "changed" and cell["source_writetime"] > (
        cell["target_writetime"] or 0) for cell in changed_note)

    code, summary = run_validation(settings, "--set", "AUTO_CORRECT=true")

    assert code == 1, summary  # found, and rewritten: a second validation proves the repair
    found = _table(summary)
    assert (found["missing"], found["mismatched"], found["corrected"]) == (100, 150, 250)
    assert found["status"] == "corrected"
    notes = [target_session.execute(f"SELECT note FROM {table} WHERE account_id = %s "
                                    "AND seq = %s", key).one().note for key in newer]
    assert notes == ["written on the target"] * 20

    code, summary = run_validation(settings)

    assert code == 0, summary
    found = _table(summary)
    assert (found["missing"], found["mismatched"], found["extra"], found["newer_on_target"]) \
        == (0, 0, 100, 20)
    assert found["status"] == "valid"

    code, summary = run_validation(settings, "--set", "DELETE_EXTRA_ROWS=true")

    assert code == 0 and _table(summary)["deleted"] == 100
    code, summary = run_validation(settings)
    found = _table(summary)
    assert (found["extra"], found["valid"]) == (0, len(keys) + 100 - 20), found
    assert set(rows_of(target_session, keyspace, "events", ("account_id", "seq"))) \
        == set(keys) | added


def test_rows_deleted_on_the_target_are_missing_and_only_a_rewrite_at_a_new_time_restores_them(
        tmp_path, keyspace, cassandra_hosts, source_session, target_session):
    settings = _copied(tmp_path, cassandra_hosts, keyspace, source_session, 1_000, "narrow")
    deleted = sorted(rows_of(target_session, keyspace, "events", ("account_id", "seq")))[:30]
    for account, seq in deleted:
        target_session.execute(f"DELETE FROM {keyspace}.events WHERE account_id = %s "
                               "AND seq = %s", (account, seq))

    code, summary = run_validation(settings, "--set", "AUTO_CORRECT=true")

    assert code == 1 and _table(summary)["missing"] == 30 == _table(summary)["corrected"]
    assert _by_kind(summary) == {"missing": set(deleted)}
    # Rewritten at the source's writetimes, older than the tombstones: still shadowed.
    code, summary = run_validation(settings)
    assert code == 1 and _table(summary)["missing"] == 30
    # What the README offers: correct without keeping writetimes (the rows are written now,
    # after the tombstones), then validate values only.
    code, summary = run_validation(settings, "--set", "AUTO_CORRECT=true",
                                   "--set", "PRESERVE_WRITETIME=false")
    assert code == 1 and _table(summary)["corrected"] == 30
    code, summary = run_validation(settings, "--set", "PRESERVE_WRITETIME=false")
    assert code == 0 and _table(summary)["valid"] == 1_000, summary
    assert rows_of(target_session, keyspace, "events", COLUMNS) == rows_of(
        source_session, keyspace, "events", COLUMNS)


def test_a_changed_counter_is_found_and_corrected_without_doubling(
        tmp_path, keyspace, cassandra_hosts, source_session, target_session):
    for session in (source_session, target_session):
        session.execute(f"CREATE TABLE {keyspace}.hits (page int, day int, views counter, "
                        "clicks counter, PRIMARY KEY (page, day))")
    for page in range(50):
        for day in range(4):
            source_session.execute(f"UPDATE {keyspace}.hits SET views = views + %s, "
                                   "clicks = clicks + 1 WHERE page = %s AND day = %s",
                                   (page * 10 + day, page, day))
    settings = write_settings(tmp_path, *cassandra_hosts[:2], keyspace, ["hits"])
    assert run_migration(settings)[0] == 0
    for page in range(5):  # the source counts on for 5 rows
        source_session.execute(f"UPDATE {keyspace}.hits SET views = views + 1000 "
                               "WHERE page = %s AND day = 0", (page,))

    code, summary = run_validation(settings, "--set", "AUTO_CORRECT=true")

    found = _table(summary)
    assert code == 1 and (found["mismatched"], found["valid"], found["corrected"]) \
        == (5, 195, 5), found
    columns = ("page", "day", "views", "clicks")
    assert rows_of(target_session, keyspace, "hits", columns) == rows_of(
        source_session, keyspace, "hits", columns)
    code, summary = run_validation(settings, "--set", "AUTO_CORRECT=true")
    assert code == 0 and _table(summary)["valid"] == 200  # nothing added twice
    assert rows_of(target_session, keyspace, "hits", columns) == rows_of(
        source_session, keyspace, "hits", columns)


def test_writes_to_the_source_during_a_validation_are_changed_not_mismatched(
        tmp_path, keyspace, cassandra_hosts, source_session, target_session):
    settings = _copied(tmp_path, cassandra_hosts, keyspace, source_session, 1_000, "narrow")
    keys = sorted(rows_of(source_session, keyspace, "events", ("account_id", "seq")))
    # Writes with a writetime after the validation's start are what a write made while it runs
    # looks like to it (a live write during a run cannot be timed against the reads).
    later = int((time.time() + 3600) * 1_000_000)
    live = set(keys[:40])
    for account, seq in live:
        source_session.execute(f"UPDATE {keyspace}.events USING TIMESTAMP {later} "
                               "SET note = 'live' WHERE account_id = %s AND seq = %s",
                               (account, seq))
    new_rows = {(500_000 + index, 1) for index in range(10)}
    for account, seq in new_rows:
        source_session.execute(f"INSERT INTO {keyspace}.events (account_id, seq, note) "
                               f"VALUES (%s, %s, 'new') USING TIMESTAMP {later}", (account, seq))

    code, summary = run_validation(settings)

    found = _table(summary)
    # Not proven equal: exit 1, "unsettled" (neither valid nor a difference).
    assert code == 1, found
    assert found["status"] == summary["status"] == "unsettled"
    assert (found["changed_during_validation"], found["mismatched"], found["missing"]) \
        == (50, 0, 0)
    assert _by_kind(summary) == {"changed_during_validation": live | new_rows}


def test_a_killed_validation_resumes_where_it_stopped(
        tmp_path, keyspace, cassandra_hosts, source_session, target_session):
    rows = 40_000
    _copied(tmp_path, cassandra_hosts, keyspace, source_session, rows, "narrow", SPLITS=64)
    slow = write_settings(tmp_path, *cassandra_hosts[:2], keyspace, ["events"], SPLITS=64,
                          FETCH_BATCH_SIZE=10, FETCH_PAGE_BYTES=None, MAX_WORKERS=1)
    process = subprocess.Popen([sys.executable, "-m", "pipelines.validate", "--config",
                                str(slow)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    identity = (f"validate: {source_session.cluster.metadata.cluster_name}/{keyspace} -> "
                f"{target_session.cluster.metadata.cluster_name}/{keyspace}")
    deadline = time.monotonic() + 120
    done = 0
    while time.monotonic() < deadline and process.poll() is None and done < 20:
        time.sleep(0.2)
        run = target_session.execute("SELECT run_id FROM migrator_ledger.runs WHERE settings = %s",
                                     (identity,)).one()
        if run is not None:
            done = sum(row.status == "done" for row in target_session.execute(
                "SELECT status FROM migrator_ledger.work_items WHERE run_id = %s", (run.run_id,)))
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the validation ended before it was killed"

    code, summary = run_validation(slow, "--resume", "--set", "FETCH_BATCH_SIZE=1000")

    assert code == 0, summary
    found = _table(summary)
    assert found["work_items_done"] == found["work_items_total"] == 64
    assert found["valid"] == rows  # each row counted once over both attempts
    assert 0 < found["attempt_rows_read_source"] <= 0.8 * rows  # only what was left
    assert summary["run_id"] == run.run_id


def test_a_sample_validates_a_share_of_the_token_ranges(
        tmp_path, keyspace, cassandra_hosts, source_session, target_session):
    settings = _copied(tmp_path, cassandra_hosts, keyspace, source_session, 4_000, "narrow",
                       SPLITS=100)

    code, summary = run_validation(settings, "--set", "SAMPLE_PERCENT=25")

    found = _table(summary)
    assert code == 0 and summary["sample_percent"] == 25
    assert 5 <= found["work_items_total"] <= 50  # about a quarter of the 100 ranges
    assert 0 < found["valid"] < 4_000
    assert found["valid"] == found["rows_read_source"]


def test_a_target_clustered_in_another_order_is_refused_before_anything_is_read(
        tmp_path, keyspace, cassandra_hosts, source_session, target_session):
    sample_data.fill_table(source_session, keyspace, "events", 100, "wide")  # seq DESC
    target_session.execute(sample_data.TABLE_CQL.format(keyspace=keyspace, table="events")
                           .replace("seq DESC", "seq ASC"))
    settings = write_settings(tmp_path, *cassandra_hosts[:2], keyspace, ["events"])
    assert run_migration(settings)[0] == 0  # a copy does not mind the order

    code, summary = run_validation(settings)

    assert code == 2 and summary is None
    log = (tmp_path / "migrator.log").read_text()
    assert "clustered seq ASC" in log and "seq DESC" in log


def test_the_migrations_mapping_and_window_are_validated_as_the_migration_applied_them(
        tmp_path, keyspace, cassandra_hosts, source_session, target_session):
    """Renamed, skipped and constant columns and a writetime window: a faithful copy is valid
    (rows outside the window not compared), and a changed value is named by its target column."""
    sample_data.fill_table(source_session, keyspace, "events", 600, "narrow")
    keys = sorted(rows_of(source_session, keyspace, "events", ("account_id", "seq")))
    time.sleep(0.05)
    since = int(time.time() * 1_000_000)
    time.sleep(0.05)
    for account, seq in keys[:50]:  # written after the window opens: copied
        source_session.execute(f"UPDATE {keyspace}.events SET note = 'late' "
                               "WHERE account_id = %s AND seq = %s", (account, seq))
    for account, seq in keys[50:60]:  # only a skipped column written late: copied too
        source_session.execute(f"UPDATE {keyspace}.events SET payload = 0xff "
                               "WHERE account_id = %s AND seq = %s", (account, seq))
    target_session.execute(f"CREATE TABLE {keyspace}.renamed (account_id int, seq int, "
                           "event_id uuid, kind text, amount bigint, remark text, "
                           "created timestamp, origin text, PRIMARY KEY (account_id, seq)) "
                           "WITH CLUSTERING ORDER BY (seq DESC)")
    table = {"SOURCE": "events", "TARGET": "renamed", "COLUMNS": {"note": "remark",
                                                                  "payload": None},
             "CONSTANTS": {"origin": "legacy"}, "WRITETIME_FROM": since}
    settings = write_settings(tmp_path, *cassandra_hosts[:2], keyspace, [table])
    assert run_migration(settings)[0] == 0
    assert len(rows_of(target_session, keyspace, "renamed", ("account_id",))) == 60

    code, summary = run_validation(settings)

    found = _table(summary)
    assert code == 0, found
    assert (found["valid"], found["out_of_window"], found["missing"], found["extra"]) \
        == (60, 540, 0, 0)

    account, seq = keys[0]  # the source moves on
    source_session.execute(f"UPDATE {keyspace}.events SET note = 'moved on' "
                           "WHERE account_id = %s AND seq = %s", (account, seq))
    code, summary = run_validation(settings)

    assert code == 1 and _table(summary)["mismatched"] == 1
    (record,) = differences(summary)
    assert record["kind"] == "mismatched" and set(record["columns"]) == {"remark"}
    assert (record["columns"]["remark"]["source"], record["columns"]["remark"]["target"]) == (
        "moved on", "late")


def test_extra_rows_are_never_deleted_on_a_source_read_at_the_fallback_level(
        tmp_path, keyspace, cassandra_hosts, source_session, target_session, rf3_keyspace):
    """The source keyspace has RF 3 on one node: every QUORUM read is Unavailable and falls
    back to ONE, where a lagging replica could lack rows. Rows only on the target are then not
    proof of extra rows: DELETE_EXTRA_ROWS leaves them, and the table is not called valid."""
    source_keyspace = rf3_keyspace(source_session)
    sample_data.fill_table(source_session, source_keyspace, "events", 1_000, "narrow")
    sample_data.fill_table(target_session, keyspace, "events", 1_000, "narrow")
    for account in range(900_000, 900_020):
        target_session.execute(f"INSERT INTO {keyspace}.events (account_id, seq, note) "
                               "VALUES (%s, 0, 'only here')", (account,))
    settings = write_settings(tmp_path, *cassandra_hosts[:2], source_keyspace, ["events"],
                              target_keyspace=keyspace, READ_CONSISTENCY="QUORUM",
                              DELETE_EXTRA_ROWS=True)

    code, summary = run_validation(settings)

    table = _table(summary)
    assert code == 1, table
    assert table["status"] == summary["status"] == "unsettled"
    assert table["pages_downgraded"] > 0 and table["extra"] == 20
    assert table["deleted"] == 0 and table["delete_skipped"] == 20
    assert len(rows_of(target_session, keyspace, "events", ("account_id",))) == 1_020
    assert all(record.get("delete_skipped") for record in differences(summary)
               if record["kind"] == "extra")


def test_without_kept_writetimes_auto_correct_never_overwrites_a_later_target_write(
        tmp_path, keyspace, cassandra_hosts, source_session, target_session):
    """Copied without source writetimes, every target cell is newer than its source: a write
    made on the target after the copy looks the same. AUTO_CORRECT then writes missing rows
    only, and leaves the differing ones (reported) instead of overwriting them."""
    settings = _copied(tmp_path, cassandra_hosts, keyspace, source_session, 500, "narrow",
                       PRESERVE_WRITETIME=False)
    keys = sorted(rows_of(target_session, keyspace, "events", ("account_id", "seq")))
    changed, deleted = keys[:20], keys[20:30]
    for account, seq in changed:  # the application writes to the target after the copy
        target_session.execute(f"UPDATE {keyspace}.events SET note = 'written later' "
                               "WHERE account_id = %s AND seq = %s", (account, seq))
    for account, seq in deleted:
        target_session.execute(f"DELETE FROM {keyspace}.events WHERE account_id = %s "
                               "AND seq = %s", (account, seq))

    code, summary = run_validation(settings, "--set", "AUTO_CORRECT=true")

    table = _table(summary)
    assert code == 1 and table["status"] == "differences", table
    assert (table["mismatched"], table["missing"]) == (20, 10)
    assert (table["correction_skipped"], table["corrected"]) == (20, 10)
    notes = {row[:2]: row[2] for row in rows_of(target_session, keyspace, "events",
                                               ("account_id", "seq", "note"))}
    assert all(notes[key] == "written later" for key in changed)  # not overwritten
    assert all(key in notes for key in deleted)  # written again, after the tombstones
    assert all(record.get("correction_skipped") for record in differences(summary)
               if record["kind"] == "mismatched")
