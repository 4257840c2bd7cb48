"""Counter tables: how ``WriteToCassandra`` copies their rows so that a rerun does not double them.

Counter columns cannot be INSERTed, only incremented, and an increment is not idempotent: sending
``"c" = "c" + 5`` twice adds 10. So a counter row is copied by *reconciling* it: read the
target's current values for the row's primary key, compute ``delta = source - target`` per
counter column (a missing or null target counts as 0), and, if any delta is non-zero, send one
``UPDATE ks.t SET "c1" = "c1" + ?, ... WHERE <primary key>`` with only those deltas. A target that
already holds the source's values gets no write at all (``rows_unchanged``).

Shape, as in ``transforms.write``: rows -> ``BatchElements`` (bundles of at most ``batch_size``
rows, fused, no shuffle) -> a DoFn that keeps up to ``max_in_flight`` requests running
asynchronously, reads and updates alike: each row's target read is prepared and sent as soon as
there is room, and its UPDATE is sent when the read comes back.

Idempotence, and its limit. What the transform does to a row is "make the target equal to the
source", and doing that twice is the same as doing it once: a rerun of the whole copy, a bundle
retried by the runner, or a retried request all read the target again and find a zero delta.
That holds as long as the target changes only through this copy, and the argument is exactly as
good as its two assumptions:

  * Nobody else writes these counters while the copy runs. A concurrent writer incrementing the
    same target counters breaks ``delta = source - target``: an increment made between our read
    and our update is not in the delta, and a later rerun takes it away again (see below). The
    tool is for *copying* a table, not for *merging* two live ones.
  * The read sees every increment this copy made before. On one replica it always does. With a
    replication factor above one, an increment that timed out may have reached fewer replicas
    than the next read consults (more so after a downgrade to the fallback level), and a runner
    that runs the same bundle twice at once (speculative execution) can read the same old value
    twice. Either can leave a counter off; a later rerun, once hints and repair have done their
    work, reads the true value and corrects it, because every delta is taken from the current
    target. A second run that reports every row as unchanged is the proof that a copy is done.

Retries (``transforms.requests`` and ``transforms.retry``: recoverable errors, backoff,
downgrade from the policy's consistency to the fallback): a counter UPDATE that failed with a
timeout may or may not have been applied, so it is never resent as it was. Every retry reads the
target again and recomputes the delta before it sends anything, and sends nothing when the delta
is now zero (the first UPDATE was applied after all). A failed read is retried the same way. A
row that still fails goes to the ``FAILED_ROWS`` output
(``transforms.dead_letters.failed_row_record``; its ``cql`` is replaced by ``None``: an INSERT
is not valid on a counter table and a fixed increment is not safe to replay; rerun the copy of
the partition instead) and to the log. A row whose UPDATE went through at the fallback level
goes to ``DOWNGRADED_ROWS``.

Consistency: the target read and the UPDATE of an attempt use the same level, the policy's
``consistency`` (QUORUM by default), or its fallback after a downgrade: a read at the write level
sees what earlier writes at that level left, and a downgraded retry could not read at the higher
level anyway (an Unavailable at QUORUM fails a QUORUM read too).

No batches: one UPDATE per row (Cassandra takes counter updates in COUNTER batches, and 5.0 also
in UNLOGGED ones, never in LOGGED ones). A batch would not help much and would hurt: each row
needs its own read first; a counter write is already a read-before-write on the leader replica;
and a batch that times out leaves every row in it uncertain, to be re-read row by row anyway. So
``batch_size`` only sizes the bundles handed to the DoFn, and ``batch_fallbacks`` stays zero.

Semantics worth knowing:
  * A target value above the source's (someone incremented it on the target) gets a negative
    delta: the target ends equal to the source, the other increments are undone.
  * A null source counter means "no value": it is not written, and a target value in that column
    is left as it is (as ``WriteToCassandra`` leaves target values where the source has nulls;
    a counter could only be nulled by a DELETE, after which it can never be incremented again).
  * A source value of 0 on a null target is written as ``+ 0``, which creates the cell with 0.
  * A counter that was DELETEd on the target ignores every later increment (Cassandra's rule):
    such a row is "written" on every run and never becomes unchanged; only dropping the
    tombstone (or the table) on the target helps.
  * Static counters belong to the partition: they are reconciled once per partition, by the
    first row of each run of rows of that partition (``ReadFromCassandra`` emits a partition's
    rows together), with at most one static read-and-update of a partition in flight.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from transforms import retry
from transforms.cql import quote, select_statement, table_name
from transforms.requests import InFlight, outcome_of, send
from transforms.row_writer import ItemTally, RowWriterFn

_LOG = logging.getLogger(__name__)


def update_statement(keyspace: str, table: str, counters: tuple[str, ...],
                     key_columns: tuple[str, ...]) -> str:
    """``UPDATE ... SET "c" = "c" + ?, ... WHERE "k" = ? AND ...``: deltas first, then the key."""
    increments = ", ".join(f"{quote(name)} = {quote(name)} + ?" for name in counters)
    return (f"UPDATE {table_name(keyspace, table)} SET {increments} WHERE "
            + " AND ".join(f"{quote(name)} = ?" for name in key_columns))


def counter_deltas(source: Mapping, target: Mapping | None, counters: tuple[str, ...]) -> dict:
    """``source - target`` for each counter whose source value is set and differs on the target.

    A missing or null target counts as 0, but a set source value on a null target is always
    included (``+ 0`` creates a 0 cell); a null source value is never written."""
    deltas = {}
    for name in counters:
        wanted = source.get(name)
        if wanted is None:
            continue
        current = target.get(name) if target else None
        if current is None or current != wanted:
            deltas[name] = wanted - (current or 0)
    return deltas


class _RowState:
    """A row on its way: how many of its units are still running and what they did."""

    __slots__ = ("row", "tally", "pending", "applied", "downgraded_to", "failure")

    def __init__(self, row: Mapping, tally: ItemTally):
        self.row = row
        self.tally = tally
        self.pending = 0
        self.applied = False
        self.downgraded_to: int | None = None
        self.failure: retry.Outcome | None = None


class _Unit:
    """One read-compare-increment: a row's regular counters, or its partition's static ones."""

    __slots__ = ("state", "kind", "counters", "key_values", "read", "guard", "future",
                 "updating")

    def __init__(self, state: _RowState, kind: str, counters: tuple[str, ...],
                 key_values: list, read):
        self.state = state
        self.kind = kind
        self.counters = counters
        self.key_values = key_values
        self.read = read
        # The serialized key: a second unit for the same counters waits until this one is done,
        # or both would read the same old value and both add the difference.
        self.guard = (kind, tuple(read.values))
        self.future = None
        self.updating = False


class _WriteCountersFn(RowWriterFn):
    COUNTERS = (*RowWriterFn.COUNTERS, "rows_unchanged")

    # ----------------------------------------------------------------- lifecycle

    def setup(self):
        super().setup()
        table = self._table_metadata
        counters = [column for column in table.columns.values() if column.cql_type == "counter"]
        if not counters:
            raise ValueError(f"{self._label} has no counter columns")
        self._regular = tuple(column.name for column in counters if not column.is_static)
        self._static = tuple(column.name for column in counters if column.is_static)
        # kind -> (key columns of its WHERE clause, its counters, its prepared read)
        self._kinds = {}
        row_key = self._key_columns
        if self._regular:
            self._kinds["row"] = (row_key, self._regular, self._session.prepare(select_statement(
                self._keyspace, self._table, self._regular, self._where(row_key))))
        if self._static:
            self._kinds["static"] = (self._partition_key, self._static, self._session.prepare(
                select_statement(self._keyspace, self._table, self._static,
                                 self._where(self._partition_key)) + " LIMIT 1"))
        self._updates: dict[tuple, object] = {}
        self._last_partition = None

    def start_bundle(self):
        super().start_bundle()
        self._in_flight: InFlight[_Unit] = InFlight(self._max_in_flight, self._advance)
        self._guards_in_flight: set[tuple] = set()

    def _write(self, rows: list[Mapping], tally: ItemTally):
        for row in rows:
            self._start(row, tally)

    def _complete_all(self):
        self._in_flight.drain()

    # ----------------------------------------------------------------- statements

    @staticmethod
    def _where(columns) -> str:
        return " AND ".join(f"{quote(name)} = ?" for name in columns)

    def _units_of(self, state: _RowState) -> list[_Unit]:
        """The reads to start for a row; ValueError if a key column it needs is null."""
        row, units = state.row, []
        for kind, (key_columns, counters, read) in self._kinds.items():
            if all(row.get(name) is None for name in counters):
                continue  # nothing to copy (a static-only row has no regular values, say)
            key_values = [row.get(name) for name in key_columns]
            missing = [name for name in key_columns if row.get(name) is None]
            if missing:
                raise ValueError(f"primary key column(s) {', '.join(missing)} of "
                                 f"{self._label} are null")
            unit = _Unit(state, kind, counters, key_values, read.bind(key_values))
            if kind == "static":
                if unit.guard == self._last_partition:
                    continue  # an earlier row of this partition reconciles its statics
                self._last_partition = unit.guard
            units.append(unit)
        return units

    def _bind_update(self, unit: _Unit, deltas: Mapping):
        columns = tuple(deltas)
        key_columns = self._kinds[unit.kind][0]
        prepared = self._updates.get((unit.kind, columns))
        if prepared is None:
            prepared = self._session.prepare(update_statement(self._keyspace, self._table,
                                                              columns, key_columns))
            self._updates[(unit.kind, columns)] = prepared
        return prepared.bind([*deltas.values(), *unit.key_values])

    # ----------------------------------------------------------------- requests

    def _start(self, row: Mapping, tally: ItemTally):
        state = _RowState(row, tally)
        try:
            units = self._units_of(state)
        except Exception as error:  # noqa: BLE001 - a row that cannot be bound is a dead letter
            state.failure = retry.Outcome(error=error, consistency=self._policy.consistency)
            self._row_done(state)
            return
        if not units:
            self._row_done(state)
            return
        state.pending = len(units)
        for unit in units:
            while unit.guard in self._guards_in_flight:
                self._in_flight.complete_oldest()
            self._guards_in_flight.add(unit.guard)
            self._submit(unit, unit.read)

    def _submit(self, unit: _Unit, statement):
        # Completing the oldest request may submit its UPDATE: that runs in the slot it freed.
        self._in_flight.make_room()
        unit.future = send(self._session, statement, self._policy.consistency)
        self._in_flight.add(unit)

    def _advance(self, unit: _Unit):
        """Take the next step of a unit whose request is the oldest: UPDATE after read, or done.
        A failed read or UPDATE is retried by reconciling again (``_reconcile``)."""
        sent = [unit.updating]  # an UPDATE that failed may still have been applied
        outcome = outcome_of(unit.future,
                             lambda consistency: self._reconcile(unit, consistency, sent),
                             self._policy, describe=lambda: self._describe(unit))
        if outcome.attempts > 1 or not outcome.ok:
            self._account(outcome)
            self._unit_done(unit, outcome, applied=sent[0])
            return
        first_try = retry.Outcome(attempts=1, consistency=self._policy.consistency)
        if unit.updating:
            self._unit_done(unit, first_try, applied=True)
            return
        deltas = counter_deltas(unit.state.row, outcome.result.one(), unit.counters)
        if not deltas:
            self._unit_done(unit, first_try, applied=False)
            return
        try:
            update = self._bind_update(unit, deltas)
        except Exception as error:  # noqa: BLE001 - a delta out of range, say: nothing was sent
            self._unit_done(unit, retry.Outcome(error=error, attempts=1,
                                                consistency=self._policy.consistency),
                            applied=False)
            return
        unit.updating = True
        self._submit(unit, update)

    def _reconcile(self, unit: _Unit, consistency: int, sent: list[bool]):
        """A retry: read the target again and send the delta still missing, if any."""
        self._check_not_stopped()
        unit.read.consistency_level = consistency
        deltas = counter_deltas(unit.state.row, self._session.execute(unit.read).one(),
                                unit.counters)
        if deltas:
            update = self._bind_update(unit, deltas)
            update.consistency_level = consistency
            sent[0] = True
            self._session.execute(update)

    def _unit_done(self, unit: _Unit, outcome: retry.Outcome, applied: bool):
        self._guards_in_flight.discard(unit.guard)
        state = unit.state
        state.pending -= 1
        if not outcome.ok:
            state.failure = state.failure or outcome
        elif applied:
            state.applied = True
            if outcome.downgraded:
                state.downgraded_to = outcome.consistency
        if state.pending == 0:
            self._row_done(state)

    # ----------------------------------------------------------------- results

    def _row_done(self, state: _RowState):
        if state.failure is not None and isinstance(state.failure.error, retry.TableStopped):
            self._skipped(1, state.tally)
            return
        if state.failure is not None:
            # No statement replays a counter row safely: rerun the copy of its partition.
            self._dead_letter(state.row, state.failure, state.tally, what="counter row",
                              replayable=False)
            return
        if state.applied and state.downgraded_to is not None:
            self._downgraded([state.row], state.downgraded_to, state.tally)
        self._written(1, state.tally, unchanged=not state.applied)

    def _describe(self, unit: _Unit) -> str:
        key = self._key_of(unit.state.row)
        what = "static counters" if unit.kind == "static" else "counters"
        return (f"reconciling {what} of {self._label} (partition {key['partition_key']}, "
                f"clustering {key['clustering']})")
