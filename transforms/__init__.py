"""Reusable Apache Beam transforms for Apache Cassandra: read a table by token ranges, write rows
with retries, consistency downgrade and dead letters."""

from transforms.connection import CassandraConnection, TlsOptions
from transforms.dead_letters import WriteJsonLines
from transforms.read import ReadFromCassandra
from transforms.retry import RetryPolicy
from transforms.write import BatchMode, WriteToCassandra

__all__ = ["BatchMode", "CassandraConnection", "ReadFromCassandra", "RetryPolicy", "TlsOptions",
           "WriteJsonLines", "WriteToCassandra"]
