"""Sample tables for the demo, the tests and the benchmarks, written with the driver's
execute_concurrent so that creating 100k rows takes seconds.

Shapes:
  * ``mixed``: many small partitions (1 to 5 rows) and a few wide ones (1,000 rows);
  * ``narrow``: one row per partition;
  * ``wide``: partitions of about 1,000 rows;
  * ``kilobyte``: one row per partition with a payload of about 1 KB.
"""

from __future__ import annotations

import datetime
import random
import uuid
from collections.abc import Iterator

from cassandra.concurrent import execute_concurrent
from cassandra.query import UNSET_VALUE, BatchStatement, BatchType

SHAPES = ("mixed", "narrow", "wide", "kilobyte")

TABLE_CQL = """CREATE TABLE IF NOT EXISTS {keyspace}.{table} (
    account_id int,
    seq int,
    event_id uuid,
    kind text,
    amount bigint,
    note text,
    payload blob,
    created timestamp,
    PRIMARY KEY (account_id, seq)
) WITH CLUSTERING ORDER BY (seq DESC)"""

COLUMNS = ("account_id", "seq", "event_id", "kind", "amount", "note", "payload", "created")


def create_table(session, keyspace: str, table: str) -> None:
    session.execute(TABLE_CQL.format(keyspace=keyspace, table=table))


def partition_sizes(rows: int, shape: str, seed: int = 7) -> Iterator[int]:
    """Rows per partition, in partition order, adding up to ``rows``."""
    if shape not in SHAPES:
        raise ValueError(f"unknown shape {shape!r}: one of {', '.join(SHAPES)}")
    generator = random.Random(seed)
    left = rows
    while left > 0:
        if shape in ("narrow", "kilobyte"):
            size = 1
        elif shape == "wide":
            size = 1000
        else:
            size = 1000 if generator.random() < 0.002 else generator.randint(1, 5)
        size = min(size, left)
        left -= size
        yield size


def generate_rows(rows: int, shape: str = "mixed", seed: int = 7) -> Iterator[tuple]:
    """Deterministic rows in COLUMNS order; some columns are null, as in real tables."""
    generator = random.Random(seed)
    epoch = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)
    payload_size = 1000 if shape == "kilobyte" else 16
    for account_id, size in enumerate(partition_sizes(rows, shape, seed)):
        for seq in range(size):
            yield (
                account_id,
                seq,
                uuid.UUID(int=generator.getrandbits(128), version=4),
                generator.choice(("deposit", "withdrawal", "transfer", "fee")),
                generator.randint(-10**12, 10**12),
                None if generator.random() < 0.2 else f"note {account_id}/{seq} ✓",
                generator.randbytes(payload_size),
                epoch + datetime.timedelta(milliseconds=generator.randint(0, 10**10)),
            )


def fill_table(session, keyspace: str, table: str, rows: int, shape: str = "mixed",
               seed: int = 7, concurrency: int = 32, chunk: int = 20_000) -> int:
    """Create the table if needed and write ``rows`` generated rows; return how many.
    Nulls are left unset, so the source holds no tombstones. Rows go in small UNLOGGED batches
    (a few KB each): several times as fast as one request per row on a busy machine."""
    create_table(session, keyspace, table)
    insert = session.prepare(f"INSERT INTO {keyspace}.{table} ({', '.join(COLUMNS)}) "
                             f"VALUES ({', '.join('?' for _ in COLUMNS)})")
    per_batch = 4 if shape == "kilobyte" else 25
    written = 0
    pending: list[tuple] = []
    for row in generate_rows(rows, shape, seed):
        pending.append(tuple(UNSET_VALUE if value is None else value for value in row))
        if len(pending) >= chunk:
            written += _write(session, insert, pending, per_batch, concurrency)
            pending = []
    if pending:
        written += _write(session, insert, pending, per_batch, concurrency)
    return written


def _write(session, insert, rows, per_batch, concurrency) -> int:
    batches = []
    for start in range(0, len(rows), per_batch):
        batch = BatchStatement(batch_type=BatchType.UNLOGGED)
        for row in rows[start:start + per_batch]:
            batch.add(insert, row)
        batches.append((batch, ()))
    execute_concurrent(session, batches, concurrency=concurrency, raise_on_first_error=True)
    return len(rows)
