"""What a migration would do, without doing it: ``cassandra-migrate plan --config ...``.

Runs every check a migration runs before its first write (the settings, both clusters, their
releases, every table's schema), then prints per table: source and target, the estimated
partitions, rows and size, the token ranges (work items) it would read, the column mapping,
what is kept of writetimes and TTLs, how rows are batched, what would be created, and what the
run ledger already holds for a ``--resume``; then the rate limits of the run. Nothing is
written to either cluster (CREATE_TARGET_TABLES only shows its CQL; the ledger is only read)
and no file is written. Exit 0 when a migration could start, 2 when it would be refused.
"""

from __future__ import annotations

import logging
import sys

from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions

from pipelines import logs, migrate, preflight, runs
from pipelines.config import Settings, SettingsError
from pipelines.options import yaml_text
from pipelines.preflight import TablePlan
from transforms import retry, versions
from transforms.ledger import DONE, Ledger
from transforms.read import work_items_of

_LOG = logging.getLogger("migrator.plan")


def run(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        options, plan_options, settings = migrate.load_run(argv)
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    logs.configure(None, settings.log_level)  # a plan leaves no file behind
    try:
        with preflight.connected(settings) as clusters:
            plans = preflight.check_against_clusters(settings, clusters, dry_run=True)
            ledger = _ledger_standing(settings, clusters, plans, plan_options.resume)
            migrate._runner_options(options, settings, argv)
            print(describe(settings, options, clusters, plans, ledger))
    except SettingsError as error:
        _LOG.error("%s", error)
        return 2
    return 0


def _number(value: int | None, unit: str) -> str:
    return f"{value:,} {unit}" if value is not None else f"? {unit}"


def _size(size: int | None) -> str:
    if size is None:
        return "? MB"
    return f"{size / 1e6:,.1f} MB" if size < 1e9 else f"{size / 1e9:,.2f} GB"


def _estimate(plan: TablePlan) -> str:
    if plan.estimated_partitions is None:
        return ("none yet (system.size_estimates is empty: Cassandra records estimates every "
                "few minutes, from flushed data)")
    rows = _number(plan.estimated_rows, "rows")
    return (f"{plan.estimated_partitions:,} partitions, about {rows}, "
            f"{_size(plan.estimated_bytes)} (system.size_estimates; rows from a sample of up "
            f"to {preflight.ROWS_SAMPLE:,})")


def _ranges(settings: Settings, plan: TablePlan, metadata, resumed: list | None) -> str:
    if plan.partitions is not None:
        text = f"{len(plan.partitions):,} listed partitions (PARTITIONS), one work item each"
    else:
        splits = migrate.splits_for(settings, plan)
        items = work_items_of(metadata, settings.source.keyspace, splits, None)
        why = (f"SPLITS {settings.splits}" if settings.splits is not None else
               f"SPLITS null: the larger of {migrate.SPLITS_PER_WORKER} x MAX_WORKERS "
               f"{settings.max_workers} and one per {migrate.PARTITIONS_PER_SPLIT:,} "
               "estimated partitions")
        replica_sets = len({item.token_range.replicas for item in items})
        text = (f"{len(items):,} token ranges covering the ring ({why}), on {replica_sets} "
                f"replica set{'s' if replica_sets != 1 else ''}")
    if resumed is not None:
        text += f"; --resume reads only the {len(resumed):,} not done"
    return text


def _columns(plan: TablePlan) -> list[str]:
    mapping = plan.mapping
    renames = mapping.renames()
    copied = [name if renames.get(name, name) == name else f"{name} -> {renames[name]}"
              for name in plan.columns if renames.get(name, name) is not None]
    lines = [f"columns:     {', '.join(copied)}"]
    skipped = [name for name in plan.columns if name in renames and renames[name] is None]
    if skipped:
        lines.append(f"skipped:     {', '.join(skipped)}")
    if mapping.constants:
        lines.append("constants:   " + ", ".join(f"{name} = {value!r}"
                                                 for name, value in mapping.constants))
    if mapping.where:
        lines.append(f"where:       {mapping.where}")
    return lines


def _cells(settings: Settings, plan: TablePlan) -> str:
    if plan.counters:
        return "counter table: written by reconciliation (no writetime or TTL)"
    kept = [what for what, keep in (("writetime", settings.preserve_writetime),
                                    ("TTL", settings.preserve_ttl)) if keep]
    text = (f"{' and '.join(kept)} of every cell kept" if kept else
            "neither writetime nor TTL kept (cells get the time of the copy)")
    mapping = plan.mapping
    if mapping.writetime_from is not None or mapping.writetime_to is not None:
        text += (f"; only rows written in [{mapping.writetime_from or '-inf'}, "
                 f"{mapping.writetime_to or '+inf'}) microseconds")
    if settings.preserve_ttl:
        # What CQL cannot read, said before the run rather than found after it.
        text += ("; a row that lives by its row marker alone (every regular cell null) is "
                 "written without TTL or writetime: CQL cannot read a row marker's")
    return text


def _writes(settings: Settings, plan: TablePlan) -> str:
    fallback = (retry.consistency_name(settings.fallback_consistency)
                if settings.fallback_consistency is not None else "none")
    level = (f"WRITE_CONSISTENCY {retry.consistency_name(settings.write_consistency)} "
             f"(fallback {fallback}), RETRY_ATTEMPTS {settings.retry_attempts}")
    if plan.counters:
        return f"UPDATE c = c + delta per row, {level}"
    return (f"BATCH_MODE {settings.batch_mode.value}, BATCH_INSERT_SIZE "
            f"{settings.batch_insert_size}, MAX_BATCH_BYTES {settings.max_batch_bytes:,}, "
            f"{level}")


def _ledger_standing(settings: Settings, clusters, plans: list[TablePlan],
                     resume: str | None) -> dict:
    """What the ledger holds for these settings, read only: {"note": text, "run": run id or
    None, "items": {table key: [records]}} ; SettingsError when --resume cannot work."""
    keyspace = settings.ledger_keyspace
    if keyspace is None:
        if resume:
            raise SettingsError(f"{settings.path}: --resume needs a ledger: LEDGER_KEYSPACE is "
                                "null")
        return {"note": "none (LEDGER_KEYSPACE: null): no --resume", "run": None, "items": {}}
    existing = clusters.target.cluster.metadata.keyspaces.get(keyspace)
    if existing is None or "runs" not in existing.tables:
        if resume:
            raise SettingsError(f"{settings.path}: --resume: the ledger {keyspace} does not "
                                "exist on the target yet")
        return {"note": f"{keyspace} does not exist on the target: a run would create it "
                        "(replication factor up to 3)", "run": None, "items": {}}
    ledger = Ledger(clusters.target, keyspace)
    wanted = sorted(runs.table_key(plan) for plan in plans)
    try:
        found = runs.recorded_runs(ledger, settings, clusters.source, clusters.target)
        if not found and not resume:
            return {"note": f"{keyspace}: no earlier run of these clusters and keyspaces",
                    "run": None, "items": {}}
        # The run --resume would take, chosen as it chooses.
        record = runs.find_run(ledger, settings, clusters.source, clusters.target,
                               resume or runs.LATEST, tables=wanted, recorded=found)
    except SettingsError:
        raise
    except Exception as error:  # noqa: BLE001 - named to the user
        raise SettingsError(f"{settings.path}: LEDGER_KEYSPACE: the run ledger {keyspace} "
                            f"cannot be read: {type(error).__name__}: {error}") from None
    if resume:
        runs.refuse_other_tables(settings, record, wanted)
    items: dict[str, list] = {}
    for item in ledger.items(record.run_id):
        items.setdefault(item.table, []).append(item)
    verb = "--resume finishes" if resume else "latest run, which --resume would finish:"
    return {"note": f"{keyspace}: {verb} run {record.run_id}", "run": record.run_id,
            "items": items, "resume": bool(resume)}


def _ledger_line(plan: TablePlan, ledger: dict) -> str | None:
    if ledger["run"] is None:
        return None
    items = ledger["items"].get(runs.table_key(plan), [])
    done = [item for item in items if item.status == DONE]
    return (f"run {ledger['run']}: {len(done):,} of {len(items):,} work items done "
            f"({sum(item.rows_written for item in items):,} rows written, "
            f"{sum(item.rows_failed for item in items):,} failed so far)")


def describe(settings: Settings, options: PipelineOptions, clusters, plans: list[TablePlan],
             ledger: dict) -> str:
    """The plan as text: a block per table, then the run's limits."""
    source_release = versions.oldest_release(clusters.source.cluster.metadata)
    target_release = versions.oldest_release(clusters.target.cluster.metadata)
    lines = [f"plan of {settings.path} (nothing is written)"]
    for name, side, release in (("SOURCE", settings.source, source_release),
                                ("TARGET", settings.target, target_release)):
        lines.append(f"{name} {side.connection.describe()} ({versions.release_name(release)}),"
                     f" keyspace {side.keyspace}")
    lines.append("")
    metadata = clusters.source.cluster.metadata
    for plan in plans:
        resumed = None
        if ledger.get("resume"):
            items = ledger["items"].get(runs.table_key(plan), [])
            resumed = [item for item in items if item.status != DONE]
        lines.append(f"{plan.source_label} -> {plan.target_label}")
        block = [f"estimate:    {_estimate(plan)}",
                 f"reads:       {_ranges(settings, plan, metadata, resumed)}; "
                 f"FETCH_BATCH_SIZE {settings.fetch_batch_size} at READ_CONSISTENCY "
                 f"{retry.consistency_name(settings.read_consistency)}",
                 *_columns(plan),
                 f"cells:       {_cells(settings, plan)}",
                 f"writes:      {_writes(settings, plan)}"]
        if plan.create_cql:
            block.append("creates:     " + "\n             ".join(
                " ".join(statement.split()) for statement in plan.create_cql))
        else:
            block.append("creates:     nothing (the target table exists)")
        ledger_line = _ledger_line(plan, ledger)
        if ledger_line:
            block.append(f"ledger:      {ledger_line}")
        lines += [f"  {line}" for line in block] + [""]
    direct = options.view_as(DirectOptions)
    workers = (f"{direct.direct_num_workers} DirectRunner worker threads"
               if migrate._runner_name(options) == "direct" else
               f"runner {migrate._runner_name(options)}")
    lines += [f"rate limit:  {_rate_limit(settings, options)}",
              f"workers:     MAX_WORKERS {settings.max_workers}: {workers}, up to "
              f"{settings.max_requests_in_flight} write requests in flight each "
              "(MAX_REQUESTS_IN_FLIGHT)",
              f"errors:      MAX_FAILED_ROWS {yaml_text(settings.max_failed_rows)} per table; "
              f"dead letters under {settings.failed_rows_dir}",
              f"ledger:      {ledger['note']}"]
    return "\n".join(lines)


def _rate_limit(settings, options) -> str:
    """How MAX_ROWS_PER_SECOND is shared (``transforms.rate_limit``)."""
    if not settings.max_rows_per_second:
        return "none (MAX_ROWS_PER_SECOND: null)"
    rate = migrate.rate_per_process(settings, options)
    processes = migrate.writing_processes(settings, options)
    expected = f"{processes} writing process{'es' if processes != 1 else ''} expected"
    text = f"MAX_ROWS_PER_SECOND {settings.max_rows_per_second:,.0f} rows/s for the run: "
    if settings.ledger_keyspace is None:
        return (text + f"{rate:,.1f} rows/s in each process ({expected}; without a ledger a "
                "process that runs out of work leaves its share unused)")
    return (text + "shared through the ledger by the processes writing at the moment, each "
            f"starting at {rate:,.1f} rows/s ({expected})")
