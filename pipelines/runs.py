"""A run in the ledger: start one (every work item recorded as pending), or resume one (the items
not done yet), and read back where each table stands after the pipeline.

The ledger (``transforms.ledger``) lives in the target cluster, in ``LEDGER_KEYSPACE``. A run is
known by what it copies (``run_identity``: the source and target clusters and keyspaces) and
its run id, not by where its settings file lies; ``--resume`` takes the latest run of the same
job, ``--resume RUN_ID`` a given one.

Resuming reads the work items recorded by the run, not a new split of the ring: a token range
selects the same rows whatever the ring looks like now, so a ring that changed between the runs
(nodes added, moved or gone) is handled, and only the replicas each range is sent to may be out
of date (the coordinator forwards). A different list of tables is refused: the run's tables are
its identity.

A done item is trusted only while what its rows depend on is unchanged. Each run records a
fingerprint of every table (``fingerprint``): the target and source tables' ids (a table
dropped and created again has a new one; another cluster of the same name has other ids) and a
digest of the settings that decide what is written (the table's mapping: columns, constants,
WHERE, partitions, writetime window; PRESERVE_WRITETIME and PRESERVE_TTL). ``--resume`` refuses
a table whose fingerprint changed, and one whose target is empty although done items wrote
rows to it (truncated), naming the way out: a new run.
"""

from __future__ import annotations

import hashlib
import logging
import os
import uuid
from dataclasses import dataclass, field

from cassandra import ConsistencyLevel, OperationTimedOut, ReadTimeout, Unavailable
from cassandra.query import SimpleStatement

from pipelines.config import Settings, SettingsError
from pipelines.preflight import Clusters, TablePlan
from transforms import token_ranges
from transforms.cql import table_name
from transforms.ledger import (
    DONE,
    Ledger,
    LedgerOptions,
    WorkItemRecord,
    item_id_of_partition,
    new_run_id,
)
from transforms.read import PartitionKey, ReadWorkItem, work_items_of

_LOG = logging.getLogger("migrator")

LATEST = "latest"


def table_key(plan: TablePlan) -> str:
    """How a table of a run is named in the ledger (and in the metrics)."""
    return f"{plan.source_label}->{plan.target_label}"


def fingerprint(settings: Settings, plan: TablePlan, source_session, target_session) -> str:
    """What a table's done work items depend on: "table <target table id>; source <source
    table id>; settings <digest of the settings that decide what is written>". Table ids are
    a table's own (one dropped and created again gets a new one), so two source clusters of
    one name and keyspace, or a recreated target, never pass for the run's."""
    written = repr((plan.mapping, plan.columns, settings.preserve_writetime,
                    settings.preserve_ttl))
    return (f"table {_table_id(target_session, settings.target.keyspace, plan.mapping.target)}; "
            f"source {_table_id(source_session, settings.source.keyspace, plan.mapping.source)}; "
            f"settings {hashlib.sha256(written.encode()).hexdigest()[:16]}")


def _table_id(session, keyspace: str, table: str):
    found = session.execute(
        "SELECT id FROM system_schema.tables WHERE keyspace_name = %s AND table_name = %s",
        (keyspace, table)).one()
    return (found["id"] if isinstance(found, dict) else found[0]) if found else None


def _parts(text: str) -> dict:
    return dict(part.split(" ", 1) for part in text.split("; "))


def _check_fingerprints(settings: Settings, plans, record, items_by_table: dict,
                        source_session, target_session) -> None:
    """SettingsError when a table of the run to resume is not what its done items wrote."""
    for plan in plans:
        key = table_key(plan)
        recorded = record.fingerprints.get(key)
        done = [item for item in items_by_table.get(key, []) if item.status == DONE]
        if recorded is None:
            _LOG.warning("resuming run %s: %s: the run was recorded without a fingerprint (an "
                         "earlier version): its target table and settings are not checked",
                         record.run_id, key)
            continue
        then = _parts(recorded)
        now = _parts(fingerprint(settings, plan, source_session, target_session))
        way_out = ("start a new run (without --resume): it copies every row again, and a "
                   "copy that keeps writetimes writes nothing twice")
        if then.get("table") != now["table"]:
            raise SettingsError(
                f"{settings.path}: --resume {record.run_id}: the target table "
                f"{plan.target_label} is not the one that run wrote to (table {then.get('table')}"
                f", now {now['table']}: dropped and created again since); the rows of its "
                f"{len(done)} done work items are not in it; {way_out}")
        if then.get("source", now["source"]) != now["source"]:
            raise SettingsError(
                f"{settings.path}: --resume {record.run_id}: that run read another table than "
                f"{plan.source_label} (table {then['source']}, this one {now['source']}: "
                "another cluster of the same name and keyspace, or a table created again); "
                f"name the run to finish with --resume RUN_ID (cassandra-migrate runs lists "
                f"them), or {way_out}")
        if then.get("settings") != now["settings"]:
            raise SettingsError(
                f"{settings.path}: --resume {record.run_id}: the settings that decide what is "
                f"written to {plan.target_label} (its COLUMNS, CONSTANTS, WHERE, PARTITIONS, "
                "WRITETIME_FROM/TO, PRESERVE_WRITETIME, PRESERVE_TTL) differ from that run's; "
                f"resume with that run's settings, or {way_out}")
        if any(item.rows_written for item in done) and _empty(settings, plan, target_session):
            raise SettingsError(
                f"{settings.path}: --resume {record.run_id}: the target table "
                f"{plan.target_label} is empty, but that run's done work items wrote "
                f"{sum(item.rows_written for item in done):,} rows to it (truncated since?); "
                f"{way_out}")


def _empty(settings: Settings, plan: TablePlan, target_session) -> bool:
    """Whether the target table holds no row: at QUORUM, or at ONE where a quorum cannot
    answer (a row found there is proof enough; none found still refuses the resume, which the
    message explains)."""
    keyspace, table = settings.target.keyspace, plan.mapping.target
    text = f"SELECT * FROM {table_name(keyspace, table)} LIMIT 1"
    try:
        found = target_session.execute(SimpleStatement(
            text, consistency_level=ConsistencyLevel.QUORUM)).one()
    except (Unavailable, ReadTimeout, OperationTimedOut):
        found = target_session.execute(SimpleStatement(
            text, consistency_level=ConsistencyLevel.ONE)).one()
    return found is None


def run_identity(settings: Settings, source, target, kind: str = "migrate") -> str:
    """What a run is recorded under: what it copies, not where its settings file lies (a file
    moved, copied to another machine or reached by another path finds its runs): the kind of
    run, the source and target clusters by name and their keyspaces. ``source`` and
    ``target``: the launcher's sessions."""
    return (f"{kind}: {source.cluster.metadata.cluster_name}/{settings.source.keyspace} -> "
            f"{target.cluster.metadata.cluster_name}/{settings.target.keyspace}")


def settings_identity(settings: Settings, kind: str = "migrate") -> str:
    """What runs were recorded under before ``run_identity``: the settings file's path, and
    for a validation the word after it. Still searched, so that those runs can be resumed."""
    path = settings.path if "://" in settings.path else os.path.abspath(settings.path)
    return path if kind == "migrate" else f"{path} {kind}"


def recorded_runs(ledger: Ledger, settings: Settings, source, target,
                  kind: str = "migrate") -> list:
    """The runs of this job in the ledger, latest first (run ids sort by their start)."""
    found = {record.run_id: record
             for identity in (run_identity(settings, source, target, kind),
                              settings_identity(settings, kind))
             for record in ledger.runs(identity)}
    return sorted(found.values(), key=lambda record: record.run_id, reverse=True)


def find_run(ledger: Ledger, settings: Settings, source, target, resume: str,
             kind: str = "migrate", tables: list[str] | None = None, recorded=None):
    """The run ``--resume`` means (LATEST: the latest of these clusters and keyspaces, of the
    same ``tables`` where one is; or a run id); SettingsError naming what is wrong.
    ``recorded``: ``recorded_runs``, when the caller has read them already."""
    runs = (recorded if recorded is not None
            else recorded_runs(ledger, settings, source, target, kind))
    if resume == LATEST:
        same_tables = [record for record in runs
                       if tables is not None and sorted(record.tables) == sorted(tables)]
        if same_tables:
            return same_tables[0]
        if not runs:
            raise SettingsError(
                f"{settings.path}: --resume: the ledger {settings.ledger_keyspace} holds no "
                f"{kind} run of {run_identity(settings, source, target, kind).split(': ', 1)[1]}"
                f" (cassandra-migrate runs --config ... lists its runs)")
        return runs[0]
    for record in runs:
        if record.run_id == resume:
            return record
    other = ledger.run(resume)
    if other is None:
        known = ", ".join(record.run_id for record in runs[:5]) or "none"
        raise SettingsError(f"{settings.path}: --resume {resume}: no such run in the ledger "
                            f"{settings.ledger_keyspace} (latest of this job: {known})")
    raise SettingsError(f"{settings.path}: --resume {resume}: that run is not one of these "
                        f"settings: it was recorded as {other.identity!r}")


@dataclass
class Run:
    """The run the pipeline works for: its id, and the work items each table still needs."""

    run_id: str
    ledger: LedgerOptions | None
    attempt: str = ""
    resumed: bool = False
    work_items: dict[str, list[ReadWorkItem]] = field(default_factory=dict)
    items_total: dict[str, int] = field(default_factory=dict)


def _attempt() -> str:
    return uuid.uuid4().hex[:12]


def start(settings: Settings, plans: list[TablePlan], resume: str | None, splits_for,
          started: float, clusters: Clusters, kind: str = "migrate", choose=None) -> Run:
    """Record a new run (or find the one to resume) and its work items; SettingsError when the
    ledger cannot be used or the run cannot be resumed. ``kind``: "migrate" or "validate";
    ``choose(items)``: the work items of a new run to keep (a validation's sample)."""
    if settings.ledger_keyspace is None:
        if resume:
            raise SettingsError(f"{settings.path}: --resume needs a ledger: LEDGER_KEYSPACE is "
                                "null")
        run = Run(run_id=new_run_id(started), ledger=None, attempt=_attempt())
        if choose is not None:  # a validation reads the items it chose; a migration splits
            _split(run, settings, plans, splits_for, clusters.source, choose)
        return run
    session = clusters.target
    try:
        Ledger.create_schema(session, settings.ledger_keyspace)
    except Exception as error:  # noqa: BLE001 - named to the user
        raise SettingsError(
            f"{settings.path}: LEDGER_KEYSPACE: cannot create the run ledger "
            f"{settings.ledger_keyspace} on the target ({type(error).__name__}: {error}); "
            "create that keyspace yourself, name one the user may write to, or set "
            "LEDGER_KEYSPACE: null to run without a ledger (and without --resume)"
        ) from None
    ledger = Ledger(session, settings.ledger_keyspace)
    try:
        if resume:
            return _resume(settings, plans, ledger, resume, kind, clusters.source,
                           clusters.target)
        return _new(settings, plans, ledger, splits_for, started, clusters.source,
                    clusters.target, kind, choose)
    except SettingsError:
        raise
    except Exception as error:  # noqa: BLE001 - named to the user, nothing written yet
        raise SettingsError(
            f"{settings.path}: LEDGER_KEYSPACE: the run ledger {settings.ledger_keyspace} "
            f"could not be {'read' if resume else 'written'}: {type(error).__name__}: "
            f"{error}") from None


def _new(settings, plans, ledger: Ledger, splits_for, started: float, source, target,
         kind: str, choose) -> Run:
    run_id, attempt = new_run_id(started), _attempt()
    run = Run(run_id=run_id, attempt=attempt, ledger=LedgerOptions(
        settings.target.connection, settings.ledger_keyspace, run_id, attempt))
    _split(run, settings, plans, splits_for, source, choose)
    # The run's row goes last: a run found by --resume has all its work items recorded.
    for plan in plans:
        ledger.add_pending(run.run_id, table_key(plan), [_row_of(item) for item in
                                                         run.work_items[table_key(plan)]])
    ledger.start_run(run_identity(settings, source, target, kind), run.run_id,
                     [table_key(p) for p in plans],
                     {table_key(p): fingerprint(settings, p, source, target) for p in plans})
    _LOG.info("run %s: %d work items recorded in the ledger %s", run.run_id,
              sum(run.items_total.values()), settings.ledger_keyspace)
    return run


def _split(run: Run, settings, plans, splits_for, source, choose) -> None:
    """Each table's work items for a new run (those ``choose`` keeps, when given)."""
    for plan in plans:
        items = work_items_of(source.cluster.metadata, settings.source.keyspace,
                              splits_for(settings, plan), plan.partitions)
        if choose is not None:
            items = choose(items)
        run.work_items[table_key(plan)] = items
        run.items_total[table_key(plan)] = len(items)


def _row_of(item: ReadWorkItem) -> tuple:
    if item.partition is not None:
        index = int(item.item_id.split(":")[1])
        return (item.item_id, None, None, [], index)
    token_range = item.token_range
    return (item.item_id, token_range.start, token_range.end, list(token_range.replicas), None)


def refuse_other_tables(settings: Settings, record, wanted: list[str]) -> None:
    """SettingsError when the run to resume copied other tables than these settings do."""
    if sorted(record.tables) != sorted(wanted):
        raise SettingsError(
            f"{settings.path}: --resume {record.run_id}: that run copied "
            f"{', '.join(record.tables)}, these settings copy {', '.join(wanted)}; resume with "
            "the tables of that run, or start a new run")


def _resume(settings, plans, ledger: Ledger, resume: str, kind: str, source, target) -> Run:
    wanted = [table_key(plan) for plan in plans]
    record = find_run(ledger, settings, source, target, resume, kind, wanted)
    refuse_other_tables(settings, record, wanted)
    by_table: dict[str, list[WorkItemRecord]] = {}
    for item in ledger.items(record.run_id):
        by_table.setdefault(item.table, []).append(item)
    _check_fingerprints(settings, plans, record, by_table, source, target)
    stops = ledger.stops(record.run_id)
    for table, reason in stops.items():
        _LOG.info("resuming run %s: %s had stopped (%s); taken as fixed", record.run_id, table,
                  reason)
    ledger.clear_stops(record.run_id)
    attempt = _attempt()
    run = Run(run_id=record.run_id, resumed=True, attempt=attempt,
              ledger=LedgerOptions(settings.target.connection, settings.ledger_keyspace,
                                   record.run_id, attempt))
    for plan in plans:
        key = table_key(plan)
        items = by_table.get(key, [])
        run.items_total[key] = len(items)
        run.work_items[key] = [_work_item(settings, plan, item) for item in items
                               if item.status != DONE]
        _LOG.info("resuming run %s: %s: %d of %d work items to do", record.run_id, key,
                  len(run.work_items[key]), len(items))
    return run


def _work_item(settings, plan: TablePlan, item: WorkItemRecord) -> ReadWorkItem:
    if item.partition_index is not None:
        partitions = plan.partitions or ()
        index = item.partition_index
        if (index >= len(partitions)
                or item_id_of_partition(index, tuple(partitions[index])) != item.item_id):
            raise SettingsError(f"{settings.path}: --resume: the PARTITIONS of "
                                f"{plan.source_label} differ from the run's; resume with the "
                                "settings of that run, or start a new run")
        return ReadWorkItem(partition=PartitionKey(tuple(partitions[index])),
                            item_id=item.item_id)
    return ReadWorkItem(token_range=token_ranges.TokenRange(item.token_start, item.token_end,
                                                            item.replicas),
                        item_id=item.item_id)


@dataclass(frozen=True)
class TableProgress:
    """Where a table of a run stands in the ledger, over all its attempts."""

    items_total: int
    items_done: int
    items_failed: int
    rows_read: int
    rows_written: int
    rows_failed: int
    stopped: str | None
    counts: dict  # what validations found in the items done, by kind


def progress(settings: Settings, run: Run, plans: list[TablePlan],
             clusters: Clusters) -> dict[str, TableProgress]:
    """Each table's standing in the ledger after the pipeline (empty without a ledger, or when
    the ledger cannot be read)."""
    if run.ledger is None:
        return {}
    try:
        ledger = Ledger(clusters.target, settings.ledger_keyspace)
        items = ledger.items(run.run_id)
        stops = ledger.stops(run.run_id)
    except Exception as error:  # noqa: BLE001 - the summary says it could not
        _LOG.error("could not read the ledger after the run: %s", error)
        return {}
    result = {}
    for plan in plans:
        key = table_key(plan)
        mine = [item for item in items if item.table == key]
        result[key] = TableProgress(
            items_total=len(mine),
            items_done=sum(item.status == DONE for item in mine),
            items_failed=sum(item.status == "failed" for item in mine),
            rows_read=sum(item.rows_read for item in mine),
            rows_written=sum(item.rows_written for item in mine),
            rows_failed=sum(item.rows_failed for item in mine),
            stopped=stops.get(key),
            counts=_sum_counts(item.counts for item in mine if item.status == DONE))
    return result


def _sum_counts(counts) -> dict:
    total: dict = {}
    for count in counts:
        for kind, rows in count.items():
            total[kind] = total.get(kind, 0) + rows
    return total
