"""`make bench`: throughput and latency figures for Casework, against a raw-asyncpg baseline.

Run with `python -m bench`; see bench/README.md for what each figure means.
"""
