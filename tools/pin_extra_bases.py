"""Give each `name[extras]==version` entry of a hash lock a plain `name==version` twin.

`make lock` has uv keep the extras a locked package is required with (`--no-strip-extras`), so
that pip never has to look past the lock for an extra's own requirements. uv writes such a
package once, as `google-auth[pyopenssl]==2.63.0`. The pip that `python3.11 -m venv` brings
(23.2.1) then treats another package's plain requirement on the same name (`google-auth>=2.14`)
as a separate, unpinned one, takes the newest release from the index and refuses it in hash
mode; newer pips merge the two. With a plain twin carrying the same version and hashes, every
requirement on the name is pinned in the lock for either pip.

    python -m tools.pin_extra_bases LOCK [LOCK ...]    rewrites each lock in place; idempotent
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

# An entry's first line: `name[extra,...]==version \` (uv writes every entry with its hashes).
ENTRY = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?P<extras>\[[^\]]*\])?==(?P<rest>.*)$")
TWIN_NOTE = "    # plain twin of the entry below (tools/pin_extra_bases.py)"


def _entries(lines: list[str]) -> list[list[str]]:
    """The lock cut into its header and one list of lines per entry (the entry's line, its hash
    lines and its `# via` comments)."""
    blocks: list[list[str]] = [[]]
    for line in lines:
        if ENTRY.match(line):
            blocks.append([])
        blocks[-1].append(line)
    return blocks


def with_plain_twins(text: str) -> str:
    """The lock with a plain entry inserted before every extras entry whose name has none."""
    blocks = _entries(text.splitlines())
    plain = {
        match["name"].lower()
        for block in blocks[1:]
        if (match := ENTRY.match(block[0])) and not match["extras"]
    }
    out = list(blocks[0])
    for block in blocks[1:]:
        match = ENTRY.match(block[0])
        assert match is not None
        if match["extras"] and match["name"].lower() not in plain:
            hashes = [line for line in block[1:] if line.lstrip().startswith("--hash=")]
            out += [f"{match['name']}=={match['rest']}", *hashes, TWIN_NOTE]
            plain.add(match["name"].lower())
        out += block
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("locks", nargs="+", type=Path)
    for path in parser.parse_args(argv).locks:
        path.write_text(with_plain_twins(path.read_text()))


if __name__ == "__main__":
    main()
