"""Victim containers on the real engine, listed from both sides and from disk alone."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from testcontainers.core.container import DockerContainer

from forensics.cli import main

pytestmark = pytest.mark.docker


@pytest.fixture()
def victims(busybox_image: str) -> Iterator[dict[str, Any]]:
    """A running and a stopped victim, started through testcontainers."""
    running = DockerContainer(busybox_image).with_command("sleep 600")
    stopped = DockerContainer(busybox_image).with_command("true")
    running.start()
    stopped.start()
    try:
        stopped.get_wrapped_container().wait(timeout=30)
        yield {
            "running": running.get_wrapped_container().id,
            "stopped": stopped.get_wrapped_container().id,
        }
    finally:
        running.stop()
        stopped.stop()


def _list(capsys: pytest.CaptureFixture[str], *extra: str) -> dict[str, Any]:
    assert main(["container", "list", "--json", "--root", "/", *extra]) == 0
    return json.loads(capsys.readouterr().out)


def test_both_sides_see_the_victims(victims: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    data = _list(capsys)
    by_id = {c["id"]: c for c in data["containers"]}
    assert by_id[victims["running"]]["source"] == "both"
    assert by_id[victims["running"]]["state"] == "running"
    assert by_id[victims["stopped"]]["source"] == "both"
    assert by_id[victims["stopped"]]["state"] == "exited"
    assert by_id[victims["stopped"]]["state_disk"] == "exited"
    assert data["engine"] == "ok"
    ours = {victims["running"], victims["stopped"]}
    assert not [f for f in data["findings"] if f["subject"].removeprefix("container:") in ours]


def test_no_engine_lists_the_same_from_disk(
    victims: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    with_engine = {c["id"]: c for c in _list(capsys)["containers"]}
    from_disk = {c["id"]: c for c in _list(capsys, "--no-engine")["containers"]}
    for cid in victims.values():
        assert from_disk[cid]["source"] == "disk"
        assert from_disk[cid]["name"] == with_engine[cid]["name"]
        assert from_disk[cid]["state"] == with_engine[cid]["state"]
    assert set(from_disk) == set(with_engine)


def test_disk_image_ids_match_the_engine(victims: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    from_disk = {c["id"]: c for c in _list(capsys, "--no-engine")["containers"]}
    inspected = json.loads(subprocess.check_output(["docker", "inspect", victims["running"]]))[0]
    assert from_disk[victims["running"]]["image_id"] == inspected["Image"]


def test_api_logs_of_a_running_container_return(busybox_image: str) -> None:
    """The logs call must not follow a running container (it would wait for it to end)."""
    import threading

    from forensics.host.engine import Engine

    victim = DockerContainer(busybox_image).with_command("sh -c 'echo hello; sleep 600'")
    victim.start()
    try:
        cid = victim.get_wrapped_container().id
        engine = Engine("unix:///var/run/docker.sock")
        box: list[bytes] = []
        worker = threading.Thread(target=lambda: box.append(engine.container_logs(cid, 1 << 20)), daemon=True)
        for _ in range(50):  # the echo may not have reached the log yet
            worker.start()
            worker.join(60)
            assert not worker.is_alive(), "container_logs followed the running container"
            if b"hello" in box[-1]:
                break
            worker = threading.Thread(
                target=lambda: box.append(engine.container_logs(cid, 1 << 20)), daemon=True
            )
        assert b"hello" in box[-1]
    finally:
        victim.stop()
