"""MapColumns: rename, skip and add columns between a read and a write, and keep only rows last
written in a time window. Fused between the two, so rows still never pass through a shuffle.

Renaming carries a column's ``writetime(c)`` and ``ttl(c)`` along with it. Constant columns
have no writetime of their own: they are written with the row's newest cells. The writetime
window keeps a row when its newest cell was written in [from, to); rows holding only key
columns have no writetime and are kept (copying them again changes nothing).

The window needs writetimes even when the copy does not keep them: rows then come in with
writetimes (``cells``) and leave with what the writer is told to expect (``keep``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import apache_beam as beam
from apache_beam.metrics import Metrics

from transforms.cells import (
    TTL_PREFIX,
    VALUES_ONLY,
    WRITETIME_PREFIX,
    CellOptions,
    is_metadata_key,
    ttl_key,
    writetime_key,
)
from transforms.read import WorkItemEnd

__all__ = ["MapColumns", "map_row", "newest_writetime"]


def newest_writetime(row: Mapping) -> int | None:
    """The writetime of a row's newest cell (None: key columns only)."""
    newest = None
    for name, value in row.items():
        if not name.startswith(WRITETIME_PREFIX) or value is None:
            continue
        for writetime in value if isinstance(value, list) else (value,):
            if writetime is not None and (newest is None or writetime > newest):
                newest = writetime
    return newest


def _rename_key(name: str, renames: Mapping[str, str | None]) -> str | None:
    """The target name of a column or of its writetime/TTL key; None drops it."""
    for prefix, make in ((WRITETIME_PREFIX, writetime_key), (TTL_PREFIX, ttl_key)):
        if name.startswith(prefix):
            column = name[len(prefix):-1]
            if column not in renames:
                return name
            target = renames[column]
            return None if target is None else make(target)
    return renames.get(name, name)


def map_row(row: Mapping, renames: Mapping[str, str | None], constants: Mapping) -> Mapping:
    """A source row in the target's column names: renamed (with the writetime and TTL keys of
    renamed columns), skipped columns dropped, constants added."""
    if renames:
        mapped = {}
        for name, value in row.items():
            target = _rename_key(name, renames) if (
                name in renames or is_metadata_key(name)) else name
            if target is not None:
                mapped[target] = value
        row = mapped
    if constants:
        row = {**row, **constants}
    return row


class _MapColumnsFn(beam.DoFn):
    def __init__(self, renames: dict, constants: dict, writetime_from: int | None,
                 writetime_to: int | None, metrics_namespace: str, cells: CellOptions,
                 keep: CellOptions):
        self._cells = cells
        self._keep = keep
        self._renames = renames
        self._constants = constants
        self._window = (writetime_from, writetime_to)
        self._namespace = metrics_namespace

    def setup(self):
        self._filtered = Metrics.counter(self._namespace, "rows_filtered")
        self._dropped = 0  # rows of the current work item filtered out

    def process(self, row: Mapping):
        if isinstance(row, WorkItemEnd):
            # For the writer: the end of a work item's rows, and how many of them stop here.
            yield dataclasses.replace(row, rows_filtered=row.rows_filtered + self._dropped)
            self._dropped = 0
            return
        since, until = self._window
        if since is not None or until is not None:
            newest = newest_writetime(row)
            if newest is not None and ((since is not None and newest < since)
                                       or (until is not None and newest >= until)):
                self._filtered.inc()
                self._dropped += 1
                return
        yield map_row(self._cells.keep_only(row, self._keep), self._renames, self._constants)


class MapColumns(beam.PTransform):
    """Rename (``renames``: source -> target name, None skips), add ``constants`` (target
    column -> value) and keep only rows whose newest writetime lies in
    [``writetime_from``, ``writetime_to``) (microseconds; either may be None; the rows must
    carry writetimes). Rows filtered out are counted as ``rows_filtered`` in
    ``metrics_namespace``. ``cells`` is what the rows carry beside their values, ``keep`` what
    they still carry when they leave (by default the same)."""

    def __init__(self, renames: Mapping[str, str | None] | None = None,
                 constants: Mapping | None = None, writetime_from: int | None = None,
                 writetime_to: int | None = None, metrics_namespace: str = "columns", *,
                 cells: CellOptions = VALUES_ONLY, keep: CellOptions | None = None):
        super().__init__()
        if (writetime_from is not None or writetime_to is not None) and not cells.writetime:
            raise ValueError("a writetime window needs rows read with their writetimes "
                             "(cells=CellOptions(writetime=True))")
        self._fn = _MapColumnsFn(dict(renames or {}), dict(constants or {}), writetime_from,
                                 writetime_to, metrics_namespace, cells,
                                 cells if keep is None else keep)

    def expand(self, rows):
        return rows | beam.ParDo(self._fn)
