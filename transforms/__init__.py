"""Reusable Apache Beam transforms for Apache Cassandra: read a table by token ranges, write rows
with retries, consistency downgrade and dead letters."""

from transforms.connection import CassandraConnection, TlsOptions
from transforms.counters import WriteCountersToCassandra
from transforms.dead_letters import WriteJsonLines
from transforms.mapping import MapColumns
from transforms.read import ReadFromCassandra
from transforms.retry import RetryPolicy
from transforms.write import BatchMode, WriteToCassandra

__all__ = ["BatchMode", "CassandraConnection", "MapColumns", "ReadFromCassandra", "RetryPolicy",
           "TlsOptions", "WriteCountersToCassandra", "WriteJsonLines", "WriteToCassandra"]
