"""Replay a dead-letter file: write its rows again, once the cause of their failure is fixed.

    cassandra-migrate replay PATH --config migrator_settings.yaml [--set KEY=VALUE ...]

PATH is a dead-letter file (``<table>.failed_rows.<pid>.jsonl``), a folder of them (a run's
folder under FAILED_ROWS_DIR), or a glob pattern. Each record's ``cql`` (its row as INSERTs with
literal values, and with the row's writetime and TTL when the migration kept them; each TTL
less the time since the row failed, and cells that have expired on the source since left out)
is sent to the target of the settings as one UNLOGGED batch of that one partition, at
WRITE_CONSISTENCY, through the migration's retry policy (retries, downgrade, outages waited
out). Records that fail again, or that cannot be replayed (counter rows: their copy is a
reconciliation, so run the migration of that table again instead), go to a new file beside the
first, ``<file>.replay-<UTC time>.jsonl``, with the new error. Exit 0 when every row was
written, 1 when some failed again, 2 when the command line, the settings or the files are
wrong.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import math
import os
import sys
import time

from apache_beam.io.filesystems import FileSystems
from cassandra.query import SimpleStatement

from pipelines import logs, preflight
from pipelines.config import SettingsError, load_settings
from pipelines.options import add_settings_arguments
from transforms import retry
from transforms.cql import using_clause
from transforms.requests import InFlight, outcome_of, resend, send

_LOG = logging.getLogger("migrator.replay")

IN_FLIGHT = 32


def dead_letter_files(path: str) -> list[str]:
    """The dead-letter files PATH names: the file, the ``*.failed_rows*.jsonl`` of a folder, or
    the matches of a pattern."""
    if "://" not in path and os.path.isdir(path):
        path = os.path.join(path, "*.failed_rows*.jsonl")
    if any(character in path for character in "*?["):
        found = [metadata.path for result in FileSystems.match([path])
                 for metadata in result.metadata_list]
        return sorted(name for name in found if ".replay-" not in name)
    return [path] if FileSystems.exists(path) else []


def _records(path: str):
    with FileSystems.open(path) as handle:
        for number, line in enumerate(handle.read().decode("utf-8").splitlines(), start=1):
            if line.strip():
                try:
                    yield json.loads(line)
                except ValueError as error:
                    raise SettingsError(f"{path}:{number}: not a JSON record: {error}") from None


class _Replay:
    """One record on its way."""

    __slots__ = ("record", "statement", "future")

    def __init__(self, record: dict, statement):
        self.record = record
        self.statement = statement
        self.future = None


def replay_file(session, path: str, policy: retry.RetryPolicy) -> tuple[int, int, str | None]:
    """Replay one file; return (rows written, rows failed again, the file of those)."""
    failed: list[dict] = []
    written, expired = [0], [0]

    def complete(item: _Replay):
        outcome = outcome_of(item.future, resend(session, item.statement), policy,
                             describe=lambda: f"replaying a row of {item.record.get('table')}")
        if outcome.ok:
            written[0] += 1
            return
        failed.append({**item.record, "error": type(outcome.error).__name__,
                       "message": str(outcome.error),
                       "attempts": item.record.get("attempts", 0) + outcome.attempts,
                       "replayed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})

    in_flight: InFlight[_Replay] = InFlight(IN_FLIGHT, complete)
    for record in _records(path):
        if not record.get("cql"):
            what = ("a row with empty values in " + ", ".join(record["empty_columns"])
                    if record.get("empty_columns") else "a counter row")
            failed.append({**record, "message": f"not replayable ({what}): run the "
                                                "migration of its table again"})
            continue
        cql = _cql_now(record, time.time())
        if cql is None:
            expired[0] += 1
            continue
        item = _Replay(record, SimpleStatement(f"BEGIN UNLOGGED BATCH {cql} APPLY BATCH"))
        in_flight.make_room()
        item.future = send(session, item.statement, policy.consistency)
        in_flight.add(item)
    in_flight.drain()
    again = None
    if failed:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        again = f"{path[:-len('.jsonl')] if path.endswith('.jsonl') else path}.replay-{stamp}.jsonl"
        with FileSystems.create(again) as handle:
            handle.write("".join(json.dumps(record, sort_keys=True) + "\n"
                                 for record in failed).encode("utf-8"))
    return written[0], len(failed), again, expired[0]


def _cql_now(record: dict, now: float) -> str | None:
    """The record's CQL as it should be written now: each TTL less the whole seconds since
    the row failed (cells that expired on the source since are left out; None when all of the
    row has). A TTL of 0 (no TTL, on a table with a default) stays 0."""
    statements = record.get("statements")
    if not statements or not record.get("failed_at"):
        return record["cql"]
    failed_at = datetime.datetime.fromisoformat(record["failed_at"]).timestamp()
    elapsed = max(0, math.ceil(now - failed_at))
    parts = []
    for statement in statements:
        ttl = statement["ttl"]
        if ttl:
            ttl -= elapsed
            if ttl <= 0:
                continue
        text = statement["cql"].rstrip(";")  # the INSERT of its cells, without USING
        parts.append(f"{text}{using_clause(statement['timestamp'], ttl)};")
    return " ".join(parts) or None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cassandra-migrate replay",
        description="Write the rows of dead-letter files again, to the TARGET of the settings, "
                    "at WRITE_CONSISTENCY with the run's retry policy. Exit 0 every row "
                    "written, 1 some failed again (see <file>.replay-<time>.jsonl), 2 wrong "
                    "command line, settings or files.",
        epilog="Settings: see the settings reference in README.md (section 'Settings').")
    parser.add_argument("path", help="a dead-letter file, a run's folder of them, or a pattern")
    add_settings_arguments(parser, "the migrator_settings.yaml of the run (required)")
    return parser


def run(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(args.config, args.overrides)
        files = dead_letter_files(args.path)
        if not files:
            raise SettingsError(f"{args.path}: no dead-letter file there")
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    logs.configure(settings.log_file, settings.log_level)
    policy = settings.retry_policy(settings.target, settings.write_consistency)
    try:
        cluster, session = preflight.connect("TARGET", settings.target, as_launcher=False)
    except SettingsError as error:
        _LOG.error("%s: %s", settings.path, error)
        return 2
    try:
        total_written = total_failed = 0
        for path in files:
            written, failed, again, expired = replay_file(session, path, policy)
            total_written += written
            total_failed += failed
            _LOG.info("%s: %d rows written%s%s", path, written,
                      f", {failed} failed again: see {again}" if failed else "",
                      f", {expired} expired on the source since they failed (not written)"
                      if expired else "")
            print(f"{path}: {written:,} rows written, {failed:,} failed"
                  + (f", {expired:,} expired since" if expired else "")
                  + (f" (see {again})" if again else ""))
    finally:
        cluster.shutdown()
    print(f"replay {'succeeded' if not total_failed else 'failed'}: {total_written:,} rows "
          f"written, {total_failed:,} failed again")
    return 0 if total_failed == 0 else 1
