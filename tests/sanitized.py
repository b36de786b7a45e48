"""Whether the suite runs under CI's sanitized build (.ci/run preloads gcc's
ASan runtime, with PYTHONMALLOC=malloc): everything runs several times
slower there, so stress counts and timing slack scale with it."""

import os

ASAN = "libasan" in os.environ.get("LD_PRELOAD", "")
