"""The README's demo: fill a sample table on the local source cluster (127.0.0.1) and migrate it
to the local target cluster (127.0.0.2) with configs/migrator_settings.yaml.

    python -m tools.demo [--rows 50000] [Beam options]

Start the clusters first: ``python -m tools.local_cassandra start --nodes 2`` (``make demo``
does both).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipelines import logs, migrate
from tools import sample_data
from transforms import CassandraConnection

SETTINGS = Path(__file__).resolve().parents[1] / "configs" / "migrator_settings.yaml"
KEYSPACE, TABLE = "demo", "events"


def prepare(source_host: str, target_host: str, rows: int) -> None:
    for host, fill in ((source_host, True), (target_host, False)):
        cluster = CassandraConnection((host,)).new_cluster()
        session = cluster.connect()
        session.execute(f"CREATE KEYSPACE IF NOT EXISTS {KEYSPACE} WITH replication = "
                        "{'class': 'SimpleStrategy', 'replication_factor': 1}")
        session.execute(f"DROP TABLE IF EXISTS {KEYSPACE}.{TABLE}")
        if fill:
            count = sample_data.fill_table(session, KEYSPACE, TABLE, rows, "mixed")
            print(f"created {KEYSPACE}.{TABLE} on {host} with {count:,} rows "
                  "(many small partitions, a few of 1,000 rows)")
        else:
            sample_data.create_table(session, KEYSPACE, TABLE)
            print(f"created an empty {KEYSPACE}.{TABLE} on {host}")
        cluster.shutdown()


def verify(source_host: str, target_host: str) -> bool:
    """Compare the two tables row for row and say so."""
    contents = []
    for host in (source_host, target_host):
        cluster = CassandraConnection((host,)).new_cluster()
        rows = cluster.connect().execute(f"SELECT * FROM {KEYSPACE}.{TABLE}")
        contents.append(sorted(tuple(row.values()) for row in rows))
        cluster.shutdown()
    same = contents[0] == contents[1]
    print(f"verified: {KEYSPACE}.{TABLE} on {target_host} "
          + (f"equals the source row for row ({len(contents[0]):,} rows)" if same
             else f"DIFFERS from the source ({len(contents[1]):,} vs {len(contents[0]):,} rows)"))
    return same


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--source-host", default="127.0.0.1")
    parser.add_argument("--target-host", default="127.0.0.2")
    args, beam_args = parser.parse_known_args(argv)
    logs.configure(None)
    prepare(args.source_host, args.target_host, args.rows)
    code = migrate.run(["--config", str(SETTINGS),
                        "--set", f"SOURCE.HOSTS=[{args.source_host}]",
                        "--set", f"TARGET.HOSTS=[{args.target_host}]", *beam_args])
    if not verify(args.source_host, args.target_host):
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
