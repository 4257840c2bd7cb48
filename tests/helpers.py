"""Helpers for the integration tests: settings files, in-process runs, table contents."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from pipelines import migrate


def write_settings(directory: Path, source_host: str, target_host: str, keyspace: str,
                   tables: list, target_keyspace: str | None = None, **settings) -> Path:
    """A settings file whose logs, summary and dead letters stay inside ``directory``."""
    document = {
        "SOURCE": {"HOSTS": [source_host], "KEYSPACE": keyspace},
        "TARGET": {"HOSTS": [target_host], "KEYSPACE": target_keyspace or keyspace},
        "TABLES": tables,
        "LOG_FILE": str(directory / "migrator.log"),
        "SUMMARY_FILE": str(directory / "summary.json"),
        "FAILED_ROWS_DIR": str(directory / "failed_rows"),
        "VALIDATION_SUMMARY_FILE": str(directory / "validation.json"),
        "DIFFERENCES_DIR": str(directory / "differences"),
        "RETRY_BACKOFF_SECONDS": 0.01,
        "RETRY_MAX_BACKOFF_SECONDS": 0.05,
    }
    for key, value in settings.items():
        if isinstance(value, dict) and isinstance(document.get(key), dict):
            document[key] = {**document[key], **value}
        else:
            document[key] = value
    path = directory / "migrator_settings.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def run_migration(settings_path: Path, *extra_args: str) -> tuple[int, dict | None]:
    """Run the migration in this process; return (exit code, summary JSON or None)."""
    code = migrate.run(["--config", str(settings_path), *extra_args])
    document = yaml.safe_load(settings_path.read_text())
    summary_path = Path(document["SUMMARY_FILE"])
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else None
    return code, summary


def run_validation(settings_path: Path, *extra_args: str) -> tuple[int, dict | None]:
    """Run a validation in this process; return (exit code, validation summary or None)."""
    from pipelines import validate

    document = yaml.safe_load(settings_path.read_text())
    summary_path = Path(document["VALIDATION_SUMMARY_FILE"])
    summary_path.unlink(missing_ok=True)
    code = validate.run(["--config", str(settings_path), *extra_args])
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else None
    return code, summary


def differences(summary: dict) -> list[dict]:
    """The difference records of a validation's run (every attempt), in its files."""
    return [json.loads(line) for path in summary["differences_files"]
            if ".differences." in path for line in Path(path).read_text().splitlines() if line]


def dead_letters(settings_path: Path, kind: str) -> list[dict]:
    """All records of one kind (failed_rows, downgraded_rows, failed_ranges) of every run."""
    document = yaml.safe_load(settings_path.read_text())
    root = Path(document["FAILED_ROWS_DIR"])
    return [json.loads(line) for path in sorted(root.glob(f"*/*.{kind}*.jsonl"))
            for line in path.read_text().splitlines() if line]


def rows_of(session, keyspace: str, table: str, columns: tuple[str, ...]) -> list[tuple]:
    """Every row of a table as sorted tuples, read at consistency ONE with paging."""
    from cassandra import ConsistencyLevel
    from cassandra.query import SimpleStatement

    statement = SimpleStatement(f"SELECT {', '.join(columns)} FROM {keyspace}.{table}",
                                fetch_size=5000, consistency_level=ConsistencyLevel.ONE)
    return sorted(tuple(row.values()) if isinstance(row, dict) else tuple(row)
                  for row in session.execute(statement))
