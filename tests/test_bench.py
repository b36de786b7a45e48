"""The benchmark command runs end to end (a short run; figures are not checked)."""

import json
import subprocess
import sys


def test_bench_quick_run(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "spread.bench", "--quick", "--sizes", "100",
         "--only", "mcast,self,2proc,rtt,slow", "--json", str(out)],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "Python/C" in proc.stdout and "multicast only" in proc.stdout
    data = json.loads(out.read_text())
    kinds = {cell["kind"] for cell in data["results"].values()}
    assert kinds == {"mcast", "self", "2proc", "rtt", "slow"}
    slow = data["results"]["slow 1024"]["summary"]
    assert slow["threaded"]["lost"] == 0 and slow["threaded"]["killed"] == 0
