"""Migration pipelines built from the transforms, wired from a settings file."""

import logging


class _BeamWithoutGcp(logging.Filter):
    """Importing Beam without its ``gcp`` extra logs, on the root logger, that apitools and the
    BigQuery client are missing. The migrator needs neither (Dataflow runs install the extra),
    so the line would only alarm users at the top of every run."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("apitools not found")


def _import_beam_quietly() -> None:
    root = logging.getLogger()
    quiet, placeholder = _BeamWithoutGcp(), logging.NullHandler()
    # A handler on the root logger keeps ``logging.warning`` from installing a stderr handler.
    root.addFilter(quiet)
    root.addHandler(placeholder)
    try:
        import apache_beam  # noqa: F401
    finally:
        root.removeHandler(placeholder)
        root.removeFilter(quiet)


_import_beam_quietly()
