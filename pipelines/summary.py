"""The end-of-run summary: per-table status, counts and time, from the pipeline's metrics.

Counters live in one metrics namespace per table (``transforms`` name them). The runner brings
them back to the launching process; this module reads them from ``result.metrics()``, decides
each table's status, prints a table on the console and writes the same facts as JSON.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from apache_beam.metrics.metric import MetricsFilter

COUNTERS = ("rows_read", "rows_written", "rows_failed", "write_retries", "read_retries",
            "consistency_downgrades", "batch_fallbacks", "ranges_failed", "ranges_downgraded",
            "rows_filtered", "rows_unchanged", "rows_skipped", "work_items_skipped",
            "outage_ms", "bytes_written")


@dataclass
class TableSummary:
    """One table: this run's counters, and (with a ledger) where the run stands over all its
    attempts, and the dead-letter records found for this run."""

    source: str
    target: str
    counts: dict
    seconds: float
    dead_letter_records: int | None = None
    ledger: object | None = None  # runs.TableProgress

    @property
    def unaccounted(self) -> int:
        """Rows read that were neither written, dead-lettered, filtered out on purpose,
        already equal on the target (counters) nor left for a resume (a stopped table): must
        be zero."""
        counts = self.counts
        return (counts["rows_read"] - counts["rows_written"] - counts["rows_failed"]
                - counts["rows_filtered"] - counts["rows_unchanged"] - counts["rows_skipped"])

    @property
    def status(self) -> str:
        if self.ledger is not None and self.ledger.stopped:
            return "stopped"
        counts = self.counts
        if (counts["rows_failed"] or counts["ranges_failed"] or self.unaccounted
                or (self.dead_letter_records is not None
                    and self.dead_letter_records != counts["rows_failed"])):
            return "failed"
        if self.ledger is not None and self.ledger.items_done < self.ledger.items_total:
            return "failed"
        return "success"

    def to_json(self) -> dict:
        counts = {name: value for name, value in self.counts.items() if name != "outage_ms"}
        seconds = max(self.seconds, 1e-3)
        document = {"source": self.source, "target": self.target, "status": self.status,
                    **counts, "outage_seconds": round(self.counts["outage_ms"] / 1000, 1),
                    "seconds": round(self.seconds, 3),
                    "rows_per_second": round(self.counts["rows_written"] / seconds, 1),
                    "mb_per_second": round(self.counts["bytes_written"] / 1e6 / seconds, 2)}
        if self.dead_letter_records is not None:
            document["dead_letter_records"] = self.dead_letter_records
        if self.ledger is not None:
            ledger = self.ledger
            document.update({
                "work_items_done": ledger.items_done, "work_items_total": ledger.items_total,
                "work_items_failed": ledger.items_failed,
                "run_rows_read": ledger.rows_read, "run_rows_written": ledger.rows_written,
                "run_rows_failed": ledger.rows_failed,
                # Over the run's done items (an item done again counts its last attempt): rows
                # written at the fallback consistency, each listed in a downgraded_rows file of
                # the attempt that wrote it.
                "run_rows_downgraded": ledger.counts.get("rows_downgraded", 0)})
            if ledger.stopped:
                document["stopped"] = ledger.stopped
        return document


def _value(result):
    return result.committed if result.committed is not None else result.attempted


def table_summary(metrics, namespace: str, source: str, target: str) -> TableSummary:
    counts = counters(metrics, namespace, COUNTERS)
    return TableSummary(source, target, counts, active_seconds(metrics, namespace))


def active_seconds(metrics, namespace: str) -> float:
    """From the first to the last activity recorded in a namespace."""
    query = metrics.query(MetricsFilter().with_namespace(namespace))
    # Reads and writes record activity times in their own steps: the table's time spans both.
    first, last = None, None
    for distribution in query["distributions"]:
        data = _value(distribution)
        if distribution.key.metric.name == "activity_epoch_ms" and data and data.count:
            first = data.min if first is None else min(first, data.min)
            last = data.max if last is None else max(last, data.max)
    return (last - first) / 1000.0 if first is not None else 0.0


def run_summary(tables: list[TableSummary], seconds: float, error: str | None = None,
                run_id: str | None = None) -> dict:
    failed = error is not None or any(table.status != "success" for table in tables)
    summary = {"run_id": run_id, "status": "failed" if failed else "success",
               "seconds": round(seconds, 3), "tables": [table.to_json() for table in tables]}
    if error is not None:
        summary["error"] = error
    return summary


MIGRATION_COLUMNS = (
    ("source", "source"), ("target", "target"), ("status", "status"), ("rows_read", "read"),
    ("rows_written", "written"), ("rows_failed", "failed"), ("write_retries", "retries"),
    ("consistency_downgrades", "downgrades"), ("batch_fallbacks", "fallbacks"),
    ("seconds", "seconds"), ("rows_per_second", "rows/s"), ("mb_per_second", "MB/s"))


def counters(metrics, namespace: str, names) -> dict[str, int]:
    """The named counters of a namespace, summed over steps (0 for those never incremented)."""
    counts = dict.fromkeys(names, 0)
    for counter in metrics.query(MetricsFilter().with_namespace(namespace))["counters"]:
        if counter.key.metric.name in counts:
            counts[counter.key.metric.name] += _value(counter) or 0
    return counts


def text_table(entries: list[dict], columns) -> list[str]:
    """Lines of a table for the console: ``columns`` are (key, heading) pairs, one row per
    entry, numbers with thousands separators, a rule under the headings."""
    rows = [[label for _, label in columns]]
    for entry in entries:
        rows.append([f"{entry[key]:,}" if isinstance(entry.get(key), int) else str(entry.get(key))
                     for key, _ in columns])
    widths = [max(len(row[index]) for row in rows) for index in range(len(columns))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
             for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return lines


def format_table(summary: dict, columns=MIGRATION_COLUMNS, what: str = "migration") -> str:
    lines = text_table(summary["tables"], columns)
    lines.append(f"{what} {summary['status']} in {summary['seconds']:.1f}s"
                 + (f" (run {summary['run_id']})" if summary.get("run_id") else ""))
    return "\n".join(lines)


def write_json(summary: dict, path: str) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(summary, handle, indent=2)
        handle.write("\n")
