"""Shared fixtures. Tests that need a Docker engine carry the ``docker`` marker.

Under CI (CI=true) a missing engine is a failure, not a skip: scripts/test starts one,
so its absence means the harness broke, and a green run must not hide that.
"""

from __future__ import annotations

import os
import subprocess

import pytest

BUSYBOX = "forensics-test/busybox:latest"


def _engine_answers() -> bool:
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not any(item.get_closest_marker("docker") for item in items):
        return
    if _engine_answers():
        return
    if os.environ.get("CI"):
        raise pytest.UsageError("CI=true but no Docker engine answers: scripts/test should have started one")
    skip = pytest.mark.skip(reason="no Docker engine answers (scripts/test starts one)")
    for item in items:
        if item.get_closest_marker("docker"):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def busybox_image() -> str:
    probe = subprocess.run(["docker", "image", "inspect", BUSYBOX], capture_output=True)
    if probe.returncode != 0:
        pytest.fail(f"{BUSYBOX} is missing: run scripts/build-base-images")
    return BUSYBOX
