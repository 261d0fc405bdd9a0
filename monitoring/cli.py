"""python -m monitoring {monitor,replay,replay-dead-rows,dashboard,create-tables,load-baseline}

Config order (job_config.read): flag, then environment (PREDICTION_LOG, PREDICTION_LOG_ROWS,
DEAD_LETTER_URI, REPLAY_MIN_AGE_S, STORE, RETRAIN_COMMAND; blank counts as unset), then default.
Exit codes: 0 ok, 1 error (replay: some file failed or some rows were invalid), 2 bad usage, 3
drift above the PSI threshold, 4 drift and the retrain command failed.
"""

from __future__ import annotations

import argparse
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path

from job_config import number, read
from monitoring import monitor as _monitor
from monitoring._engines import Engine, engine_from_uri
from monitoring.replay import REPLAY_MIN_AGE_S
from prediction_log.settings import DEFAULT_DEAD_LETTER_URI, DEFAULT_PREDICTION_LOG

DEFAULT_STORE = "local/store"
DEFAULT_DASHBOARD = "local/dashboard.html"


def _with_log(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument(
        "--log",
        default=read("PREDICTION_LOG", str, DEFAULT_PREDICTION_LOG),
        help="duckdb://path or bq://project.dataset[.table] (env PREDICTION_LOG)",
    )
    p.add_argument(
        "--log-rows",
        default=read("PREDICTION_LOG_ROWS", str, "predictions"),
        help="what queries read in that dataset: the table `predictions`, or the view "
        "prediction_log_rows when the function logs to stdout (env PREDICTION_LOG_ROWS)",
    )
    return p


def _with_window(p: argparse.ArgumentParser) -> None:
    p.add_argument("--window", default="24h", help="length of the window ending at --end (24h)")
    p.add_argument("--start", help="window start, ISO time (UTC if no offset)")
    p.add_argument("--end", help="window end, ISO time (default: now)")
    p.add_argument(
        "--store",
        default=read("STORE", str, DEFAULT_STORE),
        help="artifact store whose production bundle's baseline is loaded (env STORE)",
    )
    p.add_argument("--psi-threshold", type=float, default=0.2)
    p.add_argument(
        "--min-rows", type=int, default=100, help="PSI on fewer rows is noise: no verdict"
    )


def _add_monitor(sub: argparse._SubParsersAction) -> None:
    mon = _with_log(sub.add_parser("monitor", help="drift report; exit 3 above the PSI threshold"))
    _with_window(mon)
    mon.add_argument("--retrain", action="store_true", help="on drift, run the retrain command")
    mon.add_argument(
        "--retrain-command",
        default=read("RETRAIN_COMMAND", str, _monitor.DEFAULT_RETRAIN_COMMAND),
        help="(env RETRAIN_COMMAND; default: python -m train_job)",
    )
    mon.add_argument("--dashboard", help="also write the HTML dashboard here")
    mon.add_argument(
        "--report-only", action="store_true", help="print the report and exit 0 even on drift"
    )


def _add_dashboard(sub: argparse._SubParsersAction) -> None:
    dash = _with_log(sub.add_parser("dashboard", help="write the static HTML dashboard"))
    _with_window(dash)
    dash.set_defaults(window="7d")
    dash.add_argument("--out", default=DEFAULT_DASHBOARD)


def _add_replay(sub: argparse._SubParsersAction) -> None:
    rep = _with_log(sub.add_parser("replay", help="load dead-letter rows into the log, once each"))
    rep.add_argument(
        "--dead-letter",
        default=read("DEAD_LETTER_URI", str, DEFAULT_DEAD_LETTER_URI),
        help="folder or gs:// prefix (env DEAD_LETTER_URI)",
    )
    rep.add_argument(
        "--min-age-s",
        type=float,
        default=read("REPLAY_MIN_AGE_S", number, REPLAY_MIN_AGE_S),
        help="leave unanswered-* files (rows of inserts sent and never answered, which may "
        "still land) younger than this for the next replay "
        f"(env REPLAY_MIN_AGE_S, default {REPLAY_MIN_AGE_S:g})",
    )


def _add_replay_dead_rows(sub: argparse._SubParsersAction) -> None:
    rep = _with_log(
        sub.add_parser(
            "replay-dead-rows",
            help="load the PREDICTION_LOG_DEAD_ROW lines of a file (e.g. exported logs), once each",
        )
    )
    rep.add_argument(
        "file", type=Path, help="raw stderr lines, JSON log entries, or gcloud logging read output"
    )
    rep.add_argument(
        "--dead-letter",
        default=read("DEAD_LETTER_URI", str, DEFAULT_DEAD_LETTER_URI),
        help="where rows that can never load are set aside (env DEAD_LETTER_URI)",
    )


def _add_load_baseline(sub: argparse._SubParsersAction) -> None:
    base = _with_log(sub.add_parser("load-baseline", help="load a bundle's baseline.json"))
    base.add_argument("--store", default=read("STORE", str, DEFAULT_STORE))
    base.add_argument(
        "--bundle", help="bundle folder or gs:// prefix (default: the store's production bundle)"
    )
    base.add_argument(
        "--replace", action="store_true", help="DuckDB only: reload an existing baseline"
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m monitoring", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _add_monitor(sub)
    _add_dashboard(sub)
    _add_replay(sub)
    _add_replay_dead_rows(sub)
    _with_log(sub.add_parser("create-tables", help="create the tables and views from sql/"))
    _add_load_baseline(sub)
    return parser


def _window(args: argparse.Namespace) -> tuple[datetime, datetime]:
    end = _monitor.parse_time(args.end) if args.end else datetime.now(UTC)
    start = (
        _monitor.parse_time(args.start) if args.start else end - _monitor.parse_window(args.window)
    )
    if start >= end:
        raise ValueError("--start must be before --end")
    return start, end


def _ensure_baseline(engine: Engine, store: str) -> None:
    """Load the production bundle's baseline if it is not in the tables yet (idempotent)."""
    from monitoring.baseline import load_baseline, production_bundle, read_bundle_baseline

    try:
        baseline = read_bundle_baseline(production_bundle(store))
    except FileNotFoundError:
        print(f"note: no production bundle in {store}; PSI only for versions already loaded")
        return
    if load_baseline(engine, baseline):
        print(f"loaded baseline of {baseline.model_version}")


def _run(args: argparse.Namespace) -> int:
    engine = engine_from_uri(args.log, args.log_rows)
    if args.command == "create-tables":
        engine.create_tables()
        engine.create_views()
        print(f"tables and views ready in {args.log}")
        return 0
    if args.command == "replay":
        from monitoring.replay import replay

        result = replay(args.log, args.dead_letter, args.min_age_s)
        print(
            f"replay: {result.files} files, {result.rows} rows, {result.inserted} inserted, "
            f"{result.rows - result.inserted - result.rejected} already present, "
            f"{result.rejected} invalid (set aside as rejected-*.jsonl), "
            f"{result.failed_files} files failed, "
            f"{result.waiting} unanswered files younger than {args.min_age_s:g} s left for later"
        )
        return 1 if result.failed_files or result.rejected else 0
    if args.command == "replay-dead-rows":
        from monitoring.replay import replay_dead_rows

        result = replay_dead_rows(args.log, args.file, args.dead_letter)
        print(
            f"replay-dead-rows: {result.rows} rows in {args.file}, {result.inserted} inserted, "
            f"{result.rows - result.inserted - result.rejected} already present, "
            f"{result.rejected} invalid (set aside as rejected-*.jsonl)"
        )
        return 1 if result.rejected else 0
    if args.command == "load-baseline":
        from monitoring.baseline import load_baseline, production_bundle, read_bundle_baseline

        engine.create_tables()
        baseline = read_bundle_baseline(args.bundle or production_bundle(args.store))
        added = load_baseline(engine, baseline, replace=args.replace)
        print(f"baseline of {baseline.model_version}: {'loaded' if added else 'already loaded'}")
        return 0

    # monitor / dashboard
    start, end = _window(args)
    if args.log.startswith("duckdb://"):
        engine.create_tables()  # the logger makes only `predictions`
    _ensure_baseline(engine, args.store)
    report = _monitor.check_drift(engine, start, end, args.psi_threshold, args.min_rows)
    print(report.text())
    if args.command == "monitor":
        from monitoring.candidates import candidate_comparison, candidate_text

        print(candidate_text(candidate_comparison(engine, start, end)))
    out = args.out if args.command == "dashboard" else args.dashboard
    if out:
        from monitoring.dashboard import write_dashboard

        print(f"dashboard: {write_dashboard(engine, start, end, report, Path(out))}")
    if args.command == "dashboard" or args.report_only or not report.drifted:
        return 0
    if args.retrain:
        code = _monitor.start_retrain(args.retrain_command)
        print(f"retrain exited with {code}")
        if code != 0:
            return _monitor.EXIT_RETRAIN_FAILED
    return _monitor.EXIT_DRIFT


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ValueError) else 1
    except Exception as exc:  # a clear line for the scheduler's log, not a stack trace
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
