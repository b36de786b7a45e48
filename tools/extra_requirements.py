#!/usr/bin/env python3
"""Prints the requirements of one extra of the installed spread-client, one a
line, so that its tools can be installed without building the package again:

    python tools/extra_requirements.py dev | xargs -d '\\n' python -m pip install

(`pip install ".[dev]"` would compile both extensions once more.)
"""

from __future__ import annotations

import importlib.metadata
import re
import sys

MARKER = re.compile(r"""^(?P<requirement>[^;]+);\s*extra\s*==\s*["'](?P<extra>[^"']+)["']\s*$""")


def requirements(extra: str, distribution: str = "spread-client") -> list[str]:
    found = []
    for line in importlib.metadata.requires(distribution) or []:
        m = MARKER.match(line)
        if m and m["extra"] == extra:
            found.append(m["requirement"].strip())
    return found


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: extra_requirements.py EXTRA", file=sys.stderr)
        return 2
    found = requirements(argv[0])
    if not found:
        print(f"spread-client has no extra {argv[0]!r} (is it installed?)", file=sys.stderr)
        return 1
    print("\n".join(found))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
