"""Validate a migration row for row, and optionally repair what differs.

    cassandra-migrate validate --config configs/migrator_settings.yaml [Beam options]
    python -m pipelines.validate --config ... [--resume [RUN_ID]]

From the same settings as the migration (its tables, renames, skipped and constant columns,
WHERE and writetime window): each table is read on both clusters one token range at a time and
the two streams are merged (``transforms.validate``, ``transforms.compare``). The summary counts
per table the rows valid, missing, extra, mismatched, newer on the target and changed during the
validation; the differences are listed as JSON Lines under DIFFERENCES_DIR; AUTO_CORRECT writes
missing and mismatched rows again through the migration's writer and DELETE_EXTRA_ROWS deletes
extra rows. With a ledger (LEDGER_KEYSPACE) a validation is a run like a migration's, and
``--resume`` finishes one that was killed. SAMPLE_PERCENT validates a random share of the token
ranges.

Exit codes: 0 every source row is on the target with the same cells (rows only on the target
are reported as extra, not failed); 1 anything else (rows missing or mismatched, even
if corrected; an extra row not deleted; rows unsettled: changed while it ran, or read at the
fallback consistency; a range that could not be read); 2 the command line or the settings are
wrong (nothing was read).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import random
import sys
import time

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions

from pipelines import logs, preflight, runs, summary
from pipelines.config import Settings, SettingsError
from pipelines.migrate import _runner_options, load_run, run_to_end, splits_for
from pipelines.preflight import TablePlan, check_against_clusters
from transforms import CellOptions, WriteToCassandra
from transforms.compare import KINDS, OUT_OF_WINDOW, Comparison
from transforms.ledger import RecordWorkItems
from transforms.validate import ValidateTable, ValidationOptions, ValidationSide

_LOG = logging.getLogger("migrator")

COUNTS = (*KINDS, OUT_OF_WINDOW, "corrected", "deleted", "delete_failed", "correction_failed",
          "rows_read_source", "rows_read_target", "ranges_failed", "pages_downgraded",
          "delete_skipped", "correction_skipped")
_METRICS = (*KINDS, OUT_OF_WINDOW, "deleted", "delete_failed", "delete_skipped",
            "rows_read_source", "rows_read_target", "ranges_failed", "rows_written",
            "rows_unchanged", "rows_failed", "extra_unchecked", "pages_downgraded",
            "correction_skipped")
COLUMNS = (("source", "source"), ("target", "target"), ("status", "status"),
           ("valid", "valid"), ("missing", "missing"), ("extra", "extra"),
           ("mismatched", "mismatched"), ("newer_on_target", "newer on target"),
           ("changed_during_validation", "changed"), ("corrected", "corrected"),
           ("deleted", "deleted"), ("seconds", "seconds"))


def namespace_of(plan: TablePlan) -> str:
    return f"validate {plan.source_label}->{plan.target_label}"


def differences_prefix(directory: str, plan: TablePlan) -> str:
    return FileSystems.join(directory, plan.target_label)


def run(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["validate"]:
        argv = argv[1:]
    try:
        options, validate_options, settings = load_run(argv, "DIFFERENCES_DIR")
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    # A validation creates nothing: a missing target table is an error to report.
    settings = dataclasses.replace(settings, create_target_tables=False)
    logs.configure(settings.log_file, settings.log_level)
    started = time.time()
    try:
        with preflight.connected(settings) as clusters:
            return _validate(settings, options, argv, validate_options.resume, clusters, started)
    except SettingsError as error:
        _LOG.error("%s", error)
        return 2


def _sample(settings: Settings):
    if settings.sample_percent >= 100:
        return lambda items: items
    share = settings.sample_percent / 100

    def choose(items):
        chosen = [item for item in items if random.random() < share]
        return chosen or [random.choice(items)]
    return choose


def _validate(settings: Settings, options: PipelineOptions, argv: list[str], resume: str | None,
              clusters: preflight.Clusters, started: float) -> int:
    try:
        plans = check_against_clusters(settings, clusters)
        _check_partitioners(settings, clusters)
        _check_clustering_orders(settings, plans, clusters)
        run = runs.start(settings, plans, resume, splits_for, started, clusters,
                         kind="validate", choose=_sample(settings))
    except SettingsError as error:
        _LOG.error("%s", error)
        return 2
    _runner_options(options, settings, argv)
    # One folder per run, shared by its attempts: a resumed validation adds to it.
    base = settings.differences_dir
    directory = FileSystems.join(base if "://" in base else os.path.abspath(base), run.run_id)
    for plan in plans:
        key = runs.table_key(plan)
        _LOG.info("validating %s against %s: %d work items%s%s", plan.source_label,
                  plan.target_label, len(run.work_items[key]),
                  f" of {run.items_total[key]} to do" if run.resumed else "",
                  f" ({settings.sample_percent:g}% of the token ranges)"
                  if settings.sample_percent < 100 else "")
    pipeline = beam.Pipeline(options=options)
    _build(pipeline, settings, plans, run, directory, started, clusters)
    result, error = run_to_end(pipeline, "the validation pipeline")
    report = _report(settings, plans, run, result, directory, started, error, clusters)
    print(summary.format_table(report, COLUMNS, "validation"))
    for path in report["differences_files"]:
        print(f"see {path}")
    if settings.validation_summary_file:
        summary.write_json(report, settings.validation_summary_file)
        _LOG.info("validation summary written to %s", settings.validation_summary_file)
    # Rows found missing or mismatched make exit 1 even when corrected: a rewrite can be
    # shadowed on the target (a newer tombstone), and only a second validation proves it.
    return 0 if report["status"] == "valid" else 1


def _check_partitioners(settings: Settings, clusters: preflight.Clusters) -> None:
    source = clusters.source.cluster.metadata.partitioner
    target = clusters.target.cluster.metadata.partitioner
    if source != target:
        raise SettingsError(
            f"{settings.path}: the source cluster's partitioner is {source} and the target's "
            f"{target}: validation reads both in token order, which needs the same partitioner")


def _check_clustering_orders(settings: Settings, plans: list[TablePlan],
                             clusters: preflight.Clusters) -> None:
    """The merge walks both sides in Cassandra's order: a partition's rows must come in the
    same clustering order on both (a migration does not need that; a validation does)."""
    problems = []
    for plan in plans:
        source = clusters.source.cluster.metadata.keyspaces[settings.source.keyspace].tables[
            plan.mapping.source]
        target = clusters.target.cluster.metadata.keyspaces[settings.target.keyspace].tables[
            plan.mapping.target]
        if ([column.is_reversed for column in source.clustering_key]
                != [column.is_reversed for column in target.clustering_key]):
            source_order, target_order = (", ".join(
                f"{column.name} {'DESC' if column.is_reversed else 'ASC'}"
                for column in table.clustering_key) for table in (source, target))
            problems.append(f"{plan.target_label} is clustered {target_order} and "
                            f"{plan.source_label} {source_order}")
    if problems:
        raise SettingsError(
            f"{settings.path}: validation reads both tables in their clustering order and "
            f"needs the same on both sides: {'; '.join(problems)}")


def _build(pipeline, settings: Settings, plans: list[TablePlan], run: runs.Run, directory: str,
           started: float, clusters: preflight.Clusters) -> None:
    read_source = settings.retry_policy(settings.source, settings.read_consistency)
    read_target = settings.retry_policy(settings.target, settings.read_consistency)
    write_policy = settings.retry_policy(settings.target, settings.write_consistency)
    for plan in plans:
        mapping = plan.mapping
        renames = mapping.renames()
        constants = dict(mapping.constants)
        target_columns = tuple(dict.fromkeys(
            [renames.get(name, name) for name in plan.columns
             if renames.get(name, name) is not None] + list(constants)))
        table = clusters.target.cluster.metadata.keyspaces[settings.target.keyspace].tables[
            mapping.target]
        keys = {column.name for column in table.primary_key}
        # Writetimes are read whatever the migration kept: they tell a live write on either
        # side from a difference. Counters have none.
        cells = CellOptions(writetime=not plan.counters,
                            ttl=settings.preserve_ttl and not plan.counters)
        kept = CellOptions(writetime=settings.preserve_writetime and not plan.counters,
                           ttl=settings.preserve_ttl and not plan.counters)
        comparison = Comparison(
            columns=tuple(name for name in target_columns if name not in keys),
            writetime=kept.writetime, ttl=kept.ttl,
            ttl_tolerance=settings.ttl_tolerance_seconds,
            started=int(started * 1_000_000),
            window=(mapping.writetime_from, mapping.writetime_to))
        namespace = namespace_of(plan)
        options = ValidationOptions(
            source=ValidationSide(settings.source.connection, settings.source.keyspace,
                                  mapping.source, plan.columns, read_source),
            target=ValidationSide(settings.target.connection, settings.target.keyspace,
                                  mapping.target, target_columns, read_target),
            comparison=comparison, fetch_size=settings.fetch_batch_size,
            metrics_namespace=namespace, differences_prefix=differences_prefix(directory, plan),
            cells=cells, kept=kept, renames=renames, constants=constants, where=mapping.where,
            auto_correct=settings.auto_correct, delete_extra=settings.delete_extra_rows,
            write_policy=write_policy, records=run.ledger is not None,
            page_bytes=settings.fetch_page_bytes)
        step = plan.target_label
        compared = pipeline | f"Validate {step}" >> ValidateTable(
            options, run.work_items[runs.table_key(plan)])
        records = compared.work_items
        if settings.auto_correct:
            written = compared.corrections | f"Correct {step}" >> WriteToCassandra(
                settings.target.connection, settings.target.keyspace, mapping.target,
                batch_size=settings.batch_insert_size, batch_mode=settings.batch_mode,
                policy=write_policy, max_in_flight=settings.max_requests_in_flight,
                metrics_namespace=namespace, cells=kept,
                max_batch_bytes=settings.max_batch_bytes,
                dead_letter_prefix=differences_prefix(directory, plan))
            records = written.work_items
        if run.ledger is not None:
            _ = records | f"Record work items of {step}" >> RecordWorkItems(
                run.ledger, runs.table_key(plan), write_policy)


def _report(settings: Settings, plans: list[TablePlan], run: runs.Run, result, directory: str,
            started: float, error: str | None, clusters: preflight.Clusters) -> dict:
    standing = runs.progress(settings, run, plans, clusters)
    tables, files = [], []
    for plan in plans:
        metrics = (summary.counters(result.metrics(), namespace_of(plan), _METRICS)
                   if result is not None else dict.fromkeys(_METRICS, 0))
        ledger = standing.get(runs.table_key(plan))
        # With a ledger, what the run found over all its attempts; else this attempt's metrics.
        found = dict(ledger.counts) if ledger is not None else metrics
        counts = {kind: found.get(kind, 0) for kind in COUNTS}
        counts["corrected"] = (ledger.rows_written if ledger is not None
                               else metrics["rows_written"] + metrics["rows_unchanged"])
        counts["correction_failed"] = metrics["rows_failed"]
        counts["ranges_failed"] = metrics["ranges_failed"]
        table_files = sorted(_files(directory, plan))
        files += table_files
        table = {"source": plan.source_label, "target": plan.target_label, **counts,
                 "seconds": round(summary.active_seconds(result.metrics(), namespace_of(plan))
                                  if result is not None else 0.0, 3),
                 "differences_records": _distinct_records(
                     [path for path in table_files if ".differences." in path])}
        if plan.mapping.where is not None:
            table["extra"] = None  # rows the WHERE leaves out cannot be told from extra ones
            table["extra_unchecked"] = found.get("extra_unchecked", 0)
        table["delete_skipped"] = found.get("delete_skipped", 0)
        if ledger is not None:
            table.update(work_items_done=ledger.items_done, work_items_total=ledger.items_total,
                         # This attempt's share (a resume reads only what was left).
                         attempt_rows_read_source=metrics["rows_read_source"])
        table["status"] = _status(table, ledger, result is not None)
        tables.append(table)
    failed = error is not None or any(table["status"] == "failed" for table in tables)
    status = "failed" if failed else next(
        (kind for kind in ("differences", "unsettled", "corrected")
         if any(table["status"] == kind for table in tables)), "valid")
    totals = {kind: sum(table[kind] or 0 for table in tables) for kind in COUNTS}
    report = {"run_id": run.run_id, "status": status, "seconds": round(time.time() - started, 3),
              "sample_percent": settings.sample_percent, "tables": tables, "totals": totals,
              "differences_files": files}
    if error is not None:
        report["error"] = error
    return report


def _status(table: dict, ledger, finished: bool) -> str:
    if not finished or table["ranges_failed"] or table["correction_failed"] or (
            ledger is not None and ledger.items_done < ledger.items_total):
        return "failed"
    wrong = table["missing"] + table["mismatched"]
    if (wrong and table["corrected"] < wrong) or table["delete_failed"]:
        return "differences"
    if table["changed_during_validation"] or table["pages_downgraded"]:
        # Rows written on the source while the validation ran were not compared, and a page
        # read at the fallback consistency may miss rows on both sides: nothing proves them
        # equal until a validation after the writes stop, on a healthy cluster.
        return "unsettled"
    return "corrected" if wrong else "valid"


def _distinct_records(paths: list[str]) -> int:
    """Difference records, a record repeated by a redone work item (a resume, a bundle retried
    by the runner) counted once: the same item, kind and key."""
    seen = set()
    for path in paths:
        with FileSystems.open(path) as handle:
            for line in handle:
                if line.strip():
                    record = json.loads(line)
                    seen.add(json.dumps([record.get("item"), record["kind"],
                                         record["partition_key"], record["clustering"]],
                                        sort_keys=True))
    return len(seen)


def _files(directory: str, plan: TablePlan) -> list[str]:
    """The table's differences and failed corrections, of every attempt of the run."""
    pattern = f"{differences_prefix(directory, plan)}.*.jsonl"
    try:
        return [metadata.path for result in FileSystems.match([pattern])
                for metadata in result.metadata_list]
    except Exception:  # noqa: BLE001 - no such folder: no difference
        return []


def main() -> None:
    sys.exit(run())


if __name__ == "__main__":
    main()
