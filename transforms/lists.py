"""Non-frozen lists written once: the guard that keeps a rerun, a retry or a batch fallback from
appending a list's elements a second time.

Cassandra gives each element of a non-frozen list a new cell id at every write, so a list
written twice at the same writetime holds its elements twice: the tombstone that an INSERT puts
before a collection is one microsecond older than the write and does not cover the first copy.
Sets, maps and user types are overwritten in place and need no guard; nor do lists written
without their source writetime (each write then gets a newer timestamp, whose tombstone removes
what an earlier write left).

Before a row with a non-frozen list is written, and again before every resend of it (a retry
after a timeout whose write may have landed, the row-by-row fallback after a failed batch), the
guard reads the target's list and leaves the list out of the row when

* the target already holds the same list (a rerun, or a resend whose first write landed), or
* the target's list was written at the source's writetime or later (a newer write on the target
  wins, as for every other cell). This needs both writetimes: ``maxwritetime`` on a target of
  Cassandra 5.0 or later, and the source's per-element writetimes (also 5.0 or later).

When the target holds another list and those writetimes are not both known (a side older than
5.0), the list is written at the time of the copy (its writetime key set to None), not at its
source writetime: that one may be no newer than the target's elements (a list shortened or
appended to since the last copy, on either side), whose tombstone would then not cover them and
the source's elements would be added to the target's. A list written on the target after the
copy is therefore replaced by the source's there (the README's version notes).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from transforms import retry, versions
from transforms.cells import writetime_key, writetime_of
from transforms.cql import quote, select_statement
from transforms.requests import outcome_of, resend, send

__all__ = ["ListGuard", "list_columns"]

_LOG = logging.getLogger(__name__)


def list_columns(table_metadata) -> tuple[str, ...]:
    """The table's non-frozen list columns."""
    return tuple(name for name, column in table_metadata.columns.items()
                 if column.cql_type.startswith("list<"))


class ListGuard:
    """Reads the target's lists of a bundle's rows and leaves out the ones already written."""

    def __init__(self, session, keyspace: str, table: str, columns: tuple[str, ...],
                 key_columns: tuple[str, ...], policy: retry.RetryPolicy):
        self.columns = columns
        self._session = session
        self._key_columns = key_columns
        self._policy = policy
        self._label = f"{keyspace}.{table}"
        self.target_writetimes = versions.reports_element_writetimes(
            versions.oldest_release(session.cluster.metadata))
        selectors = [quote(name) for name in columns]
        if self.target_writetimes:
            selectors += [f"maxwritetime({quote(name)})" for name in columns]
        self._read = session.prepare(select_statement(
            keyspace, table, selectors,
            " AND ".join(f"{quote(name)} = ?" for name in key_columns), quoted=True))

    def carries_lists(self, row: Mapping) -> bool:
        return any(row.get(name) for name in self.columns)

    def check(self, rows: list[Mapping]) -> tuple[list[tuple[Mapping, Mapping]],
                                                  list[tuple[Mapping, retry.Outcome]]]:
        """((row, row to write), ...) and ((row, failed read outcome), ...) for ``rows``.

        The row to write is the row itself, or a copy without the lists the target holds. A row
        whose target could not be read, even after retries, is not written: writing it blind
        could duplicate its lists."""
        reads = []
        for row in rows:
            key = [row.get(name) for name in self._key_columns]
            if not self.carries_lists(row) or any(value is None for value in key):
                reads.append(None)  # nothing to guard, or a row the writer will refuse
                continue
            statement = self._read.bind(key)
            reads.append((statement, send(self._session, statement, self._policy.consistency)))
        checked, failed = [], []
        for row, read in zip(rows, reads, strict=True):
            if read is None:
                checked.append((row, row))
                continue
            statement, future = read
            outcome = outcome_of(future, resend(self._session, statement), self._policy,
                                 describe=lambda: f"reading the lists of a row of {self._label}")
            if not outcome.ok:
                failed.append((row, outcome))
                continue
            checked.append((row, self._without_written_lists(row, outcome.result.one())))
        return checked, failed

    def _without_written_lists(self, row: Mapping, target: Mapping | None) -> Mapping:
        if not target:
            return row
        values = list(target.values())
        written, restamped = [], []
        for index, name in enumerate(self.columns):
            if row.get(name) is None:
                continue
            if values[index] == row[name]:
                written.append(name)
                continue
            if values[index] is None:
                continue  # nothing to add to: the source writetime is safe
            source_writetime = writetime_of(row, name)
            if self.target_writetimes and source_writetime is not None:
                if values[len(self.columns) + index] >= source_writetime:
                    written.append(name)
            else:
                restamped.append(name)
        if not written and not restamped:
            return row
        checked = {name: None if name in written else value for name, value in row.items()}
        checked.update((writetime_key(name), None) for name in restamped)
        return checked
