"""Benchmarks: `bench/engine.py` (decode throughput, TTFT) and `bench/pipeline.py` (the web path).

Results, with the machine they ran on, are in docs/benchmarks.md.
"""
