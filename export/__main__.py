"""python -m export {list,publish,promote,rollback}: manage bundles in the artifact store.

The store is read from --store, then FND_STORE, then local/store.
Exit codes: 0 done, 2 bad request (unknown version, nothing to roll back to, bad bundle),
3 lost a race (the production pointer moved while we were changing it).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from export.publish import list_versions, promote, publish, read_pointer, rollback
from export.store import PreconditionFailed, open_store


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m export", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--store", default=None, help="folder or gs://bucket/prefix [env FND_STORE]"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list complete versions; * marks production")
    p = sub.add_parser("publish", help="upload a bundle folder (files first, manifest last)")
    p.add_argument("bundle_dir", type=Path)
    p.add_argument("--promote", action="store_true", help="also make it production")
    p = sub.add_parser("promote", help="make a published version production")
    p.add_argument("version")
    sub.add_parser("rollback", help="go back to the previous production version")
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
        elif args.command == "promote":
            print(json.dumps(promote(store, args.version)))
        elif args.command == "rollback":
            print(json.dumps(rollback(store)))
    except PreconditionFailed as e:
        print(f"error: {e}; read the pointer again and retry", file=sys.stderr)
        return 3
    except LookupError as e:
        print(f"error: {e.args[0] if e.args else e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
