"""Fixtures for the streaming gateway's tests: one set of demo guests, the focus service and the
gateway per module, and one headless Chromium per module."""

from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright
from streamstack import StreamStack, launch_chromium

from loco_lan import demoguest

HARNESS = Path(__file__).parent / "harness"


@pytest.fixture(scope="session")
def demo_disk(tmp_path_factory) -> Path:
    return demoguest.make_disk(tmp_path_factory.mktemp("demo") / "demo.qcow2")


@pytest.fixture(scope="session")
def harness() -> Path:
    """The bare test page the gateway serves in these tests."""
    return HARNESS


@pytest.fixture(scope="module")
def stack(tmp_path_factory, demo_disk, harness):
    stack = StreamStack(tmp_path_factory.mktemp("stream"), demo_disk, count=2, web_root=harness)
    try:
        yield stack.start()
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright, "--autoplay-policy=no-user-gesture-required")
        yield browser
        browser.close()


@pytest.fixture
def page(browser, stack):
    context = browser.new_context()
    page = context.new_page()
    page.goto(stack.gateway.url + "/")
    yield page
    context.close()
