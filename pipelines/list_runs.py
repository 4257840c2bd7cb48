"""List the runs a ledger holds: ``cassandra-migrate runs --config PATH [--set KEY=VALUE ...]``.

One line per run, latest first: its id (what ``--resume RUN_ID`` takes), what it is (a
migration or a validation, of which clusters and keyspaces), when it started, its tables, how
many work items are done of how many, and its state: ``done``, ``unfinished`` (``--resume``
finishes it), ``stopped`` (a table stopped early; the reason follows) or ``failed items``
(items settled with failed rows or ranges: see their dead letters). Reads the ledger of the
settings' TARGET, writes nothing. Exit 0, or 2 when the settings, the target or the ledger
cannot be used.
"""

from __future__ import annotations

import argparse
import sys

from pipelines import preflight, summary
from pipelines.config import SettingsError, load_settings
from pipelines.options import add_settings_arguments
from transforms.ledger import DONE, Ledger


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cassandra-migrate runs",
        description="List the runs of the ledger (LEDGER_KEYSPACE on the TARGET), latest "
                    "first: run id, kind, start, tables, work items done of all, state. "
                    "Writes nothing. Exit 0, or 2 when the settings, the target or the ledger "
                    "cannot be used.")
    add_settings_arguments(parser, "a migrator_settings.yaml whose TARGET holds the ledger "
                                   "(required)")
    return parser


def describe_runs(ledger: Ledger) -> list[dict]:
    """Each run of the ledger as a dict, latest first."""
    described = []
    for record in ledger.all_runs():
        items = ledger.items(record.run_id)
        stops = ledger.stops(record.run_id)
        done = sum(item.status == DONE for item in items)
        failed = sum(item.status == "failed" for item in items)
        state = ("stopped: " + "; ".join(f"{table}: {reason}" for table, reason in stops.items())
                 if stops else "done" if items and done == len(items)
                 else "failed items" if failed and done + failed == len(items)
                 else "unfinished")
        described.append({
            "run_id": record.run_id, "what": record.identity,
            "started": record.started_at.strftime("%Y-%m-%d %H:%M:%S UTC")
            if record.started_at else "?",
            "tables": ", ".join(record.tables), "items": f"{done:,}/{len(items):,}",
            "state": state})
    return described


def run(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(args.config, args.overrides)
        if settings.ledger_keyspace is None:
            raise SettingsError(f"{settings.path}: LEDGER_KEYSPACE is null: there is no ledger "
                                "to list")
        cluster, session = preflight.connect("TARGET", settings.target)
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        keyspace = settings.ledger_keyspace
        existing = cluster.metadata.keyspaces.get(keyspace)
        if existing is None or "runs" not in existing.tables:
            print(f"the ledger {keyspace} does not exist on the target: no run yet")
            return 0
        try:
            described = describe_runs(Ledger(session, keyspace))
        except Exception as error:  # noqa: BLE001 - named to the user
            print(f"error: {settings.path}: LEDGER_KEYSPACE: the ledger {keyspace} cannot be "
                  f"read: {type(error).__name__}: {error}", file=sys.stderr)
            return 2
    finally:
        cluster.shutdown()
    columns = (("run_id", "run"), ("what", "what"), ("started", "started"),
               ("tables", "tables"), ("items", "items done"), ("state", "state"))
    print("\n".join(summary.text_table(described, columns)))
    print(f"{len(described)} run{'s' if len(described) != 1 else ''} in the ledger {keyspace}")
    return 0


def main() -> None:
    sys.exit(run())


if __name__ == "__main__":
    main()
