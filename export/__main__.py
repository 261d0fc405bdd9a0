"""python -m export: manage bundles and the production pointer in the store.

Subcommands: list, pointer, publish, promote, rollback, gate; and for a candidate tried beside
production (docs/rollout.md): canary, shadow, promote-candidate, abort.
The store is read from --store, then FND_STORE, then local/store.
Exit codes: 0 done, 2 bad request (unknown, incomplete or corrupt version, nothing to roll back
to, no candidate to promote or abort, a candidate that is production, bad bundle), 3 lost a race
(the production pointer is not at --expected-generation, or moved while we were changing it),
4 the promotion gate refuses the version (worse than production, or not comparable with it).
Every command that makes a version production (publish --promote, promote, promote-candidate,
gate) runs the promotion gate; --force REASON overrides a refusal and logs the reason with the
verdict it overrode. rollback is not gated: it returns to a version that served before.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from artifact_store import PreconditionFailed, Store, open_store
from export.promotion_gate import DEFAULT_MAX_AUC_DROP, DEFAULT_MAX_F1_DROP, Tolerance
from export.publish import (
    PromotionRefused,
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
from export.rescore import LabelledPosts, read_labelled_posts
from export.rollout import gate_against_production, promote_if_not_worse, read_production

EXPECTED_HELP = "change production only if the pointer is still at this generation (see pointer)"
FORCE_HELP = (
    "promote even if the promotion gate refuses the version; the reason is logged with the "
    "verdict it overrides"
)


def _reason(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("--force needs a reason")
    return text


def _add_promotion_flags(parser: argparse.ArgumentParser) -> None:
    _add_tolerance(parser)
    parser.add_argument("--force", type=_reason, default=None, metavar="REASON", help=FORCE_HELP)


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
    parser.add_argument(
        "--rescore",
        type=Path,
        default=None,
        metavar="CSV",
        help="measure both bundles' weighted F1 on this labelled CSV (columns tweet, label), "
        "instead of reading it from their manifests",
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
    _add_promotion_flags(p)
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
    _add_promotion_flags(p)
    p = sub.add_parser("promote", help="make a published version production")
    p.add_argument("version")
    p.add_argument("--expected-generation", type=int, default=None, help=EXPECTED_HELP)
    _add_promotion_flags(p)
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
    # The gate's verdicts, overrides and ungated rollbacks go to stderr, the job's log.
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

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
                print(json.dumps(promote(store, version, **_gate_options(args))))
        elif args.command == "pointer":
            pointer, generation = read_pointer_with_generation(store)
            print(json.dumps({"generation": generation, "pointer": pointer}))
        elif args.command == "promote":
            pointer = promote(store, args.version, args.expected_generation, **_gate_options(args))
            print(json.dumps(pointer))
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
            pointer = promote_candidate(store, args.expected_generation, **_gate_options(args))
            print(json.dumps(pointer))
        elif args.command == "abort":
            print(json.dumps(abort_candidate(store, args.expected_generation)))
    except PreconditionFailed as e:
        print(f"error: {e}; read the pointer again and retry", file=sys.stderr)
        return 3
    except PromotionRefused as e:
        print(json.dumps(e.verdict.to_dict(), indent=2))
        print(f"error: {e}; --force REASON overrides it", file=sys.stderr)
        return 4
    except LookupError as e:
        print(f"error: {e.args[0] if e.args else e}", file=sys.stderr)
        return 2
    return 0


def _gate_options(args: argparse.Namespace) -> dict:
    tolerance = Tolerance(max_f1_drop=args.max_f1_drop, max_auc_drop=args.max_auc_drop)
    return {"tolerance": tolerance, "override": args.force, "rescore": _rescore(args)}


def _rescore(args: argparse.Namespace) -> LabelledPosts | None:
    if args.rescore is None:
        return None
    if not args.rescore.is_file():
        raise LookupError(f"--rescore {args.rescore}: no such file")
    return read_labelled_posts(args.rescore)


def _gate(store: Store, args: argparse.Namespace) -> int:
    tolerance = Tolerance(max_f1_drop=args.max_f1_drop, max_auc_drop=args.max_auc_drop)
    if args.version not in list_versions(store):
        raise LookupError(f"no complete version {args.version!r} in {store.uri}")
    rescore = _rescore(args)
    if args.dry_run:
        production = read_production(store).version
        verdict = gate_against_production(store, args.version, production, tolerance, rescore)
        print(json.dumps(verdict.to_dict(), indent=2))
        return 0 if verdict.promote else 4
    decision = promote_if_not_worse(store, args.version, tolerance=tolerance, rescore=rescore)
    print(json.dumps(decision.summary()["rollout"], indent=2))
    return 0 if decision.promoted else 4


if __name__ == "__main__":
    sys.exit(main())
