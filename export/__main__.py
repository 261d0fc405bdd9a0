"""python -m export: manage bundles and the production pointer in the store.

Subcommands: list, pointer, publish, promote, rollback, gate; and for a candidate tried beside
production (docs/rollout.md): canary, shadow, promote-candidate, abort.
The store is read from --store, then FND_STORE, then local/store.
Exit codes: 0 done, 2 bad request (unknown, incomplete or corrupt version, nothing to roll back
to, no candidate to promote or abort, a candidate that is production, bad bundle), 3 lost a race
(the production pointer is not at --expected-generation, or moved while we were changing it),
4 the promotion gate refuses the version (worse than production).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from export.promotion_gate import DEFAULT_MAX_AUC_DROP, DEFAULT_MAX_F1_DROP, Tolerance
from export.publish import (
    abort_candidate,
    list_versions,
    promote,
    promote_candidate,
    publish,
    read_pointer,
    read_pointer_with_generation,
    rollback,
    start_candidate,
)
from export.rollout import gate_against_production, promote_if_not_worse, read_production
from export.store import PreconditionFailed, Store, open_store

EXPECTED_HELP = "change production only if the pointer is still at this generation (see pointer)"


def _add_tolerance(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--max-f1-drop",
        type=float,
        default=DEFAULT_MAX_F1_DROP,
        help="official test weighted F1 the version may lose against production",
    )
    parser.add_argument(
        "--max-auc-drop",
        type=float,
        default=DEFAULT_MAX_AUC_DROP,
        help="cross-source ROC-AUC the version may lose against production",
    )


def _fraction(text: str) -> float:
    value = float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a share of requests in (0, 1)")
    return value


def _add_candidate_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("canary", help="let a published version answer a share of the requests")
    p.add_argument("version")
    p.add_argument("--fraction", type=_fraction, required=True, help="share of requests, e.g. 0.1")
    p.add_argument("--expected-generation", type=int, default=None, help=EXPECTED_HELP)
    p = sub.add_parser(
        "shadow", help="let a published version score every request's texts, logged only"
    )
    p.add_argument("version")
    p.add_argument("--expected-generation", type=int, default=None, help=EXPECTED_HELP)
    p = sub.add_parser("promote-candidate", help="make the canary or shadow version production")
    p.add_argument("--expected-generation", type=int, default=None, help=EXPECTED_HELP)
    p = sub.add_parser("abort", help="drop the canary or shadow version; production alone serves")
    p.add_argument("--expected-generation", type=int, default=None, help=EXPECTED_HELP)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m export", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--store", default=None, help="folder or gs://bucket/prefix [env FND_STORE]"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list complete versions; * marks production")
    sub.add_parser("pointer", help="print the production pointer and its generation")
    p = sub.add_parser("publish", help="upload a bundle folder (files first, manifest last)")
    p.add_argument("bundle_dir", type=Path)
    p.add_argument("--promote", action="store_true", help="also make it production")
    p = sub.add_parser("promote", help="make a published version production")
    p.add_argument("version")
    p.add_argument("--expected-generation", type=int, default=None, help=EXPECTED_HELP)
    p = sub.add_parser("rollback", help="go back to the previous production version")
    p.add_argument("--expected-generation", type=int, default=None, help=EXPECTED_HELP)
    p = sub.add_parser(
        "gate", help="promote a published version only if it is not worse than production"
    )
    p.add_argument("version")
    p.add_argument("--dry-run", action="store_true", help="print the verdict, change nothing")
    _add_tolerance(p)
    _add_candidate_commands(sub)
    args = parser.parse_args(argv)

    store = open_store(args.store or os.environ.get("FND_STORE") or "local/store")
    try:
        if args.command == "list":
            production = (read_pointer(store) or {}).get("version")
            for version in list_versions(store):
                print(("* " if version == production else "  ") + version)
        elif args.command == "publish":
            if not (args.bundle_dir / "manifest.json").is_file():
                raise LookupError(f"{args.bundle_dir} has no manifest.json: not a bundle")
            version = publish(args.bundle_dir, store)
            print(f"published {version} to {store.uri}/models/{version}")
            if args.promote:
                print(json.dumps(promote(store, version)))
        elif args.command == "pointer":
            pointer, generation = read_pointer_with_generation(store)
            print(json.dumps({"generation": generation, "pointer": pointer}))
        elif args.command == "promote":
            print(json.dumps(promote(store, args.version, args.expected_generation)))
        elif args.command == "rollback":
            print(json.dumps(rollback(store, args.expected_generation)))
        elif args.command == "gate":
            return _gate(store, args)
        elif args.command in ("canary", "shadow"):
            fraction = args.fraction if args.command == "canary" else None
            pointer = start_candidate(
                store, args.version, args.command, fraction, args.expected_generation
            )
            print(json.dumps(pointer))
        elif args.command == "promote-candidate":
            print(json.dumps(promote_candidate(store, args.expected_generation)))
        elif args.command == "abort":
            print(json.dumps(abort_candidate(store, args.expected_generation)))
    except PreconditionFailed as e:
        print(f"error: {e}; read the pointer again and retry", file=sys.stderr)
        return 3
    except LookupError as e:
        print(f"error: {e.args[0] if e.args else e}", file=sys.stderr)
        return 2
    return 0


def _gate(store: Store, args: argparse.Namespace) -> int:
    tolerance = Tolerance(max_f1_drop=args.max_f1_drop, max_auc_drop=args.max_auc_drop)
    if args.version not in list_versions(store):
        raise LookupError(f"no complete version {args.version!r} in {store.uri}")
    if args.dry_run:
        production = read_production(store).version
        verdict = gate_against_production(store, args.version, production, tolerance)
        print(json.dumps(verdict.to_dict(), indent=2))
        return 0 if verdict.promote else 4
    decision = promote_if_not_worse(store, args.version, tolerance=tolerance)
    print(json.dumps(decision.summary()["rollout"], indent=2))
    return 0 if decision.promoted else 4


if __name__ == "__main__":
    sys.exit(main())
