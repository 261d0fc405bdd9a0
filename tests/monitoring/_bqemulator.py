"""bqemulator for the monitoring tests: the subprocess helper lives in benchmarks.support, shared
with the chaos suite (benchmarks/chaos.py)."""

from benchmarks.support import BigQueryEmulator, free_port, install_duckdb_extensions

__all__ = ["BigQueryEmulator", "free_port", "install_duckdb_extensions"]
