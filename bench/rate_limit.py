"""Measure how well MAX_ROWS_PER_SECOND is honoured over a run of about a minute.

    python -m bench.rate_limit --rate 2000 --seconds 60 [--output bench/results/rate_limit.json]

Fills a narrow table with rate x seconds rows, migrates it with the limit, and reports the
achieved rate over the copy (first read to last write, from the summary) and its deviation
from the limit.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import yaml

from tools import sample_data
from transforms import CassandraConnection


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=2000)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--source-host", default="127.0.0.1")
    parser.add_argument("--target-host", default="127.0.0.2")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args(argv)
    rows = int(args.rate * args.seconds)
    keyspace = f"bench_rate_{uuid.uuid4().hex[:8]}"
    sessions = []
    for host in (args.source_host, args.target_host):
        session = CassandraConnection((host,)).new_cluster().connect()
        session.execute(f"CREATE KEYSPACE {keyspace} WITH replication = "
                        "{'class': 'SimpleStrategy', 'replication_factor': 1}")
        sessions.append(session)
    try:
        sample_data.fill_table(sessions[0], keyspace, "events", rows, "narrow")
        sample_data.create_table(sessions[1], keyspace, "events")
        with tempfile.TemporaryDirectory() as directory:
            summary_path = Path(directory) / "summary.json"
            settings = Path(directory) / "settings.yaml"
            settings.write_text(yaml.safe_dump({
                "SOURCE": {"HOSTS": [args.source_host], "KEYSPACE": keyspace},
                "TARGET": {"HOSTS": [args.target_host], "KEYSPACE": keyspace},
                "TABLES": ["events"], "MAX_ROWS_PER_SECOND": args.rate,
                "LOG_FILE": None, "SUMMARY_FILE": str(summary_path),
                "FAILED_ROWS_DIR": str(Path(directory) / "failed")}))
            subprocess.run([sys.executable, "-m", "pipelines.migrate", "--config", str(settings)],
                           check=True, capture_output=True)
            table = json.loads(summary_path.read_text())["tables"][0]
        achieved = table["rows_written"] / table["seconds"]
        result = {"command": "python -m bench.rate_limit " + " ".join(argv or sys.argv[1:]),
                  "limit_rows_per_second": args.rate, "rows": rows,
                  "rows_written": table["rows_written"], "copy_seconds": table["seconds"],
                  "achieved_rows_per_second": round(achieved, 1),
                  "deviation": round(achieved / args.rate - 1, 4)}
        print(json.dumps(result, indent=2))
        if args.output:
            args.output.write_text(json.dumps(result, indent=2) + "\n")
        return 0 if table["rows_written"] == rows else 1
    finally:
        for session in sessions:
            session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}")
            session.cluster.shutdown()


if __name__ == "__main__":
    sys.exit(main())
