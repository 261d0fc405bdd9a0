"""`python -m monitoring` on the local DuckDB log: the drift verdict (shifted traffic above the
PSI threshold, unshifted below), the retrain trigger, the baseline load and the dashboard."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from monitoring._engines import DuckDBEngine
from monitoring.cli import main
from prediction_log.sinks import make_sink
from tests.monitoring._crafted import DAY, VERSION_A, make_rows, write_store

ROOT = Path(__file__).resolve().parents[2]
SHADOW_VERSION = "20240301T000000Z-cccccc"
WINDOW = ["--start", DAY.isoformat(), "--end", (DAY + timedelta(days=1)).isoformat()]


@pytest.fixture
def log(tmp_path: Path) -> str:
    return f"duckdb://{tmp_path / 'predictions.duckdb'}"


def _fill(log: str, shifted: bool, n: int = 1500) -> None:
    rows = make_rows(n, shifted=shifted, seed=11)
    assert not make_sink(log).write([dict(r, text=None) for r in rows]).retryable


def _monitor(log: str, store: Path, *extra: str) -> int:
    return main(["monitor", "--log", log, "--store", str(store), *WINDOW, *extra])


def test_unshifted_traffic_passes(
    log: str, store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _fill(log, shifted=False)
    assert _monitor(log, store) == 0
    out = capsys.readouterr().out
    assert "loaded baseline of " + VERSION_A in out
    assert re.search(rf"{VERSION_A}\s+1500\s.*\bok$", out, re.M), out


def test_shifted_traffic_exits_3(log: str, store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _fill(log, shifted=True)
    assert _monitor(log, store) == 3
    assert "DRIFT: score_psi" in capsys.readouterr().out


def test_too_few_rows_give_no_verdict(log: str, store: Path) -> None:
    _fill(log, shifted=True, n=40)
    assert _monitor(log, store, "--min-rows", "100") == 0
    assert _monitor(log, store, "--min-rows", "10") == 3


def test_drift_starts_the_retrain_command(log: str, store: Path, tmp_path: Path) -> None:
    _fill(log, shifted=True)
    marker = tmp_path / "retrain_ran"
    command = shlex.join([sys.executable, "-c", f"open({str(marker)!r}, 'w').close()"])
    assert _monitor(log, store, "--retrain", "--retrain-command", command) == 3
    assert marker.exists()
    failing = shlex.join([sys.executable, "-c", "raise SystemExit(7)"])
    assert _monitor(log, store, "--retrain", "--retrain-command", failing) == 4


def test_no_retrain_without_drift(log: str, store: Path, tmp_path: Path) -> None:
    _fill(log, shifted=False)
    marker = tmp_path / "retrain_ran"
    command = shlex.join([sys.executable, "-c", f"open({str(marker)!r}, 'w').close()"])
    assert _monitor(log, store, "--retrain", "--retrain-command", command) == 0
    assert not marker.exists()


def test_load_baseline_is_idempotent(log: str, store: Path, tmp_path: Path) -> None:
    assert main(["load-baseline", "--log", log, "--store", str(store)]) == 0
    assert main(["load-baseline", "--log", log, "--store", str(store)]) == 0
    engine = DuckDBEngine(tmp_path / "predictions.duckdb")
    assert engine.query("SELECT COUNT(*) AS n FROM `main.baselines`") == [{"n": 1}]
    assert engine.query("SELECT COUNT(*) AS n FROM `main.baseline_bins`") == [{"n": 17}]


def test_bad_input_is_a_clear_error(log: str, store: Path, tmp_path: Path, capsys) -> None:
    assert main(["monitor", "--log", log, "--store", str(store), "--window", "5x"]) == 2
    assert main(["monitor", "--log", "mysql://x", "--store", str(store)]) == 2
    broken = write_store(tmp_path / "broken", baseline={"score_bins": [0, 1], "score_hist": []})
    assert main(["load-baseline", "--log", log, "--store", str(broken)]) != 0
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("error:") == 3


@pytest.mark.slow
def test_dashboard_page_has_every_plot(log: str, store: Path, tmp_path: Path) -> None:
    _fill(log, shifted=False)
    out = tmp_path / "dashboard.html"
    # As `make dashboard` runs it: a subprocess through `python -m monitoring`.
    proc = subprocess.run(
        [sys.executable, "-m", "monitoring", "dashboard", "--log", log, "--store", str(store),
         *WINDOW, "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    page = out.read_text()
    assert page.count('src="data:image/png;base64,') == 7
    for title in (
        "Volume",
        "Latency",
        "Fake rate",
        "Out-of-domain share",
        "Score histogram",
        "PSI",
        "Candidate comparison",
    ):
        assert f"<h2>{title}</h2>" in page
    assert VERSION_A in page


def test_replay_sets_invalid_rows_aside_and_loads_the_rest(tmp_path: Path, log: str) -> None:
    from prediction_log.dead_letter import DeadLetter

    dead = DeadLetter(str(tmp_path / "dead"))
    rows = make_rows(6, seed=21)
    rows[2]["token_count"] = "many"
    dead.write(rows)
    args = ["replay", "--log", log, "--dead-letter", str(tmp_path / "dead")]
    assert main(args) == 1  # someone has to look at the invalid row
    engine = DuckDBEngine(tmp_path / "predictions.duckdb")
    assert engine.query("SELECT COUNT(*) AS n FROM `main.predictions`") == [{"n": 5}]
    (aside,) = (tmp_path / "dead").glob("rejected-*.jsonl")
    assert '"many"' in aside.read_text()
    assert list(dead.pending()) == []
    assert main(args) == 0  # nothing left to do, and the rejected file is not retried
    assert engine.query("SELECT COUNT(*) AS n FROM `main.predictions`") == [{"n": 5}]


def test_report_only_never_fails_on_drift(log: str, store: Path) -> None:
    _fill(log, shifted=True)
    assert _monitor(log, store, "--report-only") == 0


def test_monitor_reports_a_shadow_trial_without_judging_drift_on_it(
    log: str, store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    live = make_rows(1500, seed=11)
    shifted = make_rows(1500, shifted=True, seed=11)  # scores piled up in the middle
    shadow = [
        dict(s, request_id=r["request_id"], instance_index=r["instance_index"],
             text_sha256=r["text_sha256"], model_version=SHADOW_VERSION, shadow=True,
             row_id="shadow-" + r["row_id"])
        for r, s in zip(live, shifted, strict=True)
    ]  # fmt: skip
    assert not make_sink(log).write([dict(r, text=None) for r in live + shadow]).retryable
    assert _monitor(log, store) == 0  # the shadow's shifted scores were never served
    out = capsys.readouterr().out
    assert re.search(rf"{VERSION_A}\s+1500\s.*\bok$", out, re.M), out
    section = out.split("Candidate comparison", 1)[1]
    (line,) = [line for line in section.splitlines() if SHADOW_VERSION in line]
    cells = line.split()
    assert cells[2:6] == ["shadow", "750", "1.000", "1500"], line  # every request, all paired


def test_monitor_says_when_there_is_no_candidate(
    log: str, store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _fill(log, shifted=False)
    assert _monitor(log, store) == 0
    assert "no canary or shadow in the window" in capsys.readouterr().out
