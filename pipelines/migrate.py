"""Migrate Cassandra tables from one cluster (or keyspace) to another with Apache Beam.

    python -m pipelines.migrate --config configs/migrator_settings.yaml [Beam options]
    python -m pipelines.migrate --config ... --resume [RUN_ID]     # finish an earlier run
    python -m pipelines.migrate replay FAILED_ROWS_FILE --config ...  # write dead letters again

Per table: ReadFromCassandra (token ranges -> Reshuffle -> paged reads) -> WriteToCassandra
(bundles of BATCH_INSERT_SIZE -> retries, downgrade, fallback) -> dead letters as JSON Lines
under FAILED_ROWS_DIR. Read, bundle and write are fused, so rows never pass through a shuffle
and memory stays flat whatever the table size. After the run the launcher reads the metrics,
prints a summary and writes SUMMARY_FILE.

Exit codes: 0 every table copied with no failed row; 1 a row, range or table failed;
2 the command line or the settings are wrong (nothing was written).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import time

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import (
    DebugOptions,
    DirectOptions,
    FlinkRunnerOptions,
    PipelineOptions,
    PortableOptions,
    SetupOptions,
    StandardOptions,
    WorkerOptions,
)

from pipelines import logs, preflight, runs, summary
from pipelines.config import Settings, SettingsError, command_line_settings, load_settings
from pipelines.options import MigrateOptions, unknown_arguments
from pipelines.preflight import TablePlan, check_against_clusters
from transforms import CellOptions, ReadFromCassandra, WriteToCassandra
from transforms import progress as progress_module
from transforms.dead_letters import WriteJsonLines
from transforms.ledger import ControlOptions, RecordWorkItems
from transforms.mapping import MapColumns

_LOG = logging.getLogger("migrator")

# Splits per worker when SPLITS is not set, and partitions per split for big tables.
SPLITS_PER_WORKER = 16
PARTITIONS_PER_SPLIT = 20_000
MAX_AUTO_SPLITS = 10_000

# Modules every SDK worker imports before its first bundle (see _runner_options).
WORKER_IMPORTS = ("transforms", "transforms.ledger", "transforms.dead_letters",
                  "transforms.mapping", "transforms.counters", "transforms.validate")


def command_line_overrides(options: PipelineOptions) -> list[str]:
    """KEY=VALUE for each setting given as its own option, then the --set ones (which win)."""
    values = options.view_as(MigrateOptions).get_all_options()
    assignments = [f"{key}={values[option]}" for option, key, _ in command_line_settings()
                   if values.get(option) is not None]
    return assignments + list(options.view_as(MigrateOptions).overrides or [])


def namespace_of(plan: TablePlan) -> str:
    """The metrics namespace of one table's counters (its name in the ledger too)."""
    return runs.table_key(plan)


def check_secrets_for_runner(settings: Settings, options: PipelineOptions) -> None:
    """A password written in the settings file would travel inside the pipeline to remote
    workers; on a distributed runner it must come from PASSWORD_ENV or PASSWORD_FILE. With a
    LAUNCHER login the workers' secret is not checked at loading (it may live on the workers
    only): when the workers are this process, it must be here."""
    runner = options.view_as(StandardOptions).runner
    if _workers_in_this_process(options):
        for name, side in (("SOURCE", settings.source), ("TARGET", settings.target)):
            variable = side.connection.password_env
            if side.launcher_login is not None and variable and variable not in os.environ:
                raise SettingsError(
                    f"{settings.path}: {name}.PASSWORD_ENV: environment variable {variable} is "
                    f"not set, and the {runner or 'DirectRunner'}'s workers run in this process")
    if runner in (None, "DirectRunner", "direct"):
        return
    inline = [name for name, side in (("SOURCE", settings.source), ("TARGET", settings.target))
              if side.connection.password is not None]
    if inline:
        raise SettingsError(
            f"{settings.path}: {', '.join(f'{name}.PASSWORD' for name in inline)}: a password "
            f"in the settings file is not sent to {runner} workers; use PASSWORD_ENV (a "
            "variable set on the workers) or PASSWORD_FILE (a file the workers can read, "
            "gs:// paths included)")


def _runner_name(options: PipelineOptions) -> str:
    """The runner in one spelling: "direct", "dataflow", "flink", "portable", ..."""
    runner = options.view_as(StandardOptions).runner or "DirectRunner"
    name = runner if isinstance(runner, str) else type(runner).__name__
    return name.rsplit(".", 1)[-1].lower().removesuffix("runner")


def _workers_in_this_process(options: PipelineOptions) -> bool:
    """The DirectRunner, and a LOOPBACK environment (FlinkRunner's choice for an embedded
    Flink when none is given), run the SDK workers in the launching process."""
    runner = _runner_name(options)
    if runner in ("direct", "bundlebaseddirect", "switchingdirect"):
        return True
    environment = (options.view_as(PortableOptions).environment_type or "").upper()
    if not environment and runner == "flink":
        return options.view_as(FlinkRunnerOptions).flink_master in ("[local]", "[auto]", None)
    return environment == "LOOPBACK"


def check_dead_letter_dir_for_runner(settings: Settings, options: PipelineOptions,
                                     key: str = "FAILED_ROWS_DIR") -> None:
    """Dataflow workers write on their own disks, which vanish with them: dead letters (and a
    validation's differences, ``key`` DIFFERENCES_DIR) must go to a bucket there."""
    folder = getattr(settings, key.lower())
    if "://" in folder or _runner_name(options) not in ("dataflow", "testdataflow"):
        return
    raise SettingsError(
        f"{settings.path}: {key}: {folder} is a local path, which "
        "the DataflowRunner's workers would write on their own disks; use gs://<bucket>/<path> "
        "(a bucket the workers' service account can write)")


def check_outputs(settings: Settings, folder_key: str, workers_here: bool = True) -> None:
    """SettingsError naming the setting when a file or folder the run will write cannot be
    made: a folder that does not exist and cannot be created, or one this user may not write
    to. Checked, not made, so that a plan creates nothing. The dead-letter or differences
    folder only when this process runs the workers (``workers_here``): on a cluster the
    workers write it on their machines. Remote paths (gs://) are Beam's file systems' to check
    when written."""
    summary_key = "VALIDATION_SUMMARY_FILE" if folder_key == "DIFFERENCES_DIR" else "SUMMARY_FILE"
    outputs = [("LOG_FILE", False), (summary_key, False)]
    if workers_here:
        outputs.append((folder_key, True))
    problems = []
    for key, is_folder in outputs:
        path = getattr(settings, key.lower())
        if not path or "://" in path:
            continue
        problem = _unwritable(os.path.abspath(path), is_folder)
        if problem:
            problems.append(f"{key}: {path}: {problem}")
    if problems:
        raise SettingsError(f"{settings.path}: " + "; ".join(problems))


def _unwritable(path: str, is_folder: bool) -> str | None:
    """Why ``path`` (a file, or a folder to make files in) cannot be written, or None."""
    if os.path.isdir(path) and not is_folder:
        return "is a folder"
    if os.path.exists(path) and not os.path.isdir(path):
        if is_folder:
            return "is a file, not a folder"
        return None if os.access(path, os.W_OK) else "cannot be written by this user"
    folder = path if is_folder else os.path.dirname(path)
    existing = folder
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        return f"{existing} is a file, so the folder cannot be made"
    if not os.access(existing, os.W_OK | os.X_OK):
        return (f"{existing} cannot be written by this user" if existing == folder
                else f"the folder does not exist and cannot be made in {existing}")
    return None


def splits_for(settings: Settings, plan: TablePlan) -> int:
    if settings.splits is not None:
        return settings.splits
    by_workers = SPLITS_PER_WORKER * settings.max_workers
    by_size = (plan.estimated_partitions or 0) // PARTITIONS_PER_SPLIT
    return min(max(by_workers, by_size), MAX_AUTO_SPLITS)


def run_directory(settings: Settings, started: float) -> str:
    """This run's dead-letter folder: FAILED_ROWS_DIR/<UTC start time>, so no run overwrites
    the files of an earlier one. A relative local FAILED_ROWS_DIR is resolved here, in the
    launcher, so that workers sharing its file system (a local Flink) write where the summary
    says, whatever their working directory."""
    base = settings.failed_rows_dir
    if "://" not in base:
        base = os.path.abspath(base)
    return FileSystems.join(base, time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(started)))


def dead_letter_paths(directory: str, plan: TablePlan) -> dict[str, str]:
    """The files the pipeline's JSON Lines sinks write (failed rows are written by the writer
    itself: ``failed_rows_prefix``)."""
    labels = {"downgraded_rows": plan.target_label, "failed_ranges": plan.source_label,
              "downgraded_ranges": plan.source_label}
    return {kind: FileSystems.join(directory, f"{label}.{kind}.jsonl")
            for kind, label in labels.items()}


def failed_rows_prefix(directory: str, plan: TablePlan) -> str:
    """Failed rows go to ``<prefix>.failed_rows.<process id>.jsonl``."""
    return FileSystems.join(directory, plan.target_label)


def durable_files(directory: str, plan: TablePlan, kind: str) -> list[str]:
    """The files the writers made durably, of one kind: ``failed_rows``, or
    ``downgraded_rows`` (rows written at the fallback consistency)."""
    pattern = f"{failed_rows_prefix(directory, plan)}.{kind}.*.jsonl"
    try:
        return sorted(metadata.path for result in FileSystems.match([pattern])
                      for metadata in result.metadata_list)
    except Exception:  # noqa: BLE001 - no such folder: nothing failed
        return []


def count_records(paths: list[str]) -> int:
    """JSON Lines records in the files (one per non-empty line), read line by line."""
    total = 0
    for path in paths:
        with FileSystems.open(path) as handle:
            total += sum(1 for line in handle if line.strip())
    return total


def rate_per_process(settings: Settings, options: PipelineOptions) -> float | None:
    """The static share of MAX_ROWS_PER_SECOND of one worker process (every writer of a process
    shares one limiter): the run's limit divided among the processes expected to write (see
    writing_processes). With a ledger, each process starts with it and then takes its share of
    the processes writing at the moment (``transforms.rate_limit``); without one, it keeps it."""
    if not settings.max_rows_per_second:
        return None
    return settings.max_rows_per_second / writing_processes(settings, options)


# Compute Engine types whose name does not end in their vCPUs.
_SHARED_CORE_VCPUS = {"e2-micro": 2, "e2-small": 2, "e2-medium": 2, "f1-micro": 1, "g1-small": 1}


def _vcpus(machine_type: str | None) -> int:
    """vCPUs of a Compute Engine machine type (n1-standard-4: 4, n2-custom-6-20480: 6); 1 when
    not given (Dataflow's batch default, n1-standard-1) or not understood."""
    name = (machine_type or "").rsplit("/", 1)[-1]
    if name in _SHARED_CORE_VCPUS:
        return _SHARED_CORE_VCPUS[name]
    found = re.search(r"custom-(\d+)-\d+", name) or re.search(r"-(\d+)(?:-lssd)?$", name)
    return int(found.group(1)) if found else 1


def writing_processes(settings: Settings, options: PipelineOptions) -> int:
    """How many processes write at once, each with its own limiter; rounded up when unsure, so
    the run never goes above its limit before the processes find each other in the ledger.

    DirectRunner: one, or direct_num_workers in multi_processing mode. Flink and other portable
    runners: one with a LOOPBACK environment (every worker thread in the launching process,
    which FlinkRunner uses on an embedded Flink when no environment is given), else one per unit
    of --parallelism (DOCKER, PROCESS, EXTERNAL). Dataflow: an SDK process per vCPU of each VM
    (one per VM with the no_use_multiple_sdk_containers experiment) on up to --max_num_workers
    (else --num_workers) VMs."""
    runner = _runner_name(options)
    if runner in ("direct", "bundlebaseddirect", "switchingdirect"):
        direct = options.view_as(DirectOptions)
        if direct.direct_running_mode == "multi_processing":
            return direct.direct_num_workers or os.cpu_count() or 1
        return 1
    if runner in ("dataflow", "testdataflow"):
        workers = options.view_as(WorkerOptions)
        vms = workers.max_num_workers or workers.num_workers or 1
        if options.view_as(DebugOptions).lookup_experiment("no_use_multiple_sdk_containers"):
            return vms
        return vms * _vcpus(workers.machine_type)
    environment = (options.view_as(PortableOptions).environment_type or "").upper()
    if _workers_in_this_process(options) or "EMBEDDED_PYTHON" in environment:
        return 1
    parallelism = options.view_as(FlinkRunnerOptions).parallelism
    return parallelism if parallelism and parallelism > 0 else settings.max_workers


def build_pipeline(pipeline: beam.Pipeline, settings: Settings, plans: list[TablePlan],
                   dead_letter_dir: str, run: runs.Run | None = None) -> None:
    """Add one read -> write branch per table, with its dead-letter files, and the record of
    its work items in the run ledger (when ``run`` has one)."""
    processes = writing_processes(settings, pipeline.options)
    read_policy = settings.retry_policy(settings.source, settings.read_consistency)
    write_policy = settings.retry_policy(settings.target, settings.write_consistency)
    max_rows, max_share = settings.failure_budget()
    for plan in plans:
        key = runs.table_key(plan)
        ledger = run.ledger if run is not None else None
        control = (ControlOptions(ledger, key, max_rows, max_share, run.attempt)
                   if run is not None else None)
        namespace = namespace_of(plan)
        step = plan.target_label
        mapping = plan.mapping
        window = mapping.writetime_from is not None or mapping.writetime_to is not None
        # What the writer keeps, and what the reader must read for it and for the window.
        kept = CellOptions(writetime=settings.preserve_writetime, ttl=settings.preserve_ttl)
        read_cells = CellOptions(writetime=kept.writetime or window, ttl=kept.ttl)
        # Below protocol v4 an unset value is a null: a tombstone (the decoding writer refuses).
        serialized = plan.serialized(read_cells) and (
            settings.target.connection.protocol_version or 4) >= 4
        _LOG.info("%s: values %s", plan.source_label,
                  "pass through as read, neither decoded nor serialized again" if serialized
                  else "decoded and serialized again (a counter table, CONSTANTS, a writetime "
                       "window, collections written with their writetimes, or "
                       "TARGET.PROTOCOL_VERSION 3)")
        read = pipeline | f"Read {plan.source_label}" >> ReadFromCassandra(
            settings.source.connection, settings.source.keyspace, mapping.source,
            columns=plan.columns, splits=splits_for(settings, plan),
            fetch_size=settings.fetch_batch_size, page_bytes=settings.fetch_page_bytes,
            serialized=serialized, policy=read_policy,
            partitions=plan.partitions, metrics_namespace=namespace,
            cells=read_cells, where=mapping.where,
            work_items=run.work_items.get(key) if run is not None else None,
            item_ends=ledger is not None, control=control)
        rows = read.rows
        if mapping.columns or mapping.constants or window:
            rows = rows | f"Map columns of {step}" >> MapColumns(
                mapping.renames(), dict(mapping.constants), mapping.writetime_from,
                mapping.writetime_to, metrics_namespace=namespace, cells=read_cells, keep=kept)
        written = rows | f"Write {step}" >> WriteToCassandra(
            settings.target.connection, settings.target.keyspace, mapping.target,
            batch_size=settings.batch_insert_size, batch_mode=settings.batch_mode,
            policy=write_policy, max_in_flight=settings.max_requests_in_flight,
            metrics_namespace=namespace, cells=kept,
            max_rows_per_second=settings.max_rows_per_second, writing_processes=processes,
            max_batch_bytes=settings.max_batch_bytes,
            dead_letter_prefix=failed_rows_prefix(dead_letter_dir, plan), control=control,
            serialized=serialized)
        if ledger is not None:
            _ = written.work_items | f"Record work items of {step}" >> RecordWorkItems(
                ledger, key, write_policy)
        outputs = {"downgraded_rows": written.downgraded_rows,
                   "failed_ranges": read.failed_ranges,
                   "downgraded_ranges": read.downgraded_ranges}
        for kind, path in dead_letter_paths(dead_letter_dir, plan).items():
            _ = outputs[kind] | f"Save {kind} of {step}" >> WriteJsonLines(path)


def _runner_options(options: PipelineOptions, settings: Settings, argv: list[str]) -> None:
    """MAX_WORKERS -> the runner's parallelism, unless the command line chose it already:
    direct_num_workers on the DirectRunner, parallelism on Flink (FlinkRunner, or a Flink job
    server behind PortableRunner). Dataflow sizes itself: use --max_num_workers there."""
    standard = options.view_as(StandardOptions)
    if standard.runner is None:
        standard.runner = "DirectRunner"
    # A new SDK worker process decodes its first elements on several bundle threads at once; a
    # pickled work item then imports transforms.read on one thread while another runs the
    # package's __init__ (ImportError, partially initialized module). Beam imports these
    # before the harness starts (sdk_worker_main), so no bundle thread imports our modules.
    setup = options.view_as(SetupOptions)
    setup.beam_plugins = list(dict.fromkeys([*(setup.beam_plugins or []), *WORKER_IMPORTS]))
    if standard.runner in ("FlinkRunner", "PortableRunner"):
        flink = options.view_as(FlinkRunnerOptions)
        if not any(arg.startswith("--parallelism") for arg in argv):
            flink.parallelism = settings.max_workers
    if standard.runner in ("DirectRunner", "direct"):
        direct = options.view_as(DirectOptions)
        if not any(arg.startswith("--direct_num_workers") for arg in argv):
            # Worker threads share one interpreter: beyond the machine's cores they only add
            # contention (measured in BENCHMARKS.md); requests in flight give the concurrency.
            direct.direct_num_workers = min(settings.max_workers, os.cpu_count() or 1)
            _LOG.info("MAX_WORKERS %d: %d DirectRunner worker threads (%d cores), up to %d "
                      "write requests in flight each", settings.max_workers,
                      direct.direct_num_workers, os.cpu_count() or 1,
                      settings.max_requests_in_flight)
        if direct.direct_running_mode in (None, "in_memory") and direct.direct_num_workers > 1:
            direct.direct_running_mode = "multi_threading"


def _remove_empty_local_files(paths: list[str], keep_directory: bool = False) -> list[str]:
    """Dead-letter files with content, after removing empty local ones (nothing failed there)."""
    kept = []
    for path in paths:
        if "://" not in path and os.path.exists(path) and os.path.getsize(path) == 0:
            os.remove(path)
        elif FileSystems.exists(path):
            kept.append(path)
    directory = os.path.dirname(paths[0]) if paths else ""
    if not keep_directory and directory and "://" not in directory and os.path.isdir(directory):
        with contextlib.suppress(OSError):
            os.rmdir(directory)  # only succeeds when nothing failed
    return kept


def load_run(argv: list[str], folder_key: str = "FAILED_ROWS_DIR"
             ) -> tuple[PipelineOptions, MigrateOptions, Settings]:
    """The options and checked settings of a run (migrate, plan, validate); SettingsError when
    they cannot be used (nothing has connected yet). ``folder_key``: the setting of the folder
    the workers write to."""
    problems = unknown_arguments(argv)
    if problems:
        raise SettingsError("the command line: " + "; ".join(problems)
                            + " (cassandra-migrate <subcommand> --help lists the options; "
                            "options for the runner's own side, such as Flink's or "
                            "Dataflow's Java options, go after --)")
    if "--" in argv:  # what follows "--" goes to Beam unchecked (its runner may know it)
        argv = [argument for argument in argv if argument != "--"]
    options = PipelineOptions(argv)
    run_options = options.view_as(MigrateOptions)
    if not run_options.config:
        raise SettingsError("--config PATH (the migrator_settings.yaml to use) is required")
    settings = load_settings(run_options.config, command_line_overrides(options))
    check_secrets_for_runner(settings, options)
    check_dead_letter_dir_for_runner(settings, options, folder_key)
    check_outputs(settings, folder_key, _workers_in_this_process(options))
    return options, run_options, settings


def run(argv: list[str] | None = None) -> int:
    """Run a migration; return the exit code (0 success, 1 failures, 2 bad settings). An
    ``argv`` that starts with a subcommand (``replay PATH ...``) goes to ``pipelines.cli``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    from pipelines import cli  # (here: cli imports this module when it runs a migration)

    if argv[:1] and argv[0] in cli.SUBCOMMANDS:
        return cli.run(argv)
    try:
        options, migrate_options, settings = load_run(argv)
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    logs.configure(settings.log_file, settings.log_level)
    started = time.time()
    try:
        with preflight.connected(settings) as clusters:
            return _migrate(settings, options, argv, migrate_options.resume, clusters, started)
    except SettingsError as error:  # a cluster could not be reached
        _LOG.error("%s", error)
        return 2


def _migrate(settings: Settings, options: PipelineOptions, argv: list[str], resume: str | None,
             clusters: preflight.Clusters, started: float) -> int:
    """Check, record the run, run the pipeline, report; the launcher's own sessions of both
    clusters are open throughout."""
    try:
        plans = check_against_clusters(settings, clusters)
        run = runs.start(settings, plans, resume, splits_for, started, clusters)
    except SettingsError as error:
        _LOG.error("%s", error)
        return 2
    _runner_options(options, settings, argv)
    for plan in plans:
        key = runs.table_key(plan)
        _LOG.info("migrating %s -> %s (%s partitions estimated, %d work items%s)",
                  plan.source_label, plan.target_label,
                  f"{plan.estimated_partitions:,}" if plan.estimated_partitions else "no",
                  len(run.work_items[key]) if key in run.work_items else splits_for(settings, plan),
                  f" of {run.items_total[key]} to do" if run.resumed else "")
    tracker = progress_module.tracker()
    estimates = [plan.estimated_rows for plan in plans]
    tracker.estimated_total = sum(estimates) if all(estimates) else None
    tracker.use_bar = sys.stderr.isatty()
    tracker.start()
    pipeline = beam.Pipeline(options=options)
    dead_letter_dir = run_directory(settings, started)
    build_pipeline(pipeline, settings, plans, dead_letter_dir, run)
    try:
        result, error = run_to_end(pipeline, "the pipeline")
    finally:
        tracker.stop()
    report = _report(settings, plans, run, result, dead_letter_dir, started, error, clusters)
    print(summary.format_table(report))
    for path in report["dead_letter_files"]:
        print(f"see {path}")
    if settings.summary_file:
        summary.write_json(report, settings.summary_file)
        _LOG.info("summary written to %s", settings.summary_file)
    return 0 if report["status"] == "success" else 1


def run_to_end(pipeline: beam.Pipeline, what: str) -> tuple[object | None, str | None]:
    """Run a pipeline and wait for it: (its result, None), or (None, the error) once the error
    is logged with its stack trace, for the summary to report."""
    try:
        result = pipeline.run()
        result.wait_until_finish()
        return result, None
    except Exception as raised:  # noqa: BLE001 - reported in the summary and the log
        _LOG.exception("%s failed", what)
        return None, f"{type(raised).__name__}: {raised}"


def _report(settings: Settings, plans: list[TablePlan], run: runs.Run, result,
            dead_letter_dir: str, started: float, error: str | None,
            clusters: preflight.Clusters) -> dict:
    """The summary of the run: this run's metrics per table, where the ledger says each table
    stands, and a check that every failed row counted has its record in a dead-letter file."""
    standing = runs.progress(settings, run, plans, clusters)
    tables, failed_files = [], []
    for plan in plans:
        if result is None:
            continue
        table = summary.table_summary(result.metrics(), namespace_of(plan), plan.source_label,
                                      plan.target_label)
        files = durable_files(dead_letter_dir, plan, "failed_rows")
        failed_files += files + durable_files(dead_letter_dir, plan, "downgraded_rows")
        table.dead_letter_records = count_records(files)
        table.ledger = standing.get(runs.table_key(plan))
        tables.append(table)
        counts = table.counts
        if table.dead_letter_records != counts["rows_failed"]:
            _LOG.error("%s: %d rows failed but %d dead-letter records were written: the "
                       "accounting does not add up", table.source, counts["rows_failed"],
                       table.dead_letter_records)
        if counts["ranges_downgraded"]:
            _LOG.warning("%s: %d token ranges were read at the fallback consistency, where a "
                         "replica that missed writes can leave rows out: they are listed in "
                         "%s.downgraded_ranges.jsonl; validate or copy them again once the "
                         "cluster is healthy", table.source, counts["ranges_downgraded"],
                         table.source)
        if table.unaccounted:
            _LOG.error("%s: %d rows read were neither written nor dead-lettered",
                       table.source, table.unaccounted)
        if table.ledger is not None and table.ledger.stopped:
            _LOG.error("%s: stopped early: %s. Its unfinished work items are pending in the "
                       "ledger: fix the cause, then run again with --resume %s", table.source,
                       table.ledger.stopped, run.run_id)
    report = summary.run_summary(tables, time.time() - started, error, run_id=run.run_id)
    sinks = _remove_empty_local_files(
        [path for plan in plans for path in dead_letter_paths(dead_letter_dir, plan).values()],
        keep_directory=bool(failed_files))
    report["dead_letter_files"] = failed_files + sinks
    return report


def main() -> None:
    """``python -m pipelines.migrate``: the ``cassandra-migrate`` command (``pipelines.cli``)."""
    from pipelines import cli

    cli.main()


if __name__ == "__main__":
    main()
