"""Cells and their metadata: what a row carries beside its values, and how a row read with
writetimes and TTLs becomes INSERTs that keep them.

``CellOptions`` says what the rows of a pipeline step carry: column values only, or also a
writetime and/or a TTL per regular column. Read, MapColumns and Write each receive one, so no
step guesses; this module alone names the keys (``writetime(c)``, ``ttl(c)``) that hold them.

A row read with ``CellOptions(writetime=True, ttl=True)`` carries, next to each regular column
``c``, the keys ``writetime(c)`` and ``ttl(c)``. To keep them on the target, the row's non-null
cells are grouped by (writetime, TTL) and each group is written by one INSERT ... USING TIMESTAMP
? AND TTL ?: a rerun writes the same cells with the same timestamps (idempotent), and a newer
write made on the target meanwhile keeps winning, because its timestamp is higher.

Non-frozen collections and user types are written whole. Cassandra 5.0 reports a writetime and
a TTL per element: the collection takes its newest element's writetime, and the longest
remaining TTL of its elements, or none if any element has none, so no element expires earlier
on the target than on the source. Older servers cannot report them; there the collection joins
the row's newest group.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from cassandra.query import UNSET_VALUE

WRITETIME_PREFIX = "writetime("
TTL_PREFIX = "ttl("


@dataclass(frozen=True)
class CellOptions:
    """What each row carries beside its column values: ``writetime(c)`` for every regular
    column ``c`` when ``writetime``, ``ttl(c)`` when ``ttl`` (where the server can report them:
    see the module docstring). The default carries values only."""

    writetime: bool = False
    ttl: bool = False

    @property
    def any(self) -> bool:
        return self.writetime or self.ttl

    def describe(self) -> str:
        kept = [name for name, kept in (("writetime", self.writetime), ("ttl", self.ttl)) if kept]
        return "values with " + " and ".join(kept) if kept else "values only"

    def keep_only(self, row: Mapping, kept: CellOptions) -> Mapping:
        """``row`` (which carries what ``self`` says) with only what ``kept`` says."""
        if (self.writetime <= kept.writetime) and (self.ttl <= kept.ttl):
            return row
        drop = tuple(prefix for prefix, carried, wanted in (
            (WRITETIME_PREFIX, self.writetime, kept.writetime), (TTL_PREFIX, self.ttl, kept.ttl))
            if carried and not wanted)
        return {name: value for name, value in row.items() if not name.startswith(drop)}


VALUES_ONLY = CellOptions()


def writetime_key(column: str) -> str:
    return f"writetime({column})"


def ttl_key(column: str) -> str:
    return f"ttl({column})"


def is_metadata_key(key: str) -> bool:
    return key.startswith(WRITETIME_PREFIX) or key.startswith(TTL_PREFIX)


def is_multi_cell(cql_type: str, user_types: set[str]) -> bool:
    """Non-frozen collections and non-frozen user types hold one cell per element."""
    if cql_type.startswith("frozen<"):
        return False
    return cql_type.startswith(("list<", "set<", "map<")) or cql_type.strip('"') in user_types


def _newest(writetime):
    if isinstance(writetime, list):
        present = [value for value in writetime if value is not None]
        return max(present) if present else None
    return writetime


def _longest(ttl):
    if isinstance(ttl, list):
        return None if not ttl or any(value is None for value in ttl) else max(ttl)
    return ttl


def writetime_of(row: Mapping, column: str) -> int | None:
    """The writetime read with ``column`` (a collection's newest element's), or None."""
    return _newest(row.get(writetime_key(column)))


def data_of(row: Mapping) -> dict:
    """The row's column values, without writetime and TTL keys."""
    return {name: value for name, value in row.items() if not is_metadata_key(name)}


def cell_groups(row: Mapping, key_columns: tuple[str, ...], cells: CellOptions,
                static: frozenset = frozenset(), partition_key: tuple[str, ...] = ()
                ) -> list[tuple[dict, int | None, int | None]]:
    """(columns to write, writetime or None, TTL or None) for each group of the row's cells.

    Key columns are in every group; a key column that is None (the clustering key of a
    partition that holds only static cells) is left out. A row of key columns only is one group
    without timestamp. Null cells are never written (no tombstones).

    Static cells (``static``, with the table's ``partition_key``): a group of static cells only
    is written with the partition key alone. Written with the clustering key, its INSERT would
    give the clustering row a row marker with the static's lifetime, and a row that expires on
    the source would live on the target. A clustering row whose only live cells are statics
    (its regular cells null or expired: it lives by its row marker) gets a group of its key
    columns alone, without timestamp or TTL: CQL cannot read a row marker's."""
    keep_writetime, keep_ttl = cells.writetime, cells.ttl
    keys = {name: row[name] for name in key_columns if row.get(name) is not None}
    groups: dict[tuple, dict] = {}
    unknown: dict = {}
    for name, value in row.items():
        if value is None or name in keys or is_metadata_key(name) or name in key_columns:
            continue
        writetime = _newest(row.get(writetime_key(name))) if keep_writetime else None
        ttl = _longest(row.get(ttl_key(name))) if keep_ttl else None
        if keep_writetime and writetime is None and writetime_key(name) not in row:
            unknown[name] = value  # no writetime was read for it: joins the newest group
            continue
        groups.setdefault((writetime, ttl), {})[name] = value
    if unknown:
        newest = max(groups, key=lambda group: group[0] or 0, default=(None, None))
        groups.setdefault(newest, {}).update(unknown)
    if not groups:
        return [(keys, None, None)]
    if not static:
        return [({**keys, **cells}, writetime, ttl) for (writetime, ttl), cells in groups.items()]
    partition = {name: keys[name] for name in partition_key if name in keys}
    clustered = len(keys) > len(partition)
    written, regular = [], False
    for (writetime, ttl), group in groups.items():
        if clustered and not static.issuperset(group):
            regular = True
            written.append(({**keys, **group}, writetime, ttl))
        else:
            written.append(({**partition, **group}, writetime, ttl))
    if clustered and not regular:
        written.append((keys, None, None))
    return written


class RowLayout:
    """The columns of rows that share one key order (every row of one reader does), worked out
    once so that a row whose cells share one writetime and TTL, the usual case, becomes one
    INSERT without grouping its cells one by one.

    ``columns`` are the data columns in row order; ``uniform(row)`` gives the values to bind
    for them (UNSET for nulls, so no tombstones), the writetime and the TTL, or None when the
    row needs ``cell_groups``: its cells differ in writetime or TTL, or a key column is null."""

    def __init__(self, keys: tuple[str, ...], key_columns: tuple[str, ...], cells: CellOptions):
        keep_writetime, keep_ttl = cells.writetime, cells.ttl
        present = set(keys)
        self.columns = tuple(name for name in keys if not is_metadata_key(name))
        self._keys = tuple(index for index, name in enumerate(self.columns)
                           if name in key_columns)
        self._regular = tuple(
            (index,
             writetime_key(name) if keep_writetime and writetime_key(name) in present else None,
             ttl_key(name) if keep_ttl and ttl_key(name) in present else None)
            for index, name in enumerate(self.columns) if name not in key_columns)
        self._writetimes = tuple((index, name) for index, name, _ in self._regular if name)
        self._ttls = tuple((index, name) for index, _, name in self._regular if name)

    def uniform(self, row: Mapping) -> tuple[list, int | None, int | None] | None:
        values = [UNSET_VALUE if (value := row[name]) is None else value
                  for name in self.columns]
        for index in self._keys:
            if values[index] is UNSET_VALUE:
                return None
        try:  # the usual case, scalar cells: one writetime and one TTL each
            writetimes = {row[name] for index, name in self._writetimes
                          if values[index] is not UNSET_VALUE}
            ttls = {row[name] for index, name in self._ttls if values[index] is not UNSET_VALUE}
        except TypeError:  # a list per collection or user type: its elements' cells
            return self._uniform_elements(row, values)
        if len(writetimes) > 1 or len(ttls) > 1:
            return None
        return (values, writetimes.pop() if writetimes else None, ttls.pop() if ttls else None)

    def _uniform_elements(self, row: Mapping, values: list
                          ) -> tuple[list, int | None, int | None] | None:
        unseen = writetime = ttl = _UNSEEN
        for index, writetime_name, ttl_name in self._regular:
            if values[index] is UNSET_VALUE:
                continue
            if writetime_name is not None:
                cell_writetime = _newest(row[writetime_name])
                if writetime is unseen:
                    writetime = cell_writetime
                elif cell_writetime != writetime:
                    return None
            if ttl_name is not None:
                cell_ttl = _longest(row[ttl_name])
                if ttl is unseen:
                    ttl = cell_ttl
                elif cell_ttl != ttl:
                    return None
        return (values, None if writetime is unseen else writetime,
                None if ttl is unseen else ttl)


_UNSEEN = object()
