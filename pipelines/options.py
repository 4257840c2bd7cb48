"""Command-line options of the pipelines, as Beam ``PipelineOptions``.

They live apart from the pipeline modules so that ``python -m pipelines.migrate`` (which runs
that module as ``__main__``) does not define them twice: Beam gives every ``PipelineOptions``
subclass in the process the same parser, and two definitions of ``--config`` would collide.
For the same reason the options a run shares (``--config``, ``--set``, ``--resume``) are added
with ``add_argument_once``: another pipeline's options class may add them too.
"""

from __future__ import annotations

from apache_beam.options.pipeline_options import PipelineOptions

from pipelines.config import command_line_settings, setting_default
from pipelines.runs import LATEST  # --resume without a RUN_ID


def add_argument_once(parser, *names: str, **options) -> None:
    """``parser.add_argument`` unless another options class already added that option."""
    if any(name in parser._option_string_actions for name in names):
        return
    parser.add_argument(*names, **options)


def add_run_arguments(parser) -> None:
    """--config, --set and --resume: what every run of a settings file takes."""
    add_argument_once(parser, "--config", metavar="PATH",
                      help="path of migrator_settings.yaml, local or gs:// (required)")
    add_argument_once(parser, "--set", dest="overrides", action="append", default=[],
                      metavar="KEY=VALUE",
                      help="override one setting, e.g. --set MAX_WORKERS=8 or "
                           "--set TARGET.HOSTS=[10.0.0.5]; repeatable (default: none)")
    add_argument_once(parser, "--resume", nargs="?", const=LATEST, default=None,
                      metavar="RUN_ID",
                      help="finish an earlier run: its work items not done yet (the latest "
                           "run of the same clusters, keyspaces and tables, or RUN_ID; "
                           "default: a new run)")


def add_settings_arguments(parser, config_help: str) -> None:
    """--config (required) and --set: what the commands that run no pipeline (replay, runs)
    take."""
    parser.add_argument("--config", required=True, metavar="PATH", help=config_help)
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE",
                        help="override one setting; repeatable (default: none)")


def yaml_text(value) -> str:
    """A default as a settings file writes it."""
    if value is None:
        return "null"
    return str(value).lower() if isinstance(value, bool) else str(value)


class MigrateOptions(PipelineOptions):
    @classmethod
    def _add_argparse_args(cls, parser):
        add_run_arguments(parser)
        for option, key, text in command_line_settings():
            add_argument_once(parser, f"--{option}", default=None,
                              help=f"{text} (a YAML value; default: "
                                   f"{yaml_text(setting_default(key))})")


def unknown_arguments(argv: list[str]) -> list[str]:
    """What ``argv`` holds that neither this tool nor Beam knows, one message each, with the
    closest known options. Beam would drop them with a warning and run on: a mistyped option
    of a run that writes to a cluster must stop it instead. Only option names are named: the
    value after an unknown option (``--target_password hunter2``) is never repeated."""
    import difflib

    from apache_beam.options.pipeline_options import _BeamArgumentParser

    class _Parser(_BeamArgumentParser):
        def error(self, message):  # one line, not argparse's usage of every option
            raise ValueError(message)

    # The parser Beam itself builds (PipelineOptions.get_all_options): every options class.
    parser = _Parser(allow_abbrev=False)
    classes = {}
    for cls in PipelineOptions.__subclasses__():
        classes.setdefault(str(cls), cls)
    for cls in classes.values():
        cls._add_argparse_args(parser)  # noqa: SLF001 - as Beam does
    arguments = argv[:argv.index("--")] if "--" in argv else list(argv)
    try:
        _, unknown = parser.parse_known_args(arguments)
    except ValueError as error:
        return [str(error)]
    known = sorted(name for name in parser._option_string_actions if name.startswith("--"))
    problems, after_option = [], False
    for argument in unknown:
        if argument.startswith("-"):
            name = argument.split("=", 1)[0]
            after_option = "=" not in argument
            fixed = "--" + name.lstrip("-").replace("-", "_")
            close = ([fixed] if fixed in known and fixed != name
                     else difflib.get_close_matches(name, known, n=3, cutoff=0.75))
            problems.append(f"{name} is not an option of this command or of Beam"
                            + (f"; did you mean {' or '.join(close)}?" if close else ""))
        elif not after_option:
            problems.append(f"unexpected argument {argument!r}")
        else:
            after_option = False  # the value of the unknown option: never shown
    return problems
