"""finished(): a completed request is freed by reference counting, not left to the cyclic GC."""

from __future__ import annotations

import gc
import time
import weakref

from transforms.connection import finished


def _freed_without_the_collector(session, take) -> bool:
    """Whether a finished request is freed within 5 s while the cyclic collector is off."""
    gc.collect()
    gc.disable()
    try:
        future = session.execute_async("SELECT release_version FROM system.local")
        rows = take(future)
        assert rows.one().release_version
        reference = weakref.ref(future)
        del future, rows
        deadline = time.monotonic() + 5
        # The cancelled timer leaves the driver's timer queue within a moment.
        while reference() is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        return reference() is None
    finally:
        gc.enable()


def test_finished_breaks_the_cycle_between_a_future_and_its_timer(source_session):
    assert not _freed_without_the_collector(source_session, lambda future: future.result())
    assert _freed_without_the_collector(source_session, finished)


def test_a_session_opens_after_a_keyspace_whose_types_were_registered_is_dropped(
        keyspace, cassandra_hosts):
    """A worker process that lives on across jobs shares its Cluster: the user types an
    earlier job registered must not keep it from opening a session once their keyspace is
    dropped."""
    import pytest
    from cassandra.cluster import Cluster, UserTypeDoesNotExist

    from transforms.values import forget_dropped_user_types, register_user_types

    cluster = Cluster([cassandra_hosts[0]], protocol_version=5)
    gone = f"{keyspace}_gone"
    try:
        session = cluster.connect()
        session.execute(f"CREATE KEYSPACE {gone} WITH replication = "
                        "{'class': 'SimpleStrategy', 'replication_factor': 1}")
        session.execute(f"CREATE TYPE {gone}.point (x int, y int)")
        session.execute(f"CREATE TYPE {keyspace}.kept (x int)")
        cluster.refresh_schema_metadata()
        register_user_types(cluster, gone)
        register_user_types(cluster, keyspace)
        session.execute(f"DROP KEYSPACE {gone}")
        cluster.refresh_schema_metadata()
        with pytest.raises(UserTypeDoesNotExist):
            cluster.connect()  # the driver's own behaviour

        forget_dropped_user_types(cluster)

        assert cluster.connect().execute("SELECT release_version FROM system.local").one()
        assert dict(cluster._user_types) == {keyspace: {"kept": cluster._user_types[keyspace][
            "kept"]}}
    finally:
        cluster.shutdown()
