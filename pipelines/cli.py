"""The ``cassandra-migrate`` command: one entry point, a subcommand per job.

    cassandra-migrate migrate  --config PATH [--set KEY=VALUE ...] [--resume [RUN_ID]] [Beam]
    cassandra-migrate plan     --config PATH [--set KEY=VALUE ...] [--resume [RUN_ID]] [Beam]
    cassandra-migrate validate --config PATH [--set KEY=VALUE ...] [--resume [RUN_ID]] [Beam]
    cassandra-migrate replay   PATH --config PATH [--set KEY=VALUE ...]
    cassandra-migrate runs     --config PATH [--set KEY=VALUE ...]
    cassandra-migrate --version | --help | <subcommand> --help

Without a subcommand the arguments are a migration's (``cassandra-migrate --config ...``), as
before subcommands existed, so old scripts keep working. This module only chooses the
subcommand and shows help: each subcommand's module parses its own arguments (options it does
not know are Beam's, handed to ``PipelineOptions``) and returns the exit code. Modules are
imported when their subcommand runs, so ``--help`` and ``--version`` answer at once.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import re
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

DISTRIBUTION = "cassandra-beam-migrator"
PROG = "cassandra-migrate"
SETTINGS_REFERENCE = ("every setting is described in the settings reference of README.md "
                      "(section 'Settings'); configs/migrator_settings.yaml is a commented "
                      "example")
BEAM_OPTIONS = ("Any other option is a Beam pipeline option and is passed to Beam as it is "
                "(--runner, --direct_num_workers, --flink_master, --parallelism, --project, "
                "--region, ...; see https://beam.apache.org/documentation/programming-guide/"
                "#configuring-pipeline-options).")

# Subcommand -> (module, one line of help). The module exposes run(argv) -> exit code.
SUBCOMMANDS = {
    "migrate": ("pipelines.migrate", "copy the tables (what the bare command does)"),
    "plan": ("pipelines.plan", "check everything a run checks and print what it would do; "
                               "writes nothing"),
    "validate": ("pipelines.validate", "compare the target with the source, row by row"),
    "replay": ("pipelines.replay", "write the rows of dead-letter files again"),
    "runs": ("pipelines.list_runs", "list the runs of the ledger, with what --resume would do"),
}

# Settings the validator reads (pipelines.validate), for its --help.
VALIDATE_SETTINGS = ("AUTO_CORRECT", "DELETE_EXTRA_ROWS", "SAMPLE_PERCENT",
                     "VALIDATION_SUMMARY_FILE", "DIFFERENCES_DIR", "TTL_TOLERANCE_SECONDS")


def version() -> str:
    """The installed package's version; in a checkout that is not installed, setup.py's."""
    from importlib import metadata

    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        pass
    setup = Path(__file__).resolve().parent.parent / "setup.py"
    found = re.search(r'version="([^"]+)"', setup.read_text()) if setup.exists() else None
    return found.group(1) if found else "unknown"


def _formatter(prog: str) -> argparse.HelpFormatter:
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=32, width=100)


def _paragraphs(*texts: str) -> str:
    """Texts as paragraphs wrapped to the help's width (the formatter keeps them as given)."""
    return "\n\n".join(textwrap.fill(text, 100) for text in texts if text)


# The settings of a run's --help, by what they are for; the validation's only in its help.
HELP_GROUPS = (
    ("connection", "where the clusters are and how to log in"),
    ("what to copy", "tables, and what each cell keeps"),
    ("speed", "how much runs at once, and how fast"),
    ("safety", "consistency, retries, outages, the error budget, the ledger for --resume"),
    ("outputs", "logs, the summary, dead letters"),
    ("validation", "what validate compares and repairs"),
)
_GROUP_OF_KEY = {
    **dict.fromkeys(("TABLES", "PRESERVE_WRITETIME", "PRESERVE_TTL", "CREATE_TARGET_TABLES"),
                    "what to copy"),
    **dict.fromkeys(("MAX_WORKERS", "BATCH_INSERT_SIZE", "FETCH_BATCH_SIZE", "FETCH_PAGE_BYTES",
                     "SPLITS", "BATCH_MODE", "MAX_REQUESTS_IN_FLIGHT", "MAX_BATCH_BYTES",
                     "MAX_ROWS_PER_SECOND"), "speed"),
    **dict.fromkeys(("READ_CONSISTENCY", "WRITE_CONSISTENCY", "FALLBACK_CONSISTENCY",
                     "RETRY_ATTEMPTS", "RETRY_BACKOFF_SECONDS", "RETRY_MAX_BACKOFF_SECONDS",
                     "OUTAGE_WAIT_SECONDS", "MAX_FAILED_ROWS", "LEDGER_KEYSPACE"), "safety"),
    **dict.fromkeys(("LOG_FILE", "LOG_LEVEL", "SUMMARY_FILE", "FAILED_ROWS_DIR"), "outputs"),
    **dict.fromkeys(VALIDATE_SETTINGS, "validation"),
}
EXAMPLES = {
    "migrate": ("cassandra-migrate migrate --config settings.yaml",
                "cassandra-migrate migrate --config settings.yaml --max_workers 8 "
                "--max_rows_per_second 20000",
                "cassandra-migrate migrate --config settings.yaml --resume   # after a stop"),
    "plan": ("cassandra-migrate plan --config settings.yaml",
             "cassandra-migrate plan --config settings.yaml --tables '[orders]' --resume"),
    "validate": ("cassandra-migrate validate --config settings.yaml",
                 "cassandra-migrate validate --config settings.yaml --sample_percent 5",
                 "cassandra-migrate validate --config settings.yaml --auto_correct true "
                 "--delete_extra_rows true"),
}


def help_group(key: str) -> str:
    """The --help group of a settings key (``TARGET.HOSTS`` is a connection setting)."""
    if key.startswith(("SOURCE.", "TARGET.")):
        return "connection"
    return _GROUP_OF_KEY.get(key, "safety")


def _run_options_parser(command: str, description: tuple[str, ...], epilog: str = ""
                        ) -> argparse.ArgumentParser:
    """The options of a run (migrate, plan, validate) as MigrateOptions parses them, grouped
    by what they are for, with the settings the subcommand uses, and examples."""
    from pipelines.config import command_line_settings, setting_default
    from pipelines.options import add_run_arguments, yaml_text

    parser = argparse.ArgumentParser(
        prog=f"{PROG} {command}", description=_paragraphs(*description),
        usage=f"{PROG} {command} --config PATH [--set KEY=VALUE ...] [--resume [RUN_ID]] "
              "[--<setting> VALUE ...] [Beam options]",
        formatter_class=_formatter,
        epilog="examples:\n" + "\n".join(f"  {line}" for line in EXAMPLES[command]) + "\n\n"
               + _paragraphs(epilog, f"Settings: {SETTINGS_REFERENCE}. Each option --<key> "
                                     "sets that key (TARGET.HOSTS: --target_hosts), like --set "
                                     "KEY=VALUE.", BEAM_OPTIONS))
    add_run_arguments(parser)
    groups = {name: parser.add_argument_group(f"{name} settings", text)
              for name, text in HELP_GROUPS if name != "validation" or command == "validate"}
    for option, key, text in command_line_settings():
        group = groups.get(help_group(key))
        if group is not None:
            group.add_argument(f"--{option}", metavar=key.rsplit(".", 1)[-1], default=None,
                               help=f"{text} (default: {yaml_text(setting_default(key))})")
    return parser


def _migrate_parser() -> argparse.ArgumentParser:
    return _run_options_parser(
        "migrate",
        ("Copy the tables of the settings from SOURCE to TARGET with an Apache Beam pipeline.",
         "Exit codes: 0 every table copied and no row failed; 1 a row, a token range or a "
         "table failed (see the summary and the dead-letter files); 2 the command line, the "
         "settings or the clusters are wrong (nothing was written)."))


def _plan_parser() -> argparse.ArgumentParser:
    return _run_options_parser(
        "plan",
        ("Check everything a migration checks (the settings, both clusters, the schemas) and "
         "print, per table, what it would do: source and target, estimated partitions, rows "
         "and size, token ranges, column mapping, writetime/TTL, batching, what would be "
         "created, the rate limits and what the ledger holds for --resume. Writes nothing.",
         "Exit codes: 0 ready to run; 2 the command line, the settings or the clusters are "
         "wrong."),
        epilog="--resume [RUN_ID] shows what a resume of that run (default: the latest) would "
               "still do.")


def _validate_parser() -> argparse.ArgumentParser:
    return _run_options_parser(
        "validate",
        ("Compare the target with the source, table by table, with the settings of a "
         "migration (its tables, renames, constants, WHERE and writetime window): each token "
         "range is read on both clusters and the two streams are merged; every row is valid, "
         "missing, extra, mismatched, newer on the target or changed during the validation. "
         "Differences go to DIFFERENCES_DIR as JSON Lines; AUTO_CORRECT writes missing and "
         "mismatched rows again, DELETE_EXTRA_ROWS deletes extra rows.",
         "Exit codes: 0 every source row is on the target with the same cells (rows only "
         "on the target are reported, not failed); 1 anything else: rows missing or "
         "mismatched (also when all were corrected: only another validation proves it), an "
         "extra row not deleted, rows that changed while it ran or pages read at the fallback "
         "consistency (unsettled), a token range that could not be read; 2 the command line, "
         "the settings or the clusters are wrong (nothing was read)."),
        epilog="Settings of the validation, in the settings file or with --set: "
               f"{', '.join(VALIDATE_SETTINGS)}. --resume [RUN_ID] finishes an earlier "
               "validation (the latest of the same clusters and keyspaces, or RUN_ID).")


def _replay_parser() -> argparse.ArgumentParser:
    from pipelines.replay import build_parser

    return build_parser()


def _runs_parser() -> argparse.ArgumentParser:
    from pipelines.list_runs import build_parser

    return build_parser()


PARSERS: dict[str, Callable[[], argparse.ArgumentParser]] = {
    "migrate": _migrate_parser, "plan": _plan_parser, "validate": _validate_parser,
    "replay": _replay_parser, "runs": _runs_parser}


def _top_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, formatter_class=_formatter,
        description="Migrate Apache Cassandra tables between clusters with Apache Beam.",
        epilog=_paragraphs(f"Without a subcommand, {PROG} --config PATH ... runs a migration "
                           f"(as {PROG} migrate does). {PROG} <subcommand> --help lists the "
                           "options of that subcommand.", f"Settings: {SETTINGS_REFERENCE}."))
    parser.add_argument("--version", action="version", version=f"{PROG} {version()}")
    commands = parser.add_subparsers(dest="command", metavar="<subcommand>")
    for name, (_, text) in SUBCOMMANDS.items():
        commands.add_parser(name, help=text, add_help=False)
    return parser


def _asks_for_help(argv: list[str]) -> bool:
    options = argv[:argv.index("--")] if "--" in argv else argv
    return "-h" in options or "--help" in options


def run(argv: list[str] | None = None) -> int:
    """Run the subcommand ``argv`` names (a migration when it names none); return its exit
    code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in SUBCOMMANDS:
        command, rest = argv[0], argv[1:]
    elif not argv or argv[0] in ("-h", "--help", "--version"):
        try:
            _top_parser().parse_args(argv or ["--help"])
        except SystemExit as done:  # argparse printed the help or the version
            return 2 if not argv else int(done.code or 0)
        return 0
    elif not argv[0].startswith("-"):
        # Never a migration: a mistyped subcommand would start one (Beam drops unknown words).
        close = difflib.get_close_matches(argv[0], SUBCOMMANDS, n=1, cutoff=0.6)
        hint = (f"did you mean '{close[0]}'?" if close
                else f"{PROG} --help lists the subcommands" if argv[0] != "help"
                else f"for help: {PROG} --help, or {PROG} <subcommand> --help")
        print(f"error: '{argv[0]}' is not a command of {PROG}; {hint}", file=sys.stderr)
        return 2
    else:
        command, rest = "migrate", argv  # the bare command of old scripts
    if _asks_for_help(rest):
        PARSERS[command]().print_help()
        return 0
    module_name = SUBCOMMANDS[command][0]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name != module_name:
            raise
        print(f"error: {PROG} {command} is not part of this installation ({module_name} is "
              "missing)", file=sys.stderr)
        return 2
    return module.run(rest)


def main() -> None:
    sys.exit(run())


if __name__ == "__main__":
    main()
