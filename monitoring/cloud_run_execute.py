"""Start an execution of a Cloud Run job.

    python -m monitoring.cloud_run_execute projects/P/locations/R/jobs/J

The scheduled monitor job's RETRAIN_COMMAND (terraform/jobs.tf): on drift it starts the train job
as its own execution (its own service account, CPU/GPU and timeout) instead of training inside the
small monitor task. The image has no gcloud, so this calls the Cloud Run Admin API
(POST https://run.googleapis.com/v2/<job>:run) with the task's own credentials; the caller needs
run.jobs.run on the job (roles/run.invoker). Returns without waiting for the execution to finish.
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import Any, Protocol

API = "https://run.googleapis.com/v2"
_JOB_NAME = re.compile(r"^projects/[^/]+/locations/[^/]+/jobs/[^/]+$")


class Session(Protocol):
    def post(self, url: str, json: Any, timeout: float) -> Any: ...


def execute_job(job: str, session: Session | None = None) -> str:
    """Start the job; the name of the new execution (long-running operation's metadata)."""
    if not _JOB_NAME.match(job):
        raise ValueError(f"expected projects/<p>/locations/<r>/jobs/<name>, got {job!r}")
    if session is None:
        import google.auth
        from google.auth.transport.requests import AuthorizedSession

        credentials, _ = google.auth.default(
            scopes=["https://www.googleapis.com/auth/cloud-platform"]
        )
        session = AuthorizedSession(credentials)
    response = session.post(f"{API}/{job}:run", json={}, timeout=60)
    if response.status_code != 200:
        raise RuntimeError(f"{job}:run answered {response.status_code}: {response.text[:500]}")
    return str(response.json().get("metadata", {}).get("name", "?"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m monitoring.cloud_run_execute")
    parser.add_argument("job", help="projects/<project>/locations/<region>/jobs/<name>")
    args = parser.parse_args(argv)
    try:
        execution = execute_job(args.job)
    except (ValueError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"started {execution}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
