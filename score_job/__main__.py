"""Entry point of the scoring job, locally and in the Cloud Run Job container:

    python -m score_job --input gs://bucket/inputs/posts/ --text-columns text [...]

Prints the task's summary as one JSON line on stdout. Exit codes: 0 done (rejected rows and
unreadable files are counted in the rejects file, not failures), 2 bad configuration, no input,
no usable bundle or a conflicting earlier run, 1 unexpected error (Cloud Run retries the task).
"""

from __future__ import annotations

import os
import sys

import job_config


def main(argv: list[str] | None = None) -> int:
    job_config.configure_logging("score_job", "serving_core")

    from score_job.config import resolve_config

    cfg = resolve_config(argv)
    from score_job.job import ScoreError, available_cpus, run

    # The tokenizer's Rust thread pool sizes itself to the machine, not to the task's share.
    os.environ.setdefault("RAYON_NUM_THREADS", str(cfg.threads or available_cpus()))
    try:
        summary = run(cfg)
    except ScoreError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(summary.as_json())
    return 0


if __name__ == "__main__":
    sys.exit(main())
