"""Benchmarks of the embedded engine: `python -m bench [--only NAME[,NAME]] [--repeat N]`.

Every workload runs on a real `LocalBackend` with its SQLite file in a temporary directory and
the default durability (WAL, `synchronous=NORMAL`: every transition is committed). Results are
printed as a table and written to `bench/results/latest.md` and `latest.json`.
"""
