"""Developer tools: the local Cassandra launcher and helpers for tests, demo and benchmarks."""
