"""What a Cassandra release can report, decided in one place for the reader and the writer.

A cluster's release is its oldest node's (``release_version`` from the driver's metadata), so a
cluster in the middle of a rolling upgrade is treated as the older release.
"""

from __future__ import annotations

import re

# Cassandra 5.0 reports writetime() and ttl() of non-frozen collections and user types (per
# element), and has maxwritetime(); older releases refuse both selectors on such columns.
ELEMENT_WRITETIMES = (5, 0)

# CQL types newer than Cassandra 4.0, with the release that added them.
TYPES_ADDED = {"vector": (5, 0)}


def oldest_release(metadata) -> tuple[int, ...]:
    """(major, minor) of the cluster's oldest node; (5, 0) when no node tells."""
    versions = []
    for host in metadata.all_hosts():
        try:
            versions.append(tuple(int(part) for part in
                                  host.release_version.split("-")[0].split(".")[:2]))
        except (AttributeError, ValueError):
            continue
    return min(versions, default=(5, 0))


def reports_element_writetimes(release: tuple[int, ...]) -> bool:
    return release >= ELEMENT_WRITETIMES


def types_missing(cql_type: str, release: tuple[int, ...]) -> list[str]:
    """The types used in ``cql_type`` (nested ones too) that ``release`` does not have."""
    used = set(re.findall(r"\b(\w+)\s*<", cql_type))
    return sorted(name for name in used
                  if name in TYPES_ADDED and tuple(release) < TYPES_ADDED[name])


def release_name(release: tuple[int, ...]) -> str:
    return "Cassandra " + ".".join(map(str, release))
