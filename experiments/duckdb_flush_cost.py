"""What a DuckDB log flush costs with a connection per flush and with one kept connection.

Fills a fresh log file with `--rows` rows through the product's DuckDBSink, then times
`--flushes` flushes of `--batch` rows each way in this process: CPU per flush and PSS after them.
Closing a connection checkpoints the file and the next one builds the key index up again, which
is why the sink keeps its connection while flushes come (packages/prediction_log/.../sinks.py).

    python -m experiments.duckdb_flush_cost
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
from pathlib import Path


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def pss_mib() -> float:
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=30_000, help="rows in the file before")
    parser.add_argument("--batch", type=int, default=500, help="rows per flush")
    parser.add_argument("--flushes", type=int, default=20)
    args = parser.parse_args(argv)

    from prediction_log.sinks import DuckDBSink
    from testing.crafted_rows import make_rows

    rows = make_rows(args.rows + 2 * args.flushes * args.batch)
    with tempfile.TemporaryDirectory() as tmp:
        sink = DuckDBSink(f"duckdb://{Path(tmp) / 'log.duckdb'}")
        for start in range(0, args.rows, 1000):
            sink.write(rows[start : start + 1000])
        sink.close()
        position = args.rows
        for mode in ("connection per flush", "kept connection"):
            before_cpu, before_pss = cpu_s(), pss_mib()
            for _ in range(args.flushes):
                sink.write(rows[position : position + args.batch])
                position += args.batch
                if mode == "connection per flush":
                    sink.close()
            per_flush_ms = (cpu_s() - before_cpu) / args.flushes * 1000
            print(
                f"{mode}: {per_flush_ms:.1f} ms of CPU per flush of {args.batch} rows into "
                f"{args.rows:,}+ rows; PSS {pss_mib() - before_pss:+.1f} MiB after "
                f"{args.flushes} flushes"
            )
            sink.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
