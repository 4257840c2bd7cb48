"""Settings: defaults, overrides, and bad settings that stop the run before anything is written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from cassandra import ConsistencyLevel

from pipelines import migrate
from pipelines.config import SettingsError, load_settings
from tests.helpers import rows_of, write_settings
from tools import sample_data
from transforms import BatchMode

MINIMAL = {"SOURCE": {"HOSTS": ["10.0.0.1"], "KEYSPACE": "shop"},
           "TARGET": {"HOSTS": "10.0.0.2, 10.0.0.3", "KEYSPACE": "shop_v2"},
           "TABLES": ["orders", {"SOURCE": "users", "TARGET": "customers"}]}


def write(tmp_path, document) -> str:
    path = tmp_path / "migrator_settings.yaml"
    path.write_text(document if isinstance(document, str) else yaml.safe_dump(document))
    return str(path)


def test_an_old_minimal_file_gets_every_default(tmp_path):
    settings = load_settings(write(tmp_path, MINIMAL))
    assert (settings.max_workers, settings.batch_insert_size, settings.fetch_batch_size) == (
        5, 50, 100)
    assert settings.write_consistency == ConsistencyLevel.QUORUM
    assert settings.fallback_consistency == ConsistencyLevel.ONE
    assert settings.read_consistency == ConsistencyLevel.LOCAL_QUORUM
    assert settings.retry_attempts == 3 and settings.batch_mode is BatchMode.REPLICA_SET
    assert settings.log_file == "migrator.log"
    assert settings.summary_file == "migration_summary.json"
    assert settings.failed_rows_dir == "failed_rows" and settings.splits is None
    assert settings.max_batch_bytes == 40 * 1024 and settings.max_rows_per_second is None
    assert settings.target.connection.hosts == ("10.0.0.2", "10.0.0.3")
    assert [(t.source, t.target) for t in settings.tables] == [("orders", "orders"),
                                                              ("users", "customers")]


def test_names_are_read_as_cql_reads_them(tmp_path):
    """Unquoted table and keyspace names fold to lower case; in double quotes they are exact.
    Column names are as the table lists them, or quoted as CQL writes them."""
    document = {**MINIMAL, "SOURCE": {"HOSTS": ["h"], "KEYSPACE": '"Shop"'},
                "TABLES": ['"Names"', "Orders", {
                    "SOURCE": '"Users"', "TARGET": "customers",
                    "COLUMNS": {'"Key-Name"': "key_name", "UserId": '"UserId2"',
                                "userid": None, '"say ""hi"""': "hi"},
                    "CONSTANTS": {'"Origin"': "x"}}]}
    settings = load_settings(write(tmp_path, document))
    assert settings.source.keyspace == "Shop"
    assert [(t.source, t.target) for t in settings.tables] == [
        ("Names", "Names"), ("orders", "orders"), ("Users", "customers")]
    assert dict(settings.tables[2].columns) == {"Key-Name": "key_name", "UserId": "UserId2",
                                                "userid": None, 'say "hi"': "hi"}
    assert settings.tables[2].constants == (("Origin", "x"),)
    with pytest.raises(SettingsError, match="in double quotes to keep upper case"):
        load_settings(write(tmp_path, {**MINIMAL, "TABLES": ['"Key-Name"']}))


def test_every_table_from_the_command_line(tmp_path):
    """--tables '*' (and --set TABLES=*): the one word that YAML reads as an alias."""
    settings = load_settings(write(tmp_path, MINIMAL), ["TABLES=*"])
    assert [(table.source, table.target) for table in settings.tables] == [("*", "*")]
    from pipelines import migrate as migrate_module
    from pipelines.migrate import MigrateOptions, PipelineOptions

    options = PipelineOptions(["--config", "x.yaml", "--tables", "*"])
    assert options.view_as(MigrateOptions).tables == "*"
    assert "TABLES=*" in migrate_module.command_line_overrides(options)


def test_command_line_overrides_win_over_the_file(tmp_path):
    settings = load_settings(write(tmp_path, {**MINIMAL, "MAX_WORKERS": 3}),
                             ["MAX_WORKERS=8", "TARGET.PORT=9142", "FALLBACK_CONSISTENCY=null"])
    assert settings.max_workers == 8 and settings.target.connection.port == 9142
    assert settings.fallback_consistency is None


def test_duplicate_partitions_are_listed_once_in_first_seen_order(tmp_path):
    """Two work items for one partition would read it twice, and a counter table's two
    readers could both add the same delta."""
    document = {**MINIMAL, "TABLES": [{"SOURCE": "a", "PARTITIONS": [
        3, [5], 3, 8, 5, [2, "x"], [2, "x"], [[1, 2]], [[1, 2]], "3", True, 1]}]}
    settings = load_settings(write(tmp_path, document))
    assert settings.tables[0].partitions == (
        (3,), (5,), (8,), (2, "x"), ([1, 2],), ("3",), (True,), (1,))


def test_password_is_never_in_the_repr(tmp_path, monkeypatch):
    monkeypatch.setenv("MIGRATOR_PW", "hunter2")
    document = {**MINIMAL, "SOURCE": {**MINIMAL["SOURCE"], "USERNAME": "app",
                                      "PASSWORD": "s3cret-value"}}
    settings = load_settings(write(tmp_path, document))
    assert "s3cret-value" not in repr(settings)
    assert settings.source.connection.resolve_password() == "s3cret-value"


BAD_SETTINGS = [
    ("broken YAML", "SOURCE: {HOSTS: [a\n", "not valid YAML"),
    ("not a mapping", "- just\n- a list\n", "must be a mapping of settings"),
    ("missing TABLES", {k: v for k, v in MINIMAL.items() if k != "TABLES"}, "TABLES: is required"),
    ("unknown key with hint", {**MINIMAL, "BATCHINSERTSIZE": 10},
     "BATCHINSERTSIZE: unknown setting (did you mean BATCH_INSERT_SIZE?)"),
    # A typo gets the closest names only (MAX_WORKERS alone), never the list of every key.
    ("a letter missing", {**MINIMAL, "MAX_WORKER": 3},
     "MAX_WORKER: unknown setting (did you mean MAX_WORKERS?)\n"),
    ("a nested typo", {**MINIMAL, "TARGET": {**MINIMAL["TARGET"], "USERNME": "u"}},
     "TARGET.USERNME: unknown setting (did you mean USERNAME?)\n"),
    ("no close name", {**MINIMAL, "FOO": 1},
     "FOO: unknown setting (the settings reference in README.md, section 'Settings', lists"),
    ("YAML error names the file", "SOURCE: {HOSTS: [a\n", "migrator_settings.yaml, line 1"),
    ("a port in HOSTS", {**MINIMAL, "TARGET": {**MINIMAL["TARGET"], "HOSTS": ["h:9999"]}},
     "TARGET.HOSTS: 'h:9999' holds a port: write the host alone in HOSTS and the port in PORT "
     "(PORT: 9999"),
    ("wrong type", {**MINIMAL, "MAX_WORKERS": "five"}, "MAX_WORKERS: must be a whole number"),
    ("out of range", {**MINIMAL, "BATCH_INSERT_SIZE": 0},
     "BATCH_INSERT_SIZE: must be between 1 and 10000, not 0"),
    ("bad consistency", {**MINIMAL, "WRITE_CONSISTENCY": "MOSTLY"},
     "WRITE_CONSISTENCY: must be one of"),
    ("missing keyspace", {**MINIMAL, "SOURCE": {"HOSTS": ["h"]}}, "SOURCE.KEYSPACE: is required"),
    ("bad table name", {**MINIMAL, "TABLES": ["orders; DROP TABLE x"]},
     "TABLES[0]: 'orders; DROP TABLE x' is not a Cassandra table"),
    ("table without SOURCE", {**MINIMAL, "TABLES": [{"TARGET": "x"}]},
     "TABLES[0].SOURCE: is required"),
    ("unset password variable", {**MINIMAL, "TARGET": {**MINIMAL["TARGET"], "USERNAME": "u",
                                                     "PASSWORD_ENV": "NO_SUCH_VARIABLE_X"}},
     "TARGET.PASSWORD_ENV: environment variable NO_SUCH_VARIABLE_X is not set"),
    ("password without user", {**MINIMAL, "TARGET": {**MINIMAL["TARGET"], "PASSWORD": "p"}},
     "TARGET.USERNAME: is required with PASSWORD"),
    ("missing CA file", {**MINIMAL, "SOURCE": {**MINIMAL["SOURCE"], "SSL": {
        "ENABLED": True, "CA_CERTS": "/no/such/ca.pem"}}},
     "SOURCE.SSL.CA_CERTS: file /no/such/ca.pem does not exist"),
    ("batch mode", {**MINIMAL, "BATCH_MODE": "LOGGED"}, "BATCH_MODE: must be one of"),
    ("duplicate target", {**MINIMAL, "TABLES": ["a", {"SOURCE": "b", "TARGET": "a"}]},
     "target table a appears more than once"),
    ("fallback ANY", {**MINIMAL, "FALLBACK_CONSISTENCY": "ANY"},
     "FALLBACK_CONSISTENCY: must be one of ALL, LOCAL_ONE, LOCAL_QUORUM, ONE, QUORUM, THREE, "
     "TWO, not 'ANY'"),
    ("fallback SERIAL", {**MINIMAL, "FALLBACK_CONSISTENCY": "LOCAL_SERIAL"},
     "FALLBACK_CONSISTENCY: must be one of ALL, LOCAL_ONE"),
    ("two columns renamed to one", {**MINIMAL, "TABLES": [
        {"SOURCE": "a", "COLUMNS": {"kind": "label", "note": "label", "x": None}}]},
     "TABLES[0].COLUMNS: kind and note are both renamed to label"),
    *[(f"WHERE with {found}", {**MINIMAL, "TABLES": [{"SOURCE": "a", "WHERE": where}]},
       f"TABLES[0].WHERE: must be a condition only (such as region = 'eu'), without {found}")
      for where, found in [
          ("x = 1 LIMIT 10", "LIMIT"),
          ("x = 1 limit 10", "LIMIT"),
          ("x = 'a'LIMIT 10", "LIMIT"),
          ("x = 1 PER  PARTITION\nLIMIT 1", "PER PARTITION LIMIT"),
          ("x = 1 ORDER BY y DESC", "ORDER BY"),
          ("x = 1 group by y", "GROUP BY"),
          ("x = 1 ALLOW FILTERING", "ALLOW FILTERING"),
          ("x = 1; DROP TABLE a", ";"),
          ("x = 'it''s' -- the rest", "--"),
      ]],
]


@pytest.mark.parametrize(("document", "message"), [case[1:] for case in BAD_SETTINGS],
                         ids=[case[0] for case in BAD_SETTINGS])
def test_bad_settings_name_the_file_and_the_key(tmp_path, document, message):
    path = write(tmp_path, document)
    with pytest.raises(SettingsError) as raised:
        load_settings(path)
    assert message in str(raised.value) + "\n"
    assert str(raised.value).startswith(path)
    assert "<unicode string>" not in str(raised.value)


def test_every_problem_is_reported_at_once(tmp_path):
    path = write(tmp_path, {**MINIMAL, "MAX_WORKERS": 0, "RETRY_ATTEMPTS": -1, "COLOUR": "red"})
    with pytest.raises(SettingsError) as raised:
        load_settings(path)
    for key in ("MAX_WORKERS", "RETRY_ATTEMPTS", "COLOUR"):
        assert f"{key}:" in str(raised.value)


def test_cli_exits_2_on_a_bad_file_without_touching_anything(tmp_path, capsys):
    path = write(tmp_path, {**MINIMAL, "SUMMARY_FILE": str(tmp_path / "s.json"),
                            "LOG_FILE": str(tmp_path / "m.log"), "FETCH_BATCH_SIZE": -5})
    assert migrate.run(["--config", path]) == 2
    assert "FETCH_BATCH_SIZE: must be between 1 and 100000, not -5" in capsys.readouterr().err
    assert not (tmp_path / "s.json").exists() and not (tmp_path / "m.log").exists()
    assert migrate.run([]) == 2
    assert "--config PATH" in capsys.readouterr().err


def test_the_command_prints_only_the_problem(tmp_path):
    """A fresh process, as users start it: Beam's import-time note about its missing gcp
    extra must not come before the migrator's own message."""
    missing = tmp_path / "nowhere.yaml"
    completed = subprocess.run([sys.executable, "-m", "pipelines.migrate", "--config",
                                str(missing)], capture_output=True, text=True, timeout=120,
                               cwd=Path(__file__).resolve().parents[1], check=False)
    assert completed.returncode == 2
    assert completed.stderr == f"error: {missing}: settings file not found\n"


# The same promise against the real clusters: problems only the clusters can reveal.
CLUSTER_PROBLEMS = [
    ("missing source table", {"TABLES": ["nope"]},
     "TABLES[0].SOURCE: table {ks}.nope does not exist"),
    ("missing target table", {"TABLES": [{"SOURCE": "events", "TARGET": "absent"}]},
     "TABLES[0].TARGET: table {ks}.absent does not exist"),
    ("missing keyspace", {"TARGET": {"KEYSPACE": "no_such_keyspace"}},
     "TARGET.KEYSPACE: keyspace no_such_keyspace does not exist"),
    ("primary key differs", {"TABLES": [{"SOURCE": "events", "TARGET": "other_key"}]},
     "the clustering key of {ks}.other_key (seq int, extra int) differs"),
    ("column type differs", {"TABLES": [{"SOURCE": "events", "TARGET": "other_type"}]},
     "column amount is bigint in {ks}.events but amount is int in {ks}.other_type"),
    ("column missing", {"TABLES": [{"SOURCE": "events", "TARGET": "fewer"}]},
     "{ks}.fewer has no column"),
    ("unreachable host", {"TARGET": {"HOSTS": ["127.0.0.77"]}},
     "TARGET.HOSTS: cannot connect to 127.0.0.77:9042"),
    ("partition key arity", {"TABLES": [{"SOURCE": "events", "PARTITIONS": [[1, 2]]}]},
     "TABLES[0].PARTITIONS: [1, 2] has 2 values but the partition key"),
    ("wrong-typed partition", {"TABLES": [{"SOURCE": "events", "PARTITIONS": [1, "abc"]}]},
     "TABLES[0].PARTITIONS: 'abc' is not a valid int for partition key column account_id of "
     "{ks}.events"),
    ("renamed onto a copied column", {"TABLES": [{"SOURCE": "events",
                                                  "COLUMNS": {"kind": "note"}}]},
     "TABLES[0].COLUMNS: kind and note of {ks}.events would both be written to note of "
     "{ks}.events (rename or skip note too)"),
]


@pytest.mark.parametrize(("overrides", "message"), [case[1:] for case in CLUSTER_PROBLEMS],
                         ids=[case[0] for case in CLUSTER_PROBLEMS])
def test_schema_problems_exit_2_before_anything_is_written(tmp_path, keyspace, cassandra_hosts,
                                                           source_session, target_session,
                                                           overrides, message, caplog):
    sample_data.fill_table(source_session, keyspace, "events", 50, "narrow")
    sample_data.create_table(target_session, keyspace, "events")
    base = sample_data.TABLE_CQL.format(keyspace=keyspace, table="{table}")
    target_session.execute(base.format(table="other_key").replace(
        "PRIMARY KEY (account_id, seq)", "extra int, PRIMARY KEY (account_id, seq, extra)")
        .replace("CLUSTERING ORDER BY (seq DESC)", "CLUSTERING ORDER BY (seq DESC, extra ASC)"))
    target_session.execute(base.format(table="other_type").replace("amount bigint", "amount int"))
    target_session.execute(base.format(table="fewer").replace("note text,", ""))
    settings = write_settings(tmp_path, *cassandra_hosts[:2], keyspace, ["events"], **overrides)

    code = migrate.run(["--config", str(settings)])

    assert code == 2
    assert message.format(ks=keyspace) in caplog.text
    assert f"{settings}: " in caplog.text
    assert not (tmp_path / "summary.json").exists()
    for table in ("events", "other_key", "other_type", "fewer"):
        assert rows_of(target_session, keyspace, table, ("account_id",)) == []


def test_example_file_and_readme_document_every_key():
    from pathlib import Path

    from pipelines import config

    root = Path(__file__).resolve().parents[1]
    example = (root / "configs" / "migrator_settings.yaml").read_text()
    readme = (root / "README.md").read_text()
    settings = load_settings(str(root / "configs" / "migrator_settings.yaml"))
    assert settings.tables[0].source == "events"
    keys = [*config._GLOBAL_KEYS, *config._CLUSTER_KEYS, *config._SSL_KEYS, *config._TABLE_KEYS]
    for key in keys:
        assert key in example, f"{key} missing from configs/migrator_settings.yaml"
        assert f"`{key}`" in readme or f".{key}`" in readme, f"{key} missing from README"


def test_inline_password_is_refused_on_a_distributed_runner(tmp_path):
    from apache_beam.options.pipeline_options import PipelineOptions

    document = {**MINIMAL, "SOURCE": {**MINIMAL["SOURCE"], "USERNAME": "app",
                                      "PASSWORD": "s3cret-value"}}
    settings = load_settings(write(tmp_path, document))
    migrate.check_secrets_for_runner(settings, PipelineOptions([]))  # DirectRunner: allowed
    with pytest.raises(SettingsError) as raised:
        migrate.check_secrets_for_runner(settings, PipelineOptions(["--runner=FlinkRunner"]))
    assert "SOURCE.PASSWORD" in str(raised.value) and "PASSWORD_FILE" in str(raised.value)
    assert "s3cret-value" not in str(raised.value)


def test_password_file_and_options_per_key(tmp_path):
    from apache_beam.options.pipeline_options import PipelineOptions

    secret = tmp_path / "password.txt"
    secret.write_text("from-a-file\n")
    document = {**MINIMAL, "TARGET": {**MINIMAL["TARGET"], "USERNAME": "app",
                                      "PASSWORD_FILE": str(secret)}}
    options = PipelineOptions(["--max_workers=9", "--target_port=9999", "--set", "MAX_WORKERS=7",
                               "--tables=[a, b]"])
    settings = load_settings(write(tmp_path, document), migrate.command_line_overrides(options))
    assert settings.target.connection.resolve_password() == "from-a-file"
    assert settings.max_workers == 7  # --set wins over the option of the same key
    assert settings.target.connection.port == 9999
    assert [table.source for table in settings.tables] == ["a", "b"]


@pytest.mark.parametrize("assignment", [
    "SOURCE.PASSWORD=hunter2-secret",
    "target.password=hunter2-secret",
    "TARGET={HOSTS: [h], KEYSPACE: k, USERNAME: u, PASSWORD: hunter2-secret}",
    "SOURCE={PASSWORD: [hunter2-secret",  # not even YAML: still not echoed
])
def test_a_password_on_the_command_line_is_refused_without_echoing_it(tmp_path, assignment,
                                                                        capsys):
    """argv is visible to every user of the machine and --set travels in the pipeline options."""
    path = write(tmp_path, {**MINIMAL, "SUMMARY_FILE": str(tmp_path / "s.json")})
    with pytest.raises(SettingsError) as raised:
        load_settings(path, [assignment])
    message = str(raised.value)
    assert "--set " in message and "PASSWORD_ENV" in message and "PASSWORD_FILE" in message
    assert "hunter2-secret" not in message
    assert migrate.run(["--config", path, "--set", assignment]) == 2
    error = capsys.readouterr().err
    assert "PASSWORD_ENV" in error and "hunter2-secret" not in error
    assert not (tmp_path / "s.json").exists()


@pytest.mark.parametrize("where", [
    "note = 'no limit; order by x, allow filtering'",
    "note = 'it''s LIMIT 3' AND kind = 'group by'",
    '"limit" = 1 AND "Order By" = 2',
    "limited = 1 AND per_partition = 2 AND grouped = 'x'",
    "note = $$LIMIT 5; -- $$",
])
def test_where_keywords_inside_quotes_or_names_are_accepted(tmp_path, where):
    settings = load_settings(write(tmp_path, {**MINIMAL, "TABLES": [{"SOURCE": "a",
                                                                     "WHERE": where}]}))
    assert settings.tables[0].where == where


def test_an_unknown_host_names_the_hosts_setting(tmp_path):
    from pipelines.preflight import connect

    document = {**MINIMAL, "SOURCE": {"HOSTS": ["no-such-host.invalid"], "KEYSPACE": "a"}}
    settings = load_settings(write(tmp_path, document))
    with pytest.raises(SettingsError) as raised:
        connect("SOURCE", settings.source)
    assert str(raised.value) == ("SOURCE.HOSTS: no host of no-such-host.invalid resolves to an "
                                 "address (check the names in SOURCE.HOSTS)")
    # A bare IPv6 address is a host, not a host and a port.
    document = {**MINIMAL, "SOURCE": {"HOSTS": ["::1", "2001:db8::7"], "KEYSPACE": "a"}}
    assert load_settings(write(tmp_path, document)).source.connection.hosts == (
        "::1", "2001:db8::7")
