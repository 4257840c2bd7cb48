"""A Cassandra IO for Apache Beam's Python SDK: read a table by token ranges, write rows with
retries, consistency downgrade and dead letters.

The connector's face is what ``__all__`` lists. The pieces the migration pipeline adds around it
(``transforms.mapping.MapColumns``, ``transforms.dead_letters.WriteJsonLines``,
``transforms.progress``) are importable from their modules but are not part of the connector.
"""

from transforms.cells import CellOptions
from transforms.connection import CassandraConnection, TlsOptions
from transforms.read import ReadFromCassandra
from transforms.retry import RetryPolicy
from transforms.write import BatchMode, WriteToCassandra

__all__ = ["BatchMode", "CassandraConnection", "CellOptions", "ReadFromCassandra", "RetryPolicy",
           "TlsOptions", "WriteToCassandra"]
