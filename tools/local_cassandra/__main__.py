"""Command line: ``python -m tools.local_cassandra {start,stop,status}``.

Examples::

    python -m tools.local_cassandra start                      # one node on 127.0.0.1
    python -m tools.local_cassandra start --nodes 2            # two independent clusters
    python -m tools.local_cassandra start --nodes 3 --topology ring
    python -m tools.local_cassandra start --first 3 --set column_value_size_fail_threshold=1KiB
    python -m tools.local_cassandra start --first 10 --version 4.1   # Cassandra 4.1.10 (Java 11)
    python -m tools.local_cassandra stop
"""

from __future__ import annotations

import argparse
import json
import sys

from tools.local_cassandra.launcher import (
    CASSANDRA_VERSION,
    TESTED_RELEASES,
    LauncherError,
    plan_nodes,
    start,
    status,
    stop,
)


def _setting(text: str) -> tuple[str, object]:
    key, separator, value = text.partition("=")
    if not separator or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.local_cassandra", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = parser.add_subparsers(dest="verb", required=True)
    start_parser = verbs.add_parser("start", help="start nodes (or reuse running ones)")
    start_parser.add_argument("--nodes", type=int, default=1, help="how many nodes (default 1)")
    start_parser.add_argument("--first", type=int, default=1,
                              help="first node index: node i listens on 127.0.0.i (default 1)")
    start_parser.add_argument("--topology", choices=["clusters", "ring"], default="clusters",
                              help="independent single-node clusters, or one cluster")
    start_parser.add_argument("--auth", action="store_true",
                              help="PasswordAuthenticator (superuser cassandra/cassandra)")
    start_parser.add_argument("--tls", action="store_true", help="client TLS (keytool cert)")
    start_parser.add_argument("--version", default=CASSANDRA_VERSION,
                              help=f"Cassandra release: {', '.join(TESTED_RELEASES)} (the "
                                   f"tested {', '.join(TESTED_RELEASES.values())}) or another "
                                   f"release of those series (default {CASSANDRA_VERSION})")
    start_parser.add_argument("--heap", default="1G", help="JVM heap per node (default 1G)")
    start_parser.add_argument("--num-tokens", type=int, default=1, help="vnodes per node")
    start_parser.add_argument("--set", type=_setting, action="append", default=[],
                              metavar="KEY=VALUE", help="extra cassandra.yaml setting")
    start_parser.add_argument("--timeout", type=float, default=240.0,
                              help="seconds to wait for CQL (default 240)")
    stop_parser = verbs.add_parser("stop", help="stop the nodes this tool started")
    stop_parser.add_argument("--address", action="append",
                             help="only this address (repeatable); default all")
    verbs.add_parser("status", help="show the nodes this tool knows")
    args = parser.parse_args(argv)
    try:
        if args.verb == "start":
            nodes = plan_nodes(args.nodes, args.topology, auth=args.auth, tls=args.tls,
                               heap=args.heap, num_tokens=args.num_tokens,
                               extra=dict(args.set), first=args.first,
                               version=args.version)
            for node in start(nodes, timeout=args.timeout):
                print(json.dumps(node))
        elif args.verb == "stop":
            stopped = stop(args.address)
            print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
        else:
            for node in status():
                print(json.dumps(node))
    except LauncherError as error:
        print(f"local_cassandra: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
