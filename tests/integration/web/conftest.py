"""Fixtures for the web client's tests: the built client (web/dist, from scripts/setup.sh), one
set of three demo guests with the focus service and the gateway serving the client, and one
headless Chromium per module; screenshots go to artifacts/web/."""

import os
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright
from streamstack import StreamStack, launch_chromium

from loco_lan import demoguest

REPO = Path(__file__).resolve().parents[3]
WEB_DIST = REPO / "web" / "dist"
ARTIFACTS = Path(os.environ.get("LOCO_ARTIFACTS", REPO / "artifacts")) / "web"


@pytest.fixture(scope="session")
def web_dist() -> Path:
    if not (WEB_DIST / "index.html").is_file():
        pytest.fail(f"{WEB_DIST} has no index.html: run scripts/setup.sh (it builds the web client)")
    return WEB_DIST


@pytest.fixture(scope="session")
def demo_disk(tmp_path_factory) -> Path:
    return demoguest.make_disk(tmp_path_factory.mktemp("demo") / "demo.qcow2")


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        yield browser
        browser.close()


def make_stack(tmp_path_factory, demo_disk, web_dist, mode: str) -> StreamStack:
    return StreamStack(tmp_path_factory.mktemp(f"web-{mode}"), demo_disk, count=3, web_root=web_dist, mode=mode)
