"""Benchmarks of the connector: build cost, sync cycle cost, delivery throughput, latency.

Run them with ``python3 -m bench`` from the repository root (see ``bench/README.md``).
"""
