"""Benchmarks of the migration pipeline against the same local clusters.

``python -m bench.run`` fills a source table and measures, one subprocess per contender so that
each peak resident memory is its own: the pipeline with default and with the best settings, a
plain-driver write ceiling (``bench.write_ceiling``) and a re-creation of the old script
(``bench.old_script``). ``bench.cluster`` holds the small driver helpers they share.
"""
