"""The SIGTERM flush is installed when main.py is imported (on the main thread), not left to the
logger's first use, which happens on a request thread where no signal handler can be set: rows
handed over from a request thread and still buffered are written when SIGTERM comes. The
buffering sink is bq:// (bqemulator); stdout and duckdb:// write before the response."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from monitoring._engines import BigQueryEngine
from monitoring.replay import replay
from prediction_log.dead_letter import DeadLetter
from testing.crafted_rows import make_rows
from testing.function_server import function_module_env

# The child imports main.py as functions-framework does and nothing from the repository: the
# crafted rows come in a JSON file.
_CHILD = """
import json, signal, sys, threading, time
import main
from prediction_log import logger
rows = json.loads(open(sys.argv[1]).read())
print(main.SIGTERM_FLUSH_INSTALLED, logger.sigterm_handler_installed(), flush=True)
request = threading.Thread(target=main.PREDICTION_LOG, args=(rows,))
request.start()
request.join()
print("ready", flush=True)
time.sleep(60)
"""


def _child(tmp_path: Path, prediction_log: str) -> subprocess.Popen[str]:
    env = dict(
        os.environ,
        PREDICTION_LOG=prediction_log,
        DEAD_LETTER_URI=str(tmp_path / "dead"),
        PREDICTION_LOG_MAX_AGE_S="600",  # nothing is flushed by age: rows stay buffered
    )
    rows = tmp_path / "rows.json"
    rows.write_text(json.dumps(make_rows(40)))
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(_CHILD), str(rows)],
        env=function_module_env(env),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_importing_main_installs_the_flush_and_sigterm_writes_buffered_rows(
    tmp_path: Path, bq: BigQueryEngine
) -> None:
    table = f"{bq.dataset}.predictions"
    proc = _child(tmp_path, f"bq://{table}")
    assert proc.stdout is not None
    assert proc.stdout.readline().split() == ["True", "True"], proc.stderr
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == -signal.SIGTERM  # flushed, then the default action
    # Without the handler SIGTERM's default action kills at once and both would be empty. With
    # it every row is written, or spilled when the write outlasts the shutdown window (possibly
    # both, if the write finishes after all: replay then skips those).
    stored = {r["row_id"] for r in bq.query(f"SELECT row_id FROM `{table}`")}
    spilled = {r["row_id"] for f in DeadLetter(str(tmp_path / "dead")).pending() for r in f.rows}
    assert len(stored | spilled) == 40
    replay(f"bq://{table}", str(tmp_path / "dead"))
    rows = bq.query(f"SELECT row_id FROM `{table}`")
    assert len(rows) == len({r["row_id"] for r in rows}) == 40


def test_no_handler_when_logging_is_off(tmp_path: Path) -> None:
    proc = _child(tmp_path, "none")
    assert proc.stdout is not None
    assert proc.stdout.readline().split() == ["False", "False"]
    proc.kill()
    proc.wait(timeout=30)
