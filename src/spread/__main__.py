"""python -m spread: what is installed and what it runs on.

Prints the version, the backend that loaded, whether the native client
library is ours or one named by SPREAD_LIBRARY, and the package's commands.
--version prints the version line only.
"""

from __future__ import annotations

import argparse
import os
import sys

COMMANDS = (
    ("python -m spread.demo", "a tour of the API on the embedded daemon"),
    ("python -m spread.daemon", "the embedded Spread daemon in the foreground"),
    ("python -m spread.bench", "the binding beside the native C client"),
)


def version_line() -> str:
    from spread import __version__

    return f"spread-client {__version__}"


def library_line(backend: str, core) -> str:
    external = getattr(core, "LIBRARY", None)  # the cffi backend's SPREAD_LIBRARY
    if external:
        return f"native library: external, SPREAD_LIBRARY={external}"
    line = f"native library: ours, built into the {backend} backend"
    if os.environ.get("SPREAD_LIBRARY"):
        line += " (SPREAD_LIBRARY is set, but only the cffi backend loads it)"
    return line


def report() -> list[str]:
    import spread
    from spread._backend import MODULES

    major, minor, patch = spread.version()
    width = max(len(c) for c, _ in COMMANDS)
    return [
        version_line(),
        f"backend: {spread.backend} ({MODULES[spread.backend]}); "
        "SPREAD_BACKEND=cython or cffi picks one",
        library_line(spread.backend, spread._core),
        f"Spread protocol: {major}.{minor}.{patch}",
        "commands:",
        *(f"  {c.ljust(width)}  {what}" for c, what in COMMANDS),
    ]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m spread", description=__doc__.split("\n\n")[0])
    p.add_argument("--version", action="store_true", help="print the version line only")
    args = p.parse_args(argv)
    print("\n".join([version_line()] if args.version else report()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
