"""Write configs/dataflow/metadata.json, the Dataflow Flex Template's parameters, from the
pipeline's own options, so the template and the code cannot drift apart.

    python -m tools.flex_template            # rewrite the file
    python -m tools.flex_template --check    # exit 1 if the file is out of date
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from cassandra import ConsistencyLevel

from pipelines.config import command_line_settings
from transforms import BatchMode

METADATA = Path(__file__).resolve().parents[1] / "configs" / "dataflow" / "metadata.json"

_WHOLE = r"^[0-9]+$"
_NUMBER = r"^[0-9]+(\.[0-9]+)?$"
_BOOLEAN = r"^(true|false)$"
_LEVELS = "^(" + "|".join(sorted(ConsistencyLevel.name_to_value)) + ")$"
_REGEXES = {
    "MAX_WORKERS": _WHOLE, "BATCH_INSERT_SIZE": _WHOLE, "FETCH_BATCH_SIZE": _WHOLE,
    "SPLITS": _WHOLE, "RETRY_ATTEMPTS": _WHOLE, "MAX_REQUESTS_IN_FLIGHT": _WHOLE,
    "FETCH_PAGE_BYTES": r"^([0-9]+|null)$",
    "PORT": _WHOLE, "PROTOCOL_VERSION": _WHOLE,
    "RETRY_BACKOFF_SECONDS": _NUMBER, "RETRY_MAX_BACKOFF_SECONDS": _NUMBER,
    "MAX_ROWS_PER_SECOND": _NUMBER, "CONNECT_TIMEOUT_SECONDS": _NUMBER,
    "REQUEST_TIMEOUT_SECONDS": _NUMBER,
    "PRESERVE_WRITETIME": _BOOLEAN, "PRESERVE_TTL": _BOOLEAN, "CREATE_TARGET_TABLES": _BOOLEAN,
    "ENABLED": _BOOLEAN, "CHECK_HOSTNAME": _BOOLEAN,
    "READ_CONSISTENCY": _LEVELS, "WRITE_CONSISTENCY": _LEVELS,
    "FALLBACK_CONSISTENCY": _LEVELS[:-2] + "|null)$",
    "BATCH_MODE": "^(" + "|".join(mode.value for mode in BatchMode) + ")$",
    "LOG_LEVEL": "^(DEBUG|INFO|WARNING|ERROR)$",
}


def metadata() -> dict:
    parameters = [{
        "name": "config",
        "label": "Settings file",
        "helpText": "Path of migrator_settings.yaml, e.g. gs://my-bucket/migrator_settings.yaml."
                    " Every other parameter overrides one key of it.",
        "isOptional": False,
        "regexes": [r"^(gs://|/).+\.ya?ml$"],
    }]
    for option, key, text in command_line_settings():
        parameter = {"name": option, "label": key.replace(".", " ").replace("_", " ").title(),
                     "helpText": f"{text} (key {key}).", "isOptional": True}
        regex = _REGEXES.get(key.rsplit(".", 1)[-1])
        if regex:
            parameter["regexes"] = [regex]
        parameters.append(parameter)
    return {
        "name": "Cassandra table migration",
        "description": "Copies Apache Cassandra tables from a source cluster to a target cluster "
                       "token range by token range, keeping writetimes and TTLs, with retries, a "
                       "consistency downgrade and dead-letter files. Passwords come from "
                       "PASSWORD_ENV or PASSWORD_FILE (gs:// allowed) in the settings file.",
        "parameters": parameters,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    text = json.dumps(metadata(), indent=2) + "\n"
    if args.check:
        current = METADATA.read_text() if METADATA.exists() else ""
        if current != text:
            print(f"{METADATA} is out of date: run python -m tools.flex_template",
                  file=sys.stderr)
            return 1
        return 0
    METADATA.write_text(text)
    print(f"wrote {METADATA}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
