"""Every benchmark in bench/ still runs to its verdict line, at a toy size (the figures
themselves mean nothing here: benchmarks are run by hand, see README)."""

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"

RUNS = {
    "bench_pull.py": (["--size-mib", "8", "--runs", "1"], "goal >= 0.90x skopeo"),
    "bench_resume.py": (["--size-mib", "8"], "goal < 5% re-downloaded"),
    "bench_upload.py": (["--size-mib", "8", "--runs", "1"], "goal >= 0.80x"),
    "bench_focus_fanout.py": (["--clients", "20", "--changes", "5", "--seconds", "0.5", "--rounds", "1"],
                              "goal p99 < 20 ms"),
    "bench_stream.py": (["--presses", "3", "--viewers", "1,2", "--guests", "1", "--seconds", "1"],
                        "goal: latency median <= 60 ms"),
}


def test_every_bench_script_is_covered():
    assert sorted(RUNS) == sorted(p.name for p in BENCH.glob("bench_*.py"))


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(RUNS))
def test_bench_runs_to_its_verdict(script, tmp_path):
    args, verdict = RUNS[script]
    result = subprocess.run([sys.executable, str(BENCH / script), *args], capture_output=True, text=True,
                            cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert verdict in result.stdout, result.stdout[-2000:]
