"""Entry point of the train job, locally and in the Cloud Run Job container:

    python -m train_job [--profile quick|full] [--data ...] [--store ...] ...

Exit codes: 0 done, 2 bad data or configuration, 4 int8 model failed the accuracy gate
(nothing published), 1 unexpected error.
"""

from __future__ import annotations

import json
import os
import sys

import job_config


def main(argv: list[str] | None = None) -> int:
    job_config.configure_logging("train_job", "export")

    from train_job.config import resolve_config
    from train_job.data import DataError

    try:
        cfg = resolve_config(argv)
    except SystemExit as e:
        if not isinstance(e.code, str):  # argparse's own exits (--help 0, bad syntax 2)
            raise
        print(e.code, file=sys.stderr)  # a refused value or combination
        return 2
    try:
        from train_job.distill import TeacherError
        from train_job.pipeline import GateFailed, run
        from train_job.run_record import run_summary

        summary = run(cfg)
    except DataError as e:
        print(f"error: bad input data: {e}", file=sys.stderr)
        return 2
    except (FileNotFoundError, TeacherError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except GateFailed as e:
        print(f"error: accuracy gate failed, nothing published: {e}", file=sys.stderr)
        return 4
    print(run_summary(summary))
    if cfg.results_file:
        from train_job.run_record import results_record

        os.makedirs(os.path.dirname(cfg.results_file) or ".", exist_ok=True)
        with open(cfg.results_file, "w") as f:
            json.dump(results_record(cfg, summary), f, indent=2)
        print(f"results written to {cfg.results_file}")
    last_run = os.environ.get("FND_LAST_RUN_FILE", "local/last_run.json")
    if last_run:
        os.makedirs(os.path.dirname(last_run) or ".", exist_ok=True)
        keys = ("run_id", "run_dir", "hf_model_dir", "bundle_dir", "bundle_uri", "version", "store")
        with open(last_run, "w") as f:
            json.dump({k: summary.get(k) for k in keys}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
