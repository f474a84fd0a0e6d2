"""The reliability suite: faults injected into real components, one row each in the table
tests/conftest.py prints at the end of the run (the ``row`` fixture): the fault, what the user
saw, and what was kept."""

import pytest

from loco_lan import demoguest


@pytest.fixture(scope="session")
def demo_disk(tmp_path_factory):
    return demoguest.make_disk(tmp_path_factory.mktemp("demo") / "demo.qcow2")
