"""Under CI a skip that is not on the allow-list fails the run (tests/conftest.py)."""

import os
import subprocess
import sys

import pytest

SAMPLE = "LOCO_SKIP_GATE_SAMPLE"


def test_sample():
    if os.environ.get(SAMPLE):
        pytest.skip("a part this test needs is missing")


@pytest.mark.parametrize(("ci", "code"), [("true", 1), ("", 0)])
def test_an_unlisted_skip_fails_only_under_ci(ci, code):
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"{__file__}::test_sample"],
        env={**os.environ, "CI": ci, SAMPLE: "1"}, capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == code, run.stdout
    assert ("skips not allowed under CI" in run.stdout) == bool(ci)
