"""Logging for a migration run: LOG_FILE and the console, with timestamps, levels and tracebacks."""

from __future__ import annotations

import logging
import sys

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"

# Libraries whose INFO lines drown the migration's own; their warnings and errors still show.
_QUIET = ("apache_beam", "cassandra", "absl")


def configure(log_file: str | None, level: str = "INFO") -> None:
    """Send every record to the console (stderr) and, if given, to ``log_file`` (appended)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        # Ours from an earlier call, or the bare stderr handler that a library's early
        # logging.warning() installs on the root logger (it would print every line twice).
        if getattr(handler, "_migrator", False) or type(handler) is logging.StreamHandler:
            root.removeHandler(handler)
            handler.close()
    console = logging.StreamHandler(sys.stderr)
    handlers: list[logging.Handler] = [console]
    console.addFilter(_driver_tracebacks_in_the_file_only)
    if log_file:
        handlers.append(logging.FileHandler(log_file, encoding="utf-8"))
    formatter = logging.Formatter(FORMAT)
    for handler in handlers:
        handler.setFormatter(formatter)
        handler._migrator = True
        root.addHandler(handler)
    root.setLevel(level)
    for name in _QUIET:
        logging.getLogger(name).setLevel(logging.DEBUG if level == "DEBUG" else logging.WARNING)
    for name, expected in (("cassandra.cluster", _PROTOCOL_NEGOTIATION),
                           ("cassandra.protocol", _BATCH_WARNINGS)):
        driver = logging.getLogger(name)
        if not any(isinstance(f, _ExpectedDriverMessages) for f in driver.filters):
            driver.addFilter(_ExpectedDriverMessages(expected))


# The driver warns each time it negotiates the protocol down to what the server speaks; that is
# expected with any server older than the driver, and says nothing to act on.
_PROTOCOL_NEGOTIATION = ("Downgrading core protocol version",)
# The server's warnings on every replica-set batch (BATCH_MODE REPLICA_SET batches rows of
# several partitions that share their replicas, by design, within MAX_BATCH_BYTES); the driver
# would log one per batch. Cassandra still logs them on its side (see the README's tuning).
_BATCH_WARNINGS = ("Server warning: Unlogged batch covering", "Server warning: Batch for [")


class _ExpectedDriverMessages(logging.Filter):
    def __init__(self, prefixes: tuple[str, ...]):
        super().__init__()
        self._prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self._prefixes)


def _driver_tracebacks_in_the_file_only(record: logging.LogRecord) -> bool:
    """The driver logs a traceback with each failed connection attempt ("[control connection]
    Error connecting to ...") and a hint about DSE with each refused login: on the console they
    would bury the one line that names the setting at fault (which quotes the driver's error),
    so they go to LOG_FILE only (nowhere without one)."""
    if not record.name.startswith("cassandra"):
        return True
    return not (record.exc_info or record.getMessage().startswith(_DRIVER_LOGIN_HINT))


_DRIVER_LOGIN_HINT = "Failed to authenticate to"
